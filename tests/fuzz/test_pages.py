"""The self-service pages under hostile forms and query strings: sign-in, sign-up, password reset, tokens,
top-up, settings, log filters. Whatever is posted (fields changed, left out, repeated, strangers added,
any text, as a browser's form or as multipart), a page answers, redirects or refuses: never a 5xx or
a traceback in the log."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.api_world import isolated_example, make_world, path_ids, queries, query_string
from tests.fuzz.checks import assert_page
from tests.fuzz.strategies import EDGE_NUMBERS, LONG_NUMBERS, encode, long_number

pytestmark = pytest.mark.django_db

ANON, USER = "anon", "alice"


@dataclass
class Page:
    method: str
    path: str
    role: str
    form: dict = field(default_factory=dict)  # the valid fields, as the page's form posts them

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


TOKEN_FORM = {"name": "my key", "quota": "1.5", "unlimited_quota": "on", "never_expires": "",
              "expires_at": "2030-01-31T18:00", "models": "gpt-4o-mini", "subnet": "10.0.0.0/8\n192.168.1.1"}
LOG_FILTER = {"start": "2024-01-01T00:00", "end": "2030-12-31", "type": "2", "model_name": "gpt-4o-mini",
              "token_name": "alice-key", "before": "100", "after": "1"}

PAGES = [
    Page("POST", "/login/", ANON, {"username": "alice", "password": "password123", "next": "/token/"}),
    Page("GET", "/login/", ANON, {"next": "/dashboard/"}),
    Page("POST", "/register/", ANON, {"username": "newbie", "password": "password123", "password2": "password123",
                                      "email": "new@example.com", "verification_code": "123456", "aff_code": "abc"}),
    Page("POST", "/register/", ANON, {"email": "new@example.com", "send_code": "1", "username": "newbie"}),
    Page("GET", "/register/", ANON, {"aff": "abc"}),
    Page("POST", "/reset/", ANON, {"email": "alice@example.com"}),
    Page("GET", "/user/reset/", ANON, {"email": "alice@example.com", "token": "not-a-token"}),
    Page("POST", "/user/reset/", ANON, {"email": "alice@example.com", "token": "not-a-token",
                                        "new_password1": "Secret-pass-9", "new_password2": "Secret-pass-9"}),
    Page("GET", "/oauth/github/", ANON, {"aff": "abc", "next": "/token/"}),
    Page("GET", "/oauth/oidc/callback/", ANON, {"code": "c0de", "state": "st4te", "error": ""}),
    Page("POST", "/i18n/setlang/", ANON, {"language": "zh-hans", "next": "/login/"}),
    Page("POST", "/password/change/", USER, {"old_password": "password123", "new_password1": "Secret-pass-9",
                                             "new_password2": "Secret-pass-9", "next": "/token/"}),
    Page("GET", "/token/", USER, {"keyword": "alice", "p": "2", "created": "1"}),
    Page("POST", "/token/new/", USER, TOKEN_FORM),
    Page("POST", "/token/{token}/", USER, TOKEN_FORM),
    Page("POST", "/token/{token}/status/", USER, {"status": "2", "next": "/token/?p=2"}),
    Page("POST", "/token/{token}/delete/", USER, {"next": "/token/"}),
    Page("POST", "/topup/", USER, {"key": "0123456789abcdef0123456789abcdef"}),
    Page("POST", "/setting/", USER, {"action": "profile", "username": "alice2", "display_name": "Alice"}),
    Page("POST", "/setting/", USER, {"action": "password", "old_password": "password123",
                                     "new_password1": "Secret-pass-9", "new_password2": "Secret-pass-9"}),
    Page("POST", "/setting/", USER, {"action": "access_token"}),
    Page("GET", "/log/", USER, LOG_FILTER),
    Page("GET", "/dashboard/", USER, {"days": "7"}),
    Page("GET", "/models/", USER, {"q": "gpt"}),
]


@pytest.fixture
def page_world(root):
    world = make_world(root)
    user = Client()
    user.force_login(world.alice)
    world.clients = {ANON: Client(), USER: user}
    return world


def _send(client: Client, page: Page, path: str, params: list[tuple[str, str]], as_multipart: bool):
    if page.method == "GET":
        return client.get(path + "?" + query_string(params))
    if as_multipart:
        # The test client writes multipart itself: text it can encode, which a browser would send.
        fields: dict[str, list[str]] = {}
        for name, value in params:
            fields.setdefault(encode(name).decode("utf-8", "replace"), []).append(
                encode(value).decode("utf-8", "replace"))
        return client.post(path, fields)
    return client.generic("POST", path, query_string(params), content_type="application/x-www-form-urlencoded")


@pytest.mark.parametrize("page", PAGES, ids=str)
@given(data=st.data())
def test_any_form_or_query_gets_a_page_or_a_refusal(page_world, log_watch, page, data):
    path = page.path.replace("{token}", str(page_world.token_id))
    params = data.draw(queries(page.form), label="fields")
    as_multipart = data.draw(st.integers(min_value=0, max_value=3), label="multipart") == 0
    with isolated_example():
        log_watch.clear()
        response = _send(page_world.clients[page.role], page, path, params, as_multipart)
        assert_page(response.status_code, response.content)
        log_watch.assert_quiet()


TOKEN_PAGES = ["/token/{}/", "/token/{}/status/", "/token/{}/delete/"]


@pytest.mark.parametrize("path", TOKEN_PAGES)
@given(item=path_ids, method=st.sampled_from(("GET", "POST")))
def test_any_token_id_in_the_path_gets_a_page_or_a_refusal(page_world, log_watch, path, item, method):
    with isolated_example():
        log_watch.clear()
        response = page_world.clients[USER].generic(method, path.format(item))
        assert_page(response.status_code, response.content)
        log_watch.assert_quiet()


def _numeric(value: str) -> bool:
    return value.replace(".", "", 1).removeprefix("-").isdigit()


NUMERIC = [(page, name) for page in PAGES for name, value in page.form.items() if _numeric(value)]


@pytest.mark.parametrize("page, name", NUMERIC, ids=[f"{p} {n}" for p, n in NUMERIC])
def test_every_edge_number_in_every_numeric_field_gets_a_page_or_a_refusal(page_world, log_watch, page, name):
    """Not drawn but swept: each edge number in each numeric field, the other fields as the form sends them."""
    path = page.path.replace("{token}", str(page_world.token_id))
    failures = []
    for text in (*EDGE_NUMBERS, *map(long_number, LONG_NUMBERS)):
        params = [(key, text if key == name else value) for key, value in page.form.items()]
        with isolated_example():
            log_watch.clear()
            try:  # the test client raises what the view raised: gather them all, then fail
                response = _send(page_world.clients[page.role], page, path, params, False)
                assert_page(response.status_code, response.content)
                log_watch.assert_quiet()
            except Exception as exc:  # noqa: BLE001
                failures.append(f"{name}={text[:40]}: {type(exc).__name__}: {str(exc)[:200]}")
    assert not failures, "\n".join(failures)


POSTS = [p for p in PAGES if p.method == "POST"]


@pytest.mark.parametrize("kind", ["1001-fields", "2.6-MB-field"])
@pytest.mark.parametrize("page", POSTS, ids=[f"{p} {','.join(p.form)[:30]}" for p in POSTS])
def test_an_oversized_form_is_refused_quietly(page_world, log_watch, page, kind):
    """Not drawn, at the limits: more fields than Django reads (1,000), or a field past its memory limit
    (2.5 MB). A refusal, with no traceback in the log."""
    path = page.path.replace("{token}", str(page_world.token_id))
    params = list(page.form.items())
    if kind == "1001-fields":
        params += [(f"f{i}", "x") for i in range(1_001)]
    else:
        params.append((next(iter(page.form)), "a" * 2_700_000))
    with isolated_example():
        log_watch.clear()
        response = _send(page_world.clients[page.role], page, path, params, False)
        assert_page(response.status_code, response.content)
        log_watch.assert_quiet()
