"""The operator console (Django's admin) under hostile forms, actions and query strings, as root and as an admin.

Every add and change form, the redemption batch, the options page, the console's sign-in and password change,
the changelist actions and the changelists' search, filters and ordering get fields changed, left out, repeated,
strangers added, any text (lone surrogates, megabytes), numbers at the edges and JSON nested past any stack.
Whatever is posted, the console answers, redirects or refuses: never a 5xx, nothing at ERROR or with a traceback
in the log, and the database holds only rows its columns and the services' rules allow.

The clients check CSRF as a browser's session does: each POST carries the token of the session's cookie.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import models
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from accounts.models import Token, User
from accounts.services.tokens import TOKEN_MODELS_MAX_LENGTH, TOKEN_SUBNET_MAX_LENGTH
from billing.forms import OptionsForm
from billing.models import Log, Option, RedemptionCode
from oneapi_site import options
from oneapi_site.lib import numbers
from oneapi_site.lib.errors import ServiceError
from providers.adapters import ADAPTERS
from providers.forms import config_field_types
from providers.models import Ability, Channel
from relay import probe
from tests.factories import TokenFactory
from tests.fuzz.api_world import isolated_example, make_world, path_ids, queries, query_string
from tests.fuzz.checks import assert_page
from tests.fuzz.strategies import EDGE_NUMBERS, LONG_NUMBERS, encode, json_values, long_number, strings, to_json

pytestmark = pytest.mark.django_db

ANON, ROOT, STAFF = "anon", "root", "staff"
ADMIN = "/admin"


@dataclass
class Console:
    path: str  # {alice}, {root}, {staff}, {token}, {root_token}, {channel}, {code}, {log}: the world's ids
    role: str
    form: dict | None = field(default_factory=dict)  # the valid fields as the form posts them; None: options
    expect: int = 302  # what the valid form gets: proof the fuzzed posts reach the form, not a CSRF refusal
    json_fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        action = (self.form or {}).get("action")
        return f"{self.role} {self.path}" + (f" {action}" if action else "")


def _channel_form(**extra) -> dict:
    form = {"name": "fuzz", "type": "1", "status": "1", "key": "sk-fuzz-0123456789abcdef", "base_url": "",
            "models": "gpt-4o-mini,gpt-4o", "group": "default", "priority": "0", "weight": "0",
            "model_mapping": '{"gpt-4o": "gpt-4o-2024-08-06"}', "config": "{}", "system_prompt": "Be brief."}
    form.update({f"config_{name}": "" for name in config_field_types()})
    form.update(extra)
    return form


USER_ADD = {"username": "bob", "display_name": "Bob", "email": "bob@example.com", "password1": "Secret-pass-9",
            "password2": "Secret-pass-9", "role": "1", "group": "default", "quota": "1000"}
# "initial-…" is the hidden input holding what the form showed: the ledger moves these columns meanwhile.
ALICE_CHANGE = {"display_name": "Alice", "email": "alice@example.com", "role": "1", "status": "1",
                "group": "default", "quota": "2000000", "initial-quota": "1000000", "new_password": ""}
ROOT_CHANGE = {"display_name": "Root", "email": "root@example.com", "role": "100", "status": "1",
               "group": "default", "quota": "5", "initial-quota": str(10**12), "new_password": ""}
TOKEN_ADD = {"user": "{alice}", "name": "ci", "remain_quota": "1000", "unlimited_quota": "on",
             "expired_time": "2030-01-31T18:00", "models": "gpt-4o-mini", "subnet": "10.0.0.0/8"}
TOKEN_CHANGE = {"name": "renamed", "remain_quota": "42", "initial-remain_quota": "500000", "unlimited_quota": "",
                "expired_time": "", "models": "gpt-4o", "subnet": "", "status": "1", "initial-status": "1"}
CHANNEL_JSON = ("model_mapping", "config")
CODE_CHANGE = {"name": "card2", "quota": "20000", "status": "1"}
PASSWORD = {"old_password": "password123", "new_password1": "Secret-pass-9", "new_password2": "Secret-pass-9"}
DELETE = {"post": "yes"}

FORMS = [
    Console("/accounts/user/add/", ROOT, USER_ADD),
    Console("/accounts/user/add/", STAFF, USER_ADD),
    Console("/accounts/user/{alice}/change/", ROOT, ALICE_CHANGE),
    Console("/accounts/user/{alice}/change/", STAFF, ALICE_CHANGE),
    Console("/accounts/user/{root}/change/", ROOT, ROOT_CHANGE),
    Console("/accounts/user/{root}/change/", STAFF, ROOT_CHANGE),  # not listed to an admin: "no such user"
    Console("/accounts/user/{staff}/change/", STAFF, {**ROOT_CHANGE, "role": "10"}, expect=403),
    Console("/accounts/user/{alice}/delete/", STAFF, DELETE),
    Console("/accounts/token/add/", ROOT, TOKEN_ADD),
    Console("/accounts/token/add/", STAFF, TOKEN_ADD),
    Console("/accounts/token/{token}/change/", ROOT, TOKEN_CHANGE),
    Console("/accounts/token/{token}/change/", STAFF, TOKEN_CHANGE),
    Console("/accounts/token/{root_token}/change/", STAFF, TOKEN_CHANGE),  # not listed to an admin
    Console("/accounts/token/{token}/delete/", STAFF, DELETE),
    Console("/providers/channel/add/", ROOT, _channel_form(), json_fields=CHANNEL_JSON),
    Console("/providers/channel/add/", STAFF, _channel_form(type="3", base_url="https://x.openai.azure.com",
                                                            config_api_version="2024-03-01-preview"),
            json_fields=CHANNEL_JSON),
    Console("/providers/channel/{channel}/change/", ROOT, _channel_form(key="", priority="5"),
            json_fields=CHANNEL_JSON),
    Console("/providers/channel/{channel}/change/", STAFF, _channel_form(key="sk-new-0123456789abcdef", weight="3"),
            json_fields=CHANNEL_JSON),
    Console("/providers/channel/{channel}/delete/", ROOT, DELETE),
    Console("/providers/channel/test-all/", ROOT, {"scope": "all"}),
    Console("/providers/channel/delete-auto-disabled/", ROOT, {}),
    Console("/providers/channel/{channel}/fetch-models/", STAFF, {"add": "gpt-4o", "remove": "gpt-4o-mini"}),
    Console("/billing/redemptioncode/batch/", ROOT, {"name": "card", "quota": "10000", "count": "3"}, expect=200),
    Console("/billing/redemptioncode/batch/", STAFF, {"name": "card", "quota": "10000", "count": "1"}, expect=200),
    Console("/billing/redemptioncode/{code}/change/", ROOT, CODE_CHANGE),
    Console("/billing/redemptioncode/{code}/change/", STAFF, CODE_CHANGE),
    Console("/billing/redemptioncode/{code}/delete/", STAFF, DELETE),
    Console("/billing/log/{log}/delete/", ROOT, DELETE),
    Console("/billing/option/", ROOT, None, json_fields=tuple(sorted(options.JSON_KEYS))),
    Console("/billing/option/", STAFF, {"QuotaPerUnit": "500000"}, expect=403),
    Console("/password_change/", STAFF, PASSWORD),
    Console("/login/", ANON, {"username": "staff", "password": "password123", "next": "/admin/"}),
]


def _action(name: str, selected: str) -> dict:
    return {"action": name, "index": "0", "select_across": "0", "_selected_action": selected, "post": "yes"}


ACTIONS = [
    Console("/accounts/user/", role, _action("delete_selected", "{alice}")) for role in (ROOT, STAFF)
] + [
    Console("/accounts/token/", role, _action("delete_selected", "{token}")) for role in (ROOT, STAFF)
] + [
    Console("/providers/channel/", role, _action(name, "{channel}")) for role in (ROOT, STAFF)
    for name in ("enable_channels", "disable_channels", "test_channels", "update_balances", "delete_selected")
] + [
    Console("/billing/redemptioncode/", role, _action(name, "{code}")) for role in (ROOT, STAFF)
    for name in ("export_csv", "delete_selected")
] + [
    Console("/providers/channel/", role, {**_action(name, "{channel}"), "apply": "1", **value})
    for role in (ROOT, STAFF) for name, value in (
        ("set_priority", {"value": "5"}), ("set_weight", {"value": "2"}), ("set_tag", {"value": "eu"}),
        ("set_groups", {"value": "default,vip", "mode": "add"}), ("set_models", {"value": "gpt-4o", "mode": "remove"}),
        ("copy_channels", {}))
] + [Console("/billing/log/", ROOT, _action("delete_selected", "{log}"))]
for _console in ACTIONS:
    _console.expect = 200 if "export_csv" in _console.form["action"] else 302

# What the changelists read from the query string: search, filters, ordering, page, popup.
_LIST = {"q": "alice", "o": "2.-1", "p": "1"}
CHANGELISTS = [
    Console("/accounts/user/", ROOT, {**_LIST, "role__exact": "1", "status__exact": "1", "group__exact": "default"}),
    Console("/accounts/user/", STAFF, {**_LIST, "_to_field": "id", "_popup": "1", "all": ""}),
    Console("/accounts/token/", STAFF, {**_LIST, "status__exact": "1", "unlimited_quota__exact": "0"}),
    Console("/providers/channel/", ROOT, {**_LIST, "type": "1", "status__exact": "1", "group": "default"}),
    Console("/providers/channel/", STAFF, {**_LIST, "tag": "eu"}),
    Console("/billing/redemptioncode/", STAFF, {**_LIST, "status__exact": "1"}),
    Console("/billing/log/", ROOT, {**_LIST, "q": "gpt-4o", "type__exact": "2", "created_from": "2024-01-01",
                                    "created_to": "2030-12-31", "model_name": "gpt-4o-mini", "channel_id": "1",
                                    "username": "alice"}),
    Console("/autocomplete/", STAFF, {"term": "ali", "app_label": "accounts", "model_name": "token",
                                      "field_name": "user", "page": "1"}),
    Console("/billing/option/", ROOT, {"key": "QuotaPerUnit"}),
]
for _console in CHANGELISTS:
    _console.expect = 200

# Stranger fields the console itself reads: the save buttons (save-as-new turns an edit into an add), the
# popup's and changelist's parameters, and lookups no filter offers (a lookup or to_field that is not
# allowed must be refused, not followed).
CONSOLE_KEYS = ("_saveasnew", "_continue", "_addanother", "_save", "_popup", "_to_field", "_changelist_filters",
                "id__gt", "quota__gte", "user__password__startswith", "key__startswith", "config__contains",
                "model_mapping__has_key", "password__startswith", "pk", "id", "user",
                "action", "_selected_action", "select_across", "index", "post", "e")


def options_form() -> dict:
    """The options page's fields as it shows them now (a switch that is off is not posted)."""
    form = OptionsForm()
    fields = {}
    for key in form.fields:
        value = form.initial.get(key)
        if key in options.BOOL_KEYS:
            if value:
                fields[key] = "on"
        else:
            fields[key] = "" if value is None else str(value)
    return fields


@dataclass
class ConsoleWorld:
    ids: dict[str, int]
    clients: dict[str, Client]
    secrets: tuple[str, ...]  # stored credentials no console page may show: masked, or shown once when made


@pytest.fixture
def console_world(root, monkeypatch):
    world = make_world(root)
    root_token = TokenFactory(user=root, name="root-key", remain_quota=10**9)
    log = Log.objects.get(user_id=world.alice.pk)
    ids = {"alice": world.alice.pk, "root": root.pk, "staff": world.staff.pk, "token": world.token_id,
           "root_token": root_token.pk, "channel": world.channel_id, "code": world.code_id, "log": log.pk}
    clients = {}
    for role, user in ((ROOT, root), (STAFF, world.staff), (ANON, None)):
        client = Client(enforce_csrf_checks=True)
        if user is not None:
            client.force_login(user)
        client.get(f"{ADMIN}/login/" if user is None else f"{ADMIN}/")  # the CSRF cookie, as a browser gets it
        assert settings.CSRF_COOKIE_NAME in client.cookies, role
        clients[role] = client
    # "Test all" runs in the request's thread: a background thread would outlive the example's transaction.
    test_all = probe.channels_test_all
    monkeypatch.setattr(probe, "channels_test_all", lambda **kw: test_all(**{**kw, "background": False}))
    secrets = (Channel.objects.get(pk=world.channel_id).key, *Token.objects.values_list("key", flat=True))
    return ConsoleWorld(ids=ids, clients=clients, secrets=secrets)


def _fill(text: str, ids: dict[str, int]) -> str:
    for name, pk in ids.items():
        text = text.replace("{" + name + "}", str(pk))
    return text


def _path(console: Console, ids: dict[str, int]) -> str:
    return ADMIN + _fill(console.path, ids)


def _base(console: Console, ids: dict[str, int]) -> dict[str, str]:
    form = options_form() if console.form is None else console.form
    return {name: _fill(value, ids) for name, value in form.items()}


def _send(client: Client, method: str, path: str, params: list[tuple[str, str]], as_multipart: bool):
    if method == "GET":
        return client.get(path + "?" + query_string(params))
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    if as_multipart:
        # The test client writes multipart itself: text it can encode, as a browser would send it.
        fields: dict[str, list[str]] = {}
        for name, value in params:
            fields.setdefault(encode(name).decode("utf-8", "replace"), []).append(
                encode(value).decode("utf-8", "replace"))
        fields["csrfmiddlewaretoken"] = [token]
        return client.post(path, fields)
    body = query_string([*params, ("csrfmiddlewaretoken", token)])
    return client.generic("POST", path, body, content_type="application/x-www-form-urlencoded")


def _answer(world: ConsoleWorld, console: Console, method: str, params: list[tuple[str, str]],
            as_multipart: bool = False):
    client = world.clients[console.role]
    cookies = client.cookies.copy()  # a password change cycles the session the rollback brings back
    try:
        return _send(client, method, _path(console, world.ids), params, as_multipart)
    finally:
        client.cookies = cookies


# --- what the database may hold ---------------------------------------------------------------------

CHECKED_MODELS = (User, Token, Channel, Ability, RedemptionCode, Option, Log)


def _value_problem(column: models.Field, value) -> str | None:
    if value is None:
        return None if column.null else "NULL"
    kind = column.get_internal_type()
    if kind in numbers.COLUMN_RANGES:
        low, high = numbers.COLUMN_RANGES[kind]
        if type(value) is not int:
            return f"{value!r} is no integer"
        if not low <= value <= high:
            return f"{value} is outside {kind}"
    if column.choices and value not in {choice for choice, _label in column.flatchoices}:
        return f"{value!r} is not one of its choices"
    if kind == "FloatField" and not math.isfinite(value):
        return f"{value!r} is not finite"
    if kind == "JSONField":
        try:
            json.dumps(value, allow_nan=False)
        except ValueError as exc:
            return f"not JSON: {exc}"
    if isinstance(value, str):
        if column.max_length is not None and len(value) > column.max_length:
            return f"{len(value)} characters, more than {column.max_length}"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "not UTF-8 (a lone surrogate)"
    return None


def _rule_problems() -> list[str]:
    """Rules the services keep beyond the columns' own."""
    problems = []
    for token in Token.objects.all():
        if len(token.models) > TOKEN_MODELS_MAX_LENGTH or len(token.subnet) > TOKEN_SUBNET_MAX_LENGTH:
            problems.append(f"token {token.pk}: a models or subnet list longer than the services allow")
    for channel in Channel.objects.all():
        if channel.type not in ADAPTERS:
            problems.append(f"channel {channel.pk}: type {channel.type} has no adapter")
    for option in Option.objects.all():
        if option.key not in options.DEFAULTS:
            problems.append(f"option {option.key!r} is no option")
            continue
        try:
            options.parse(option.key, option.value)
        except ServiceError as exc:
            problems.append(f"option {option.key}: {exc}")
    return problems


def assert_rows_valid() -> None:
    problems = []
    for model in CHECKED_MODELS:
        columns = model._meta.concrete_fields
        for row in model.objects.all():
            for column in columns:
                problem = _value_problem(column, getattr(row, column.attname))
                if problem:
                    problems.append(f"{model.__name__} {row.pk} {column.name}: {problem}")
    problems += _rule_problems()
    assert not problems, "the database holds rows it must not:\n" + "\n".join(problems)


# --- drawn fields -----------------------------------------------------------------------------------

# A JSON field gets JSON: valid or broken, nested past any stack, numbers past float range.
json_texts = st.one_of(json_values.map(to_json), json_values.map(lambda v: to_json(v, ascii=False)),
                       st.sampled_from(("{", "[]", '{"a": 1e400}', '{"a": NaN}', '{"a": {"b": "c"}}', "null",
                                        '{"gpt-4o": ""}', '{"": "x"}', '{"a": "' + "x" * 300 + '"}')))


@st.composite
def console_fields(draw, base: dict[str, str], json_fields: tuple[str, ...]) -> list[tuple[str, str]]:
    params = draw(queries(base))
    if json_fields and draw(st.booleans()):
        name = draw(st.sampled_from(json_fields))
        params = [(k, v) for k, v in params if k != name] + [(name, draw(json_texts))]
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        params.append((draw(st.sampled_from(CONSOLE_KEYS)), draw(st.one_of(st.sampled_from(("", "1", "id")),
                                                                           strings))))
    return params


def _above_the_admin() -> dict:
    """Root and the admins, and their tokens, as stored (but for the times a sign-in or a request moves)."""
    users = User.objects.filter(role__gte=User.Role.ADMIN).order_by("pk").values()
    tokens = Token.objects.filter(user__role__gte=User.Role.ADMIN).order_by("pk").values()
    return {"users": [{k: v for k, v in u.items() if k not in ("password", "last_login")} for u in users],
            "tokens": [{k: v for k, v in t.items() if k != "accessed_time"} for t in tokens]}


def _check(world: ConsoleWorld, log_watch, console: Console, method: str, params, as_multipart: bool = False):
    with isolated_example():
        log_watch.clear()
        before = _above_the_admin() if console.role == STAFF else None
        response = _answer(world, console, method, params, as_multipart)
        assert_page(response.status_code, response.content)
        shown = [secret for secret in world.secrets if secret.encode() in response.content]
        assert not shown, f"the page shows a stored key: {shown}"
        log_watch.assert_quiet()
        assert_rows_valid()
        if before is not None:  # an admin acts only below them: root, admins and their tokens stay as they were
            assert _above_the_admin() == before
    return response


POSTS = FORMS + ACTIONS


@pytest.mark.parametrize("console", POSTS, ids=str)
def test_the_valid_form_is_taken(console_world, log_watch, console):
    """The harness reaches the forms: their valid fields, CSRF token included, are saved (or refused where the
    role may not), so a fuzzed post that is refused was refused by the form, not by the CSRF check."""
    params = list(_base(console, console_world.ids).items())
    response = _check(console_world, log_watch, console, "POST", params)
    assert response.status_code == console.expect, response.content[:2000]


@pytest.mark.parametrize("console", CHANGELISTS, ids=str)
def test_the_plain_changelist_query_is_taken(console_world, log_watch, console):
    response = _check(console_world, log_watch, console, "GET", list(_base(console, console_world.ids).items()))
    assert response.status_code == console.expect, response.content[:2000]


@pytest.mark.parametrize("console", POSTS, ids=str)
@given(data=st.data())
def test_any_console_form_gets_a_page_or_a_refusal(console_world, log_watch, console, data):
    params = data.draw(console_fields(_base(console, console_world.ids), console.json_fields), label="fields")
    as_multipart = data.draw(st.integers(min_value=0, max_value=3), label="multipart") == 0
    _check(console_world, log_watch, console, "POST", params, as_multipart)


@pytest.mark.parametrize("console", CHANGELISTS, ids=str)
@given(data=st.data())
def test_any_changelist_query_gets_a_page_or_a_refusal(console_world, log_watch, console, data):
    params = data.draw(console_fields(_base(console, console_world.ids), ()), label="query")
    _check(console_world, log_watch, console, "GET", params)


OBJECT_PAGES = [f"/{model}/{{}}/{page}/" for model in ("accounts/user", "accounts/token", "providers/channel",
                                                         "billing/redemptioncode", "billing/log")
                for page in ("change", "history", "delete")]
# The console's paths take any text as an id, not only digits.
object_ids = st.one_of(path_ids, strings.filter(lambda s: 0 < len(s) < 1000).map(
    lambda s: quote(encode(s), safe="")), st.sampled_from(("-1", "1.5", "1e3", "0x1", "%00", "..", "1;2")))


@pytest.mark.parametrize("role", [ROOT, STAFF])
@pytest.mark.parametrize("page", OBJECT_PAGES)
@given(item=object_ids, method=st.sampled_from(("GET", "POST")))
def test_any_object_id_in_the_path_gets_a_page_or_a_refusal(console_world, log_watch, role, page, item, method):
    console = Console(page.format(item), role)
    _check(console_world, log_watch, console, method, [("post", "yes")] if method == "POST" else [])


def _numeric(value: str) -> bool:
    return value.replace(".", "", 1).removeprefix("-").isdigit()


NUMERIC = [(console, name) for console in FORMS if console.form for name, value in console.form.items()
           if _numeric(value) and console.expect != 403 and not name.startswith("initial-")]
NUMERIC += [(Console("/billing/option/", ROOT, None), key) for key in sorted(options.INT_KEYS | options.FLOAT_KEYS)]


@pytest.mark.parametrize("console, name", NUMERIC, ids=[f"{c} {n}" for c, n in NUMERIC])
def test_every_edge_number_in_every_numeric_field_gets_a_page_or_a_refusal(console_world, log_watch, console, name):
    """Not drawn but swept: each edge number in each numeric field (the options' too), the other fields as the
    form sends them."""
    base = _base(console, console_world.ids)
    failures = []
    for text in (*EDGE_NUMBERS, *map(long_number, LONG_NUMBERS)):
        params = [(key, text if key == name else value) for key, value in base.items()]
        try:  # the test client raises what the view raised: gather them all, then fail
            _check(console_world, log_watch, console, "POST", params)
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{name}={text[:40]}: {type(exc).__name__}: {str(exc)[:300]}")
    assert not failures, "\n".join(failures)
