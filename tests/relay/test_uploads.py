"""Audio uploads: the model (and every field the relay decides by) that is checked, routed and priced is
exactly the one the upstream receives, whatever order the form's parts come in."""

import email.parser
import email.policy
import hashlib
import os

import orjson
import pytest
from aiohttp import web
from asgiref.testing import ApplicationCommunicator

from billing import pricing
from oneapi_site.lib import modes
from providers import health
from providers.adapters import cloudflare, uploads
from providers.adapters.multipart import FormError, FormScanner
from relay import asgi, media
from tests.factories import ChannelFactory, TokenFactory, UserFactory
from tests.helpers import consume_log
from tests.providers.vendor_harness import no_consume_log

BOUNDARY = "b0undary"
AUDIO = b"ID3" + b"\r\n--b0und" + os.urandom(5000)  # bytes that look almost like a delimiter


class Recorder:
    """An OpenAI-style transcription endpoint that records every form it received whole, part by part
    and in order, read by the standard library's own MIME parser; and counts those cut off mid-way."""

    def __init__(self) -> None:
        self.forms: list[list[tuple[str, object]]] = []
        self.cut_off = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        try:
            raw = await request.read()
        except ConnectionError:
            self.cut_off += 1
            return web.Response(status=400)  # nobody is there to read it
        head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
        parts = []
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            value = part.get_payload(decode=True)
            filename = part.get_filename()
            parts.append((name, (filename, hashlib.sha256(value).hexdigest()) if filename else value.decode()))
        self.forms.append(parts)
        return web.json_response({"text": "Hello from the recorder."})


@pytest.fixture
async def recorder():
    server = Recorder()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/audio/transcriptions", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    yield server
    await runner.cleanup()


@pytest.fixture
def caller(transactional_db, recorder):
    user = UserFactory(username="carol", quota=10_000_000)
    ChannelFactory(base_url=recorder.url, models="whisper-1,gpt-4o-transcribe,gpt-4o-mini-transcribe",
                   model_mapping={"gpt-4o-mini-transcribe": "gpt-4o-mini-transcribe-2025"})
    anything = TokenFactory(user=user, remain_quota=5_000_000)
    whisper_only = TokenFactory(user=user, remain_quota=5_000_000, models="whisper-1")
    return type("Caller", (), {"any": anything.key, "whisper_only": whisper_only.key})


def form(*parts) -> bytes:
    """A multipart body of `parts`, each (name, text) or (name, (filename, bytes)), in this order."""
    out = b""
    for name, value in parts:
        if isinstance(value, tuple):
            out += (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="{value[0]}"\r\n'
                    f"Content-Type: audio/mpeg\r\n\r\n").encode() + value[1] + b"\r\n"
        else:
            out += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    return out + f"--{BOUNDARY}--\r\n".encode()


CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
FILE = ("file", ("a.mp3", AUDIO))
SENT_FILE = ("file", ("a.mp3", hashlib.sha256(AUDIO).hexdigest()))


def scope(key: str) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": "/v1/audio/transcriptions", "raw_path": b"/v1/audio/transcriptions", "query_string": b"",
            "root_path": "", "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
            "headers": [(b"authorization", f"Bearer sk-{key}".encode()), (b"content-type", CONTENT_TYPE.encode())]}


async def post(asgi_app, body: bytes, key: str, piece: int = 1024) -> tuple[int, dict]:
    """The body as a real server hands it over, a message per network read (httpx's in-process transport
    would hand it over whole, and the relay would see every field at once)."""
    app = ApplicationCommunicator(asgi_app, scope(key))
    for at in range(0, len(body), piece):
        await app.send_input({"type": "http.request", "body": body[at:at + piece], "more_body": at + piece < len(body)})
    opened = await app.receive_output(10)
    answer = b""
    while True:
        message = await app.receive_output(10)
        answer += message.get("body", b"")
        if not message.get("more_body"):
            break
    await app.wait(10)
    return opened["status"], orjson.loads(answer)


# --- a model after the file --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_model_after_the_file_is_checked_against_the_keys_allow_list(asgi_app, client, caller, recorder):
    # OpenAI's own curl example sends the file first: the model is read before anything is routed.
    status, answer = await post(asgi_app, form(FILE, ("model", "gpt-4o-transcribe")), caller.whisper_only)
    assert status == 403 and answer["error"]["code"] == "model_not_allowed", answer
    assert recorder.forms == [] and recorder.cut_off == 0
    assert await no_consume_log()


@pytest.mark.django_db(transaction=True)
async def test_a_model_after_the_file_is_the_one_routed_priced_and_sent(asgi_app, client, caller, recorder):
    status, answer = await post(asgi_app, form(FILE, ("model", "gpt-4o-mini-transcribe"), ("response_format", "json")),
                                caller.any)
    assert status == 200, answer
    # The fields go first, each once; the model as the channel maps it; the file unchanged.
    assert recorder.forms == [[("model", "gpt-4o-mini-transcribe-2025"), ("response_format", "json"), SENT_FILE]]
    assert (await consume_log()).model_name == "gpt-4o-mini-transcribe"


@pytest.mark.django_db(transaction=True)
async def test_a_large_file_before_its_fields_is_sent_on_byte_for_byte(asgi_app, client, caller, recorder):
    audio = os.urandom(3 * 1024 * 1024)  # past what is kept in memory: spooled to a temporary file
    status, answer = await post(asgi_app, form(("file", ("big.mp3", audio)), ("model", "whisper-1")), caller.any)
    assert status == 200, answer
    assert recorder.forms == [[("model", "whisper-1"), ("file", ("big.mp3", hashlib.sha256(audio).hexdigest()))]]


@pytest.mark.django_db(transaction=True)
async def test_a_file_before_its_fields_is_bounded_while_it_is_read(asgi_app, client, caller, recorder,
                                                                   monkeypatch):
    monkeypatch.setattr(uploads, "MAX_AUDIO_FILE", 4000)
    status, answer = await post(asgi_app, form(FILE, ("model", "whisper-1")), caller.any)
    assert status == 413 and answer["error"]["code"] == "file_too_large"
    assert recorder.forms == []


@pytest.mark.django_db(transaction=True)
async def test_a_form_without_a_model_sends_the_model_it_is_priced_as(asgi_app, client, caller, recorder):
    status, answer = await post(asgi_app, form(("language", "en"), FILE), caller.whisper_only)
    assert status == 200, answer
    assert recorder.forms == [[("model", "whisper-1"), ("language", "en"), SENT_FILE]]
    assert (await consume_log()).model_name == "whisper-1"


# --- the same field twice ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("parts", [
    [("model", "whisper-1"), ("model", "gpt-4o-transcribe"), FILE],
    [("model", "whisper-1"), FILE, ("model", "gpt-4o-transcribe")],
    [FILE, ("model", "whisper-1"), ("model", "gpt-4o-transcribe")],
    [("model", "whisper-1"), ("response_format", "json"), ("response_format", "srt"), FILE],
    [FILE, ("model", "whisper-1"), ("response_format", "json"), ("response_format", "srt")],
], ids=["model before the file", "model on both sides", "model after the file", "response_format before",
        "response_format after"])
@pytest.mark.parametrize("piece", [256, 1 << 20], ids=["in pieces", "whole"])
async def test_a_field_sent_twice_is_refused_and_nothing_is_sent(asgi_app, client, caller, recorder, parts, piece):
    status, answer = await post(asgi_app, form(*parts), caller.whisper_only, piece)
    assert status == 400, answer
    error = answer["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "duplicate_field")
    assert f"more than one `{error['param']}`" in error["message"]
    assert recorder.forms == []
    assert await no_consume_log()


@pytest.mark.django_db(transaction=True)
async def test_array_fields_may_repeat(asgi_app, client, caller, recorder):
    parts = [("model", "whisper-1"), ("timestamp_granularities[]", "word"), ("timestamp_granularities[]", "segment"),
             FILE]
    status, answer = await post(asgi_app, form(*parts), caller.any)
    assert status == 200, answer
    assert recorder.forms == [[*parts[:3], SENT_FILE]]


# --- while the file streams through --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("late, code", [(("model", "gpt-4o-transcribe"), "duplicate_field"),
                                        (("response_format", "srt"), "field_after_file"),
                                        (("file", ("b.mp3", b"ID3")), "duplicate_field")])
async def test_a_field_after_a_streamed_file_cuts_the_upload_off(asgi_app, client, caller, recorder, late, code):
    # The model came first, so the file was already on its way upstream when the late field arrived.
    body = form(("model", "whisper-1"), ("file", ("a.mp3", os.urandom(64 * 1024))), late)
    status, answer = await post(asgi_app, body, caller.whisper_only)
    assert status == 400 and answer["error"]["code"] == code, answer
    assert recorder.forms == [], "the upstream never received a whole form"
    assert await no_consume_log()


@pytest.mark.django_db(transaction=True)
async def test_fields_that_decide_nothing_may_follow_a_streamed_file(asgi_app, client, caller, recorder):
    audio = os.urandom(64 * 1024)
    body = form(("model", "whisper-1"), ("file", ("a.mp3", audio)), ("language", "en"))
    status, answer = await post(asgi_app, body, caller.whisper_only)
    assert status == 200, answer
    assert recorder.forms == [[("model", "whisper-1"), ("file", ("a.mp3", hashlib.sha256(audio).hexdigest())),
                               ("language", "en")]]


# --- what makes a part a file ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("model_first", [True, False], ids=["streamed", "read whole"])
@pytest.mark.parametrize("spelling", [b"FILENAME", b"FileName"])
async def test_a_file_part_is_a_file_however_its_parameter_is_spelled(asgi_app, client, caller, recorder,
                                                                    spelling, model_first):
    # RFC 7578 parameter names are case-insensitive: the part the form is read by is the part the relay
    # asks for, so it is sent on, never refused as a form without a file.
    file_part = (b"--" + BOUNDARY.encode() + b'\r\nContent-Disposition: form-data; name="file"; ' + spelling
                 + b'="a.mp3"\r\nContent-Type: audio/mpeg\r\n\r\n' + AUDIO + b"\r\n")
    model = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'.encode()
    body = (model + file_part if model_first else file_part + model) + f"--{BOUNDARY}--\r\n".encode()
    status, answer = await post(asgi_app, body, caller.any)
    assert status == 200, answer
    assert recorder.forms == [[("model", "whisper-1"), SENT_FILE]]


async def test_an_upload_says_whether_it_has_a_file():
    async def read(body: bytes) -> uploads.Upload:
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive():
            return messages.pop(0)

        return await media.read_upload(receive, CONTENT_TYPE)

    assert (await read(form(("model", "whisper-1"), FILE))).has_file
    assert (await read(form(FILE, ("model", "whisper-1")))).has_file
    assert not (await read(form(("model", "whisper-1"), ("language", "en")))).has_file


# --- the form, part by part ----------------------------------------------------------------------------


@pytest.mark.parametrize("piece", [1, 7, 64, 4096, 1 << 20])
def test_the_scanner_finds_every_part_however_the_body_is_split(piece):
    body = b"preamble\r\n" + form(("model", "whisper-1"), FILE, ("prompt", "names: Ada")) + b"epilogue"
    scanner = FormScanner(BOUNDARY.encode())
    events = []
    for start in range(0, len(body), piece):
        events += scanner.feed(body[start:start + piece])
    parts, values, current = [], {}, None
    for kind, value in events:
        if kind == "part":
            current = value
            parts.append(value.name)
            values[value.name] = b""
        elif kind == "data":
            values[current.name] += value
        elif kind == "end":
            assert body[current.value_start:value] == values[current.name]
            assert body[current.start:].startswith(b"--" + BOUNDARY.encode() + b"\r\n")
    assert parts == ["model", "file", "prompt"] and scanner.done
    assert values == {"model": b"whisper-1", "file": AUDIO, "prompt": b"names: Ada"}


@pytest.mark.parametrize("body", [
    b"--b0undary\r\nContent-Type: text/plain\r\n\r\nx\r\n--b0undary--\r\n",  # no name
    b"--b0undary junk\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--b0undary--\r\n",
])
def test_a_malformed_form_is_a_400(body):
    with pytest.raises(FormError) as caught:
        FormScanner(BOUNDARY.encode()).feed(body)
    assert (caught.value.status, caught.value.code) == (400, "invalid_multipart")


@pytest.mark.django_db(transaction=True)
async def test_a_form_cut_short_is_a_400(asgi_app, client, caller, recorder):
    status, answer = await post(asgi_app, form(FILE, ("model", "whisper-1"))[:-20], caller.any)
    assert status == 400 and answer["error"]["code"] == "invalid_multipart"
    assert recorder.forms == []


@pytest.mark.django_db(transaction=True)
async def test_a_client_leaving_mid_upload_is_not_held_against_the_channel(asgi_app, client, caller, recorder,
                                                                           monkeypatch):
    failures = []
    monkeypatch.setattr(health, "report_failure", lambda channel_id, err: failures.append(err))
    body = form(("model", "whisper-1"), ("file", ("a.mp3", os.urandom(64 * 1024))))
    app = ApplicationCommunicator(asgi_app, scope(caller.any))
    for at in range(0, 32 * 1024, 1024):  # half the file, then the client is gone
        await app.send_input({"type": "http.request", "body": body[at:at + 1024], "more_body": True})
    await app.send_input({"type": "http.disconnect"})
    opened = await app.receive_output(10)
    await app.wait(10)
    assert opened["status"] == 499
    assert failures == [] and recorder.forms == []
    assert await no_consume_log()


def test_the_modes_read_as_uploads_are_the_modes_priced_by_transcript_one_list():
    """One list (oneapi_site/lib/modes.py, which pricing, the adapters and the relay may all import): the relay
    and the adapters read an upload for exactly the modes billed by their transcript."""
    assert not hasattr(media, "UPLOAD_MODES") and not hasattr(uploads, "UPLOAD_MODES")
    assert asgi.TRANSCRIPT_MODES is cloudflare.TRANSCRIPT_MODES is pricing.TRANSCRIPT_MODES is modes.TRANSCRIPT_MODES
    assert media.RAW_MODES == ("speech", *modes.TRANSCRIPT_MODES)
