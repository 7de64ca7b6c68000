"""Fleet tools over /api/channel/: tags, batch edits by ids or tag, copies, deleting the disabled, and the
models an upstream lists (new-api's routes where it has them)."""

from unittest import mock

import pytest

from oneapi_site.lib import changes
from providers.models import Ability, Channel
from tests.api_fixtures import envelope
from tests.factories import ChannelFactory
from tests.providers.mock_model_lists import ANTHROPIC_MODELS, KEY, OPENAI_MODELS, MockModelLists
from tests.providers.vendor_harness import serve

pytestmark = pytest.mark.django_db

models_server = serve(MockModelLists)


@pytest.fixture
def lists(models_server):
    models_server.reset()
    return models_server


def routes(channel):
    return set(Ability.objects.filter(channel=channel).values_list("group", "model", "priority", "weight", "enabled"))


@pytest.fixture
def fleet():
    """Two tagged channels and one without a tag."""
    return (ChannelFactory(name="a1", tag="eu", models="gpt-4o", group="default"),
            ChannelFactory(name="a2", tag="eu", models="gpt-4o,o3", group="default"),
            ChannelFactory(name="b1", models="gpt-4o", group="default"))


def test_the_tag_is_set_on_create_and_update_and_filters_the_list(staff_api):
    [created] = envelope(staff_api.post("/api/channel/", {"type": 1, "name": "t", "key": "k", "tag": "fast"},
                                        format="json"))
    assert created["tag"] == "fast" and Channel.objects.get(pk=created["id"]).tag == "fast"
    ChannelFactory(name="untagged")
    assert [c["name"] for c in envelope(staff_api.get("/api/channel/?tag=fast"))] == ["t"]
    envelope(staff_api.put("/api/channel/", {"id": created["id"], "tag": "slow"}, format="json"))
    assert envelope(staff_api.get("/api/channel/?tag=fast")) == []
    assert envelope(staff_api.get("/api/channel/tag")) == ["slow"]


def test_a_tag_longer_than_its_column_is_refused_by_name(staff_api):
    body = envelope(staff_api.post("/api/channel/", {"type": 1, "name": "t", "key": "k", "tag": "x" * 65},
                                   format="json"), success=False)
    assert body["field"] == "tag" and not Channel.objects.exists()


def test_batch_priority_by_tag_rebuilds_routes_and_tells_the_relay_once(staff_api, fleet):
    a1, a2, b1 = fleet
    with mock.patch.object(changes, "publish") as publish:
        assert envelope(staff_api.post("/api/channel/batch", {"tag": "eu", "action": "priority", "value": 7},
                                       format="json")) == 2
    publish.assert_called_once_with("channels")
    assert {r[2] for r in routes(a1) | routes(a2)} == {7} and {r[2] for r in routes(b1)} == {0}
    assert Channel.objects.get(pk=a2.pk).priority == 7


def test_batch_by_ids_sets_weight_and_status(staff_api, fleet):
    a1, _, b1 = fleet
    ids = [a1.pk, b1.pk]
    assert envelope(staff_api.post("/api/channel/batch", {"ids": ids, "action": "weight", "value": "5"},
                                   format="json")) == 2
    assert envelope(staff_api.post("/api/channel/batch", {"ids": ids, "action": "disable"}, format="json")) == 2
    assert set(Channel.objects.filter(pk__in=ids).values_list("status", "weight")) == {(2, 5)}
    assert {r[3:] for r in routes(a1) | routes(b1)} == {(5, False)}
    envelope(staff_api.post("/api/channel/batch", {"ids": ids, "action": "enable"}, format="json"))
    assert {r[4] for r in routes(a1) | routes(b1)} == {True}


@pytest.mark.parametrize(("mode", "value", "expected"), [
    ("replace", "o4-mini,gpt-4.1", {"o4-mini", "gpt-4.1"}),
    ("add", ["o4-mini"], {"gpt-4o", "o3", "o4-mini"}),
    ("remove", "o3", {"gpt-4o"}),
])
def test_batch_models_replace_add_or_remove(staff_api, fleet, mode, value, expected):
    a2 = fleet[1]
    envelope(staff_api.post("/api/channel/batch", {"ids": [a2.pk], "action": "models", "mode": mode,
                                                   "value": value}, format="json"))
    assert set(Channel.objects.get(pk=a2.pk).model_list) == expected
    assert {r[1] for r in routes(a2)} == expected


def test_batch_groups_rebuild_routes_and_never_leave_a_channel_without_a_group(staff_api, fleet):
    a1 = fleet[0]
    envelope(staff_api.post("/api/channel/batch", {"tag": "eu", "action": "groups", "mode": "add", "value": "vip"},
                            format="json"))
    assert {r[:2] for r in routes(a1)} == {("default", "gpt-4o"), ("vip", "gpt-4o")}
    body = envelope(staff_api.post("/api/channel/batch", {"ids": [a1.pk], "action": "groups", "value": ""},
                                   format="json"), success=False)
    assert "no group" in body["message"]
    assert Channel.objects.get(pk=a1.pk).group == "default,vip"  # the whole batch rolled back


def test_new_apis_batch_delete_takes_ids_alone(staff_api, fleet):
    a1, a2, b1 = fleet
    assert envelope(staff_api.post("/api/channel/batch", {"ids": [a1.pk, a2.pk, 99999]}, format="json")) == 2
    assert list(Channel.objects.values_list("pk", flat=True)) == [b1.pk]
    assert not Ability.objects.filter(channel_id__in=[a1.pk, a2.pk]).exists()


@pytest.mark.parametrize(("body", "field"), [
    ({"action": "enable"}, "ids"),
    ({"ids": [1], "action": None}, "action"),
    ({"ids": [1], "action": ""}, "action"),
    ({"ids": [1], "value": 3}, "action"),
    ({"ids": [1], "tag": "eu", "action": "enable"}, "ids"),
    ({"ids": "1,2", "action": "enable"}, "ids"),
    ({"ids": [True], "action": "enable"}, "ids"),
    ({"tag": "eu", "action": "explode"}, "action"),
    ({"tag": "eu", "action": "priority"}, "value"),
    ({"tag": "eu", "action": "priority", "value": "high"}, "priority"),
    ({"tag": "eu", "action": "models", "mode": "merge", "value": "x"}, "mode"),
    ({"tag": "eu", "action": "models", "value": {"a": 1}}, "value"),
    ({"tag": "eu", "action": "tag", "value": {"a": 1}}, "value"),
])
def test_bad_batches_are_refused_by_name_and_change_nothing(staff_api, fleet, body, field):
    assert envelope(staff_api.post("/api/channel/batch", body, format="json"), success=False)["field"] == field
    assert set(Channel.objects.values_list("status", "priority")) == {(1, 0)}


def test_ids_past_the_columns_range_are_no_channels(staff_api, fleet):
    assert envelope(staff_api.post("/api/channel/batch", {"ids": [2**63, -2**70, fleet[0].pk], "action": "disable"},
                                   format="json")) == 1


def test_delete_disabled_deletes_both_kinds_as_one_api_or_only_the_auto_disabled(staff_api, fleet):
    a1, a2, b1 = fleet
    Channel.objects.filter(pk=a1.pk).update(status=Channel.Status.AUTO_DISABLED)
    Channel.objects.filter(pk=a2.pk).update(status=Channel.Status.MANUALLY_DISABLED)
    assert envelope(staff_api.delete("/api/channel/disabled?status=3")) == 1
    assert sorted(Channel.objects.values_list("name", flat=True)) == ["a2", "b1"]
    assert envelope(staff_api.delete("/api/channel/disabled")) == 1
    assert list(Channel.objects.values_list("name", flat=True)) == ["b1"]


def test_a_body_that_is_no_object_is_refused(staff_api):
    assert envelope(staff_api.post("/api/channel/batch", [1, 2], format="json"), success=False)["message"]


def test_new_apis_tag_routes(staff_api, fleet):
    a1, a2, b1 = fleet
    envelope(staff_api.post("/api/channel/tag/disabled", {"tag": "eu"}, format="json"))
    assert set(Channel.objects.filter(tag="eu").values_list("status", flat=True)) == {2}
    envelope(staff_api.post("/api/channel/tag/enabled", {"tag": "eu"}, format="json"))
    assert set(Channel.objects.filter(tag="eu").values_list("status", flat=True)) == {1}
    assert envelope(staff_api.get("/api/channel/tag/models?tag=eu")) == "gpt-4o,o3"
    envelope(staff_api.put("/api/channel/tag", {"tag": "eu", "new_tag": "west", "priority": 3, "models": "o3",
                                                "groups": "vip", "model_mapping": '{"o3": "o3-2025"}'},
                           format="json"))
    for channel in (a1, a2):
        channel.refresh_from_db()
        assert (channel.tag, channel.priority, channel.models, channel.group) == ("west", 3, "o3", "vip")
        assert channel.model_mapping == {"o3": "o3-2025"} and routes(channel) == {("vip", "o3", 3, 0, True)}
    assert envelope(staff_api.post("/api/channel/batch/tag", {"ids": [b1.pk], "tag": "west"}, format="json")) == 1
    envelope(staff_api.post("/api/channel/batch/tag", {"ids": [a1.pk], "tag": None}, format="json"))
    assert sorted(Channel.objects.filter(tag="west").values_list("name", flat=True)) == ["a2", "b1"]


def test_copy_makes_a_fresh_channel_with_the_same_key_and_routes(staff_api):
    source = ChannelFactory(name="src", key="sk-copied-key", tag="eu", models="gpt-4o", group="default,vip",
                            priority=4)
    Channel.objects.filter(pk=source.pk).update(used_quota=500, balance=3.5, balance_updated_time=1, test_time=9)
    response = staff_api.post(f"/api/channel/copy/{source.pk}?suffix=-2", format="json")
    assert b"sk-copied-key" not in response.content
    copy = Channel.objects.get(pk=envelope(response)["id"])
    assert (copy.name, copy.key, copy.tag, copy.priority, copy.group) == ("src-2", "sk-copied-key", "eu", 4,
                                                                         "default,vip")
    assert (copy.used_quota, copy.balance, copy.test_time) == (0, 0, 0)
    assert {r[:3] for r in routes(copy)} == {r[:3] for r in routes(source)}
    kept = envelope(staff_api.post(f"/api/channel/copy/{source.pk}?reset_balance=false", format="json"))
    assert Channel.objects.get(pk=kept["id"]).used_quota == 500
    assert Channel.objects.get(pk=kept["id"]).name == "src_copy"
    assert envelope(staff_api.post("/api/channel/copy/99999", format="json"), success=False)


def test_fetch_models_lists_the_upstream_and_the_difference(staff_api, lists):
    channel = ChannelFactory(type=1, base_url=lists.url, key=KEY, models="gpt-4o,gpt-4-legacy,mine",
                             model_mapping={"mine": "o3"})
    body = envelope(staff_api.get(f"/api/channel/fetch_models/{channel.pk}"), success=True)
    response = staff_api.get(f"/api/channel/fetch_models/{channel.pk}").json()
    assert body == OPENAI_MODELS
    assert response["added"] == ["gpt-4o-mini"] and response["missing"] == ["gpt-4-legacy"]
    assert lists.requests[0].path == "/v1/models"
    applied = envelope(staff_api.post(f"/api/channel/fetch_models/{channel.pk}",
                                      {"add": ["gpt-4o-mini"], "remove": ["gpt-4-legacy"]}, format="json"))
    assert applied == "gpt-4o,mine,gpt-4o-mini"
    assert {r[1] for r in routes(channel)} == {"gpt-4o", "mine", "gpt-4o-mini"}


def test_fetch_models_previews_a_channel_not_saved_yet(staff_api, lists):
    body = {"type": 14, "key": KEY, "base_url": lists.url}
    assert envelope(staff_api.post("/api/channel/fetch_models", body, format="json")) == ANTHROPIC_MODELS
    refused = envelope(staff_api.post("/api/channel/fetch_models", {**body, "key": "sk-ant-wrong-0123456789"},
                                      format="json"), success=False)
    assert "Incorrect API key" in refused["message"] and "sk-ant-wrong" not in refused["message"]
    for bad, field in (({**body, "type": 9999}, "type"), ({**body, "key": ""}, "key"),
                       ({**body, "base_url": "ftp://x"}, "base_url"), ({"key": KEY}, "type")):
        assert envelope(staff_api.post("/api/channel/fetch_models", bad, format="json"),
                        success=False)["field"] == field
    assert not Channel.objects.exists()


def test_fetch_models_reports_a_refused_key_without_it(staff_api, lists):
    channel = ChannelFactory(type=1, base_url=lists.url, key="sk-wrong-key-abcdefgh", models="gpt-4o")
    response = staff_api.get(f"/api/channel/fetch_models/{channel.pk}")
    assert "Incorrect API key" in envelope(response, success=False)["message"]
    assert b"sk-wrong-key-abcdefgh" not in response.content


def test_fetch_models_of_a_type_without_a_list_says_so(staff_api):
    channel = ChannelFactory(type=3, base_url="https://example.openai.azure.com", models="gpt-4o")
    assert "do not list" in envelope(staff_api.get(f"/api/channel/fetch_models/{channel.pk}"), success=False)[
        "message"]


@pytest.mark.parametrize(("method", "path", "body"), [
    ("post", "/api/channel/batch", {"tag": "eu", "action": "delete"}),
    ("post", "/api/channel/tag/disabled", {"tag": "eu"}),
    ("put", "/api/channel/tag", {"tag": "eu", "priority": 1}),
    ("post", "/api/channel/copy/1", {}),
    ("get", "/api/channel/fetch_models/1", None),
    ("get", "/api/channel/tag/models?tag=eu", None),
    ("post", "/api/channel/fetch_models", {"type": 1, "key": "k"}),
])
def test_fleet_routes_are_for_admins_only(alice_api, anon, fleet, method, path, body):
    for client in (alice_api, anon):
        response = getattr(client, method)(path, body, format="json") if body is not None else client.get(path)
        assert response.status_code in (401, 403)
        assert response.json()["success"] is False
    assert Channel.objects.count() == 3 and set(Channel.objects.values_list("status", flat=True)) == {1}


def test_a_copy_of_a_multi_key_channel_has_a_state_for_each_key_so_a_dead_one_can_go_alone(staff_api):
    from providers.channel_keys import fingerprint
    from providers.key_health import key_auto_disable
    from providers.models import ChannelKey

    keys = ["sk-pool-key-0000000000001", "sk-pool-key-0000000000002", "sk-pool-key-0000000000003"]
    source = ChannelFactory(key="\n".join(keys), key_mode="round_robin", models="gpt-4o")
    copy_id = envelope(staff_api.post(f"/api/channel/copy/{source.pk}", format="json"))["id"]
    rows = ChannelKey.objects.filter(channel_id=copy_id).order_by("index")
    assert [(row.index, row.status) for row in rows] == [(0, 1), (1, 1), (2, 1)]
    assert [key["index"] for key in envelope(staff_api.get(f"/api/channel/{copy_id}"))["keys"]] == [0, 1, 2]
    key_auto_disable(channel_id=copy_id, index=1, key_fingerprint=fingerprint(keys[1]), reason="revoked")
    assert ChannelKey.objects.get(channel_id=copy_id, index=1).status == ChannelKey.Status.AUTO_DISABLED
    assert Channel.objects.get(pk=copy_id).status == Channel.Status.ENABLED
