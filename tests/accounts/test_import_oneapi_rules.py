"""The importer's rules where the source and this gateway disagree, new-api's database, and the bcrypt hasher."""

from __future__ import annotations

import json
import os
import sqlite3
from io import StringIO

import bcrypt
import pytest
import redis
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.hashers import OneAPIBCryptPasswordHasher, from_oneapi
from accounts.models import Token, User
from accounts.services.users import user_access_token_reset
from billing.models import Log, RedemptionCode
from billing.shared_quota import SharedQuota, key
from providers.models import Channel, ChannelKey
from tests.accounts.oneapi_source import OneAPIData, build_sqlite, go_bcrypt
from tests.accounts.test_import_oneapi import BCRYPT, UNSERVED
from tests.conftest import shared_quota_clear
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def bcrypt_accepted(settings):
    settings.PASSWORD_HASHERS = [*settings.PASSWORD_HASHERS, BCRYPT]


def run_import(source: str, *args: str) -> str:
    out = StringIO()
    call_command("import_oneapi", source, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def source(tmp_path):
    return build_sqlite(tmp_path / "one-api.db", OneAPIData(upstream_url="http://127.0.0.1:9",
                                                            unserved_type=UNSERVED, logs=3))


def test_the_site_checks_one_api_hashes_after_its_own_hasher():
    from oneapi_site import settings as site

    assert site.PASSWORD_HASHERS[-1] == BCRYPT
    assert site.PASSWORD_HASHERS[0] != BCRYPT  # else nothing would be upgraded


def test_the_hasher_checks_a_go_hash_and_refuses_long_passwords_without_an_error():
    encoded = from_oneapi(go_bcrypt("right-pass-1"))
    hasher = OneAPIBCryptPasswordHasher()
    assert encoded.startswith("bcrypt$$2a$10$")
    assert hasher.verify("right-pass-1", encoded) and not hasher.verify("wrong-pass-1", encoded)
    assert hasher.verify("x" * 73, encoded) is False  # bcrypt 5 raises on these; a sign-in must not 500
    hasher.harden_runtime("x" * 73, encoded)  # nor the extra hashing after a wrong one
    assert from_oneapi("") is None and from_oneapi("plain-text") is None
    assert from_oneapi(bcrypt.hashpw(b"p", bcrypt.gensalt(4)).decode()).startswith("bcrypt$$2b$04$")


def test_imported_passwords_sign_in_on_the_pages_and_the_console(source, client):
    run_import(source)
    signed = client.post(reverse("login"), {"username": "alice", "password": "alice-pass-01"})
    assert signed.status_code == 302 and client.get("/api/user/self").json()["data"]["username"] == "alice"
    console = Client()
    answer = console.post("/admin/login/?next=/admin/", {"username": "root", "password": "root-pass-0001"})
    assert answer.status_code == 302 and answer["Location"] == "/admin/"
    assert console.get("/admin/providers/channel/").status_code == 200
    assert not User.objects.get(pk=1).password.startswith("bcrypt$")


def test_a_long_password_against_an_imported_hash_is_a_failed_sign_in(source):
    run_import(source)
    answer = APIClient().post("/api/user/login", {"username": "alice", "password": "é" * 40}, format="json")
    assert answer.status_code in (200, 400) and answer.json()["success"] is False


def test_a_user_whose_id_is_someone_else_here_is_not_imported_nor_are_their_tokens(source):
    here = UserFactory(id=2, username="carol")
    report = run_import(source)
    assert User.objects.get(pk=2).username == "carol" and here.tokens.count() == 0
    assert not User.objects.filter(username="alice").exists()
    assert not Token.objects.filter(pk=3).exists()
    assert "users: skipped: the id is another user's here: user 2 (alice), here carol" in report
    assert "tokens: skipped: its user is not imported: token 3 (alice-app)" in report


def test_a_password_changed_here_is_kept_by_the_next_run(source):
    run_import(source)
    alice = User.objects.get(pk=2)
    alice.set_password("a-new-password-1")
    alice.save()
    run_import(source)
    assert User.objects.get(pk=2).check_password("a-new-password-1")


def test_a_code_made_here_under_a_source_id_is_kept(source):
    RedemptionCode.objects.create(id=1, key="k" * 32, name="made here", quota=7)
    report = run_import(source)
    assert RedemptionCode.objects.get(pk=1).key == "k" * 32
    assert RedemptionCode.objects.get(pk=2).status == RedemptionCode.Status.USED
    assert "redemptions: skipped: the id is another code's here: redemption 1" in report


def test_unique_values_another_user_holds_here_are_left_out(source):
    UserFactory(id=40, username="dave", aff_code="Ab1x")
    report = run_import(source)
    assert User.objects.get(pk=2).aff_code is None
    assert "aff_code is another user's here (in any letter case): not carried: user 2 (alice)" in report


def test_the_logs_progress_goes_to_stderr_and_without_logs_the_report_says_how_many_stayed(source):
    err = StringIO()
    call_command("import_oneapi", source, "--logs", stdout=StringIO(), stderr=err)
    assert err.getvalue().strip().splitlines()[-1] == "logs: 3 of 3 (100%)"
    assert "logs: 3 rows not read: add --logs to carry them" in run_import(source, "--dry-run")


def test_logs_kept_in_their_own_database_are_read_from_there(source, tmp_path):
    with sqlite3.connect(tmp_path / "logs.db") as db:  # one-api's LOG_SQL_DSN: a database of logs alone
        db.execute("CREATE TABLE logs (id integer PRIMARY KEY, user_id integer, created_at integer, type integer, "
                   "content text, quota integer, channel_id integer)")
        db.executemany("INSERT INTO logs VALUES (?, ?, ?, 2, 'x', 5, 4)", [(i, 2, 1_700_000_000 + i)
                                                                        for i in range(1, 11)])
    report = run_import(source, "--log-source", str(tmp_path / "logs.db"))
    assert "logs: 10 read, 10 new" in report and Log.objects.count() == 10
    with sqlite3.connect(tmp_path / "other.db") as db:
        db.execute("CREATE TABLE notes (id integer)")
    with pytest.raises(CommandError, match="other.db is not a one-api database: it has no logs table"):
        run_import(source, "--log-source", str(tmp_path / "other.db"))


def test_rows_made_after_an_import_take_fresh_ids(source):
    run_import(source, "--logs")
    user = UserFactory(username="erin")
    assert user.pk > 5
    assert Token.objects.create(user=user, key="k" * 48).pk > 8
    assert Log.objects.create(user_id=user.pk).pk > 3


def test_a_log_whose_id_is_another_log_here_is_named_not_overwritten(source):
    Log.objects.create(id=2, user_id=99, created_at=5, content="written here")
    report = run_import(source, "--logs")
    assert Log.objects.get(pk=2).content == "written here"
    assert Log.objects.count() == 3
    assert "logs: skipped: the id is another log's here: log 2" in report


def _make_new_api(path) -> str:
    data = OneAPIData(upstream_url="http://127.0.0.1:9", unserved_type=UNSERVED, logs=3)
    build_sqlite(path, data, new_api=True)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE users SET setting = '{\"notify\":1}', linux_do_id = 'ld-1' WHERE id = 2")
        db.execute("UPDATE users SET deleted_at = '2025-01-01 00:00:00' WHERE id = 5")
        db.execute("UPDATE tokens SET model_limits_enabled = 1, model_limits = 'gpt-4o-mini,gpt-4o', "
                   "allow_ips = '10.1.1.1\n10.2.2.2', `group` = 'vip' WHERE id = 3")
        db.execute("UPDATE tokens SET deleted_at = '2025-01-01 00:00:00' WHERE id = 8")
        db.execute("UPDATE channels SET tag = 'fleet', param_override = '{\"temperature\":0}' WHERE id = 4")
        db.execute("UPDATE channels SET `key` = 'k1\nk2\nk3' WHERE id = 11")
        db.execute("UPDATE redemptions SET used_user_id = 2, expired_time = 1900000000 WHERE id = 2")
        db.execute("UPDATE logs SET token_id = 3, `group` = 'vip', other = '{\"x\":1}'")
        db.execute("CREATE TABLE vendors (id integer PRIMARY KEY, name text)")
    return str(path)


def test_a_new_api_database_imports_what_it_can_and_names_the_rest(tmp_path):
    report = run_import(_make_new_api(tmp_path / "new-api.db"), "--logs")
    assert "(new-api)" in report
    assert User.objects.get(pk=5).status == User.Status.DELETED
    token = Token.objects.get(pk=3)
    assert (token.models, token.subnet) == ("gpt-4o-mini,gpt-4o", "10.1.1.1,10.2.2.2")
    assert not Token.objects.filter(pk=8).exists() and "tokens: skipped: deleted in new-api" in report
    assert Channel.objects.get(pk=4).tag == "fleet" and "channels.tag" not in report  # new-api's tag carried
    multi = Channel.objects.get(pk=11)
    assert multi.status == Channel.Status.MANUALLY_DISABLED and multi.key == "k1\nk2\nk3"
    assert ("the key holds several keys in a channel of one key; set its key_mode to round_robin (or random) to "
            "take them in turn, or give each its channel: channel 11 (coze)") in report
    assert RedemptionCode.objects.get(pk=2).redeemed_by_id == 2
    assert set(Log.objects.values_list("token_id", flat=True)) == {3}
    assert "users.linux_do_id: 1 (no LinuxDO sign-in here)" in report
    assert "tables: not read: vendors" in report
    for dropped in ("users.setting: 1", "users.linux_do_id: 1", "tokens.group: 1",
                    "redemptions.expired_time: 1", "logs.group: 3", "logs.other: 3"):
        assert dropped in report, dropped
    assert Channel.objects.get(pk=4).config["param_override"] == {"temperature": 0}


def test_new_api_overrides_and_proxy_move_into_the_channel_config(tmp_path):
    # They were reported as "no per-channel overrides here" and dropped, though the channel's config takes
    # them in new-api's own format (so that they move).
    path = _make_new_api(tmp_path / "new-api.db")
    with sqlite3.connect(path) as db:
        db.execute("""UPDATE channels SET header_override = '{"X-Api-Key": "{api_key}", "X-Team": "t1"}',
                      setting = '{"proxy": "socks5://u:p@127.0.0.1:1080", "force_format": true}',
                      param_override = '{"operations": [{"path": "temperature", "mode": "set", "value": 0.2}]}'
                      WHERE id = 4""")
        db.execute("""UPDATE channels SET param_override = '{"operations": [{"path": "x", "mode": "nonsense"}]}',
                      header_override = 'not json', setting = '{"proxy": "ftp://x"}' WHERE id = 6""")
    report = run_import(path)
    config = Channel.objects.get(pk=4).config
    assert config["param_override"] == {"operations": [{"path": "temperature", "mode": "set", "value": 0.2}]}
    assert config["header_override"] == {"X-Api-Key": "{api_key}", "X-Team": "t1"}
    assert config["proxy"] == "socks5://u:p@127.0.0.1:1080"
    assert "channels.setting.force_format: 1" in report
    for column in ("param_override", "header_override", "proxy"):
        assert column not in Channel.objects.get(pk=6).config
        assert f"channels: {column} left out, as this gateway would refuse it" in report, column
    assert "no per-channel" not in report
    assert "channels: 4 read, 0 new, 0 changed" in run_import(path)  # carried the same way again


REDIS = os.environ.get("REDIS_CONN_STRING", "")


@pytest.mark.skipif(not REDIS, reason="needs REDIS_CONN_STRING")
@pytest.mark.django_db(transaction=True)
def test_a_balance_the_next_run_changes_moves_the_shared_balance_in_redis_too(source, settings, monkeypatch):
    settings.REDIS_CONN_STRING = REDIS
    monkeypatch.setattr("oneapi_site.importer.run.shared", SharedQuota())
    shared_quota_clear()
    run_import(source)
    client = redis.Redis.from_url(REDIS)
    # instances charged 100 to alice and her key since, not yet written to the database
    client.hset(key("u", 2), "bal", 1_234_567 - 100)
    client.hset(key("t", 3), "bal", 400_000 - 100)
    with sqlite3.connect(source) as db:
        db.execute("UPDATE users SET quota = 5000 WHERE id = 2")
        db.execute("UPDATE tokens SET remain_quota = 3000 WHERE id = 3")
    run_import(source)
    assert int(client.hget(key("u", 2), "bal")) == 5000 - 100
    assert int(client.hget(key("t", 3), "bal")) == 3000 - 100
    assert not client.exists(key("u", 5))  # nobody used bob's: seeded from the database when first needed
    shared_quota_clear()
    client.close()


def test_a_new_api_multi_key_channel_keeps_its_keys_its_mode_and_each_keys_state(tmp_path):
    path = _make_new_api(tmp_path / "new-api.db")
    info = {"is_multi_key": True, "multi_key_size": 3, "multi_key_mode": "polling", "multi_key_polling_index": 2,
            "multi_key_status_list": {"1": 3, "2": 2}, "multi_key_disabled_reason": {"1": "insufficient quota"},
            "multi_key_disabled_time": {"1": 1_700_000_000}}
    with sqlite3.connect(path) as db:
        db.execute("UPDATE channels SET `key` = ?, channel_info = ? WHERE id = 4",
                   ("sk-pool-one-0001\nsk-pool-two-0002\n\nsk-pool-three-0003", json.dumps(info)))
    report = run_import(path)
    pool = Channel.objects.get(pk=4)
    assert (pool.status, pool.key_mode) == (Channel.Status.ENABLED, "round_robin")
    assert pool.key == "sk-pool-one-0001\nsk-pool-two-0002\nsk-pool-three-0003"
    keys = list(ChannelKey.objects.filter(channel=pool).order_by("index").values_list(
        "status", "last_error", "disabled_at"))
    assert keys[:2] == [(1, "", 0), (3, "insufficient quota", 1_700_000_000)] and keys[2][0] == 2
    assert "give each its channel: channel 4" not in report
    # A second run changes nothing: the keys keep the states they have here by then.
    ChannelKey.objects.filter(channel=pool, index=2).update(status=1)
    run_import(path)
    assert ChannelKey.objects.get(channel=pool, index=2).status == 1


@pytest.mark.parametrize("stored", [
    "$2a$10$" + "!" * 53,  # not bcrypt's alphabet: bcrypt raises "Invalid salt"
    "$2a$03$" + "a" * 53,  # a cost bcrypt refuses
    "$2a$31$" + "a" * 53,  # a cost that would hold a worker for days at each sign-in
])
def test_a_hash_bcrypt_cannot_or_should_not_check_is_not_imported_and_sign_in_fails_cleanly(source, stored):
    connection = sqlite3.connect(source)
    connection.execute("UPDATE users SET password = ? WHERE username = 'alice'", (stored,))
    connection.commit()
    connection.close()
    assert from_oneapi(stored) is None
    run_import(source)
    answer = APIClient().post("/api/user/login", {"username": "alice", "password": "alice-pass-01"}, format="json")
    assert answer.status_code in (200, 400) and answer.json()["success"] is False


def test_a_garbled_bcrypt_hash_already_stored_is_a_failed_sign_in_not_an_error():
    assert OneAPIBCryptPasswordHasher().verify("alice-pass-01", "bcrypt$$2a$10$" + "!" * 53) is False


def test_an_infinite_number_in_the_source_is_bounded_like_a_huge_one(source):
    # SQLite keeps whatever a column is given: 9e999 reads back as float('inf'), which int() cannot take.
    connection = sqlite3.connect(source)
    connection.execute("UPDATE users SET quota = 9e999 WHERE username = 'alice'")
    connection.execute("UPDATE tokens SET remain_quota = -9e999")
    connection.commit()
    connection.close()
    run_import(source)
    alice = User.objects.get(username="alice")
    assert alice.quota == 2**63 - 1
    assert set(Token.objects.values_list("remain_quota", flat=True)) == {-(2**63)}


def test_a_model_or_group_name_too_long_for_a_route_is_left_out_and_said(source):
    # SQLite keeps any length: names past the routes' columns would stop the import on MariaDB or PostgreSQL.
    long_model, long_group = "m" * 300, "g" * 40
    connection = sqlite3.connect(source)
    connection.execute("UPDATE channels SET models = ?, `group` = ? WHERE id = (SELECT MIN(id) FROM channels)",
                       (f"gpt-4o-mini,{long_model}", f"default,{long_group}"))
    connection.commit()
    connection.close()
    report = run_import(source)
    from providers.models import Ability

    assert not Ability.objects.filter(model=long_model).exists()
    assert not Ability.objects.filter(group=long_group).exists()
    assert Ability.objects.filter(model="gpt-4o-mini", group="default").exists()
    assert "too long" in report


def test_a_nul_character_in_the_source_is_carried_as_a_replacement_character(tmp_path):
    # SQLite and MySQL keep a NUL in text; PostgreSQL refuses it, so one such character stopped the import's
    # step into a PostgreSQL gateway ("PostgreSQL text fields cannot contain NUL"). The ledger writes U+FFFD too.
    path = _make_new_api(tmp_path / "new-api.db")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE channels SET name = 'a' || char(0) || 'b', system_prompt = 'p' || char(0),"
                   " model_mapping = '{\"m\\u0000\": \"n\"}', config = '{\"user_id\": \"u\\u0000\"}',"
                   " channel_info = '{\"is_multi_key\": true, \"multi_key_status_list\": {\"1\": 3},"
                   " \"multi_key_disabled_reason\": {\"1\": \"dead\\u0000\"}}', `key` = 'k1\nk2' WHERE id = 11")
        db.execute("UPDATE users SET display_name = 'Bo' || char(0) || 'b' WHERE id = 1")
        db.execute("UPDATE logs SET content = 'c' || char(0) || 'x'")
    run_import(path, "--logs")
    channel = Channel.objects.get(pk=11)
    assert (channel.name, channel.system_prompt) == ("a\ufffdb", "p\ufffd")
    assert channel.model_mapping == {"m\ufffd": "n"} and channel.config["user_id"] == "u\ufffd"
    assert ChannelKey.objects.get(channel=channel, index=1).last_error == "dead\ufffd"
    assert User.objects.get(pk=1).display_name == "Bo\ufffdb"
    assert set(Log.objects.values_list("content", flat=True)) == {"c\ufffdx"}


def test_invite_codes_that_differ_only_in_letter_case_are_carried_once(source):
    # one-api on SQLite keeps "BoB9" and "BOB9" apart (4 characters: common among a few thousand users); MySQL's
    # collation makes them one, so the second stopped the import there ("Duplicate entry 'BOB9' for key 'aff_code'").
    UserFactory(id=900, username="here", aff_code="ALIC")
    with sqlite3.connect(source) as db:
        codes = dict(db.execute("SELECT id, aff_code FROM users"))
        db.execute("UPDATE users SET aff_code = ? WHERE id = 5", (codes[1].swapcase() or "x",))
        db.execute("UPDATE users SET aff_code = 'alic' WHERE id = 2")
    report = run_import(source)
    assert User.objects.get(pk=1).aff_code == codes[1]
    assert User.objects.get(pk=5).aff_code is None and User.objects.get(pk=2).aff_code is None
    assert ("users: aff_code is another user's here (in any letter case): not carried (2 rows): user 2 (alice), "
            "user 5 (bob)") in report


def test_route_names_that_differ_only_in_letter_case_are_carried_once(source):
    # A channel's models "gpt-4o-mini,GPT-4o-mini" make two routes on SQLite and one on MySQL, where the second
    # stopped the channels step (a duplicate ability); the channel checks refuse such a list now.
    with sqlite3.connect(source) as db:
        db.execute("UPDATE channels SET models = 'gpt-4o-mini,GPT-4o-mini,gpt-3.5-turbo',"
                   " `group` = 'default,Default,vip' WHERE id = 4")
    report = run_import(source)
    channel = Channel.objects.get(pk=4)
    assert (channel.models, channel.group) == ("gpt-4o-mini,gpt-3.5-turbo", "default,vip")
    assert "channels: model names that differ only in letter case from one before: left out: channel 4" in report
    assert "channels: group names that differ only in letter case from one before: left out: channel 4" in report


def test_an_access_token_set_here_is_kept_as_a_password_is(source):
    # A token rotated here (GET /api/user/token, the console) went back to the source's on the next run: the
    # scripts given the new one stopped, and the one retired (perhaps leaked) worked again.
    run_import(source)
    alice = User.objects.get(pk=2)
    imported = alice.access_token
    user_access_token_reset(user=alice)
    rotated = User.objects.get(pk=2).access_token
    assert rotated != imported
    report = run_import(source)
    assert User.objects.get(pk=2).access_token == rotated
    assert "users: access_token set here: kept: user 2 (alice)" in report
