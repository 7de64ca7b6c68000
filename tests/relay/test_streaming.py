from relay.streaming import LineParser, SSEParser


def test_sse_parser_joins_fields_across_arbitrary_chunk_boundaries():
    raw = b'event: delta\r\ndata: {"a":\ndata: 1}\n\n: keep-alive\n\ndata: [DONE]\n\n'
    for cut in range(1, len(raw)):
        parser = SSEParser()
        events = list(parser.feed(raw[:cut])) + list(parser.feed(raw[cut:])) + list(parser.close())
        assert events == [(b"delta", b'{"a":\n1}'), (b":", b": keep-alive"), (b"", b"[DONE]")], cut


def test_sse_parser_keeps_a_last_event_without_its_blank_line():
    parser = SSEParser()
    assert list(parser.feed(b"data: x")) == []
    assert list(parser.close()) == [(b"", b"x")]


def test_line_parser_yields_each_json_line():
    parser = LineParser()
    events = list(parser.feed(b'{"a":1}\n\n{"b"')) + list(parser.feed(b":2}\n{\"c\":3}")) + list(parser.close())
    assert events == [(b"", b'{"a":1}'), (b"", b'{"b":2}'), (b"", b'{"c":3}')]


def test_raw_framing_hands_bytes_to_the_decoder():
    from providers.adapters.base import StreamDecoder, StreamEvent
    from relay.streaming import Frames

    class Raw(StreamDecoder):
        framing = "raw"

        def __init__(self):
            self.seen = []

        def feed_bytes(self, chunk):
            self.seen.append(chunk)
            return [StreamEvent(data=chunk)]

        def close(self):
            return [StreamEvent(data=None, done=True)]

    decoder = Raw()
    frames = Frames(decoder)
    assert [e.data for e in frames.feed(b"\x00\x01\n")] == [b"\x00\x01\n"]
    assert frames.close()[0].done and decoder.seen == [b"\x00\x01\n"]
