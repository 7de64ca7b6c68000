"""One source row into our fields (oneapi_site/importer/mapping.py), without a database."""

import json

import pytest

from accounts.models import User
from oneapi_site.importer import mapping
from oneapi_site.importer.report import Report
from providers.adapters import ADAPTERS
from providers.models import Channel
from tests.accounts.test_import_oneapi import UNSERVED


def channel_row(**fields):
    return {"id": 1, "type": 1, "key": "k", "status": 1, "name": "c", "models": "a", "group": "default",
            "model_mapping": "", "config": "", "other": "", **fields}


@pytest.mark.parametrize("channel_type, other, config", [
    (3, "2024-02-01", {"api_version": "2024-02-01"}),  # Azure
    (17, "web-search", {"plugin": "web-search"}),  # Ali
    (21, "lib-9", {"library_id": "lib-9"}),  # AIProxyLibrary
    (24, "v1beta", {"api_version": "v1beta"}),  # Gemini
])
def test_the_old_other_column_becomes_the_config_key_one_api_copies_it_to(channel_type, other, config):
    fields = mapping.channel_fields(channel_row(type=channel_type, other=other), Report())
    assert fields["config"] == config


def test_config_wins_over_other_and_keys_no_adapter_reads_are_reported():
    report = Report()
    row = channel_row(type=3, other="old", config=json.dumps({"api_version": "new", "region": "", "colour": "red"}))
    assert mapping.channel_fields(row, report)["config"] == {"api_version": "new"}
    assert report.dropped[("channels", "config.colour")] == 1
    report = Report()
    mapping.channel_fields(channel_row(type=1, other="something"), report)
    assert report.dropped[("channels", "other")] == 1  # OpenAI never read `other`


def test_a_mapping_that_is_not_json_is_dropped_and_said_and_so_are_entries_that_are_not_names():
    report = Report()
    assert mapping.channel_fields(channel_row(model_mapping="{not json"), report)["model_mapping"] == {}
    assert "model_mapping is not JSON: not carried" in "\n".join(report.lines())
    report = Report()
    mixed = json.dumps({"a": "b", "c": 3, "d": ""})
    assert mapping.channel_fields(channel_row(model_mapping=mixed), report)["model_mapping"] == {"a": "b"}
    assert "model_mapping entries that are not model name to model name" in "\n".join(report.lines())


def test_a_channel_of_an_unserved_type_or_with_several_keys_is_kept_disabled_and_said():
    report = Report()
    assert mapping.channel_fields(channel_row(type=UNSERVED), report)["status"] == Channel.Status.MANUALLY_DISABLED
    several = mapping.channel_fields(channel_row(key="k1\nk2"), report)
    assert several["status"] == Channel.Status.MANUALLY_DISABLED and several["key"] == "k1\nk2"
    lines = "\n".join(report.lines())
    assert f"kept disabled: Channel type {UNSERVED} has no adapter in this gateway" in lines
    assert "kept disabled: the key holds several keys in a channel of one key" in lines
    assert mapping.channel_fields(channel_row(status=3), Report())["status"] == Channel.Status.AUTO_DISABLED


def test_nulls_and_odd_values_become_our_defaults():
    fields = mapping.channel_fields(channel_row(weight=None, priority=None, balance=None, base_url=None,
                                                system_prompt=None, group=None, status=9, name=""), Report())
    assert (fields["weight"], fields["priority"], fields["balance"], fields["base_url"], fields["system_prompt"],
            fields["group"], fields["status"], fields["name"]) == (
        0, 0, 0.0, "", "", "default", Channel.Status.MANUALLY_DISABLED, "channel 1")


@pytest.mark.parametrize("role, ours", [(0, User.Role.COMMON), (1, User.Role.COMMON), (10, User.Role.ADMIN),
                                        (50, User.Role.ADMIN), (100, User.Role.ROOT)])
def test_roles_map_to_the_nearest_one_below(role, ours):
    row = {"id": 3, "username": "u", "password": "", "role": role, "status": 1}
    assert mapping.user_fields(row, Report())["role"] == ours


def test_a_user_without_a_bcrypt_hash_is_noted_and_empty_unique_values_are_none():
    report = Report()
    fields = mapping.user_fields({"id": 3, "username": "u", "password": "plain", "access_token": "",
                                  "aff_code": "", "status": 1}, report)
    assert fields["password"] is None and fields["access_token"] is None and fields["aff_code"] is None
    assert "no bcrypt password hash" in "\n".join(report.lines())


def test_a_token_key_keeps_its_letters_and_loses_an_sk_prefix_and_new_api_limits_apply_when_on():
    report = Report()
    token = mapping.token_fields({"id": 1, "user_id": 1, "key": "sk-" + "a" * 48, "models": None, "subnet": None,
                                  "model_limits_enabled": 0, "model_limits": "x", "allow_ips": ""}, report)
    assert (token["key"], token["models"], token["subnet"]) == ("a" * 48, "", "")
    assert mapping.token_fields({"id": 2, "user_id": 1, "key": "", "name": "n"}, report) is None
    assert report.tables["tokens"].skipped == 1


def test_dropped_columns_count_only_rows_that_held_something():
    report = Report()
    for value in ("wx", "", None, "wx2"):
        mapping.report_dropped("users", {"id": 1, "wechat_id": value}, report)
    assert report.dropped[("users", "wechat_id")] == 2
    assert "  users.wechat_id: 2 (no WeChat sign-in here)" in report.lines()


# What one-api's adaptors read from a channel's config (relay/adaptor/*, middleware/distributor.go), by type.
ONE_API_CONFIG_READS = {3: {"api_version"}, 17: {"plugin"}, 18: {"api_version"}, 21: {"library_id"},
                        24: {"api_version"}, 33: {"region", "ak", "sk"}, 34: {"user_id"}, 37: {"user_id"},
                        42: {"region", "vertex_ai_project_id", "vertex_ai_adc"}}


@pytest.mark.parametrize("channel_type, keys", ONE_API_CONFIG_READS.items())
def test_each_config_key_one_api_reads_is_one_our_adapter_for_the_type_reads_by_the_same_name(channel_type, keys):
    adapter = ADAPTERS[channel_type]
    assert keys <= set(adapter.config_fields) | set(adapter.secret_config_fields)
    assert keys <= set(mapping.CONFIG_KEYS)  # and the importer carries them
