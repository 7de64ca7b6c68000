"""Multipart audio uploads as hostile clients write them: fields in any order, repeated or missing,
odd boundaries and line ends, a file before or after the model, a body cut short."""

from __future__ import annotations

from hypothesis import strategies as st

from tests.fuzz.relay_bodies import MODELS
from tests.fuzz.strategies import SPECIAL_STRINGS, Body, edge_numbers, encode, strings

FIELD_NAMES = ("model", "language", "prompt", "response_format", "temperature", "timestamp_granularities[]",
               "stream", "file")
WAV = b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80>\x00\x00\x00}\x00\x00\x02\x00\x10\x00data"

boundaries = st.one_of(
    st.sampled_from(("fuzzboundary", "----WebKitFormBoundary7MA4YWxkTrZu0gW", "a", "x" * 200, "with space",
                     "quote\"d", "semi;colon", "é", "--", "")),
    st.text(alphabet="abcXYZ0123456789-_'()+,./:=?", min_size=1, max_size=70),
)
field_values = st.one_of(st.sampled_from(MODELS), edge_numbers, st.sampled_from(SPECIAL_STRINGS),
                         strings, st.sampled_from(("json", "text", "srt", "vtt", "verbose_json", "en", "zz")))
file_bodies = st.one_of(st.just(WAV), st.binary(max_size=200), st.sampled_from((b"", b"\r\n--fuzzboundary--\r\n")),
                        st.integers(min_value=1, max_value=300_000).map(lambda n: WAV + b"\x00" * n))
filenames = st.one_of(st.sampled_from(("audio.wav", "a.mp3", "", "../../etc/passwd", "é.wav", 'q"uote.wav',
                                       "x" * 300)), st.text(max_size=12))


@st.composite
def parts(draw) -> list[tuple[str, bytes, str | None, str | None]]:
    """(name, value, filename, content type) in the order sent; usually a model and a file, in either order."""
    chosen = draw(st.lists(st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8)), max_size=6))
    if draw(st.integers(min_value=0, max_value=4)):
        chosen += ["model", "file"]
    chosen = draw(st.permutations(chosen))
    found = []
    for name in chosen:
        if name == "file" or draw(st.integers(min_value=0, max_value=15)) == 0:
            found.append((name, draw(file_bodies), draw(filenames),
                          draw(st.one_of(st.none(), st.sampled_from(("audio/wav", "audio/mpeg", "text/plain", "",
                                                                     "x/y; z"))))))
        else:
            found.append((name, encode(draw(field_values)), None, None))
    return found


@st.composite
def uploads(draw) -> Body:
    boundary = draw(boundaries)
    newline = draw(st.sampled_from((b"\r\n",) * 5 + (b"\n", b"\r")))
    delimiter = b"--" + encode(boundary)
    chunks = []
    for name, value, filename, content_type in draw(parts()):
        head = b'Content-Disposition: form-data; name="' + encode(name) + b'"'
        if filename is not None:
            head += b'; filename="' + encode(filename) + b'"'
        if content_type is not None:
            head += newline + b"Content-Type: " + encode(content_type)
        chunks.append(delimiter + newline + head + newline + newline + value + newline)
    body = b"".join(chunks)
    if draw(st.integers(min_value=0, max_value=4)):
        body += delimiter + b"--" + newline
    if draw(st.integers(min_value=0, max_value=9)) == 0:  # cut short
        body = body[:draw(st.integers(min_value=0, max_value=len(body)))]
    header = draw(st.sampled_from((
        "multipart/form-data; boundary={b}", 'multipart/form-data; boundary="{b}"', "multipart/form-data; boundary={b}",
        "multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; charset=utf-8; boundary={b}",
        "MULTIPART/FORM-DATA; BOUNDARY={b}", "multipart/mixed; boundary={b}", "application/json",
        "multipart/form-data; boundary={b}; boundary=other",
    ))).replace("{b}", boundary)
    return Body(body, header)
