"""Log contents written by billing read in the reader's language; anything else is left as stored."""

import pytest
from django.urls import reverse
from django.utils import translation

from billing.log_text import describe
from billing.models import Log
from billing.services import option_set
from relay.probe import channel_test
from tests.factories import ChannelFactory


@pytest.mark.parametrize("stored,chinese", [
    ("Redeemed a code for $0.002", "使用兑换码充值 $0.002"),
    ("Top-up by an administrator: $5 (refund #12)", "管理员充值 $5 (refund #12)"),
    ("Quota changed by root from $1 to $2", "root 将额度从 $1 调整为 $2"),
    ("Quota changed from 100 quota to 50 quota", "额度从 100 额度 调整为 50 额度"),
    ("Welcome gift for a new user: $0.5", "新用户赠送: $0.5"),
    ("model ratio 0.075 x group ratio 1 x completion ratio 4", "模型倍率 0.075 × 分组倍率 1 × 补全倍率 4"),
    ("something an operator typed", "something an operator typed"),
    # Channel tests and automatic switches (providers.services, providers.health); vendor texts stay as sent.
    ("Channel #3 my openai test with gpt-4o passed", "渠道 #3 my openai 使用 gpt-4o 测试通过"),
    ("Channel #3  test with gpt-4o failed: upstream said no", "渠道 #3  使用 gpt-4o 测试失败：upstream said no"),
    # A name may say "test with" too.
    ("Channel #7 a test with b test with m failed: x", "渠道 #7 a test with b 使用 m 测试失败：x"),
    ("Channel #4 azure was disabled automatically: the vendor refused the key: Incorrect API key",
     "渠道 #4 azure 已被自动禁用：服务商拒绝了密钥：Incorrect API key"),
    ("Channel #4 azure was disabled automatically: 3 failures in a row, the last: timeout",
     "渠道 #4 azure 已被自动禁用：连续失败 3 次，最近一次：timeout"),
    ("Channel #4 azure was disabled automatically: channel test: the vendor refused the key: bad key",
     "渠道 #4 azure 已被自动禁用：渠道测试：服务商拒绝了密钥：bad key"),
    ("Channel #4 azure was enabled again automatically: it passed a channel test",
     "渠道 #4 azure 已被自动重新启用：渠道测试通过"),
    ("Channel #4 azure was disabled automatically: something new", "渠道 #4 azure 已被自动禁用：something new"),
    ("Channel #x is not ours", "Channel #x is not ours"),
])
def test_known_sentences_are_translated(stored, chinese):
    with translation.override("zh-hans"):
        assert describe(stored) == chinese
    with translation.override("en"):
        assert describe(stored).replace("×", "x") == stored


REVOKED = {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "param": None,
                     "code": "invalid_api_key"}}


def test_channel_tests_and_automatic_switches_read_in_chinese_in_the_console(upstream, root_client):
    option_set(key="AutomaticEnableChannelEnabled", value="true")
    option_set(key="AutomaticDisableChannelEnabled", value="true")
    channel = ChannelFactory(name="north", base_url=upstream.url, models="gpt-4o")
    upstream.then(status=401, error=REVOKED)
    assert not channel_test(channel_id=channel.pk).success   # logs the failed test and the switch off
    assert channel_test(channel_id=channel.pk).success       # logs the passed test and the switch back on
    assert Log.objects.filter(channel_id=channel.pk).count() == 4
    html = root_client.get(reverse("admin:billing_log_changelist"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    for sentence in (f"渠道 #{channel.pk} north 使用 gpt-4o 测试通过",
                     f"渠道 #{channel.pk} north 使用 gpt-4o 测试失败：",
                     f"渠道 #{channel.pk} north 已被自动禁用：渠道测试：服务商拒绝了密钥：",
                     f"渠道 #{channel.pk} north 已被自动重新启用：渠道测试通过"):
        assert sentence in html
    for english in ("test with", "automatically", "passed", "refused"):
        assert english not in html
