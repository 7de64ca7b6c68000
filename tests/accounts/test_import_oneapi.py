"""`manage.py import_oneapi`: a real one-api database (SQLite and MariaDB) imported, then its token used with the
openai SDK, its passwords accepted at /api/user/login, its unserved channel shown disabled with the reason."""

from __future__ import annotations

import importlib.util
import json
import uuid
from io import StringIO

import openai
import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import Token, User
from billing.ledger import ledger
from billing.models import Log, Option, RedemptionCode
from providers.adapters import ADAPTERS
from providers.adapters.openai import OpenAIAdapter
from providers.models import Ability, Channel
from tests.accounts.oneapi_source import (
    OneAPIData,
    build_mariadb,
    build_postgres,
    build_sqlite,
    drop_mariadb,
    drop_postgres,
)

BCRYPT = "accounts.hashers.OneAPIBCryptPasswordHasher"
# A type one-api's table may hold that no adapter serves, whatever adapters this gateway gains.
UNSERVED = next(t for t in range(52, 1000) if t not in ADAPTERS)

# The source database on a server: a name of this run's own, so two runs on one server never share it.
SOURCE_NAME = f"oneapi_importer_src_{uuid.uuid4().hex[:8]}"


@pytest.fixture(autouse=True)
def bcrypt_accepted(settings):
    """The suite's fast hasher first (it makes the upgraded hash), then one-api's bcrypt, as the site lists it."""
    settings.PASSWORD_HASHERS = [*settings.PASSWORD_HASHERS, BCRYPT]


def run_import(source: str, *args: str) -> str:
    out = StringIO()
    call_command("import_oneapi", source, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def data(upstream):
    return OneAPIData(upstream_url=upstream.url, unserved_type=UNSERVED)


SERVERS = {"mariadb": (build_mariadb, drop_mariadb), "postgresql": (build_postgres, drop_postgres)}


@pytest.fixture(params=["sqlite", "mariadb", "postgresql"])
def source(request, tmp_path, data):
    if request.param == "sqlite":
        return build_sqlite(tmp_path / "one-api.db", data)
    build, drop = SERVERS[request.param]
    try:
        dsn = build(SOURCE_NAME, data)
    except Exception as exc:  # no such server here (or no driver): the SQLite case still runs
        pytest.skip(f"{request.param} is not reachable: {exc}")
    request.addfinalizer(lambda: drop(SOURCE_NAME))
    return dsn


def snapshot() -> dict:
    """Every row the import writes, by table (abilities by content: they carry no source id)."""
    return {
        "users": list(User.objects.order_by("id").values()),
        "tokens": list(Token.objects.order_by("id").values()),
        "channels": list(Channel.objects.order_by("id").values()),
        "abilities": list(Ability.objects.order_by("id").values()),
        "redemptions": list(RedemptionCode.objects.order_by("id").values()),
        "options": list(Option.objects.order_by("key").values()),
        "logs": Log.objects.count(),
    }


@pytest.mark.django_db(transaction=True)
async def test_an_imported_token_answers_through_the_openai_sdk(source, data, upstream, relay_client):
    await sync_to_async(run_import)(source, "--logs")
    sdk = openai.AsyncOpenAI(base_url="http://testserver/v1", api_key=f"sk-{data.alice_key}",
                             http_client=relay_client, max_retries=0)
    # alice's group is vip; the channel serves default and vip, and maps gpt-3.5-turbo to gpt-4o-mini
    answer = await sdk.chat.completions.create(model="gpt-3.5-turbo", messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content == "Hello from the mock upstream."
    sent = upstream.requests[-1]
    assert sent.headers["Authorization"] == "Bearer sk-upstream-imported"
    assert sent.body["model"] == "gpt-4o-mini"
    await sync_to_async(ledger.flush_all)()
    token = await Token.objects.aget(pk=3)
    assert token.used_quota > 1000 and token.remain_quota < 400_000  # billed on top of the imported balance
    with pytest.raises(openai.AuthenticationError):  # bob's token came over disabled, as it was
        await openai.AsyncOpenAI(base_url="http://testserver/v1", api_key=f"sk-{data.bob_key}",
                                 http_client=relay_client, max_retries=0).models.list()


@pytest.mark.django_db(transaction=True)
def test_everything_is_carried_with_its_ids(source, data):
    report = run_import(source, "--logs")
    alice = User.objects.get(pk=2)
    assert (alice.username, alice.display_name, alice.email, alice.role, alice.status, alice.group) == (
        "alice", "Alice", "alice@example.com", User.Role.COMMON, User.Status.ENABLED, "vip")
    assert (alice.quota, alice.used_quota, alice.request_count, alice.aff_code) == (1_234_567, 890, 12, "Ab1x")
    assert (alice.github_id, alice.oidc_id) == ("4242", "oidc-sub-alice")
    assert alice.password.startswith("bcrypt$$2a$10$")
    bob = User.objects.get(pk=5)
    assert (bob.status, bob.inviter_id) == (User.Status.DISABLED, 2)
    assert "users.wechat_id: 1" in report  # a column we have no use for is named, with its rows

    token = Token.objects.get(key=data.alice_key)
    assert (token.pk, token.user_id, token.remain_quota, token.used_quota, token.expired_time) == (
        3, 2, 400_000, 1000, -1)
    bob_token = Token.objects.get(pk=8)
    assert (bob_token.unlimited_quota, bob_token.models, bob_token.subnet, bob_token.status) == (
        True, "gpt-4o-mini", "10.0.0.0/8", Token.Status.DISABLED)

    main = Channel.objects.get(pk=4)
    assert (main.type, main.key, main.priority, main.weight, main.group, main.balance, main.used_quota) == (
        1, "sk-upstream-imported", 5, 3, "default,vip", 12.5, 77_000)
    assert main.model_mapping == {"gpt-3.5-turbo": "gpt-4o-mini"}
    assert set(Ability.objects.filter(channel=main).values_list("group", "model", "enabled", "priority")) == {
        (g, m, True, 5) for g in ("default", "vip") for m in ("gpt-4o-mini", "gpt-3.5-turbo")}
    azure = Channel.objects.get(pk=6)
    assert azure.config == {"api_version": "2024-02-01"}  # from one-api's old `other` column
    assert azure.status == Channel.Status.AUTO_DISABLED and not azure.abilities.filter(enabled=True).exists()
    coze = Channel.objects.get(pk=11)
    assert (coze.config, coze.system_prompt) == ({"user_id": "coze-user"}, "Be brief.")

    assert RedemptionCode.objects.get(pk=1).quota == 5000
    assert RedemptionCode.objects.get(pk=2).status == RedemptionCode.Status.USED
    assert json.loads(Option.objects.get(key="ModelRatio").value) == {"gpt-4o-mini": 0.075, "gpt-3.5-turbo": 0.25}
    assert Option.objects.get(key="SystemName").value == "Imported One API"
    assert not Option.objects.filter(key__in=["RetryTimes", "Theme"]).exists()
    assert "options: skipped: refused: RetryTimes" in report and "not used by this gateway: Theme" in report

    assert Log.objects.count() == data.logs
    log = Log.objects.get(pk=7)
    assert (log.channel_id, log.user_id, log.quota, log.request_id, log.elapsed_time) == (4, 2, 17, "req-7", 300)


@pytest.mark.django_db(transaction=True)
def test_an_imported_password_signs_in_and_is_rehashed(source, data, settings):
    run_import(source)
    client = APIClient()
    wrong = client.post("/api/user/login", {"username": "alice", "password": "not-her-pass"}, format="json")
    assert wrong.json()["success"] is False
    signed = client.post("/api/user/login", {"username": "alice", "password": data.alice_password}, format="json")
    assert signed.json()["success"] is True, signed.json()
    assert client.get("/api/user/self").json()["data"]["username"] == "alice"
    # the first success re-hashes it with the site's first hasher: bcrypt is not needed again
    assert User.objects.get(pk=2).password.startswith("md5$")
    assert APIClient().post("/api/user/login", {"username": "alice", "password": data.alice_password},
                            format="json").json()["success"] is True


@pytest.mark.django_db(transaction=True)
def test_a_dry_run_writes_nothing_and_says_what_it_would_do(source):
    before = snapshot()
    report = run_import(source, "--dry-run", "--logs")
    assert snapshot() == before
    assert "dry run: nothing written" in report
    assert "tokens: 2 read, 2 new, 0 changed, 0 unchanged, 0 skipped" in report
    assert f"kept disabled: Channel type {UNSERVED} has no adapter in this gateway" in report
    assert "logs: 2500 read, 2500 new" in report


@pytest.mark.django_db(transaction=True)
def test_a_second_run_changes_nothing(source):
    run_import(source, "--logs")
    first = snapshot()
    report = run_import(source, "--logs")
    assert snapshot() == first
    assert "users: 3 read, 0 new, 0 changed, 3 unchanged" in report
    assert "logs: 2500 read, 0 new, 0 changed, 2500 unchanged" in report


@pytest.mark.django_db(transaction=True)
def test_a_second_run_brings_the_source_s_changes_as_updates(tmp_path, data):
    path = build_sqlite(tmp_path / "one-api.db", data)
    run_import(path)
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("UPDATE users SET quota = 42 WHERE id = 2")
        db.execute("UPDATE channels SET models = 'gpt-4o-mini' WHERE id = 4")
    report = run_import(path)
    assert User.objects.get(pk=2).quota == 42  # the source is the truth at import time
    assert set(Ability.objects.filter(channel_id=4).values_list("model", flat=True)) == {"gpt-4o-mini"}
    assert "users: 3 read, 0 new, 1 changed, 2 unchanged" in report
    assert User.objects.count() == 3 and Channel.objects.count() == 4


@pytest.mark.django_db(transaction=True)
def test_an_unserved_channel_type_is_disabled_with_its_reason_in_the_api_and_console(source, data):
    run_import(source)
    channel = Channel.objects.get(pk=12)
    assert channel.status == Channel.Status.MANUALLY_DISABLED
    assert not channel.abilities.filter(enabled=True).exists()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=data.root_access_token)  # root's access token came over too
    listed = {c["id"]: c for c in api.get("/api/channel/", {"p": 0}).json()["data"]}
    assert f"Channel type {UNSERVED} has no adapter" in listed[12]["unsupported_reason"]
    assert listed[4]["unsupported_reason"] == "" and listed[4]["status"] == 1
    console = Client()
    console.force_login(User.objects.get(pk=1))
    page = console.get("/admin/providers/channel/").content.decode()
    assert f"Channel type {UNSERVED} has no adapter" in page
    change = console.get(f"/admin/providers/channel/{channel.pk}/change/").content.decode()
    assert f"Channel type {UNSERVED} has no adapter" in change


@pytest.mark.django_db(transaction=True)
def test_once_the_type_has_an_adapter_the_next_import_brings_the_channel_enabled(tmp_path, data, monkeypatch):
    source = build_sqlite(tmp_path / "one-api.db", data)
    run_import(source)
    assert Channel.objects.get(pk=12).status == Channel.Status.MANUALLY_DISABLED
    monkeypatch.setitem(ADAPTERS, UNSERVED, OpenAIAdapter)  # as when an adapter for it lands
    report = run_import(source)
    assert Channel.objects.get(pk=12).status == Channel.Status.ENABLED  # the source's status
    assert Ability.objects.filter(channel_id=12, model="some-model", enabled=True).exists()
    assert "channels: 4 read, 0 new, 1 changed, 3 unchanged" in report


# A MySQL source needs the driver, which only `make install-mysql` installs (CI's SQLite leg runs without it).
MYSQL_DRIVER = importlib.util.find_spec("MySQLdb") is not None
UNREADABLE_MYSQL = ("cannot read mysql database 'nope' at 127.0.0.1:1" if MYSQL_DRIVER
                    else "reading a MySQL/MariaDB source needs the mysqlclient driver: run make install-mysql")


@pytest.mark.django_db
@pytest.mark.parametrize("source, message", [
    ("root:@tcp(127.0.0.1:1)/nope", UNREADABLE_MYSQL),
    ("postgres://u:secret-pass@127.0.0.1:1/nope", "cannot read postgresql database 'nope' at 127.0.0.1:1"),
    ("/no/such/one-api.db", "/no/such/one-api.db is no SQLite file"),
])
def test_an_unreachable_source_is_one_clear_line(source, message):
    with pytest.raises(CommandError) as refused:
        run_import(source)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value) and "secret-pass" not in str(refused.value)


@pytest.mark.django_db
def test_a_database_that_is_not_one_api_s_is_refused(tmp_path):
    import sqlite3

    with sqlite3.connect(tmp_path / "other.db") as db:
        db.execute("CREATE TABLE users (id integer)")
    (tmp_path / "text.db").write_text("not a database at all, " * 100)
    with pytest.raises(CommandError, match="is not a one-api database: it has no tokens, channels, options table"):
        run_import(str(tmp_path / "other.db"))
    with pytest.raises(CommandError, match="cannot read .*text.db: file is not a database"):
        run_import(str(tmp_path / "text.db"))
    assert not User.objects.filter(username="alice").exists()
