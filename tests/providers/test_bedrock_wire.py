"""The two AWS wire formats Bedrock needs, checked against AWS's published vectors and botocore.

SigV4: the AWS Signature Version 4 test suite (credentials AKIDEXAMPLE, 2015-08-30T12:36:00Z,
region us-east-1, service "service"), and botocore's own signer on Bedrock-shaped requests.
Event stream: the AWS event-stream "empty message" vector, botocore's decoder, CRC checks, and every
possible chunk boundary.
"""

import datetime
import struct
import uuid
import zlib

import pytest

from providers.adapters.aws import sigv4
from providers.adapters.aws.eventstream import EventStreamError, EventStreamParser, decode_headers, encode_message

AK, SK = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SUITE_TIME = datetime.datetime(2015, 8, 30, 12, 36, tzinfo=datetime.UTC)


def suite_sign(method: str, url: str, body: bytes = b"") -> str:
    headers = sigv4.sign(method=method, url=url, headers={}, body=body, access_key=AK, secret_key=SK,
                         region="us-east-1", service="service", now=lambda: SUITE_TIME)
    assert headers["X-Amz-Date"] == "20150830T123600Z"
    return headers["Authorization"]


@pytest.mark.parametrize(("case", "method", "url", "signature"), [
    ("get-vanilla", "GET", "https://example.amazonaws.com/",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("post-vanilla", "POST", "https://example.amazonaws.com/",
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    ("get-vanilla-query-order-key-case", "GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1",
     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
])
def test_signatures_match_the_aws_sigv4_test_suite(case, method, url, signature):
    assert suite_sign(method, url) == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}")


def test_the_signing_date_is_utc_whatever_the_clock_zone():
    tokyo = SUITE_TIME.astimezone(datetime.timezone(datetime.timedelta(hours=9)))
    headers = sigv4.sign(method="GET", url="https://example.amazonaws.com/", headers={}, body=b"",
                         access_key=AK, secret_key=SK, region="us-east-1", service="service", now=lambda: tokyo)
    assert headers["Authorization"].endswith("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")


def test_each_path_segment_is_encoded_once_more_for_the_canonical_uri():
    assert sigv4.canonical_uri("/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke") == \
        "/model/anthropic.claude-3-haiku-20240307-v1%253A0/invoke"
    assert sigv4.canonical_uri("") == "/"


def test_host_keeps_only_a_non_default_port():
    from urllib.parse import urlsplit
    assert sigv4.host_of(urlsplit("https://Bedrock-Runtime.us-east-1.amazonaws.com:443/x")) == \
        "bedrock-runtime.us-east-1.amazonaws.com"
    assert sigv4.host_of(urlsplit("http://127.0.0.1:8123/x")) == "127.0.0.1:8123"


@pytest.mark.parametrize("model_path", [
    "anthropic.claude-3-5-sonnet-20241022-v2%3A0",
    "us.anthropic.claude-3-7-sonnet-20250219-v1%3A0",
    "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-haiku-20240307-v1%3A0",
])
def test_bedrock_signature_matches_botocore(model_path):
    auth = pytest.importorskip("botocore.auth")
    from unittest import mock

    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"https://bedrock-runtime.eu-west-3.amazonaws.com/model/{model_path}/invoke"
    body = b'{"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10, "messages": []}'
    when = datetime.datetime(2025, 2, 3, 4, 5, 6, tzinfo=datetime.UTC)
    ours = sigv4.sign(method="POST", url=url, headers={"Content-Type": "application/json"}, body=body,
                      access_key="AKIA0000EXAMPLE", secret_key="s3cr3t/with+chars", region="eu-west-3",
                      service="bedrock", now=lambda: when)
    theirs = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    with mock.patch.object(auth, "get_current_datetime", return_value=when.replace(tzinfo=None)):
        auth.SigV4Auth(Credentials("AKIA0000EXAMPLE", "s3cr3t/with+chars"), "bedrock", "eu-west-3").add_auth(theirs)
    assert ours["X-Amz-Date"] == theirs.headers["X-Amz-Date"] == "20250203T040506Z"
    assert ours["Authorization"] == theirs.headers["Authorization"]
    assert "SignedHeaders=content-type;host;x-amz-date," in ours["Authorization"]
    assert "Credential=AKIA0000EXAMPLE/20250203/eu-west-3/bedrock/aws4_request" in ours["Authorization"]


def test_a_session_token_is_sent_and_signed_as_botocore_signs_it():
    auth = pytest.importorskip("botocore.auth")
    from unittest import mock

    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/meta.llama3-8b-instruct-v1%3A0/converse"
    body = b'{"messages": []}'
    when = datetime.datetime(2025, 2, 3, 4, 5, 6, tzinfo=datetime.UTC)
    ours = sigv4.sign(method="POST", url=url, headers={"Content-Type": "application/json"}, body=body,
                      access_key="ASIA0000EXAMPLE", secret_key="s3cr3t", region="us-east-1",
                      service="bedrock", session_token="IQoJb3JpZ2luX2VjE/session+token=", now=lambda: when)
    theirs = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    credentials = Credentials("ASIA0000EXAMPLE", "s3cr3t", "IQoJb3JpZ2luX2VjE/session+token=")
    with mock.patch.object(auth, "get_current_datetime", return_value=when.replace(tzinfo=None)):
        auth.SigV4Auth(credentials, "bedrock", "us-east-1").add_auth(theirs)
    assert ours["X-Amz-Security-Token"] == theirs.headers["X-Amz-Security-Token"] == "IQoJb3JpZ2luX2VjE/session+token="
    assert ours["Authorization"] == theirs.headers["Authorization"]
    assert "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token," in ours["Authorization"]


# --- the bytes on the wire ------------------------------------------------------------------------

INVOKE_ANSWER = (b'{"id": "msg_1", "type": "message", "role": "assistant", "model": "claude", "content": '
                 b'[{"type": "text", "text": "hi"}], "stop_reason": "end_turn", "usage": '
                 b'{"input_tokens": 3, "output_tokens": 1}}')
CONVERSE_ANSWER = (b'{"output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}}, '
                   b'"stopReason": "end_turn", "usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4}}')


async def wire_request(*, model: str, config: dict, answer: bytes) -> tuple[str, str, dict[str, str], bytes]:
    """Send a channel test through the relay's own call path (relay.probe) to a bare TCP server, and
    return the request as it arrived: method, request target, headers and body, bytes untouched."""
    import asyncio

    from providers.adapters.base import ChannelInfo
    from relay.probe import probe

    arrived: asyncio.Future = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
        headers = dict(line.split(": ", 1) for line in header_lines)
        length = int(next(v for k, v in headers.items() if k.lower() == "content-length"))
        method, target, _ = request_line.split(" ")
        arrived.set_result((method, target, headers, await reader.readexactly(length)))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    channel = ChannelInfo(id=1, type=33, name="wire", key="", base_url=f"http://127.0.0.1:{port}", models=(model,),
                          model_mapping={}, config=config, system_prompt="", priority=0, weight=0)
    async with server:
        result = await probe(channel=channel, model=model, prompt="hi")
    assert result.success, result.message
    return arrived.result()


@pytest.mark.parametrize(("model", "target", "answer"), [
    ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
     "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2F"
     "us.anthropic.claude-3-haiku-20240307-v1%3A0/invoke", INVOKE_ANSWER),
    ("us.anthropic.claude-3-7-sonnet-20250219-v1:0",
     "/model/us.anthropic.claude-3-7-sonnet-20250219-v1%3A0/invoke", INVOKE_ANSWER),
    ("meta.llama3-8b-instruct-v1:0", "/model/meta.llama3-8b-instruct-v1%3A0/converse", CONVERSE_ANSWER),
], ids=["arn-inference-profile", "cross-region-profile", "converse"])
@pytest.mark.parametrize("session_token", ["", "IQoJb3JpZ2luX2VjE/session+token="], ids=["long-term", "session"])
async def test_the_path_on_the_wire_is_the_path_that_was_signed(model, target, answer, session_token):
    """The model id's `:` and `/` reach the server percent-encoded, byte for byte as signed: the relay's
    HTTP client neither re-encodes nor decodes them (a mismatch is Bedrock's SignatureDoesNotMatch)."""
    botocore_auth = pytest.importorskip("botocore.auth")
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    config = {"ak": "AKIA0000EXAMPLE", "sk": "s3cr3t/with+chars", "region": "us-east-1",
              "session_token": session_token}
    method, sent_target, headers, body = await wire_request(model=model, config=config, answer=answer)
    assert (method, sent_target) == ("POST", target)
    assert headers.get("X-Amz-Security-Token", "") == session_token
    # Recompute the signature from what arrived, with botocore: it covers exactly these bytes.
    signed = {"Content-Type": headers["Content-Type"], "Host": headers["Host"], "X-Amz-Date": headers["X-Amz-Date"]}
    request = AWSRequest(method=method, url=f"http://{headers['Host']}{sent_target}", data=body, headers=signed)
    request.context["timestamp"] = headers["X-Amz-Date"]
    signer = botocore_auth.SigV4Auth(Credentials(config["ak"], config["sk"], session_token or None), "bedrock",
                                     "us-east-1")
    if session_token:
        request.headers["X-Amz-Security-Token"] = session_token
    canonical = signer.canonical_request(request)
    assert canonical.splitlines()[1] == sigv4.canonical_uri(sent_target)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    assert headers["Authorization"].endswith(f"Signature={signature}")


# --- event stream ---------------------------------------------------------------------------------


def test_an_empty_message_encodes_as_the_aws_test_vector():
    assert encode_message({}, b"").hex() == "000000100000000005c248eb7d98c8ff"


def test_frames_decode_with_botocore_as_they_were_encoded():
    eventstream = pytest.importorskip("botocore.eventstream")
    chunk = {":event-type": "chunk", ":message-type": "event", "blob": b"\x00\x01"}
    frames = [encode_message(chunk, b'{"bytes":"eA=="}'),
              encode_message({":message-type": "exception", ":exception-type": "throttlingException"}, b"{}")]
    buffer = eventstream.EventStreamBuffer()
    buffer.add_data(b"".join(frames))
    decoded = list(buffer)
    assert decoded[0].headers == {":event-type": "chunk", ":message-type": "event", "blob": b"\x00\x01"}
    assert decoded[0].payload == b'{"bytes":"eA=="}'
    assert decoded[1].headers[":exception-type"] == "throttlingException"


def test_every_chunk_boundary_gives_the_same_messages():
    stream = b"".join(encode_message({":event-type": "chunk", "n": str(i)}, b"payload %d" % i * (i + 1))
                      for i in range(4))
    whole = EventStreamParser().feed(stream)
    assert [m.headers["n"] for m in whole] == ["0", "1", "2", "3"]
    for cut in range(len(stream) + 1):
        parser = EventStreamParser()
        messages = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        assert messages == whole, cut
        assert parser.pending == 0
    parser = EventStreamParser()
    assert sum((parser.feed(stream[i:i + 1]) for i in range(len(stream))), []) == whole


def test_a_partial_message_waits_for_the_rest():
    frame = encode_message({":event-type": "chunk"}, b"{}")
    parser = EventStreamParser()
    assert parser.feed(frame[:-1]) == [] and parser.pending == len(frame) - 1


def test_a_bad_prelude_crc_is_an_error():
    frame = bytearray(encode_message({":event-type": "chunk"}, b"{}"))
    frame[9] ^= 0x01
    with pytest.raises(EventStreamError, match="prelude CRC"):
        EventStreamParser().feed(bytes(frame))


def test_a_bad_message_crc_is_an_error():
    frame = bytearray(encode_message({":event-type": "chunk"}, b"{}"))
    frame[-5] ^= 0x01
    with pytest.raises(EventStreamError, match="message CRC"):
        EventStreamParser().feed(bytes(frame))


def test_an_impossible_length_is_an_error_before_waiting_for_it():
    prelude = struct.pack(">II", 0xFFFFFFF0, 0)
    with pytest.raises(EventStreamError, match="length"):
        EventStreamParser().feed(prelude + struct.pack(">I", zlib.crc32(prelude)))


def test_every_header_value_type_decodes():
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    raw = b"".join([
        b"\x01t\x00", b"\x01f\x01", b"\x01b\x02\xff", b"\x01s\x03" + struct.pack(">h", -2),
        b"\x01i\x04" + struct.pack(">i", 70000), b"\x01l\x05" + struct.pack(">q", 2**40),
        b"\x01y\x06\x00\x02\x00\x01", b"\x01z\x07\x00\x03abc", b"\x01d\x08" + struct.pack(">q", 1700000000000),
        b"\x01u\x09" + ident.bytes,
    ])
    assert decode_headers(raw) == {"t": True, "f": False, "b": -1, "s": -2, "i": 70000, "l": 2**40,
                                   "y": b"\x00\x01", "z": "abc", "d": 1700000000000, "u": ident}
    with pytest.raises(EventStreamError):
        decode_headers(b"\x01z\x07\x00\x09abc")  # a string longer than the block
    with pytest.raises(EventStreamError):
        decode_headers(b"\x01q\x0a")  # no such type
