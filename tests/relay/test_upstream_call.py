"""relay/upstream.call_channel on its own: one call to one channel, no billing, no health, no database.

The pipeline and the channel test both go through it; here it answers a responder that keeps what it
gets, against the OpenAI-protocol mock.
"""

import aiohttp
import orjson
import pytest

from providers.adapters.base import ChannelInfo, UpstreamError
from relay.upstream import Call, Outcome, call_channel
from tests.mock_upstream import REPLY

SECRET = "sk-upstream-call-SECRET-0123456789"


class Kept:
    """A responder that keeps the answer."""

    def __init__(self) -> None:
        self.started = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""

    async def start(self, status, headers) -> None:
        self.started, self.status, self.headers = True, status, headers

    async def write(self, data) -> None:
        self.body += data

    async def finish(self, data=b"") -> None:
        self.body += data


def channel(base_url: str, **fields) -> ChannelInfo:
    values = {"id": 7, "type": 1, "name": "mock", "key": SECRET, "base_url": base_url, "models": ("gpt-4o-mini",),
              "model_mapping": {}, "config": {}, "system_prompt": "", "priority": 0, "weight": 0, **fields}
    return ChannelInfo(**values)


def chat(**fields) -> Call:
    body = {"model": "alias", "messages": [{"role": "user", "content": "hi"}], **fields}
    return Call(mode="chat", model="alias", body=body, stream=bool(fields.get("stream")), request_id="r1")


async def test_a_plain_answer_reaches_the_responder_and_its_usage_the_outcome(upstream):
    out = Kept()
    async with aiohttp.ClientSession() as session:
        outcome = await call_channel(session=session, channel=channel(upstream.url), call=chat(), out=out)
    assert out.status == 200 and orjson.loads(out.body)["choices"][0]["message"]["content"] == REPLY
    assert outcome.started and outcome.interrupted is None and outcome.channel.id == 7
    assert (outcome.usage.prompt_tokens, outcome.usage.completion_tokens) == (11, 7)


async def test_the_channels_mapping_and_system_prompt_are_applied_to_what_it_is_sent(upstream):
    target = channel(upstream.url, model_mapping={"alias": "gpt-4o-mini"}, system_prompt="Be brief.")
    async with aiohttp.ClientSession() as session:
        outcome = await call_channel(session=session, channel=target, call=chat(stream=True), out=Kept())
    sent = upstream.requests[0].body
    assert sent["model"] == "gpt-4o-mini" and sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["stream_options"] == {"include_usage": True}  # a stream is always asked for its usage
    assert outcome.prompt_reset and "".join(outcome.texts) == REPLY


async def test_a_stream_cut_after_it_started_is_kept_in_the_outcome_not_raised(upstream):
    upstream.then(cut_after=2)
    out = Kept()
    outcome = Outcome()
    async with aiohttp.ClientSession() as session:
        returned = await call_channel(session=session, channel=channel(upstream.url), call=chat(stream=True),
                                      out=out, outcome=outcome)
    assert returned is outcome and outcome.started and outcome.interrupted is not None
    assert outcome.interrupted.code == "do_request_failed"
    assert b'"code":"stream_interrupted"' in out.body and out.body.endswith(b"data: [DONE]\n\n")


async def test_an_unreachable_channel_is_the_retryable_502_and_nothing_is_started():
    out = Kept()
    outcome = Outcome()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(UpstreamError) as failed:
            await call_channel(session=session, channel=channel("http://127.0.0.1:9"), call=chat(), out=out,
                               outcome=outcome)
    assert (failed.value.status, failed.value.retryable, failed.value.code) == (502, True, "do_request_failed")
    assert not out.started and not outcome.started and outcome.usage is None


async def test_the_vendors_error_leaves_with_the_key_masked(upstream):
    upstream.then(status=401, error={"error": {"message": f"Incorrect API key provided: {SECRET}",
                                               "type": "invalid_request_error", "code": "invalid_api_key"}})
    async with aiohttp.ClientSession() as session:
        with pytest.raises(UpstreamError) as failed:
            await call_channel(session=session, channel=channel(upstream.url), call=chat(), out=Kept())
    assert failed.value.status == 401 and not failed.value.retryable
    assert SECRET not in failed.value.message and "Incorrect API key provided" in failed.value.message


class ErrorBodyCutOff:
    """A 503 whose body the network loses while it is read (an OSError that aiohttp did not wrap)."""

    status, headers = 503, {}
    released = False

    class content:
        @staticmethod
        async def read(limit):
            raise ConnectionResetError

    def release(self) -> None:
        self.released = True


class SessionOf:
    def __init__(self, response) -> None:
        self.response = response

    async def request(self, method, url, **kwargs):
        return self.response


async def test_an_error_whose_body_is_lost_on_the_network_is_still_the_vendors_status():
    # Reading the error body catches what any network failure raises, so the client gets the upstream's 503
    # (another channel may answer), not the gateway's own 500.
    response = ErrorBodyCutOff()
    with pytest.raises(UpstreamError) as failed:
        await call_channel(session=SessionOf(response), channel=channel("http://upstream.test"), call=chat(),
                           out=Kept())
    assert (failed.value.status, failed.value.retryable) == (503, True) and response.released
