import re
from html import unescape
from types import SimpleNamespace

import pytest
from django.urls import reverse

from providers.models import Ability, Channel
from relay import probe
from tests.admin_fixtures import action
from tests.factories import ChannelFactory

SECRET = "sk-proj-VERYSECRETupstreamKEY0123456789abcdef"
CHANGELIST = reverse("admin:providers_channel_changelist")
ADD = reverse("admin:providers_channel_add")


def change_url(channel):
    return reverse("admin:providers_channel_change", args=[channel.pk])


def form_data(**overrides):
    data = {
        "name": "primary", "type": "1", "status": "1", "key": SECRET, "base_url": "",
        "models": "gpt-4o-mini,gpt-4o", "group": "default,vip", "model_mapping": "", "priority": "0",
        "weight": "0", "config": "", "system_prompt": "", "config_api_version": "",
    }
    data.update(overrides)
    return data


@pytest.fixture
def secret_channel(db):
    return ChannelFactory(name="secret-one", key=SECRET, models="gpt-4o-mini", group="default")


def test_changelist_renders_and_masks_the_key(root_client, secret_channel):
    response = root_client.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert "secret-one" in html and "OpenAI" in html
    assert SECRET not in html
    assert "sk-p...cdef" in html


def test_change_form_never_renders_the_stored_key(root_client, secret_channel):
    response = root_client.get(change_url(secret_channel))
    assert response.status_code == 200
    assert SECRET not in response.content.decode()
    assert 'name="config_api_version"' in response.content.decode()


def test_creating_a_channel_builds_its_abilities(root_client):
    response = root_client.post(ADD, form_data())
    assert response.status_code == 302, response.content.decode()[:3000]
    channel = Channel.objects.get(name="primary")
    assert channel.key == SECRET
    routes = set(Ability.objects.filter(channel=channel).values_list("group", "model"))
    assert routes == {(g, m) for g in ("default", "vip") for m in ("gpt-4o-mini", "gpt-4o")}


def test_several_key_lines_create_one_channel_each(root_client):
    response = root_client.post(ADD, form_data(key="key-number-one-aaaaaaaa\nkey-number-two-bbbbbbbb\n"), follow=True)
    assert response.status_code == 200
    assert sorted(Channel.objects.filter(name="primary").values_list("key", flat=True)) == [
        "key-number-one-aaaaaaaa", "key-number-two-bbbbbbbb"]
    assert "Created 2 channels" in response.content.decode()


def test_create_without_a_key_is_refused(root_client):
    response = root_client.post(ADD, form_data(key=""))
    assert response.status_code == 200
    assert "Enter the vendor key" in response.content.decode()
    assert not Channel.objects.filter(name="primary").exists()


def test_edit_with_an_empty_key_keeps_the_stored_key(root_client, secret_channel):
    response = root_client.post(change_url(secret_channel), form_data(name="renamed", key="", models="gpt-4o"))
    assert response.status_code == 302, response.content.decode()[:3000]
    secret_channel.refresh_from_db()
    assert secret_channel.name == "renamed"
    assert secret_channel.key == SECRET
    assert list(Ability.objects.filter(channel=secret_channel).values_list("model", flat=True).distinct()) == [
        "gpt-4o"]


def test_edit_with_a_new_key_replaces_it(root_client, secret_channel):
    root_client.post(change_url(secret_channel), form_data(key="new-key-0000000000000000"))
    secret_channel.refresh_from_db()
    assert secret_channel.key == "new-key-0000000000000000"


def test_history_does_not_show_the_key(root_client, secret_channel):
    root_client.post(change_url(secret_channel), form_data(key=""))
    response = root_client.get(reverse("admin:providers_channel_history", args=[secret_channel.pk]))
    assert response.status_code == 200
    assert SECRET not in response.content.decode()


def test_bad_model_mapping_json_is_reported_by_name(root_client, secret_channel):
    response = root_client.post(change_url(secret_channel), form_data(key="", model_mapping='{"gpt-4o": "x",}'))
    assert response.status_code == 200
    html = response.content.decode()
    assert "model_mapping is not valid JSON" in html
    assert SECRET not in html
    secret_channel.refresh_from_db()
    assert secret_channel.model_mapping == {}


def _shown_status(client, channel) -> dict:
    """The status inputs of the change page as a browser posts them back untouched."""
    html = client.get(change_url(channel)).content.decode()
    select = re.search(r'<select name="status".*?</select>', html, re.S).group(0)
    posted = {"status": re.search(r'<option value="(\d+)" selected>', select).group(1)}
    hidden = re.search(r'<input type="hidden" name="initial-status" value="(\d+)"', html)
    if hidden:
        posted["initial-status"] = hidden.group(1)
    return posted


def test_saving_other_edits_keeps_a_status_health_set_while_the_page_was_open(root_client, secret_channel):
    posted = _shown_status(root_client, secret_channel)
    Channel.objects.filter(pk=secret_channel.pk).update(status=Channel.Status.AUTO_DISABLED)
    response = root_client.post(change_url(secret_channel), form_data(name="renamed", key="", **posted))
    assert response.status_code == 302, response.content.decode()[:3000]
    secret_channel.refresh_from_db()
    assert secret_channel.name == "renamed"
    assert secret_channel.status == Channel.Status.AUTO_DISABLED
    assert not Ability.objects.filter(channel=secret_channel, enabled=True).exists()


def test_a_status_the_operator_changed_is_written_even_over_one_health_set(root_client, secret_channel):
    posted = _shown_status(root_client, secret_channel)
    Channel.objects.filter(pk=secret_channel.pk).update(status=Channel.Status.AUTO_DISABLED)
    posted["status"] = str(Channel.Status.MANUALLY_DISABLED)
    response = root_client.post(change_url(secret_channel), form_data(name="renamed", key="", **posted))
    assert response.status_code == 302, response.content.decode()[:3000]
    secret_channel.refresh_from_db()
    assert (secret_channel.name, secret_channel.status) == ("renamed", Channel.Status.MANUALLY_DISABLED)


def test_re_enabling_an_auto_disabled_channel_from_its_page_is_written(root_client, secret_channel):
    Channel.objects.filter(pk=secret_channel.pk).update(status=Channel.Status.AUTO_DISABLED)
    posted = _shown_status(root_client, secret_channel)
    assert posted["status"] == str(Channel.Status.AUTO_DISABLED)
    posted["status"] = str(Channel.Status.ENABLED)
    root_client.post(change_url(secret_channel), form_data(key="", **posted))
    secret_channel.refresh_from_db()
    assert secret_channel.status == Channel.Status.ENABLED
    assert not Ability.objects.filter(channel=secret_channel, enabled=False).exists()


@pytest.mark.parametrize("field", ["model_mapping", "config"])
@pytest.mark.parametrize("typed, message", [
    ('{"gpt-4o": ' + "9" * 5000 + "}", "is not valid JSON: a number has too many digits"),
    ('{"gpt-4o": "\\ud800"}', "holds a lone UTF-16 surrogate"),
    ('{"\\udfff": "x"}', "holds a lone UTF-16 surrogate"),
    ('["\\ud800"]', "must be a JSON object"),
], ids=["5000-digits", "surrogate-value", "surrogate-key", "surrogate-in-a-list"])
def test_json_that_python_reads_but_no_column_holds_is_reported_by_name(root_client, secret_channel, field, typed,
                                                                        message):
    response = root_client.post(change_url(secret_channel), form_data(key="", **{field: typed}))
    assert response.status_code == 200
    html = response.content.decode()
    assert f"{field} {message}" in html
    assert unescape(_textarea(html, field)) == typed  # shown as typed, to correct
    secret_channel.refresh_from_db()
    assert secret_channel.model_mapping == {} and secret_channel.config == {}


def _textarea(html: str, name: str) -> str:
    return re.search(rf'<textarea name="{name}"[^>]*>(.*?)</textarea>', html, re.S).group(1).strip()


TYPED = "sk-typed-in-this-submission-0123456789"


@pytest.mark.parametrize("broken", [{"model_mapping": '{"gpt-4o": "x",}'}, {"group": ""}, {"priority": "x"}])
def test_a_key_typed_on_create_survives_an_error_in_another_field(root_client, broken):
    response = root_client.post(ADD, form_data(key=TYPED, **broken))
    assert response.status_code == 200 and not Channel.objects.exists()
    assert _textarea(response.content.decode(), "key") == TYPED


def test_a_new_key_typed_on_edit_survives_an_error_but_the_stored_one_is_never_shown(root_client, secret_channel):
    html = root_client.post(change_url(secret_channel), form_data(key=TYPED, group="")).content.decode()
    assert _textarea(html, "key") == TYPED and SECRET not in html
    html = root_client.post(change_url(secret_channel), form_data(key="", group="")).content.decode()
    assert _textarea(html, "key") == "" and SECRET not in html
    secret_channel.refresh_from_db()
    assert secret_channel.key == SECRET


def test_a_secret_config_value_typed_survives_an_error_in_another_field(root_client):
    response = root_client.post(ADD, form_data(type="33", base_url="", key="AKID|secret|us-east-1",
                                               config_sk="typed-secret-access-key", group=""))
    assert response.status_code == 200
    assert _textarea(response.content.decode(), "config_sk") == "typed-secret-access-key"


def test_service_errors_show_on_the_form(root_client, secret_channel):
    response = root_client.post(change_url(secret_channel), form_data(model_mapping='{"gpt-4o": 5}'))
    assert response.status_code == 200
    assert "model_mapping must map model names to model names" in response.content.decode()


def test_azure_config_field_is_stored_in_config(root_client):
    response = root_client.post(ADD, form_data(
        name="azure", type="3", base_url="https://example.openai.azure.com",
        config_api_version="2024-06-01", config='{"region": "eastus"}'))
    assert response.status_code == 302, response.content.decode()[:3000]
    channel = Channel.objects.get(name="azure")
    assert channel.config == {"region": "eastus", "api_version": "2024-06-01"}
    form = root_client.get(change_url(channel)).content.decode()
    assert 'value="2024-06-01"' in form


def test_azure_without_a_base_url_is_refused(root_client):
    response = root_client.post(ADD, form_data(name="azure", type="3"))
    assert response.status_code == 200
    assert "has no default address" in response.content.decode()


def test_disable_and_enable_actions_move_status_and_abilities(root_client, secret_channel):
    action(root_client, CHANGELIST, "disable_channels", [secret_channel.pk])
    secret_channel.refresh_from_db()
    assert secret_channel.status == Channel.Status.MANUALLY_DISABLED
    assert not Ability.objects.filter(channel=secret_channel, enabled=True).exists()

    action(root_client, CHANGELIST, "enable_channels", [secret_channel.pk])
    secret_channel.refresh_from_db()
    assert secret_channel.status == Channel.Status.ENABLED
    assert not Ability.objects.filter(channel=secret_channel, enabled=False).exists()


@pytest.mark.parametrize("selected", ["abc", "1.5", "-0.0", "9" * 30, "", "\u0661"])
def test_an_action_on_a_selection_that_is_no_channel_id_changes_nothing(root_client, secret_channel, selected):
    response = action(root_client, CHANGELIST, "disable_channels", [selected])
    assert response.status_code == 200
    secret_channel.refresh_from_db()
    assert secret_channel.status == Channel.Status.ENABLED


def test_an_action_keeps_the_ids_among_values_that_are_none(root_client, secret_channel):
    action(root_client, CHANGELIST, "disable_channels", ["abc", str(secret_channel.pk)])
    secret_channel.refresh_from_db()
    assert secret_channel.status == Channel.Status.MANUALLY_DISABLED


def test_test_action_reports_each_result(root_client, secret_channel, monkeypatch):
    calls = []

    def fake_test(*, channel_id, model):
        calls.append((channel_id, model))
        return SimpleNamespace(success=False, message="invalid api key", time=0.42, model="gpt-4o-mini")

    monkeypatch.setattr(probe, "channel_test", fake_test, raising=False)
    response = action(root_client, CHANGELIST, "test_channels", [secret_channel.pk])
    assert calls == [(secret_channel.pk, None)]
    # The admin capitalises messages.
    assert "Secret-one: failed with gpt-4o-mini: invalid api key" in response.content.decode()


def test_test_action_survives_a_crashing_test(root_client, secret_channel, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("adapter exploded")

    monkeypatch.setattr(probe, "channel_test", broken, raising=False)
    response = action(root_client, CHANGELIST, "test_channels", [secret_channel.pk])
    assert response.status_code == 200
    assert "Secret-one: the test could not run: adapter exploded" in response.content.decode()


@pytest.mark.parametrize("scope", ["everything", "", "\u0000"])
def test_test_all_with_an_unknown_scope_says_so_and_tests_nothing(root_client, secret_channel, scope, monkeypatch):
    monkeypatch.setattr(probe, "channel_test", lambda **kw: pytest.fail("no channel is tested"))
    response = root_client.post(reverse("admin:providers_channel_test_all"), {"scope": scope}, follow=True)
    assert response.status_code == 200
    assert "Scope must be all or disabled" in response.content.decode()


def test_delete_goes_through_the_service(root_client, secret_channel):
    response = root_client.post(reverse("admin:providers_channel_delete", args=[secret_channel.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Channel.objects.filter(pk=secret_channel.pk).exists()
    assert not Ability.objects.filter(channel_id=secret_channel.pk).exists()


def test_filters_and_search(root_client, secret_channel):
    ChannelFactory(name="other", group="vip")
    html = root_client.get(CHANGELIST, {"group": "vip"}).content.decode()
    assert "other" in html and "secret-one" not in html
    html = root_client.get(CHANGELIST, {"q": "secret"}).content.decode()
    assert "secret-one" in html
    assert root_client.get(CHANGELIST, {"q": "abc"}).status_code == 200
    assert root_client.get(CHANGELIST, {"type": "1", "status__exact": "1"}).status_code == 200


@pytest.mark.parametrize("typed", ["-0.0", "1.5", "abc", "9" * 30, "٢٤"])
def test_a_type_filter_that_is_no_channel_type_lists_nothing(root_client, secret_channel, typed):
    response = root_client.get(CHANGELIST, {"type": typed})
    assert response.status_code == 200
    assert "secret-one" not in response.content.decode()


@pytest.mark.parametrize("query", [{"key__startswith": "sk-"}, {"key": SECRET}, {"config__contains": "x"},
                                   {"base_url__regex": "(a+)+$"}, {"weight__gt": "0"}], ids=str)
def test_the_list_filters_by_no_column_its_sidebar_does_not_offer(staff_client, secret_channel, query):
    """Else ?key__startswith= answered whether the masked vendor key starts so: the whole key by bisection."""
    assert staff_client.get(CHANGELIST, query).status_code == 400


def test_the_sidebars_own_filters_still_filter(staff_client, secret_channel):
    response = staff_client.get(CHANGELIST, {"status__exact": "2"})
    assert response.status_code == 200 and response.context["cl"].result_count == 0
    response = staff_client.get(CHANGELIST, {"status__exact": "1", "group": "default", "type": "1"})
    assert response.context["cl"].result_count == 1


def test_an_admin_manages_channels(staff_client, secret_channel):
    assert staff_client.get(CHANGELIST).status_code == 200


def test_a_common_user_cannot_reach_the_channels(common_client, secret_channel):
    response = common_client.get(CHANGELIST)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


@pytest.mark.parametrize("typed, placeholder", [
    ("24", "https://generativelanguage.googleapis.com"),
    ("٢٤", "https://api.openai.com"),   # int() reads Arabic-Indic digits; the bounded parser takes ASCII only
    ("2.4e1", "https://api.openai.com"),
    ("9" * 5000, "https://api.openai.com"),
])
def test_the_add_forms_type_from_the_address_is_read_by_the_number_parser(root_client, typed, placeholder):
    response = root_client.get(reverse("admin:providers_channel_add"), {"type": typed})
    assert response.status_code == 200
    assert response.context["adminform"].form.fields["base_url"].widget.attrs["placeholder"] == placeholder
