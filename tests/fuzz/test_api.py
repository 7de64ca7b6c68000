"""`/api` under hostile bodies and query strings, as each role that may call the route: every answer is
one-api's envelope ({"success", "message"}), a refusal a 4xx or a 200 with success false, never a 5xx
or a traceback in the log."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from oneapi_site import options
from tests.fuzz.api_world import isolated_example, make_world, path_ids, queries, query_string
from tests.fuzz.checks import assert_envelope
from tests.fuzz.strategies import (
    EDGE_NUMBERS,
    JSON_TYPES,
    LONG_NUMBERS,
    OTHER_TYPES,
    Raw,
    bodies,
    edge_numbers,
    encode,
    json_values,
    long_number,
    numbers,
    strings,
    to_json,
)

pytestmark = pytest.mark.django_db

ANON, USER, ADMINS, ROOT = ("anon",), ("alice",), ("staff", "root"), ("root",)
LOG_FILTER = {"p": "0", "size": "10", "type": "2", "start_timestamp": "0", "end_timestamp": "0",
              "token_name": "alice-key", "model_name": "gpt-4o-mini"}


@dataclass
class Route:
    method: str
    path: str
    roles: tuple[str, ...]
    body: object = None  # the valid body, or a function of the world making it
    query: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


ROUTES = [
    Route("POST", "/api/user/login", ANON, {"username": "alice", "password": "password123"}),
    Route("POST", "/api/user/register", ANON, {"username": "newbie", "password": "password123", "display_name": "",
                                               "email": "", "verification_code": "", "aff_code": ""}),
    Route("GET", "/api/verification", ANON, query={"email": "new@example.com"}),
    Route("GET", "/api/reset_password", ANON, query={"email": "alice@example.com"}),
    Route("POST", "/api/user/reset", ANON, {"email": "alice@example.com", "token": "not-a-token"}),
    Route("GET", "/api/oauth/state", ANON, query={"provider": "github", "aff": "abc"}),
    Route("GET", "/api/oauth/github", ANON + USER, query={"code": "c0de", "state": "st4te", "error": ""}),
    Route("GET", "/api/oauth/oidc", ANON + USER, query={"code": "c0de", "state": "st4te", "error": ""}),
    Route("PUT", "/api/user/self", USER, {"username": "alice2", "display_name": "Alice", "password": "Secret-pass-9"}),
    Route("POST", "/api/user/topup", USER, {"key": "0123456789abcdef0123456789abcdef"}),
    Route("GET", "/api/token", USER, query={"p": "0", "size": "10", "page_size": "10", "order": "remain_quota"}),
    Route("POST", "/api/token", USER, {"name": "key", "expired_time": -1, "remain_quota": 100,
                                       "unlimited_quota": False, "models": "gpt-4o-mini", "subnet": "", "status": 1}),
    Route("PUT", "/api/token", USER, lambda w: {"id": w.token_id, "name": "renamed", "expired_time": -1,
                                                "remain_quota": 100, "unlimited_quota": False,
                                                "models": ["gpt-4o-mini"], "subnet": "10.0.0.0/8", "status": 1},
          query={"status_only": ""}),
    Route("GET", "/api/token/search", USER, query={"keyword": "alice"}),
    Route("GET", "/api/log/self", USER, query=LOG_FILTER),
    Route("GET", "/api/log/self/stat", USER, query=LOG_FILTER),
    Route("GET", "/api/log/self/search", USER, query={"keyword": "2"}),
    Route("GET", "/api/user", ADMINS, query={"p": "0", "size": "10", "order": "quota"}),
    Route("POST", "/api/user", ADMINS, {"username": "made", "password": "password123", "display_name": "", "role": 1}),
    Route("PUT", "/api/user", ADMINS, lambda w: {"id": w.alice.pk, "username": "alice", "display_name": "A",
                                                 "password": "Secret-pass-9", "email": "a@example.com",
                                                 "group": "default", "role": 1, "status": 1, "quota": 1000}),
    Route("GET", "/api/user/search", ADMINS, query={"keyword": "ali"}),
    Route("POST", "/api/user/manage", ADMINS, lambda w: {"id": w.alice.pk, "username": "alice", "action": "disable"}),
    Route("POST", "/api/topup", ADMINS, lambda w: {"user_id": w.alice.pk, "quota": 1000, "remark": "paid"}),
    Route("GET", "/api/redemption", ADMINS, query={"p": "0", "size": "10"}),
    Route("POST", "/api/redemption", ADMINS, {"name": "card", "quota": 1000, "count": 2}),
    Route("PUT", "/api/redemption", ADMINS, lambda w: {"id": w.code_id, "name": "card", "quota": 1, "status": 1},
          query={"status_only": ""}),
    Route("GET", "/api/redemption/search", ADMINS, query={"keyword": "card"}),
    Route("GET", "/api/log", ADMINS, query={**LOG_FILTER, "username": "alice", "channel": "1"}),
    Route("DELETE", "/api/log", ADMINS, query={"target_timestamp": "1700000000"}),
    Route("GET", "/api/log/stat", ADMINS, query={**LOG_FILTER, "username": "alice", "channel": "1"}),
    Route("GET", "/api/log/search", ADMINS, query={"keyword": "alice"}),
    Route("GET", "/api/channel", ADMINS, query={"p": "0", "size": "10"}),
    Route("POST", "/api/channel", ADMINS, {"type": 1, "name": "new", "key": "sk-new", "base_url": "http://127.0.0.1:9",
                                           "models": "gpt-4o-mini", "group": "default", "model_mapping": "",
                                           "priority": 0, "weight": 0, "config": "", "system_prompt": ""}),
    Route("PUT", "/api/channel", ADMINS, lambda w: {"id": w.channel_id, "type": 1, "name": "renamed", "key": "",
                                                    "status": 1, "models": ["gpt-4o-mini"], "group": "default",
                                                    "model_mapping": {"a": "gpt-4o-mini"}, "priority": 1,
                                                    "weight": 1, "config": {}, "system_prompt": "Be brief."}),
    Route("GET", "/api/channel/search", ADMINS, query={"keyword": "open"}),
    Route("GET", "/api/channel/test/{channel}", ADMINS, query={"model": "gpt-4o-mini"}),
    Route("GET", "/api/channel/test", ADMINS, query={"scope": "all"}),
    Route("POST", "/api/channel/batch", ADMINS, lambda w: {"ids": [w.channel_id], "action": "models", "mode": "add",
                                                           "value": "gpt-4o"}),
    Route("POST", "/api/channel/batch", ADMINS, {"tag": "eu", "action": "priority", "value": 3}),
    Route("POST", "/api/channel/batch/tag", ADMINS, lambda w: {"ids": [w.channel_id], "tag": "eu"}),
    Route("POST", "/api/channel/tag/enabled", ADMINS, {"tag": "eu"}),
    Route("PUT", "/api/channel/tag", ADMINS, {"tag": "eu", "new_tag": "us", "priority": 1, "weight": 2,
                                              "models": "gpt-4o", "groups": "default", "model_mapping": ""}),
    Route("GET", "/api/channel/tag/models", ADMINS, query={"tag": "eu"}),
    Route("POST", "/api/channel/copy/{channel}", ADMINS, query={"suffix": "-2", "reset_balance": "false"}),
    Route("POST", "/api/channel/fetch_models/{channel}", ADMINS, {"add": ["gpt-4o"], "remove": ["gpt-4o-mini"]}),
    Route("PUT", "/api/option", ROOT, {"key": "SystemName", "value": "Gateway"}),
]

# Values a field of that kind is likely to be sent wrong with (the type swaps come from `bodies`).
_OPTION_KEYS = st.sampled_from(sorted(options.DEFAULTS))


def likely_for(base: dict) -> dict:
    likely = {}
    for name, value in base.items():
        if isinstance(value, bool):
            likely[name] = st.one_of(st.booleans(), st.sampled_from(("true", "false", "1", "0", "yes", "")), numbers)
        elif isinstance(value, int):
            likely[name] = st.one_of(numbers, edge_numbers, strings)
        else:
            likely[name] = st.one_of(strings, edge_numbers, json_values)
    if "key" in base and "value" in base:  # an option: a real key, any value
        likely["key"] = st.one_of(_OPTION_KEYS, strings)
        likely["value"] = st.one_of(edge_numbers, strings, json_values, st.sampled_from(
            ("true", "false", "{}", "[]", '{"default": NaN}', '{"gpt-4o": -1}', '{"a": 1e400}', "http://127.0.0.1:9/")))
    return likely


@pytest.fixture
def api_world(root, monkeypatch):
    # A test of all channels runs in a thread, on a connection that cannot see this test's rows.
    monkeypatch.setattr("providers.services._test_all", lambda *args: None)
    return make_world(root)


def _send(world, role: str, method: str, path: str, *, query: str = "", data: bytes = b"", content_type: str = ""):
    client = world.clients[role]
    url = path + ("?" + query if query else "")
    if method == "GET" or method == "DELETE" and not data:
        return client.generic(method, url)
    return client.generic(method, url, data=data, content_type=content_type)


@pytest.mark.parametrize("route", ROUTES, ids=str)
@given(data=st.data())
def test_any_body_or_query_gets_the_envelope(api_world, log_watch, route, data):
    role = data.draw(st.sampled_from(route.roles), label="role")
    path = route.path.replace("{channel}", str(api_world.channel_id))
    query = query_string(data.draw(queries(route.query), label="query"))
    body = None
    if route.body is not None:
        base = route.body(api_world) if callable(route.body) else route.body
        body = data.draw(bodies(base, likely_for(base), content_types=JSON_TYPES * 2 + OTHER_TYPES), label="body")
    with isolated_example():
        log_watch.clear()
        response = _send(api_world, role, route.method, path, query=query, data=body.data if body else b"",
                         content_type=body.content_type if body else "")
        assert_envelope(response.status_code, response.headers.get("Content-Type", ""), response.content)
        log_watch.assert_quiet()


ID_ROUTES = [("GET", "/api/token/{}", USER), ("DELETE", "/api/token/{}", USER), ("GET", "/api/user/{}", ADMINS),
             ("DELETE", "/api/user/{}", ADMINS), ("GET", "/api/redemption/{}", ADMINS),
             ("DELETE", "/api/redemption/{}", ADMINS), ("GET", "/api/channel/{}", ADMINS),
             ("DELETE", "/api/channel/{}", ADMINS), ("GET", "/api/channel/test/{}", ADMINS),
             ("GET", "/api/channel/update_balance/{}", ADMINS), ("POST", "/api/channel/copy/{}", ADMINS),
             ("GET", "/api/channel/fetch_models/{}", ADMINS)]


@pytest.mark.parametrize("method, path, roles", ID_ROUTES, ids=[f"{m} {p}" for m, p, _ in ID_ROUTES])
@given(data=st.data())
def test_any_id_in_the_path_gets_the_envelope(api_world, log_watch, method, path, roles, data):
    role = data.draw(st.sampled_from(roles), label="role")
    item = data.draw(path_ids, label="id")
    with isolated_example():
        log_watch.clear()
        response = _send(api_world, role, method, path.format(item))
        assert_envelope(response.status_code, response.headers.get("Content-Type", ""), response.content)
        log_watch.assert_quiet()


class _Ids:
    """Stands in for the world when a body is built only to see its field names."""

    token_id = channel_id = code_id = 1
    alice = type("User", (), {"pk": 1})


NUMERIC = [(route, name) for route in ROUTES if route.body is not None
           for name, value in (route.body(_Ids) if callable(route.body) else route.body).items()
           if isinstance(value, int) and not isinstance(value, bool)]


@pytest.mark.parametrize("route, name", NUMERIC, ids=[f"{r} {n}" for r, n in NUMERIC])
def test_every_edge_number_in_every_numeric_field_gets_the_envelope(api_world, log_watch, route, name):
    """Not drawn but swept: each edge number, as a JSON number and as a string, in each numeric field."""
    base = route.body(api_world) if callable(route.body) else route.body
    failures = []
    for text in (*EDGE_NUMBERS, *map(long_number, LONG_NUMBERS)):
        for value in (Raw(text), text):
            with isolated_example():
                log_watch.clear()
                try:  # the test client raises what the view raised: gather them all, then fail
                    response = _send(api_world, route.roles[0], route.method, route.path,
                                     data=encode(to_json({**base, name: value})), content_type="application/json")
                    assert_envelope(response.status_code, response.headers.get("Content-Type", ""), response.content)
                    log_watch.assert_quiet()
                except Exception as exc:  # noqa: BLE001
                    failures.append(f"{name}={to_json(value)[:40]}: {type(exc).__name__}: {str(exc)[:200]}")
    assert not failures, "\n".join(failures)


PARAMETERS = [(route, name) for route in ROUTES for name, value in route.query.items() if value.isdigit()]


@pytest.mark.parametrize("route, name", PARAMETERS, ids=[f"{r} {n}" for r, n in PARAMETERS])
def test_every_edge_number_in_every_numeric_parameter_gets_the_envelope(api_world, log_watch, route, name):
    """Not drawn but swept: each edge number in each numeric query parameter, the others as given."""
    path = route.path.replace("{channel}", str(api_world.channel_id))
    failures = []
    for text in (*EDGE_NUMBERS, *map(long_number, LONG_NUMBERS)):
        query = query_string([(key, text if key == name else value) for key, value in route.query.items()])
        with isolated_example():
            log_watch.clear()
            try:  # the test client raises what the view raised: gather them all, then fail
                response = _send(api_world, route.roles[0], route.method, path, query=query)
                assert_envelope(response.status_code, response.headers.get("Content-Type", ""), response.content)
                log_watch.assert_quiet()
            except Exception as exc:  # noqa: BLE001
                failures.append(f"{name}={text[:40]}: {type(exc).__name__}: {str(exc)[:200]}")
    assert not failures, "\n".join(failures)


OPTION_VALUES = ("NaN", "Infinity", "-Infinity", "1e400", "1e500000", "-1", "0", "0.5", "9223372036854775808", "",
                 "x", "true", "[]", "{}", '{"default": NaN}', '{"gpt-4o-mini": -1}', '{"gpt-4o-mini": 1e400}',
                 '{"default": "x"}', "http://127.0.0.1:9/")


@pytest.mark.parametrize("key", sorted(options.DEFAULTS))
def test_every_option_takes_any_value_and_the_site_still_answers(api_world, log_watch, key):
    """Not drawn but swept: root sets the option to each odd value; then the option is read back, the public
    status asked for and pages shown (money on them too), each of which must still answer."""
    signed_in = Client()
    signed_in.force_login(api_world.alice)
    # Pages that show money and prices, after options that are numbers, switches or price maps.
    default = options.DEFAULTS[key]
    numeric = default.replace(".", "", 1).isdigit() or default in ("true", "false") or default.startswith("{")
    pages = ("/dashboard/", "/token/new/", "/models/") if numeric else ()
    failures = []
    for text in OPTION_VALUES:
        for value in (text, Raw(text)) if text and text[0] in "-0123456789NI[{" else (text,):
            with isolated_example():
                log_watch.clear()
                try:  # the test client raises what the view raised: gather them all, then fail
                    response = _send(api_world, "root", "PUT", "/api/option",
                                     data=to_json({"key": key, "value": value}).encode(),
                                     content_type="application/json")
                    assert_envelope(response.status_code, response.headers.get("Content-Type", ""), response.content)
                    for path in ("/api/option", "/api/status"):
                        after = _send(api_world, "root", "GET", path)
                        assert_envelope(after.status_code, after.headers.get("Content-Type", ""), after.content)
                    assert api_world.clients["anon"].get("/login/").status_code < 500
                    for page in pages:
                        assert signed_in.get(page).status_code < 500, page
                    log_watch.assert_quiet()
                except Exception as exc:  # noqa: BLE001
                    failures.append(f"{key}={to_json(value)[:40]}: {type(exc).__name__}: {str(exc)[:200]}")
    assert not failures, "\n".join(failures)


TEXTS = [(route, name) for route in ROUTES if route.body is not None
         for name, value in (route.body(_Ids) if callable(route.body) else route.body).items()
         if isinstance(value, str)]


@pytest.mark.parametrize("route, name", TEXTS, ids=[f"{r} {n}" for r, n in TEXTS])
def test_every_text_field_takes_text_of_any_length(api_world, log_watch, route, name):
    """Not drawn but swept: each text field one past the common column sizes, and far past them (SQLite keeps
    any length; MariaDB and PostgreSQL refuse what the column cannot hold)."""
    base = route.body(api_world) if callable(route.body) else route.body
    failures = []
    for length in (31, 33, 65, 129, 256, 513, 70_000):
        with isolated_example():
            log_watch.clear()
            try:  # the test client raises what the view raised: gather them all, then fail
                response = _send(api_world, route.roles[0], route.method, route.path,
                                 data=encode(to_json({**base, name: "a" * length})), content_type="application/json")
                assert_envelope(response.status_code, response.headers.get("Content-Type", ""), response.content)
                log_watch.assert_quiet()
            except Exception as exc:  # noqa: BLE001
                failures.append(f"{name} of {length} characters: {type(exc).__name__}: {str(exc)[:200]}")
    assert not failures, "\n".join(failures)
