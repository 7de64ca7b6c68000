"""Public pages: GET /api/status, /api/notice, /api/about, /api/home_page_content."""

from __future__ import annotations

import os

from accounts.api.session import PublicView
from oneapi_site import options
from oneapi_site.api import ok
from oneapi_site.lib.timeutil import now_ts

VERSION = os.environ.get("ONEAPI_VERSION", "v0.1.0")
START_TIME = now_ts()  # one-api reports when the process started


class StatusView(PublicView):
    """What the web pages need before login (one-api's GetStatus)."""

    def get(self, request):
        get = options.get
        return ok({
            "version": VERSION,
            "start_time": START_TIME,
            "email_verification": get("EmailVerificationEnabled"),
            "github_oauth": get("GitHubOAuthEnabled"),
            "github_client_id": get("GitHubClientId"),
            "lark_client_id": get("LarkClientId") or "",
            "system_name": get("SystemName"),
            "logo": get("Logo"),
            "footer_html": get("Footer"),
            "wechat_qrcode": get("WeChatAccountQRCodeImageURL") or "",
            "wechat_login": bool(get("WeChatAuthEnabled")),
            "server_address": get("ServerAddress"),
            "turnstile_check": get("TurnstileCheckEnabled"),
            "turnstile_site_key": get("TurnstileSiteKey"),
            "top_up_link": get("TopUpLink"),
            "chat_link": get("ChatLink"),
            "quota_per_unit": get("QuotaPerUnit"),
            "display_in_currency": get("DisplayInCurrencyEnabled"),
            "oidc": get("OidcEnabled"),
            "oidc_client_id": get("OidcClientId"),
            "oidc_well_known": get("OidcWellKnown"),
            "oidc_authorization_endpoint": get("OidcAuthorizationEndpoint"),
            "oidc_token_endpoint": get("OidcTokenEndpoint"),
            "oidc_userinfo_endpoint": get("OidcUserinfoEndpoint"),
        })


class OptionTextView(PublicView):
    key = ""

    def get(self, request):
        return ok(options.get(self.key) or "")


class NoticeView(OptionTextView):
    key = "Notice"


class AboutView(OptionTextView):
    key = "About"


class HomePageContentView(OptionTextView):
    key = "HomePageContent"
