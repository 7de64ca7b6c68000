import pytest

from billing.models import Log
from providers.models import Channel
from relay.probe import channel_test
from tests.factories import ChannelFactory

pytestmark = pytest.mark.django_db


def test_channel_test_sends_a_short_chat_and_records_the_response_time(upstream, settings):
    channel = ChannelFactory(base_url=upstream.url, key="sk-test-key", models="gpt-4o-mini,gpt-4o",
                             model_mapping={"gpt-4o-mini": "mapped-mini"})
    result = channel_test(channel_id=channel.pk)
    assert result.success and result.message == "Hello from the mock upstream." and result.model == "gpt-4o-mini"
    sent = upstream.requests[-1]
    assert sent.body["model"] == "mapped-mini"
    assert sent.body["messages"] == [{"role": "user", "content": settings.TEST_PROMPT}]
    assert sent.headers["Authorization"] == "Bearer sk-test-key"
    channel.refresh_from_db()
    assert channel.response_time > 0 and channel.test_time > 0
    log = Log.objects.get(type=Log.Type.TEST)
    assert log.channel_id == channel.pk and "passed" in log.content


def test_channel_test_reports_the_vendor_error_without_the_key(upstream):
    channel = ChannelFactory(base_url=upstream.url, key="sk-revoked-key", models="gpt-4o")
    upstream.then(status=401, error={"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                               "code": "invalid_api_key"}})
    result = channel_test(channel_id=channel.pk, model="gpt-4o")
    assert not result.success and result.message == "Incorrect API key provided"
    assert Channel.objects.get(pk=channel.pk).response_time == 0
    log = Log.objects.get(type=Log.Type.TEST)
    assert "failed" in log.content and "sk-revoked-key" not in log.content


def test_channel_test_of_an_unreachable_channel_fails_cleanly():
    channel = ChannelFactory(base_url="http://127.0.0.1:9", models="gpt-4o")
    result = channel_test(channel_id=channel.pk)
    assert not result.success and "reach" in result.message
