"""Channel types in the console and /api: every one-api type is offered with its base URL placeholder and saved;
a type without an adapter is never saved, and a stored one (imported, or written into the table) is kept out of
routing with the reason shown in the console and /api/channel/."""

import pytest
from asgiref.sync import sync_to_async

from providers.adapters import ADAPTERS
from providers.models import Channel
from tests.admin_fixtures import action
from tests.api_fixtures import envelope
from tests.factories import ChannelFactory
from tests.providers.test_admin_channels import ADD, CHANGELIST, change_url, form_data
from tests.world import new_world

UNKNOWN = 99  # no adapter: say a new-api type imported as it was
SECRET = "sk-imported-secret-key"


def stored(**fields) -> Channel:
    """A channel of a type without an adapter, as an import writes it: straight into the table."""
    channel = ChannelFactory(**{**fields, "type": 1})
    Channel.objects.filter(pk=channel.pk).update(type=UNKNOWN)
    channel.refresh_from_db()
    return channel


def test_every_one_api_type_has_an_adapter():
    assert set(range(1, 52)) <= set(ADAPTERS)


@pytest.mark.django_db
def test_api_refuses_to_create_a_channel_of_an_unknown_type_and_names_it(staff_api):
    response = staff_api.post("/api/channel/", {"type": UNKNOWN, "name": "n", "key": "k"}, format="json")
    error = envelope(response, success=False)
    assert error["field"] == "type" and f"Channel type {UNKNOWN} is not supported" in error["message"]
    assert not Channel.objects.exists()


@pytest.mark.django_db
def test_api_refuses_to_save_a_stored_channel_of_an_unknown_type_until_its_type_changes(staff_api):
    channel = stored(key=SECRET, name="imported")
    error = envelope(staff_api.put("/api/channel/", {"id": channel.pk, "name": "renamed"}, format="json"),
                     success=False)
    assert error["field"] == "type" and str(UNKNOWN) in error["message"]
    channel.refresh_from_db()
    assert channel.name == "imported"
    envelope(staff_api.put("/api/channel/", {"id": channel.pk, "name": "renamed", "type": 1}, format="json"))
    channel.refresh_from_db()
    assert (channel.name, channel.type) == ("renamed", 1)


@pytest.mark.django_db
def test_api_channel_list_tells_why_a_channel_does_not_route(staff_api):
    imported = stored(key=SECRET, name="imported")
    fine = ChannelFactory(type=1, name="fine")
    rows = {row["id"]: row for row in envelope(staff_api.get("/api/channel/"))}
    assert f"Channel type {UNKNOWN} has no adapter" in rows[imported.pk]["unsupported_reason"]
    assert rows[fine.pk]["unsupported_reason"] == ""
    assert "kept out of routing" in envelope(staff_api.get(f"/api/channel/{imported.pk}"))["unsupported_reason"]
    assert SECRET.encode() not in staff_api.get("/api/channel/").content


@pytest.mark.django_db
def test_console_refuses_an_unknown_type_naming_it(root_client):
    response = root_client.post(ADD, form_data(type=str(UNKNOWN)))
    assert response.status_code == 200
    assert f"Channel type {UNKNOWN} is not supported" in response.content.decode()
    assert not Channel.objects.exists()


@pytest.mark.django_db
def test_console_shows_why_a_stored_channel_does_not_route_and_keeps_its_type(root_client):
    channel = stored(key=SECRET, name="imported")
    listing = root_client.get(CHANGELIST).content.decode()
    assert "not routed" in listing and f"Channel type {UNKNOWN} has no adapter" in listing
    page = root_client.get(change_url(channel)).content.decode()
    assert f"Channel type {UNKNOWN} has no adapter in this gateway" in page
    assert f'<option value="{UNKNOWN}" selected>' in page  # never shown as another type
    response = root_client.post(change_url(channel), form_data(type=str(UNKNOWN), key="", name="renamed"))
    assert response.status_code == 200 and f"Channel type {UNKNOWN} is not supported" in response.content.decode()
    channel.refresh_from_db()
    assert (channel.name, channel.type) == ("imported", UNKNOWN)


@pytest.mark.django_db(transaction=True)
async def test_an_enabled_channel_of_an_unknown_type_never_routes(relay_client, upstream):
    world = await sync_to_async(new_world)(upstream, username="u", type=1, models="gpt-4o-mini")
    await sync_to_async(Channel.objects.filter(pk=world.channel.pk).update)(type=UNKNOWN)
    response = await relay_client.post("/v1/chat/completions", headers=world.auth,
                                       json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 503
    assert upstream.requests == []


NEW_TYPES = {2: "https://oa.api2d.net", 6: "https://api.openaimax.com", 7: "https://api.ohmygpt.com",
             9: "https://api.caipacity.com", 11: "https://generativelanguage.googleapis.com",
             19: "https://ai.360.cn", 21: "https://api.aiproxy.io", 22: "https://fastgpt.run/api/openapi",
             26: "https://api.baichuan-ai.com", 27: "https://api.minimax.chat", 31: "https://api.lingyiwanwu.com",
             38: "https://api-free.deepl.com", 43: "", 46: "https://api.replicate.com"}


@pytest.mark.django_db
@pytest.mark.parametrize("type_id, default", NEW_TYPES.items())
def test_console_offers_each_new_type_with_its_base_url_placeholder(root_client, type_id, default):
    page = root_client.get(f"{ADD}?type={type_id}").content.decode()
    assert f'<option value="{type_id}" selected>' in page
    assert f'placeholder="{default or "https://..."}"' in page


@pytest.mark.django_db
def test_console_saves_a_new_type_and_a_proxy_needs_its_address(root_client):
    response = root_client.post(ADD, form_data(type="38", name="deepl", models="deepl-zh"))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Channel.objects.get(name="deepl").type == 38
    response = root_client.post(ADD, form_data(type="43", name="proxy"))
    assert response.status_code == 200 and "Proxy has no default address" in response.content.decode()


@pytest.mark.django_db
def test_api_creates_channels_of_the_new_types_and_lists_their_models(staff_api):
    for type_id in NEW_TYPES:
        fields = {"type": type_id, "name": f"t{type_id}", "key": "k",
                  "base_url": "https://proxy.example" if type_id == 43 else ""}
        envelope(staff_api.post("/api/channel/", fields, format="json"))
    assert set(Channel.objects.values_list("type", flat=True)) == set(NEW_TYPES)
    models = envelope(staff_api.get("/api/models"))
    assert models["38"] == ["deepl-zh", "deepl-en", "deepl-ja"] and "abab6.5s-chat" in models["27"]


@pytest.mark.django_db
def test_testing_or_asking_the_balance_of_a_stored_unknown_type_says_why_it_cannot(staff_api):
    imported = stored(key=SECRET, name="imported")
    for path in (f"/api/channel/test/{imported.pk}", f"/api/channel/update_balance/{imported.pk}"):
        error = envelope(staff_api.get(path), success=False)
        assert f"Channel type {UNKNOWN} has no adapter" in error["message"], path


@pytest.mark.django_db
def test_the_console_test_action_says_why_a_stored_unknown_type_cannot_be_tested(root_client, caplog):
    imported = stored(key=SECRET, name="imported")
    response = action(root_client, CHANGELIST, "test_channels", [imported.pk])
    assert f"Imported: the test could not run: Channel type {UNKNOWN} has no adapter" in response.content.decode()
    assert "Traceback" not in caplog.text
