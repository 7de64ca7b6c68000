"""The operator console speaks the browser's language: Simplified Chinese for zh-hans, English otherwise."""

import pytest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation

from billing.models import Log
from oneapi_site import options
from providers.models import Channel
from tests.factories import ChannelFactory, RedemptionFactory

ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}

CHANNELS = reverse("admin:providers_channel_changelist")
CHANNEL_ADD = reverse("admin:providers_channel_add")
USERS = reverse("admin:accounts_user_changelist")
TOKENS = reverse("admin:accounts_token_changelist")
CODES = reverse("admin:billing_redemptioncode_changelist")
BATCH = reverse("admin:billing_redemptioncode_batch")
LOGS = reverse("admin:billing_log_changelist")
OPTIONS = reverse("admin:billing_option_changelist")

# Per page: (url, query, Chinese that must show, English of ours that must not show in Chinese and must in English).
PAGES = {
    "channel list": (CHANNELS, {}, ["测试所有渠道", "更新所选渠道的余额", "已手动禁用", "响应时间", "腾讯混元"],
                     ["Test all channels", "Update balance of selected channels", "manually disabled",
                      "Response", "Tencent Hunyuan"]),
    "channel add form": (CHANNEL_ADD, {"type": "34"}, ["账户或用户 ID", "适用于", "配置键 user_id", "模型映射", "路由",
                                                      "只写。编辑时留空则保留已保存的密钥。"],
                         ["Account or user ID", "Used by", "Model mapping", "Routing",
                          "Write-only. On edit, leave empty to keep the stored key."]),
    "user list": (USERS, {}, ["显示名称", "已用额度", "请求次数", "超级管理员", "已注销"],
                  ["Display name", "Used quota", "Request count", "deleted"]),
    "token list": (TOKENS, {}, ["剩余额度", "无限额度", "永不过期", "已耗尽"],
                   ["Remain", "Unlimited quota", "never", "exhausted"]),
    "redemption list": (CODES, {}, ["将所选兑换码导出为 CSV（含密钥）", "兑换时间", "已使用"],
                        ["Export selected as CSV (with keys)", "Redeemed"]),
    "log list": (LOGS, {}, ["按创建时间", "结束日期（含当天）", "模型名称", "渠道 ID", "消费", "耗时"],
                 ["By created", "to (inclusive)", "Channel id", "consume", "Elapsed"]),
    "options page": (OPTIONS, {}, ["运营设置", "系统设置", "其他设置", "单位美元额度", "允许新用户注册",
                                   "只写：留空则保留已保存的值。"],
                     ["Operation settings", "System settings", "Quota per US$1", "Allow new users to sign up",
                      "Write-only: leave empty to keep the stored value."]),
}


@pytest.fixture(autouse=True)
def _back_to_english():
    # LocaleMiddleware activates the request's language for the thread and leaves it there;
    # tests that follow in this process expect the default.
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _console_data(db, alice, alice_token):
    options.reload_from_db()
    ChannelFactory(name="hunyuan", type=23, status=Channel.Status.MANUALLY_DISABLED)
    RedemptionFactory(name="card")
    Log.objects.create(user_id=alice.pk, type=Log.Type.CONSUME, content="used", username="alice",
                       model_name="gpt-4o", elapsed_time=1500)
    yield
    options.reload_from_db()


def _page(client, url, query, headers) -> str:
    response = client.get(url, query, **headers)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize("page", PAGES)
def test_the_console_speaks_chinese_to_a_chinese_browser(root_client, page):
    url, query, chinese, english = PAGES[page]
    html = _page(root_client, url, query, ZH)
    assert '<html lang="zh-hans"' in html
    for text in chinese:
        assert text in html, f"{page}: {text!r} missing"
    for text in english:
        assert text not in html, f"{page}: {text!r} left in English"


@pytest.mark.parametrize("page", PAGES)
def test_the_console_still_speaks_english_to_an_english_browser(root_client, page):
    url, query, chinese, english = PAGES[page]
    html = _page(root_client, url, query, EN)
    assert '<html lang="en"' in html
    for text in english:
        assert text in html, f"{page}: {text!r} missing"
    for text in chinese:
        assert text not in html, f"{page}: {text!r} shown to an English browser"


def _action(client, name, pk, headers):
    return client.post(CHANNELS, {"action": name, "index": 0, "select_across": 0, "_selected_action": [str(pk)]},
                       follow=True, **headers)


def test_action_messages_are_translated(root_client):
    channel = ChannelFactory(name="to-enable", status=Channel.Status.MANUALLY_DISABLED)
    response = _action(root_client, "enable_channels", channel.pk, ZH)
    assert "已启用 1 个渠道。" in response.content.decode()
    channel.refresh_from_db()
    assert channel.status == Channel.Status.ENABLED
    response = _action(root_client, "disable_channels", channel.pk, EN)
    assert "1 channel disabled." in response.content.decode()


def test_form_errors_are_translated_and_keep_the_key(root_client):
    response = root_client.post(CHANNEL_ADD, {"name": "x", "type": "1", "status": "1", "key": "", "models": "m",
                                              "group": "default", "priority": "0", "weight": "0",
                                              "model_mapping": "{oops"}, **ZH)
    html = response.content.decode()
    assert "请输入供应商密钥" in html
    assert "model_mapping 不是有效的 JSON" in html


def test_the_redemption_batch_page_is_translated(root_client):
    html = _page(root_client, BATCH, {}, ZH)
    assert "生成兑换码" in html and "最多 20 个字符" in html
    response = root_client.post(BATCH, {"name": "promo", "quota": "1000", "count": "2"}, **ZH)
    html = response.content.decode()
    assert "已创建 2 个兑换码" in html and "名为 <strong>promo</strong> 的兑换码" in html


def test_the_default_password_banner_is_translated():
    with translation.override("zh-hans"):
        html = render_to_string("admin/oneapi_default_password.html", {"show": True})
    assert "超级管理员仍在使用默认密码 123456" in html
    assert f'<a href="{reverse("admin:password_change")}">立即修改</a>' in html
    with translation.override("en"):
        assert "Root still has the default password" in render_to_string("admin/oneapi_default_password.html",
                                                                           {"show": True})
