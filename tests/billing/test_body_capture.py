"""Opt-in body capture (billing/body_capture.py): a listed token's /v1 exchange stored, secrets masked, capped,
pruned after BodyCaptureRetentionHours, read in the console."""

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from billing import body_capture
from billing.models import BodyCapture
from billing.services import option_set
from oneapi_site import options
from oneapi_site.lib.errors import ServiceError
from oneapi_site.lib.timeutil import now_ts

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}


def set_option(key, value):
    option_set(key=key, value=value)
    options.reload_from_db()


async def ask(client, world, body=None):
    response = await client.post("/v1/chat/completions", json=body or CHAT,
                                 headers={"Authorization": f"Bearer sk-{world.token.key}"})
    assert response.status_code == 200, response.text
    return response


@pytest.mark.django_db(transaction=True)
async def test_a_listed_tokens_exchange_is_stored_with_secret_fields_masked(relay_client, world):
    await sync_to_async(set_option)("BodyCaptureTokenIds", f"999, {world.token.pk}")
    body = {**CHAT, "metadata": {"api_key": "sk-client-secret", "note": "kept"}}
    response = await ask(relay_client, world, body)
    capture = await sync_to_async(BodyCapture.objects.get)()
    assert (capture.token_id, capture.user_id, capture.status, capture.path) == (
        world.token.pk, world.user.pk, 200, "/v1/chat/completions")
    assert capture.request_id == response.headers["x-oneapi-request-id"]
    stored = orjson.loads(capture.request_body)
    assert stored["metadata"] == {"api_key": body_capture.MASK, "note": "kept"}
    assert "sk-client-secret" not in capture.request_body and world.token.key not in capture.request_body
    assert capture.response_body == response.text
    assert not capture.request_truncated and not capture.response_truncated


@pytest.mark.django_db(transaction=True)
async def test_other_tokens_are_not_captured(relay_client, world):
    await sync_to_async(set_option)("BodyCaptureTokenIds", str(world.token.pk + 1))
    await ask(relay_client, world)
    assert not await sync_to_async(BodyCapture.objects.exists)()


@pytest.mark.django_db(transaction=True)
async def test_each_side_is_cut_to_the_limit(relay_client, world, monkeypatch):
    monkeypatch.setattr(body_capture, "CAPTURE_LIMIT", 100)
    await sync_to_async(set_option)("BodyCaptureTokenIds", str(world.token.pk))
    response = await ask(relay_client, world, {**CHAT, "messages": [{"role": "user", "content": "x" * 500}]})
    capture = await sync_to_async(BodyCapture.objects.get)()
    assert len(capture.request_body.encode()) == 100 and capture.request_truncated
    assert capture.response_body == response.text[:100] and capture.response_truncated


def test_masking_reaches_any_depth_and_leaves_non_json_as_text():
    text, cut = body_capture.request_text(b'{"a": [{"Password": "p"}, {"x": {"secret": 1, "y": 2}}]}')
    assert orjson.loads(text) == {"a": [{"Password": "[removed]"}, {"x": {"secret": "[removed]", "y": 2}}]}
    assert body_capture.request_text(b"plain text") == ("plain text", False)


def test_captures_are_kept_for_their_own_hours(db):
    set_option("BodyCaptureRetentionHours", "2")
    now = now_ts()
    BodyCapture.objects.bulk_create([BodyCapture(created_at=now - 3 * 3600), BodyCapture(created_at=now - 3600)])
    assert body_capture.captures_prune(now=now) == 1
    assert list(BodyCapture.objects.values_list("created_at", flat=True)) == [now - 3600]


def test_the_token_list_option_takes_only_ids(db):
    set_option("BodyCaptureTokenIds", "1, 2,3")
    assert body_capture.wanted(2) and not body_capture.wanted(4)
    with pytest.raises(ServiceError):
        option_set(key="BodyCaptureTokenIds", value="1; drop table")


def test_admins_read_captures_in_the_console(staff_client, db):
    capture = BodyCapture.objects.create(request_id="req-1", request_body='{"model": "m"}', response_body="answer")
    listing = staff_client.get(reverse("admin:billing_bodycapture_changelist")).content.decode()
    assert "req-1" in listing
    page = staff_client.get(reverse("admin:billing_bodycapture_change", args=[capture.pk])).content.decode()
    assert "answer" in page


@pytest.mark.django_db(transaction=True)
async def test_an_error_answer_is_captured_as_the_client_got_it(relay_client, world):
    await sync_to_async(set_option)("BodyCaptureTokenIds", str(world.token.pk))
    world.upstream.then(status=400, error={"error": {"message": "bad thing", "type": "invalid_request_error"}})
    response = await relay_client.post("/v1/chat/completions", json=CHAT,
                                       headers={"Authorization": f"Bearer sk-{world.token.key}"})
    assert response.status_code == 400
    capture = await sync_to_async(BodyCapture.objects.get)()
    assert capture.status == 400 and capture.response_body == response.text and "bad thing" in response.text
