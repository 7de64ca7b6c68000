"""Multi-key channels as operators make and run them: /api and the console, each key's state, masked."""

import re
import threading

import pytest
from django.urls import reverse

from providers.channel_keys import fingerprint, keys_sync, live_keys, new_api_key_states
from providers.key_health import PROBE_COOLDOWN, keys_restore
from providers.models import Channel, ChannelKey
from providers.services import channel_update
from tests.admin_fixtures import action
from tests.api_fixtures import envelope
from tests.factories import ChannelFactory

pytestmark = pytest.mark.django_db

KEYS = ["sk-alpha-key-000000000000001", "sk-bravo-key-000000000000002", "sk-charl-key-000000000000003"]
BAIDU = ["apikey-one-1234567890|secret-one-1234567890", "apikey-two-1234567890|secret-two-1234567890"]


def states(channel) -> list[tuple[int, int]]:
    return list(ChannelKey.objects.filter(channel=channel).order_by("index").values_list("index", "status"))


def test_api_creates_one_channel_holding_every_key_line_when_it_has_a_key_mode(staff_api):
    data = envelope(staff_api.post("/api/channel/", {
        "type": 1, "name": "pool", "key": "\n".join(KEYS) + "\n\n", "models": "gpt-4o", "key_mode": "round_robin",
        "key_rpm_limit": 60,
    }, format="json"))
    assert len(data) == 1 and data[0]["key_mode"] == "round_robin" and data[0]["key_rpm_limit"] == 60
    channel = Channel.objects.get(pk=data[0]["id"])
    assert channel.key == "\n".join(KEYS)
    assert states(channel) == [(0, 1), (1, 1), (2, 1)]
    # Without a key mode the lines are one-api's batch: a channel each.
    batch = envelope(staff_api.post("/api/channel/", {"type": 1, "name": "batch", "key": "\n".join(KEYS),
                                                      "models": "gpt-4o"}, format="json"))
    assert len(batch) == 3 and all(c["key_mode"] == "single" for c in batch)
    assert not ChannelKey.objects.filter(channel_id__in=[c["id"] for c in batch]).exists()


def test_a_key_of_parts_stays_one_key_per_line():
    channel = ChannelFactory(type=15, key="\n".join(BAIDU), key_mode="random", models="ERNIE-4.0-8K")
    assert states(channel) == [(0, 1), (1, 1)]
    assert live_keys(key_text=channel.key, states=[]) == ((0, BAIDU[0]), (1, BAIDU[1]))


def test_an_unknown_key_mode_is_refused_with_the_field_named(staff_api):
    body = envelope(staff_api.post("/api/channel/", {"type": 1, "name": "x", "key": "sk-a", "models": "gpt-4o",
                                                     "key_mode": "sticky"}, format="json"), success=False)
    assert body["field"] == "key_mode"


def test_editing_the_keys_keeps_each_kept_keys_state_wherever_its_line_moves():
    channel = ChannelFactory(key="\n".join(KEYS), key_mode="round_robin", models="gpt-4o")
    ChannelKey.objects.filter(channel=channel, index=1).update(status=ChannelKey.Status.AUTO_DISABLED, failures=4,
                                                               last_error="refused")
    channel_update(channel=Channel.objects.get(pk=channel.pk), key="\n".join([KEYS[1], "sk-delta-key-0000004"]))
    rows = list(ChannelKey.objects.filter(channel=channel).order_by("index"))
    assert [(r.index, r.fingerprint, r.status, r.failures) for r in rows] == [
        (0, fingerprint(KEYS[1]), 3, 4), (1, fingerprint("sk-delta-key-0000004"), 1, 0)]
    # Back to one key per channel: no per-key rows.
    channel_update(channel=Channel.objects.get(pk=channel.pk), key_mode="single", key=KEYS[0])
    assert states(channel) == []


def test_a_line_without_its_row_counts_as_live():
    channel = ChannelFactory(key="\n".join(KEYS), key_mode="round_robin", models="gpt-4o")
    ChannelKey.objects.filter(channel=channel).delete()
    assert [i for i, _ in live_keys(key_text=channel.key, states=[])] == [0, 1, 2]
    keys_sync(channel=channel)
    assert len(states(channel)) == 3


def test_api_shows_each_keys_state_masked_and_switches_keys_by_index(staff_api):
    channel = ChannelFactory(key="\n".join(KEYS), key_mode="round_robin", models="gpt-4o")
    ChannelKey.objects.filter(channel=channel, index=2).update(
        status=ChannelKey.Status.AUTO_DISABLED, failures=2, last_error="the vendor refused the key", disabled_at=5)
    response = staff_api.get(f"/api/channel/{channel.pk}")
    data = envelope(response)
    assert [(k["index"], k["status"], k["failures"]) for k in data["keys"]] == [(0, 1, 0), (1, 1, 0), (2, 3, 2)]
    assert data["keys"][2]["last_error"] == "the vendor refused the key" and data["keys"][2]["disabled_at"] == 5
    assert data["keys"][0]["masked_key"] == "sk-a...0001"
    assert not any(key.encode() in response.content for key in KEYS)

    off = envelope(staff_api.post(f"/api/channel/{channel.pk}/keys/0/disable"))
    assert off["status"] == ChannelKey.Status.MANUALLY_DISABLED and off["disabled_at"] > 0
    on = envelope(staff_api.post(f"/api/channel/{channel.pk}/keys/2/enable"))
    assert (on["status"], on["failures"], on["disabled_at"]) == (1, 0, 0)
    assert states(channel) == [(0, 2), (1, 1), (2, 1)]

    missing = envelope(staff_api.post(f"/api/channel/{channel.pk}/keys/9/enable"), success=False)
    assert "no key number 9" in missing["message"]
    assert envelope(staff_api.post(f"/api/channel/{channel.pk}/keys/0/toggle"), success=False)["field"] == "action"
    assert envelope(staff_api.post("/api/channel/999999/keys/0/enable"), success=False)["message"]


def test_disabling_the_last_live_key_takes_the_channel_out_and_enabling_one_brings_it_back(staff_api):
    channel = ChannelFactory(key="\n".join(KEYS[:2]), key_mode="round_robin", models="gpt-4o")
    envelope(staff_api.post(f"/api/channel/{channel.pk}/keys/0/disable"))
    assert Channel.objects.get(pk=channel.pk).status == Channel.Status.ENABLED
    envelope(staff_api.post(f"/api/channel/{channel.pk}/keys/1/disable"))
    assert Channel.objects.get(pk=channel.pk).status == Channel.Status.AUTO_DISABLED
    envelope(staff_api.post(f"/api/channel/{channel.pk}/keys/1/enable"))
    assert Channel.objects.get(pk=channel.pk).status == Channel.Status.ENABLED


def test_console_shows_key_states_masked_and_switches_them(root_client):
    channel = ChannelFactory(key="\n".join(KEYS), key_mode="round_robin", models="gpt-4o")
    ChannelKey.objects.filter(channel=channel, index=1).update(status=ChannelKey.Status.AUTO_DISABLED,
                                                               last_error="the vendor refused the key")
    page = root_client.get(reverse("admin:providers_channel_change", args=[channel.pk]))
    html = page.content.decode()
    assert page.status_code == 200 and "sk-b...0002" in html and "the vendor refused the key" in html
    assert not any(key in html for key in KEYS)

    listing = root_client.get(reverse("admin:providers_channel_changelist")).content.decode()
    assert "3 keys" in listing and not any(key in listing for key in KEYS)

    keys_url = reverse("admin:providers_channelkey_changelist")
    listing = root_client.get(keys_url, {"channel__id__exact": channel.pk})
    assert listing.status_code == 200 and not any(key in listing.content.decode() for key in KEYS)
    ids = list(ChannelKey.objects.filter(channel=channel).order_by("index").values_list("id", flat=True))
    done = action(root_client, keys_url, "enable_keys", [ids[1]])
    assert "1 key enabled." in done.content.decode()
    action(root_client, keys_url, "disable_keys", [ids[0], ids[2]])
    assert states(channel) == [(0, 2), (1, 1), (2, 2)]


def test_console_creates_a_multi_key_channel(root_client):
    response = root_client.post(reverse("admin:providers_channel_add"), {
        "name": "pool", "type": "1", "status": "1", "key": "\n".join(KEYS), "key_mode": "random", "base_url": "",
        "models": "gpt-4o", "group": "default", "model_mapping": "", "priority": "0", "weight": "0", "config": "",
        "system_prompt": "", "config_api_version": "", "rpm_limit": "0", "tpm_limit": "0", "concurrency_limit": "0",
        "rpd_limit": "0",
        "key_states-TOTAL_FORMS": "0", "key_states-INITIAL_FORMS": "0", "key_states-MIN_NUM_FORMS": "0",
        "key_states-MAX_NUM_FORMS": "1000",
    }, follow=True)
    assert response.status_code == 200, response.content
    errors = re.findall(r'class="errorlist[^"]*"[^>]*>(.*?)</ul>', response.content.decode(), re.S)
    assert not errors, errors
    channel = Channel.objects.get(name="pool")
    assert channel.key_mode == "random" and len(states(channel)) == 3


def test_console_edits_a_multi_key_channel_with_its_key_rows_as_the_page_sent_them(root_client):
    channel = ChannelFactory(key="\n".join(KEYS), key_mode="round_robin", models="gpt-4o")
    url = reverse("admin:providers_channel_change", args=[channel.pk])
    page = root_client.get(url).content.decode()
    rows = dict(re.findall(r'<input type="hidden" name="(key_states-[^"]+)" value="([^"]*)"', page))
    assert rows["key_states-TOTAL_FORMS"] == "3"
    base = {"name": "renamed", "type": "1", "status": "1", "key": "", "key_mode": "round_robin", "base_url": "",
            "models": "gpt-4o", "group": "default", "model_mapping": "", "priority": "0", "weight": "0",
            "config": "", "system_prompt": "", "config_api_version": "", "rpm_limit": "0", "tpm_limit": "0",
            "concurrency_limit": "0", "rpd_limit": "0", **rows}
    assert root_client.post(url, base).status_code == 302
    assert Channel.objects.get(pk=channel.pk).name == "renamed" and len(states(channel)) == 3
    # A new key list, posted from the page that showed the old rows.
    assert root_client.post(url, {**base, "key": "\n".join(KEYS[:2])}).status_code == 302
    assert Channel.objects.get(pk=channel.pk).key == "\n".join(KEYS[:2]) and len(states(channel)) == 2


def test_a_new_api_multi_key_channel_carries_its_mode_and_each_keys_state():
    info = ('{"is_multi_key": true, "multi_key_size": 3, "multi_key_mode": "random", "multi_key_polling_index": 1,'
            ' "multi_key_status_list": {"1": 3, "2": 2}, "multi_key_disabled_reason": {"1": "insufficient quota"},'
            ' "multi_key_disabled_time": {"1": 1700000000}}')
    mode, key_states = new_api_key_states(info)
    assert mode == "random"
    assert key_states == {1: (3, "insufficient quota", 1700000000), 2: (2, "", 0)}
    channel = ChannelFactory(key="\n".join(KEYS), key_mode=mode, models="gpt-4o")
    assert keys_restore(channel_id=channel.pk, states=key_states) == 2
    rows = list(ChannelKey.objects.filter(channel=channel).order_by("index"))
    assert [(r.status, r.last_error, r.disabled_at) for r in rows] == [
        (1, "", 0), (3, "insufficient quota", 1700000000), (2, "", rows[2].disabled_at)]
    assert rows[1].probe_after == 1700000000 + PROBE_COOLDOWN and rows[2].probe_after == 0
    # polling is our round-robin; a channel of one key, or junk, has no key mode.
    assert new_api_key_states({"is_multi_key": True, "multi_key_mode": "polling"}) == ("round_robin", {})
    assert new_api_key_states('{"is_multi_key": false}') == ("", {})
    assert new_api_key_states("not json") == ("", {})


def test_a_key_file_over_several_lines_is_refused_as_several_keys_and_a_channel_of_one_key_keeps_one(staff_api):
    key_file = '{\n  "type": "service_account",\n  "project_id": "p"\n}'
    refused = envelope(staff_api.post("/api/channel/", {"type": 42, "name": "vertex", "key": key_file,
                                                        "models": "gemini-pro", "key_mode": "round_robin"},
                                      format="json"), success=False)
    assert refused["field"] == "key" and "one key per line" in refused["message"]
    assert not Channel.objects.filter(name="vertex").exists()
    # One compact key file per line is several keys.
    files = '{"type": "service_account", "project_id": "a"}\n{"type": "service_account", "project_id": "b"}'
    made = envelope(staff_api.post("/api/channel/", {"type": 42, "name": "vertex", "key": files,
                                                     "models": "gemini-pro", "key_mode": "random"}, format="json"))
    channel = Channel.objects.get(pk=made[0]["id"])
    assert len(states(channel)) == 2
    back = envelope(staff_api.put("/api/channel/", {"id": channel.pk, "key_mode": "single"}, format="json"),
                    success=False)
    assert back["field"] == "key" and Channel.objects.get(pk=channel.pk).key_mode == "random"
    envelope(staff_api.put("/api/channel/", {"id": channel.pk, "key_mode": "single",
                                             "key": '{"type": "service_account", "project_id": "a"}'}, format="json"))
    assert Channel.objects.get(pk=channel.pk).key_mode == "" and states(channel) == []


@pytest.mark.django_db(transaction=True)
def test_two_keys_dying_at_once_take_their_channel_out_with_them():
    """On MariaDB, without one lock per channel, each death saw the other key alive and the channel stayed up."""
    from django.db import connection, transaction

    from providers import key_health

    channel = ChannelFactory(key="\n".join(KEYS[:2]), key_mode="round_robin", models="gpt-4o")
    first_written, release = threading.Event(), threading.Event()

    def die(index: int, *, hold: bool) -> None:
        try:
            with transaction.atomic():
                key_health.key_auto_disable(channel_id=channel.pk, index=index,
                                            key_fingerprint=fingerprint(KEYS[index]), reason="refused")
                if hold:  # the first death is written but not committed while the second one runs
                    first_written.set()
                    release.wait(5)
        finally:
            connection.close()

    first = threading.Thread(target=die, args=(0,), kwargs={"hold": True})
    first.start()
    assert first_written.wait(5)
    second = threading.Thread(target=die, args=(1,), kwargs={"hold": False})
    second.start()
    second.join(0.5)  # on MariaDB it waits for the first's lock; on SQLite for its write lock
    release.set()
    first.join(5)
    second.join(5)
    assert states(channel) == [(0, 3), (1, 3)]
    assert Channel.objects.get(pk=channel.pk).status == Channel.Status.AUTO_DISABLED


def test_a_multi_key_channel_round_trips_through_the_configuration_file(tmp_path):
    from io import StringIO

    from django.core.management import call_command

    ChannelFactory(name="pool", key="\n".join(KEYS), key_mode="random", key_rpm_limit=30, models="gpt-4o")
    out = StringIO()
    call_command("export_config", "--with-keys", stdout=out, stderr=StringIO())
    path = tmp_path / "config.yaml"
    path.write_text(out.getvalue())
    Channel.objects.all().delete()
    call_command("import_config", str(path), stdout=StringIO())
    channel = Channel.objects.get(name="pool")
    assert (channel.key, channel.key_mode, channel.key_rpm_limit) == ("\n".join(KEYS), "random", 30)
    assert states(channel) == [(0, 1), (1, 1), (2, 1)]
    again = StringIO()
    call_command("import_config", str(path), stdout=again)
    assert again.getvalue().splitlines()[-1].startswith("no changes")


def test_a_multi_key_channel_of_more_keys_than_one_key_may_hold_characters_can_be_edited(staff_api):
    many = [f"sk-fleet-{i:05d}-{'x' * 40}" for i in range(1500)]  # 90,000 characters in all
    made = envelope(staff_api.post("/api/channel/", {"type": 1, "name": "fleet", "key": "\n".join(many),
                                                     "models": "gpt-4o", "key_mode": "round_robin"}, format="json"))
    channel_id = made[0]["id"]
    envelope(staff_api.put("/api/channel/", {"id": channel_id, "key": "\n".join(many[1:])}, format="json"))
    assert ChannelKey.objects.filter(channel_id=channel_id).count() == 1499
    too_long = envelope(staff_api.put("/api/channel/", {"id": channel_id, "key": "sk-" + "y" * 70_000},
                                      format="json"), success=False)
    assert too_long["field"] == "key" and "key number 1" in too_long["message"]


def test_a_multi_key_channel_takes_an_edit_that_leaves_its_keys_alone(staff_api):
    # An edit without the key (one-api's form sends "" for a key it never shows; a priority alone; the models a
    # fetch chose) was refused as "going back to one key" since the multi-key channel's check on key changes.
    made = envelope(staff_api.post("/api/channel/", {"type": 1, "name": "pool", "key": "sk-a\nsk-b\nsk-c",
                                                     "models": "gpt-4o", "key_mode": "round_robin"}, format="json"))
    channel_id = made[0]["id"]
    envelope(staff_api.put("/api/channel/", {"id": channel_id, "priority": 3}, format="json"))
    envelope(staff_api.put("/api/channel/", {"id": channel_id, "key": "", "name": "pool", "weight": 2},
                           format="json"))
    envelope(staff_api.post(f"/api/channel/fetch_models/{channel_id}", {"add": ["gpt-4o-mini"]}, format="json"))
    channel = Channel.objects.get(pk=channel_id)
    assert (channel.priority, channel.weight, channel.models) == (3, 2, "gpt-4o,gpt-4o-mini")
    assert channel.key == "sk-a\nsk-b\nsk-c" and channel.key_mode == "round_robin" and len(states(channel)) == 3
