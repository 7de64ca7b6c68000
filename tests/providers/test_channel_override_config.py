"""param_override, header_override and proxy as channel config: checked on save through /api and the console,
stored as objects, and a proxy's password masked when shown back (and kept when saved back masked)."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from providers.models import Channel
from tests.api_fixtures import envelope
from tests.factories import ChannelFactory

PROXY = "socks5h://team:pr0xy-passw0rd@proxy.internal:1080"


@pytest.mark.parametrize(("config", "says"), [
    ({"param_override": "{oops"}, "param_override is not valid JSON"),
    ({"param_override": {"operations": [{"mode": "explode", "path": "a"}]}}, "unknown mode 'explode'"),
    ({"param_override": {"operations": [{"mode": "set", "path": "a", "value": 1,
                                         "conditions": [{"path": "a", "mode": "near"}]}]}}, "unknown mode 'near'"),
    ({"header_override": ["X-A"]}, "header_override must be a JSON object"),
    ({"header_override": {"Bad Name": "x"}}, "is not a header name"),
    ({"header_override": {"X-A": "one\r\nX-B: two"}}, "holds a line break"),
    ({"header_override": {"Content-Length": "1"}}, "set by the transport"),
    ({"proxy": "ftp://proxy:21"}, "proxy must start with http://, https://, socks5:// or socks5h://"),
    ({"proxy": "socks5://proxy"}, "proxy needs a port"),
    ({"proxy": "http://proxy:99999"}, "proxy is not a valid URL"),
    ({"proxy": "http://proxy:8080/path"}, "no path or query"),
])
def test_a_bad_override_is_refused_through_the_api_with_what_is_wrong(staff_api, config, says):
    body = {"type": 1, "name": "n", "key": "k", "config": json.dumps(config)}
    answer = envelope(staff_api.post("/api/channel/", body, format="json"), success=False)
    assert answer["field"] == "config" and says in answer["message"]
    assert not Channel.objects.exists()


def test_overrides_are_stored_as_objects_and_new_apis_json_text_is_accepted(staff_api):
    config = {"param_override": '{"operations": [{"mode": "delete", "path": "stream"}]}',
              "header_override": '{"X-Team": "ml"}', "proxy": " http://proxy.internal:3128/ "}
    envelope(staff_api.post("/api/channel/", {"type": 1, "name": "n", "key": "k", "config": config}, format="json"))
    stored = Channel.objects.get().config
    assert stored == {"param_override": {"operations": [{"mode": "delete", "path": "stream"}]},
                      "header_override": {"X-Team": "ml"}, "proxy": "http://proxy.internal:3128"}


def test_the_proxy_password_is_masked_when_shown_and_kept_when_saved_back_masked(staff_api):
    channel = ChannelFactory(config={"proxy": PROXY})
    shown = json.loads(envelope(staff_api.get(f"/api/channel/{channel.pk}"))["config"])
    assert shown["proxy"] == "socks5h://team:***@proxy.internal:1080"
    envelope(staff_api.put("/api/channel/", {"id": channel.pk, "config": json.dumps(shown)}, format="json"))
    channel.refresh_from_db()
    assert channel.config["proxy"] == PROXY
    envelope(staff_api.put("/api/channel/", {"id": channel.pk, "config": {"proxy": "http://other:8080"}},
                           format="json"))
    channel.refresh_from_db()
    assert channel.config["proxy"] == "http://other:8080"


def _form(**extra) -> dict:
    data = {"name": "ov", "type": "1", "status": "1", "key": "sk-console-key", "base_url": "", "models": "gpt-4o",
            "group": "default", "model_mapping": "", "priority": "0", "weight": "0", "config": "",
            "system_prompt": ""}
    data.update(extra)
    return data


def test_the_console_form_offers_the_overrides_and_names_a_bad_one(root_client):
    add = reverse("admin:providers_channel_add")
    html = root_client.get(add).content.decode()
    for name in ("config_param_override", "config_header_override", "config_proxy"):
        assert f'name="{name}"' in html
    response = root_client.post(add, _form(config_param_override='{"operations": [{"mode": "nope", "path": "a"}]}',
                                           config_proxy="gopher://x:70"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "unknown mode &#x27;nope&#x27;" in html or "unknown mode 'nope'" in html
    assert not Channel.objects.exists()
    response = root_client.post(add, _form(config_param_override='{"temperature": 0.2}',
                                           config_header_override='{"X-Team": "ml"}', config_proxy=PROXY))
    assert response.status_code == 302, response.content.decode()[:2000]
    channel = Channel.objects.get()
    assert channel.config == {"param_override": {"temperature": 0.2}, "header_override": {"X-Team": "ml"},
                              "proxy": PROXY}
    change = reverse("admin:providers_channel_change", args=[channel.pk])
    html = root_client.get(change).content.decode()
    assert "pr0xy-passw0rd" not in html and "socks5h://team:***@proxy.internal:1080" in html
    response = root_client.post(change, _form(key="", config_proxy="socks5h://team:***@proxy.internal:1080",
                                               config_param_override='{"temperature": 0.2}'))
    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.config["proxy"] == PROXY


def test_a_credential_in_a_header_override_is_masked_when_shown_and_kept_when_saved_back_masked(staff_api):
    # export_config holds header overrides for secrets; /api must not hand them out while the key is write-only
    channel = ChannelFactory(config={"header_override": {"Authorization": "Bearer sk-vendor-s3cret",
                                                         "X-Api-Key": "{api_key}", "X-Team": "ml"}})
    text = envelope(staff_api.get(f"/api/channel/{channel.pk}"))["config"]
    assert "sk-vendor-s3cret" not in text
    shown = json.loads(text)
    assert shown["header_override"] == {"Authorization": "***", "X-Api-Key": "{api_key}", "X-Team": "ml"}
    envelope(staff_api.put("/api/channel/", {"id": channel.pk, "config": json.dumps(shown)}, format="json"))
    channel.refresh_from_db()
    assert channel.config["header_override"]["Authorization"] == "Bearer sk-vendor-s3cret"
    shown["header_override"]["Authorization"] = "Bearer sk-new"
    envelope(staff_api.put("/api/channel/", {"id": channel.pk, "config": shown}, format="json"))
    channel.refresh_from_db()
    assert channel.config["header_override"]["Authorization"] == "Bearer sk-new"


def test_the_console_form_does_not_show_a_credential_in_a_header_override(root_client):
    channel = ChannelFactory(config={"header_override": {"Authorization": "Bearer sk-vendor-s3cret"}})
    change = reverse("admin:providers_channel_change", args=[channel.pk])
    page = root_client.get(change)
    assert page.status_code == 200 and b"sk-vendor-s3cret" not in page.content
    response = root_client.post(change, _form(key="", config_header_override='{"Authorization": "***"}'))
    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.config["header_override"] == {"Authorization": "Bearer sk-vendor-s3cret"}
