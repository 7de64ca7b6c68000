"""The console's fleet tools: the tag field and filter, batch actions that ask for a value, copies, deleting
the auto-disabled channels, and the page that applies the models an upstream lists."""

import json
import re
from html import unescape
from unittest import mock

import pytest
from django.urls import reverse

from oneapi_site.lib import changes
from providers import channel_overrides
from providers.models import Ability, Channel
from tests.admin_fixtures import action
from tests.factories import ChannelFactory
from tests.providers.mock_model_lists import KEY, MockModelLists
from tests.providers.vendor_harness import serve

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:providers_channel_changelist")
DELETE_AUTO = reverse("admin:providers_channel_delete_auto_disabled")
models_server = serve(MockModelLists)


def fetch_url(channel):
    return reverse("admin:providers_channel_fetch_models", args=[channel.pk])


@pytest.fixture
def lists(models_server):
    models_server.reset()
    return models_server


@pytest.fixture
def fleet():
    return (ChannelFactory(name="eu-1", tag="eu", models="gpt-4o", group="default"),
            ChannelFactory(name="eu-2", tag="eu", models="gpt-4o,o3", group="default"),
            ChannelFactory(name="us-1", models="gpt-4o", group="default"))


def test_the_tag_is_edited_in_the_form_and_filters_the_list(root_client, fleet):
    us = fleet[2]
    page = root_client.get(reverse("admin:providers_channel_change", args=[us.pk])).content.decode()
    assert 'name="tag"' in page
    html = root_client.get(CHANGELIST, {"tag": "eu"}).content.decode()
    assert "eu-1" in html and "eu-2" in html and "us-1" not in html
    assert html.count('<span class="channel-tag" title="tag">eu</span>') == 2  # under the groups


def test_a_value_action_asks_first_then_applies_to_the_selection(root_client, fleet):
    eu1, eu2, us = fleet
    page = action(root_client, CHANGELIST, "set_priority", [eu1.pk, eu2.pk])
    assert page.status_code == 200 and 'name="value"' in page.content.decode()
    assert set(Channel.objects.values_list("priority", flat=True)) == {0}
    with mock.patch.object(changes, "publish") as publish:
        done = action(root_client, CHANGELIST, "set_priority", [eu1.pk, eu2.pk], apply="1", value="6")
    assert "2 channels changed" in done.content.decode()
    publish.assert_called_once_with("channels")
    assert dict(Channel.objects.values_list("name", "priority")) == {"eu-1": 6, "eu-2": 6, "us-1": 0}
    assert set(Ability.objects.filter(channel=eu1).values_list("priority", flat=True)) == {6}


def test_select_all_of_a_tag_filter_edits_every_channel_of_the_tag(root_client, fleet):
    eu1, eu2, us = fleet
    url = f"{CHANGELIST}?tag=eu"
    action(root_client, url, "set_models", [eu1.pk], apply="1", value="o4-mini", mode="add", select_across="1")
    assert dict(Channel.objects.values_list("name", "models")) == {
        "eu-1": "gpt-4o,o4-mini", "eu-2": "gpt-4o,o3,o4-mini", "us-1": "gpt-4o"}
    assert Ability.objects.filter(model="o4-mini").count() == 2


def test_a_bad_value_is_shown_on_the_page_and_changes_nothing(root_client, fleet):
    page = action(root_client, CHANGELIST, "set_weight", [fleet[0].pk], apply="1", value="heavy")
    assert page.status_code == 200 and "errorlist" in page.content.decode()
    assert set(Channel.objects.values_list("weight", flat=True)) == {0}


def test_groups_and_tag_actions(root_client, fleet):
    eu1, eu2, us = fleet
    action(root_client, CHANGELIST, "set_groups", [us.pk], apply="1", value="vip,default", mode="replace")
    assert set(Ability.objects.filter(channel=us).values_list("group", flat=True)) == {"vip", "default"}
    action(root_client, CHANGELIST, "set_tag", [us.pk, eu1.pk], apply="1", value="mixed")
    assert dict(Channel.objects.values_list("name", "tag")) == {"eu-1": "mixed", "eu-2": "eu", "us-1": "mixed"}


def test_enable_disable_and_delete_selected_tell_the_relay_once(root_client, fleet):
    ids = [c.pk for c in fleet]
    with mock.patch.object(changes, "publish") as publish:
        action(root_client, CHANGELIST, "disable_channels", ids)
    publish.assert_called_once_with("channels")
    assert not Ability.objects.filter(enabled=True).exists()
    with mock.patch.object(changes, "publish") as publish:
        action(root_client, CHANGELIST, "delete_selected", ids[:2], post="yes")
    publish.assert_called_once_with("channels")
    assert list(Channel.objects.values_list("name", flat=True)) == ["us-1"]


def test_copy_action_makes_fresh_copies(root_client, fleet):
    response = action(root_client, CHANGELIST, "copy_channels", [fleet[1].pk])
    assert "1 channel copied" in response.content.decode()
    copy = Channel.objects.get(name="eu-2_copy")
    assert (copy.key, copy.tag, copy.models) == (fleet[1].key, "eu", "gpt-4o,o3")
    assert Ability.objects.filter(channel=copy).count() == 2


def test_a_channel_that_cannot_be_copied_says_why_and_the_others_are(root_client, fleet):
    Channel.objects.filter(pk=fleet[0].pk).update(name="n" * 128)
    response = action(root_client, CHANGELIST, "copy_channels", [fleet[0].pk, fleet[2].pk])
    html = response.content.decode()
    assert response.status_code == 200 and "was not copied" in html and "1 channel copied" in html
    assert Channel.objects.filter(name="us-1_copy").exists() and Channel.objects.count() == 4


def test_delete_auto_disabled_keeps_the_ones_an_operator_parked(root_client, fleet):
    Channel.objects.filter(pk=fleet[0].pk).update(status=Channel.Status.AUTO_DISABLED)
    Channel.objects.filter(pk=fleet[1].pk).update(status=Channel.Status.MANUALLY_DISABLED)
    assert 'id="delete-auto-disabled"' in root_client.get(CHANGELIST).content.decode()
    assert root_client.get(DELETE_AUTO).status_code == 403
    response = root_client.post(DELETE_AUTO, follow=True)
    assert "Deleted 1 auto-disabled channel" in response.content.decode()
    assert sorted(Channel.objects.values_list("name", flat=True)) == ["eu-2", "us-1"]


def test_fetch_models_page_shows_the_difference_and_applies_the_ticked(root_client, lists):
    channel = ChannelFactory(name="up", type=1, base_url=lists.url, key=KEY, models="gpt-4o,legacy-model")
    change = root_client.get(reverse("admin:providers_channel_change", args=[channel.pk])).content.decode()
    assert fetch_url(channel) in change
    page = root_client.get(fetch_url(channel)).content.decode()
    assert 'name="add" value="gpt-4o-mini"' in page and 'name="add" value="o3"' in page
    assert 'name="remove" value="legacy-model"' in page and 'value="gpt-4o"' not in page
    assert KEY not in page
    response = root_client.post(fetch_url(channel), {"add": ["o3"], "remove": ["legacy-model"]}, follow=True)
    assert response.status_code == 200
    channel.refresh_from_db()
    assert channel.models == "gpt-4o,o3"
    assert set(Ability.objects.filter(channel=channel).values_list("model", flat=True)) == {"gpt-4o", "o3"}


def test_applying_a_name_too_long_for_a_route_changes_nothing_and_says_why(root_client):
    channel = ChannelFactory(name="up", models="gpt-4o")
    response = root_client.post(fetch_url(channel), {"add": ["m" * 300]}, follow=True)
    assert response.status_code == 200
    assert "The models were not applied" in response.content.decode()
    channel.refresh_from_db()
    assert channel.models == "gpt-4o"


def test_fetch_models_failure_goes_back_to_the_channel_with_the_reason(root_client, lists):
    channel = ChannelFactory(name="bad", type=1, base_url=lists.url, key="sk-wrong-key-abcdefgh")
    response = root_client.get(fetch_url(channel), follow=True)
    html = response.content.decode()
    assert "Could not fetch the models" in html and "Incorrect API key" in html
    assert "sk-wrong-key-abcdefgh" not in html


def test_common_users_reach_no_fleet_tool(common_client, fleet):
    assert common_client.get(fetch_url(fleet[0])).status_code == 302  # to the login page
    assert common_client.post(DELETE_AUTO).status_code == 302
    action(common_client, CHANGELIST, "set_priority", [fleet[0].pk], apply="1", value="9")
    action(common_client, CHANGELIST, "delete_selected", [fleet[0].pk], post="yes")
    assert Channel.objects.count() == 3 and set(Channel.objects.values_list("priority", flat=True)) == {0}


# --- the form follows the channel's type ---------------------------------------------------------------

ADD = reverse("admin:providers_channel_add")


def type_hints(page: str) -> dict:
    return json.loads(unescape(re.search(r'data-hints="([^"]*)"', page).group(1)))


@pytest.mark.parametrize(("type_id", "key_format", "placeholder"), [
    (15, "APIKey|SecretKey", "https://aip.baidubce.com"),
    (23, "AppId|SecretId|SecretKey", "https://hunyuan.tencentcloudapi.com"),
    (33, "AK|SK|REGION", "https://..."),
    (3, "resource", "https://{resource}.openai.azure.com"),
])
def test_the_form_tells_the_types_key_format_and_base_url(root_client, type_id, key_format, placeholder):
    page = root_client.get(f"{ADD}?type={type_id}").content.decode()
    key_hint = re.search(r'<span id="channel-key-format">([^<]*)</span>', page).group(1)
    assert key_format in unescape(key_hint)
    assert f'placeholder="{placeholder}"' in page
    assert "oneapi/channel_form.js" in page


def test_the_page_carries_every_types_hints_for_its_script(root_client):
    hints = type_hints(root_client.get(ADD).content.decode())
    every_type = list(channel_overrides.CONFIG_KEYS)
    assert hints["33"]["config"] == ["region", "ak", "sk", "session_token", *every_type]
    assert hints["1"]["config"] == ["responses_api", *every_type]
    assert "claude-sonnet-4-6" in hints["14"]["models"] and "AK|SK|REGION" in hints["33"]["key"]
    assert hints["15"]["key"].startswith("APIKey|SecretKey")


def test_the_model_picker_offers_the_types_models_and_adds_the_ticked(root_client):
    page = root_client.get(f"{ADD}?type=14").content.decode()
    assert '<option value="claude-sonnet-4-6">' in page
    response = root_client.post(ADD, {
        "name": "claude", "type": "14", "status": "1", "key": "sk-ant-key-0123456789", "base_url": "",
        "models": "claude-opus-4-6", "model_picker": ["claude-sonnet-4-6", "claude-opus-4-6"], "group": "default",
        "tag": "", "model_mapping": "", "priority": "0", "weight": "0", "config": "", "system_prompt": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    channel = Channel.objects.get(name="claude")
    assert channel.models == "claude-opus-4-6,claude-sonnet-4-6"
    assert set(Ability.objects.filter(channel=channel).values_list("model", flat=True)) == {
        "claude-opus-4-6", "claude-sonnet-4-6"}
