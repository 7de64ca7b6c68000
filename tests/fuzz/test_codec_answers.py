"""`/v1/messages`, `/v1/responses` and Gemini's generateContent under hostile upstream answers: whatever an
OpenAI-protocol channel answers (odd JSON, odd SSE chunks), the client gets its protocol's answer, a well-formed
stream, or its protocol's error; never a 500, never a traceback in the log."""

from __future__ import annotations

import gc

import pytest
from asgiref.sync import sync_to_async
from hypothesis import event, given
from hypothesis import strategies as st

from accounts.models import Token, User
from relay import http
from relay.cache import cache
from tests.fuzz.checks import (
    assert_anthropic_answer,
    assert_anthropic_events,
    assert_anthropic_message,
    assert_gemini_answer,
    assert_gemini_array,
    assert_gemini_sse,
    assert_generate_response,
    assert_openai_answer,
    assert_response_object,
    assert_responses_events,
)
from tests.fuzz.upstream_answers import answers, streams, whole
from tests.helpers import flush
from tests.mock_upstream import Behaviour
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "gpt-4o-mini"
GEMINI = "/v1beta/models/" + MODEL
GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
# Per protocol: its plain request's path, its streamed one's (None: the same, with `stream: true` in the body),
# the request, how its errors look, how its whole answer and its stream are checked.
ROUTES = {
    "messages": ("/v1/messages", None, {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user",
                                                                                        "content": "hi"}]},
                 assert_anthropic_answer, assert_anthropic_message, assert_anthropic_events),
    "responses": ("/v1/responses", None, {"model": MODEL, "input": "hi"},
                  assert_openai_answer, assert_response_object, assert_responses_events),
    "gemini-sse": (GEMINI + ":generateContent", GEMINI + ":streamGenerateContent?alt=sse", GEMINI_BODY,
                   assert_gemini_answer, assert_generate_response, assert_gemini_sse),
    # Without alt=sse Google streams one JSON array.
    "gemini-array": (GEMINI + ":generateContent", GEMINI + ":streamGenerateContent", GEMINI_BODY,
                     assert_gemini_answer, assert_generate_response, assert_gemini_array),
}


@pytest.fixture
def world(transactional_db, upstream):
    """alice and an OpenAI channel at the mock, configured as not serving Responses itself: every protocol's
    request is converted to chat for it, and its answer back (what this fuzzing is about)."""
    return new_world(upstream, username="alice", name="mock-openai", key="sk-upstream-secret", models=MODEL,
                     config={"responses_api": "false"})


@pytest.fixture
def key(world) -> dict:
    Token.objects.filter(pk=world.token.pk).update(remain_quota=0, unlimited_quota=True)
    return {"x-api-key": f"sk-{world.token.key}"}  # Messages' header; the other routes take it as well


async def _check(client, world, key, log_watch, protocol: str, *, stream: bool, upstream: Behaviour) -> None:
    path, stream_path, request, error_check, answer_check, events_check = ROUTES[protocol]
    if stream_path is None:
        request = {**request, "stream": stream}
    elif stream:
        path = stream_path
    world.upstream.default = upstream
    # An answer may claim 2**62 tokens, which is billed: every example starts with quota to spare.
    await sync_to_async(User.objects.filter(pk=world.user.pk).update)(quota=10**15)
    cache.clear()
    # The sessions earlier tests left on their closed loops are dropped when this loop's is made, and reported
    # unclosed when collected: both happen now, not while the log is watched.
    http.session()
    gc.collect()
    log_watch.clear()
    response = await client.post(path, json=request, headers=key)
    await flush()
    content_type = response.headers.get("content-type", "")
    event(f"{response.status_code} {content_type.split(';')[0]}")  # shown by --hypothesis-show-statistics
    error_check(response.status_code, content_type, response.content)
    if response.status_code == 200:
        if stream:
            streams_json = events_check is assert_gemini_array
            assert content_type.startswith("application/json" if streams_json else "text/event-stream"), (
                content_type, response.content[:300])
            events_check(response.content)
        else:
            assert content_type.startswith("application/json"), (content_type, response.content[:300])
            answer_check(response.content)
    log_watch.assert_quiet()


@pytest.mark.parametrize("protocol", sorted(ROUTES))
@given(data=st.data())
async def test_any_whole_answer_becomes_the_clients_answer(relay_client, world, key, log_watch, protocol, data):
    answer = data.draw(answers, label="upstream answer")
    await _check(relay_client, world, key, log_watch, protocol, stream=False, upstream=Behaviour(raw=whole(answer)))


@pytest.mark.parametrize("protocol", sorted(ROUTES))
@given(data=st.data())
async def test_any_stream_becomes_a_well_formed_event_stream(relay_client, world, key, log_watch, protocol, data):
    body = data.draw(streams(), label="upstream stream")
    await _check(relay_client, world, key, log_watch, protocol, stream=True,
                 upstream=Behaviour(raw=body, content_type="text/event-stream"))


@pytest.mark.parametrize("protocol", sorted(ROUTES))
@given(data=st.data())
async def test_a_whole_answer_to_a_stream_still_becomes_events(relay_client, world, key, log_watch, protocol, data):
    """A vendor that ignores `stream: true` and answers whole."""
    answer = data.draw(answers, label="upstream answer")
    await _check(relay_client, world, key, log_watch, protocol, stream=True, upstream=Behaviour(raw=whole(answer)))
