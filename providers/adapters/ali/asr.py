"""DashScope speech recognition (Paraformer real-time) for /v1/audio/transcriptions.

Docs: https://help.aliyun.com/zh/model-studio/websocket-for-paraformer-real-time-service (the socket at
wss://dashscope.aliyuncs.com/api-ws/v1/inference, `Authorization: Bearer <key>` checked at the handshake: a bad
key is a 401/403 there), https://help.aliyun.com/zh/model-studio/paraformer-client-events (run-task, then the
audio as binary frames once task-started came, then finish-task) and
https://help.aliyun.com/zh/model-studio/paraformer-server-events (result-generated with
`payload.output.sentence` {begin_time, end_time, text, sentence_end, words} and `payload.usage.duration`;
task-finished; task-failed with `header.error_code` / `error_message`).

Paraformer only transcribes: translations are refused. The upload is read whole (uploads.read_form, 25 MB at
most) and streamed to the socket in chunks of about 100 ms; only final sentences (sentence_end) are kept, as
intermediate ones are revised. The answer is made by openai_shapes.Transcript, which speaks every OpenAI
`response_format`. DashScope counts seconds, not tokens, so the relay bills the transcript's tokens at the model
ratio, as for whisper-1.
"""

from __future__ import annotations

import asyncio
import io
import uuid
import wave
from typing import Any

import aiohttp
import orjson
from django.conf import settings

from providers.adapters import uploads
from providers.adapters.ali.envelope import ali_error, invalid
from providers.adapters.base import RequestContext, UpstreamError, ws_open
from providers.adapters.openai_shapes import Transcript, transcript_format

WS_PATH = "/api-ws/v1/inference"
# The formats run-task documents (opus and speex in Ogg, wav as PCM, amr as AMR-NB), by file extension.
FORMATS = {"wav": "wav", "pcm": "pcm", "mp3": "mp3", "opus": "opus", "ogg": "opus", "spx": "speex",
           "speex": "speex", "aac": "aac", "amr": "amr"}
DEFAULT_SAMPLE_RATE = 16000  # for a format whose rate the gateway cannot read (all but WAV)
CHUNK = 3200  # 100 ms of 16 kHz 16-bit mono, for formats whose rate of bytes is not known
ASR_WAIT = 300.0  # the whole exchange, unless the operator set RELAY_TIMEOUT


def refuse_translation(mode: str) -> None:
    if mode == "translations":
        raise invalid("Paraformer transcribes in the language spoken and does not translate: use "
                      "/v1/audio/transcriptions, or a chat model to translate the transcript.",
                      "unsupported_mode", "model")


def ws_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    if base.startswith(("http://", "https://")):
        base = "ws" + base[4:]
    return base + WS_PATH


class Audio:
    """The upload as run-task describes it: its format, sample rate and the size of a ~100 ms chunk, and its
    length when the header gives it (WAV)."""

    def __init__(self, form: uploads.Form, fields: dict):
        data = form.file
        extension = form.filename.rsplit(".", 1)[-1].lower() if "." in form.filename else ""
        self.duration: float | None = None
        self.chunk = CHUNK
        if data[:4] == b"RIFF" and data[8:12] == b"WAVE" or extension == "wav":
            try:
                with wave.open(io.BytesIO(data)) as wav:
                    self.sample_rate = wav.getframerate()
                    self.duration = wav.getnframes() / self.sample_rate if self.sample_rate else None
                    self.chunk = max(wav.getframerate() * wav.getsampwidth() * wav.getnchannels() // 10, 1024)
            except (wave.Error, EOFError):
                raise invalid("The file is not a PCM WAV Paraformer can read.", "invalid_audio", "file") from None
            self.format = "wav"
            return
        if extension not in FORMATS:
            raise invalid(f"Paraformer takes {', '.join(sorted(set(FORMATS)))} audio: name the file with its "
                          f"format's extension (not {form.filename or 'no name'}).", "unsupported_audio", "file")
        self.format = FORMATS[extension]
        try:
            self.sample_rate = int(fields.get("sample_rate") or DEFAULT_SAMPLE_RATE)
        except ValueError:
            raise invalid("`sample_rate` must be a number of Hz.", "invalid_sample_rate", "sample_rate") from None


def run_task(task_id: str, model: str, audio: Audio, fields: dict) -> dict:
    parameters: dict[str, Any] = {"format": audio.format, "sample_rate": audio.sample_rate}
    if fields.get("language"):  # ISO-639-1, as OpenAI's `language`; a hint to paraformer-realtime-v2
        parameters["language_hints"] = [fields["language"]]
    return {"header": {"action": "run-task", "task_id": task_id, "streaming": "duplex"},
            "payload": {"task_group": "audio", "task": "asr", "function": "recognition", "model": model,
                        "parameters": parameters, "input": {}}}


def finish_task(task_id: str) -> dict:
    return {"header": {"action": "finish-task", "task_id": task_id, "streaming": "duplex"}, "payload": {"input": {}}}


def task_failed(header: dict) -> UpstreamError:
    """A task-failed event as an OpenAI error, with DashScope's code and message (envelope.ali_error's mapping)."""
    err = ali_error({"code": header.get("error_code") or "", "message": header.get("error_message") or "",
                     "request_id": header.get("task_id") or ""})
    err.retryable = False  # the audio went out: another channel cannot be sent it again
    return err


def joined(texts: list[str]) -> str:
    """Sentences as one text: a space between two that meet in ASCII (English), none in Chinese."""
    out = ""
    for text in (t.strip() for t in texts):
        if not text:
            continue
        if out and out[-1].isascii() and text[0].isascii():
            out += " "
        out += text
    return out


class Recognition:
    """The final sentences of one task, and DashScope's billed duration."""

    def __init__(self) -> None:
        self.sentences: list[dict] = []
        self.billed: float | None = None
        self.finished = False

    def feed(self, message: str | bytes) -> str:
        """One server event; returns its name. Raises UpstreamError for task-failed."""
        event = orjson.loads(message)
        header = event.get("header") if isinstance(event, dict) and isinstance(event.get("header"), dict) else {}
        name = str(header.get("event") or "")
        if name == "task-failed":
            raise task_failed(header)
        if name == "task-finished":
            self.finished = True
        if name != "result-generated":
            return name
        payload = event.get("payload") if isinstance(event.get("payload"), dict) else {}
        output = payload.get("output") if isinstance(payload.get("output"), dict) else {}
        sentence = output.get("sentence") if isinstance(output.get("sentence"), dict) else {}
        if sentence.get("sentence_end") and not sentence.get("heartbeat"):
            self.sentences.append(sentence)
            usage = payload.get("usage")
            if isinstance(usage, dict) and isinstance(usage.get("duration"), int | float):
                self.billed = float(usage["duration"])
        return name

    def result(self, duration: float | None, language: str) -> dict:
        """Workers AI's transcription shape, which openai_shapes.Transcript turns into each response_format."""
        def seconds(ms: Any) -> float:
            return ms / 1000 if isinstance(ms, int | float) and not isinstance(ms, bool) else 0.0

        segments = [{"start": seconds(s.get("begin_time")), "end": seconds(s.get("end_time")),
                     "text": str(s.get("text") or "")} for s in self.sentences]
        words = [{"word": f"{w.get('text') or ''}{w.get('punctuation') or ''}", "start": seconds(w.get("begin_time")),
                  "end": seconds(w.get("end_time"))}
                 for s in self.sentences for w in s.get("words") or () if isinstance(w, dict)]
        if duration is None:
            duration = max([s["end"] for s in segments], default=None) or self.billed
        info = {"language": language, **({"duration": duration} if duration is not None else {})}
        return {"text": joined([s["text"] for s in segments]), "segments": segments, "words": words,
                "transcription_info": info}


async def _started(ws, recognition: Recognition) -> None:
    """Wait for task-started: no audio may go before it (a task-failed raises; so does a socket closed)."""
    while True:
        message = await ws.receive()
        if message.type != aiohttp.WSMsgType.TEXT:
            raise _closed()
        if recognition.feed(message.data) == "task-started":
            return


async def _results(ws, recognition: Recognition) -> None:
    while not recognition.finished:
        message = await ws.receive()
        if message.type != aiohttp.WSMsgType.TEXT:
            raise _closed()
        recognition.feed(message.data)


def _closed() -> UpstreamError:
    return UpstreamError(status=502, message="DashScope closed the recognition socket before the task finished.",
                         code="do_request_failed", retryable=False)


async def recognize(ctx: RequestContext, *, session, base_url: str) -> bytes:
    """The whole exchange over one socket, closed on every path; the transcript in the format asked for."""
    refuse_translation(ctx.mode)
    fmt = transcript_format(ctx.body)
    form = await uploads.read_form(ctx.upload)
    fields = {**form.fields, **ctx.body}  # fields sent after the file are in the form only
    audio = Audio(form, fields)
    task_id = uuid.uuid4().hex
    recognition = Recognition()
    wait = settings.RELAY_TIMEOUT or ASR_WAIT
    headers = {"Authorization": f"Bearer {ctx.channel.key.strip()}"}
    try:
        async with asyncio.timeout(wait):
            ws = await ws_open(session, ws_url(base_url), vendor="DashScope", refused="API key", headers=headers)
            async with ws:
                await ws.send_str(orjson.dumps(run_task(task_id, ctx.model, audio, fields)).decode())
                await _started(ws, recognition)
                # Results arrive while the audio goes out: read them alongside, so neither side stalls.
                receiver = asyncio.create_task(_results(ws, recognition))
                try:
                    data = form.file
                    for start in range(0, len(data), audio.chunk):
                        if receiver.done():
                            break  # the task failed (or the socket closed) mid-audio: say why below
                        await ws.send_bytes(data[start:start + audio.chunk])
                    if not receiver.done():
                        await ws.send_str(orjson.dumps(finish_task(task_id)).decode())
                    await receiver
                finally:
                    receiver.cancel()
    except TimeoutError:
        raise UpstreamError(status=504, message=f"DashScope did not finish recognizing the audio within {wait:g} s.",
                            code="task_timeout", retryable=False) from None
    language = str(fields.get("language") or "")
    return Transcript(recognition.result(audio.duration, language)).answer(fmt, task="transcribe", language=language)
