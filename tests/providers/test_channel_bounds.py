"""A channel's numbers and texts fit the columns they go to (and the abilities built from them), on
every database: MySQL and PostgreSQL refuse a too-long name or an out-of-range priority with a 500,
SQLite stores them."""

import pytest
from django.urls import reverse

from providers.models import Ability, Channel
from tests.api_fixtures import envelope
from tests.factories import ChannelFactory

pytestmark = pytest.mark.django_db

BASE = {"type": 1, "name": "main", "key": "sk-upstream", "models": "gpt-4o", "group": "default"}


@pytest.mark.parametrize("body, field, message", [
    ({"name": "n" * 129}, "name", "name may have at most 128 characters"),
    ({"base_url": "https://example.com/" + "p" * 500}, "base_url", "base_url may have at most 512 characters"),
    ({"group": "g" * 33}, "group", "longer than 32 characters"),
    ({"group": ",".join(f"group{i:03d}" for i in range(40))}, "group", "group may have at most 256 characters"),
    ({"models": ["m" * 256]}, "models", "longer than 255 characters"),
    ({"models": "m," * 40_000}, "models", "models may have at most 65535 characters"),
    ({"model_mapping": {"gpt-4o": "x" * 256}}, "model_mapping", "longer than 255 characters"),
    ({"system_prompt": "s" * 65_536}, "system_prompt", "system_prompt may have at most 65535 characters"),
    ({"priority": 2**63}, "priority", f"priority must be at most {2**63 - 1}"),
    ({"weight": -1}, "weight", "weight must be at least 0"),
    ({"weight": 2**31}, "weight", f"weight must be at most {2**31 - 1}"),
    ({"type": 10**20}, "type", f"type must be at most {2**31 - 1}"),
    ({"status": 10**10}, "status", "status must be at most 32767"),
    ({"priority": "1e3"}, "priority", "priority must be written in plain digits, without an exponent"),
])
def test_channel_api_refuses_what_the_columns_cannot_hold(staff_api, body, field, message):
    result = envelope(staff_api.post("/api/channel/", {**BASE, **body}, format="json"), success=False)
    assert result["field"] == field and message in result["message"]
    assert not Channel.objects.exists() and not Ability.objects.exists()


def test_channel_api_takes_the_columns_limits(staff_api):
    data = envelope(staff_api.post("/api/channel/", {**BASE, "name": "n" * 128, "priority": 2**63 - 1,
                                                     "weight": 2**31 - 1, "group": "g" * 32}, format="json"))
    assert data[0]["priority"] == 2**63 - 1 and data[0]["weight"] == 2**31 - 1


def test_channel_api_edit_refuses_an_out_of_range_priority(staff_api):
    channel = ChannelFactory(priority=3)
    result = envelope(staff_api.put("/api/channel/", {"id": channel.pk, "priority": -(2**63) - 1}, format="json"),
                      success=False)
    assert result["field"] == "priority"
    channel.refresh_from_db()
    assert channel.priority == 3


@pytest.mark.parametrize("field, value, message", [
    ("priority", "1" * 30, "Priority must be at most 9223372036854775807"),
    ("weight", "4294967296", "Weight must be at most 2147483647"),
    ("name", "n" * 129, "at most 128 characters"),
])
def test_console_channel_form_refuses_what_the_columns_cannot_hold(root_client, field, value, message):
    data = {"name": "primary", "type": "1", "status": "1", "key": "sk-upstream", "base_url": "",
            "models": "gpt-4o", "group": "default", "model_mapping": "", "priority": "0", "weight": "0",
            "config": "", "system_prompt": "", field: value}
    response = root_client.post(reverse("admin:providers_channel_add"), data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Channel.objects.exists()


# --- Batch creation: each key is bounded, not the whole text -----------------------------------------

def keys(count: int, length: int = 51) -> list[str]:
    """`count` distinct vendor keys of `length` characters, as an operator pastes them."""
    return [f"sk-{i:08d}".ljust(length, "x") for i in range(count)]


def test_a_batch_far_beyond_64_kb_creates_one_channel_per_key(staff_api):
    batch = keys(2_000)  # about 104 KB of key text
    data = envelope(staff_api.post("/api/channel/", {**BASE, "key": "\n".join(batch)}, format="json"))
    assert len(data) == 2_000
    assert sorted(Channel.objects.values_list("key", flat=True)) == batch
    assert Ability.objects.count() == 2_000  # one route each: gpt-4o in default


def test_one_key_too_long_is_refused_by_its_line_without_echoing_it(staff_api):
    long_key = "sk-" + "s" * 65_532  # 65,535 characters: the most a key may have
    text = "\n".join(["sk-first", "", long_key + "x", "sk-last"])
    result = envelope(staff_api.post("/api/channel/", {**BASE, "key": text}, format="json"), success=False)
    assert result["field"] == "key"
    assert result["message"] == "key number 2 may have at most 65535 characters"
    assert not Channel.objects.exists()
    assert len(envelope(staff_api.post("/api/channel/", {**BASE, "key": long_key}, format="json"))) == 1


def test_a_batch_of_too_many_keys_is_refused_clearly(staff_api):
    from providers.services import CHANNEL_BATCH_MAX_KEYS

    text = "\n".join(f"k{i}" for i in range(CHANNEL_BATCH_MAX_KEYS + 1))
    result = envelope(staff_api.post("/api/channel/", {**BASE, "key": text}, format="json"), success=False)
    assert result["field"] == "key"
    assert result["message"] == (f"key holds {CHANNEL_BATCH_MAX_KEYS + 1} keys; one batch may create at most "
                                 f"{CHANNEL_BATCH_MAX_KEYS} channels")
    assert not Channel.objects.exists()


def test_an_edit_bounds_its_one_key(staff_api):
    channel = ChannelFactory(key="sk-old")
    result = envelope(staff_api.put("/api/channel/", {"id": channel.pk, "key": "k" * 65_536}, format="json"),
                      success=False)
    assert result["field"] == "key" and "at most 65535 characters" in result["message"]
    channel.refresh_from_db()
    assert channel.key == "sk-old"


CONSOLE_FORM = {"name": "primary", "type": "1", "status": "1", "base_url": "", "models": "gpt-4o",
                "group": "default", "model_mapping": "", "priority": "0", "weight": "0", "config": "",
                "system_prompt": ""}


def test_the_consoles_batch_form_takes_more_than_64_kb_of_keys(root_client):
    batch = keys(2_000)
    response = root_client.post(reverse("admin:providers_channel_add"), {**CONSOLE_FORM, "key": "\r\n".join(batch)})
    assert response.status_code == 302
    assert sorted(Channel.objects.values_list("key", flat=True)) == batch


def test_the_consoles_batch_form_shows_a_too_long_key_on_the_field(root_client):
    text = "sk-first\r\n" + "k" * 65_536
    response = root_client.post(reverse("admin:providers_channel_add"), {**CONSOLE_FORM, "key": text})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["key"] == ["key number 2 may have at most 65535 characters"]
    assert not Channel.objects.exists()


@pytest.mark.parametrize("field, action, value", [("models", "models", "gpt-4o,GPT-4o"),
                                                  ("group", "groups", "default,Default")])
def test_names_that_differ_only_in_letter_case_are_refused(staff_api, field, action, value):
    # MySQL's collation takes them for one route: the second ability row was a duplicate key, a 500 there.
    body = {"type": 1, "name": "c", "key": "sk-x", "models": "gpt-4o", "group": "default", field: value}
    refused = envelope(staff_api.post("/api/channel/", body, format="json"), success=False)
    assert refused["field"] == field and "letter case" in refused["message"]
    assert not Channel.objects.exists()
    channel = ChannelFactory(models="gpt-4o", group="default")
    refused = envelope(staff_api.post("/api/channel/batch", {"ids": [channel.pk], "action": action, "mode": "add",
                                                             "value": value.split(",")[1]}, format="json"),
                       success=False)
    assert "letter case" in refused["message"]
