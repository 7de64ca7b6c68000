"""`/v1` under hostile bodies: with a valid key and a working upstream, whatever the body, the relay
answers (or refuses with OpenAI's error JSON) and never fails with a 500 or a traceback in the log."""

from __future__ import annotations

import pytest
from aiohttp import web
from asgiref.sync import sync_to_async
from hypothesis import given
from hypothesis import strategies as st

from accounts.models import Token, User
from relay.cache import cache
from tests.fuzz.checks import assert_anthropic_answer, assert_gemini_answer, assert_openai_answer
from tests.fuzz.multipart import uploads
from tests.fuzz.relay_bodies import GEMINI_ROUTES, MESSAGES_ROUTES, MODELS, RESPONSES_ROUTES, ROUTES
from tests.fuzz.strategies import (
    EDGE_NUMBERS,
    LONG_NUMBERS,
    SPECIAL_STRINGS,
    Body,
    Raw,
    bodies,
    edge_numbers,
    encode,
    json_only,
    long_number,
    mutated,
    plain_values,
    to_json,
)
from tests.helpers import flush
from tests.mock_upstream import Behaviour, MockUpstream
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)


class ForgivingUpstream(MockUpstream):
    """The OpenAI mock, refusing what it cannot read with a 400 as OpenAI does, instead of failing."""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await super()._handle(request)
        except Exception as exc:  # noqa: BLE001 - whatever the mock cannot parse, OpenAI would refuse
            return web.json_response({"error": {"message": f"mock refused the body: {type(exc).__name__}",
                                                "type": "invalid_request_error", "param": None, "code": None}},
                                     status=400)


@pytest.fixture(scope="module")
def forgiving_server():
    server = ForgivingUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def fuzz_world(transactional_db, forgiving_server):
    """A common user with an unlimited key, and one OpenAI channel serving every route's models."""
    found = new_world(forgiving_server, username="fuzzer", token_name="fuzz-key", quota=10**15, name="everything",
                      models=",".join(MODELS))
    Token.objects.filter(pk=found.token.pk).update(remain_quota=0, unlimited_quota=True)
    found.token.refresh_from_db()
    return found


# How the upstream answers: well, without usage (the relay counts itself), refusing, or breaking a stream.
upstream_behaviours = st.sampled_from((
    Behaviour(), Behaviour(usage=False), Behaviour(status=429),
    Behaviour(status=400, error={"error": {"message": "bad request", "type": "invalid_request_error",
                                           "param": None, "code": None}}),
    Behaviour(malformed=True), Behaviour(cut_after=1),
))


async def _check(client, world, watch, method: str, path: str, *, content: bytes, headers: dict,
                 answer_check=assert_openai_answer) -> None:
    watch.clear()
    # As bytes: httpx would refuse to send a header value that is not ASCII, and clients do send them.
    headers = {name: encode(value) if isinstance(value, str) else value for name, value in headers.items()}
    response = await client.request(method, path, content=content, headers=headers)
    await flush()  # a charge the body made unwritable would fail here, in the ledger's log
    answer_check(response.status_code, response.headers.get("content-type", ""), response.content)
    watch.assert_quiet()


@pytest.mark.parametrize("path", sorted(ROUTES))
@given(data=st.data())
async def test_any_body_is_answered_or_refused_with_openai_error_json(relay_client, fuzz_world, log_watch, path,
                                                                      data):
    base, likely = ROUTES[path]
    body = data.draw(bodies(base, likely), label="body")
    fuzz_world.upstream.default = data.draw(upstream_behaviours, label="upstream")
    await _check(relay_client, fuzz_world, log_watch, "POST", path, content=body.data,
                 headers={**fuzz_world.auth, "Content-Type": body.content_type})


@pytest.mark.parametrize("path", sorted(ROUTES))
@given(data=st.data())
async def test_json_bodies_reach_the_parser_of_every_route(relay_client, fuzz_world, log_watch, path, data):
    base, likely = ROUTES[path]
    body = data.draw(json_only(bodies(base, likely)), label="body")
    fuzz_world.upstream.default = data.draw(upstream_behaviours, label="upstream")
    await _check(relay_client, fuzz_world, log_watch, "POST", path, content=body.data,
                 headers={**fuzz_world.auth, "Content-Type": body.content_type})


def near_or_any(base: dict, likely: dict) -> st.SearchStrategy[Body]:
    """JSON bodies, half of them near a valid request, to reach the conversion of answers and streams too."""
    near = mutated(base, likely, values=plain_values).map(lambda value: Body(encode(to_json(value)),
                                                                             "application/json"))
    return st.one_of(near, json_only(bodies(base, likely)))


@pytest.mark.parametrize("path", sorted(MESSAGES_ROUTES))
@given(data=st.data())
async def test_any_messages_body_is_answered_or_refused_with_anthropic_error_json(relay_client, fuzz_world,
                                                                                   log_watch, path, data):
    base, likely = MESSAGES_ROUTES[path]
    body = data.draw(near_or_any(base, likely), label="body")
    fuzz_world.upstream.default = data.draw(upstream_behaviours, label="upstream")
    await _check(relay_client, fuzz_world, log_watch, "POST", path + "?beta=true", content=body.data,
                 headers={"x-api-key": f"sk-{fuzz_world.token.key}", "Content-Type": body.content_type},
                 answer_check=assert_anthropic_answer)


@pytest.mark.parametrize("path", sorted(RESPONSES_ROUTES))
@given(data=st.data())
async def test_any_responses_body_is_answered_or_refused_with_openai_error_json(relay_client, fuzz_world,
                                                                                 log_watch, path, data):
    base, likely = RESPONSES_ROUTES[path]
    body = data.draw(near_or_any(base, likely), label="body")
    fuzz_world.upstream.default = data.draw(upstream_behaviours, label="upstream")
    await _check(relay_client, fuzz_world, log_watch, "POST", path, content=body.data,
                 headers={**fuzz_world.auth, "Content-Type": body.content_type})


@pytest.mark.parametrize("path", sorted(GEMINI_ROUTES))
@given(data=st.data())
async def test_any_gemini_body_is_answered_or_refused_with_googles_error_json(relay_client, fuzz_world, log_watch,
                                                                              path, data):
    base, likely = GEMINI_ROUTES[path]
    body = data.draw(near_or_any(base, likely), label="body")
    fuzz_world.upstream.default = data.draw(upstream_behaviours, label="upstream")
    await _check(relay_client, fuzz_world, log_watch, "POST", path, content=body.data,
                 headers={"x-goog-api-key": f"sk-{fuzz_world.token.key}", "Content-Type": body.content_type},
                 answer_check=assert_gemini_answer)


path_models = st.one_of(st.sampled_from(MODELS), st.sampled_from(SPECIAL_STRINGS), st.text(max_size=20))


@given(model=path_models, body=bodies({"input": "hello"}, {}))
async def test_engine_embeddings_take_any_model_in_the_path(relay_client, fuzz_world, log_watch, model, body):
    from urllib.parse import quote

    path = "/v1/engines/" + quote(encode(model), safe="") + "/embeddings"
    await _check(relay_client, fuzz_world, log_watch, "POST", path, content=body.data,
                 headers={**fuzz_world.auth, "Content-Type": body.content_type})


@given(data=st.data())
async def test_any_transcription_upload_is_answered_or_refused(relay_client, fuzz_world, log_watch, data):
    upload = data.draw(uploads(), label="upload")
    fuzz_world.upstream.default = data.draw(upstream_behaviours, label="upstream")
    path = data.draw(st.sampled_from(("/v1/audio/transcriptions", "/v1/audio/translations")), label="path")
    await _check(relay_client, fuzz_world, log_watch, "POST", path, content=upload.data,
                 headers={**fuzz_world.auth, "Content-Type": upload.content_type})


CHAT = encode('{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}')
suffixes = st.one_of(edge_numbers, st.sampled_from(SPECIAL_STRINGS), st.text(max_size=12))


@given(data=st.data())
async def test_any_authorization_header_is_refused_or_served(relay_client, fuzz_world, log_watch, data):
    """A key with a channel pinned (sk-KEY-CHANNEL, admins only), malformed, or not a key at all."""
    key = fuzz_world.token.key
    role = User.Role.ADMIN if data.draw(st.booleans(), label="admin") else User.Role.COMMON
    await sync_to_async(User.objects.filter(pk=fuzz_world.user.pk).update)(role=role)
    cache.clear()  # the relay caches users: let it see the role
    header = data.draw(st.one_of(
        suffixes.map(lambda s: f"Bearer sk-{key}-{s}"),
        suffixes.map(lambda s: f"sk-{key}-{fuzz_world.channel.pk}-{s}"),
        suffixes.map(lambda s: f"Bearer {s}"),
        st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    ), label="authorization")
    await _check(relay_client, fuzz_world, log_watch, "POST", "/v1/chat/completions", content=CHAT,
                 headers={"Authorization": encode(header), "Content-Type": "application/json"})


NUMBER_FIELDS = ("max_tokens", "max_completion_tokens", "n", "temperature", "top_p", "seed", "dimensions",
                 "top_n", "speed", "frequency_penalty", "logprobs", "best_of")


@pytest.mark.parametrize("path", sorted(ROUTES))
async def test_every_edge_number_in_every_numeric_field_is_answered_or_refused(relay_client, fuzz_world, log_watch,
                                                                              path):
    """Not drawn but swept: each edge number, as a JSON number and as a string, in each numeric field."""
    base, _ = ROUTES[path]
    failures = []
    for name in NUMBER_FIELDS:
        for text in (*EDGE_NUMBERS, *map(long_number, LONG_NUMBERS)):
            for value in (Raw(text), text):
                try:
                    await _check(relay_client, fuzz_world, log_watch, "POST", path,
                                 content=encode(to_json({**base, name: value})),
                                 headers={**fuzz_world.auth, "Content-Type": "application/json"})
                except AssertionError as exc:
                    failures.append(f"{name}={to_json(value)[:40]}: {str(exc)[:200]}")
    assert not failures, "\n".join(failures)
