"""A channel's numbers and texts fit the columns they go to (and the abilities built from them), on
every database: MySQL and PostgreSQL refuse a too-long name or an out-of-range priority with a 500,
SQLite stores them."""

import pytest
from django.urls import reverse

from providers.models import Ability, Channel
from tests.admin_fixtures import *  # noqa: F403 (fixtures)
from tests.api_fixtures import *  # noqa: F401,F403
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
