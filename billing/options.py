"""Run-time options: one-api's keys, defaults and text encoding.

Values are stored as text (`"true"`, `"500"`, JSON) exactly as one-api stores
them. Reads go through an in-process snapshot refreshed on change, so the relay
never queries the table per request.
"""

from __future__ import annotations

import json
import threading
import time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.utils.translation import gettext

from billing.pricing import DEFAULT_COMPLETION_RATIO, DEFAULT_GROUP_RATIO, DEFAULT_MODEL_RATIO
from oneapi_site.lib import json_depth

DEFAULTS: dict[str, str] = {
    # Accounts
    "PasswordLoginEnabled": "true",
    "PasswordRegisterEnabled": "true",
    "RegisterEnabled": "true",
    "EmailVerificationEnabled": "false",
    "EmailDomainRestrictionEnabled": "false",
    "EmailDomainWhitelist": "gmail.com,163.com,126.com,qq.com,outlook.com,hotmail.com,icloud.com,yahoo.com,foxmail.com",
    "GitHubOAuthEnabled": "false",
    "GitHubClientId": "",
    "GitHubClientSecret": "",
    "OidcEnabled": "false",
    "OidcClientId": "",
    "OidcClientSecret": "",
    "OidcWellKnown": "",
    "OidcAuthorizationEndpoint": "",
    "OidcTokenEndpoint": "",
    "OidcUserinfoEndpoint": "",
    "TurnstileCheckEnabled": "false",
    "TurnstileSiteKey": "",
    "TurnstileSecretKey": "",
    # Mail
    "SMTPServer": "",
    "SMTPPort": "587",
    "SMTPAccount": "",
    "SMTPFrom": "",
    "SMTPToken": "",
    # Branding
    "SystemName": "One API",
    "Logo": "",
    "Footer": "",
    "Notice": "",
    "About": "",
    "HomePageContent": "",
    "ServerAddress": "http://localhost:3000",
    "TopUpLink": "",
    "ChatLink": "",
    # Quota
    "QuotaForNewUser": "0",
    "QuotaForInviter": "0",
    "QuotaForInvitee": "0",
    "QuotaRemindThreshold": "1000",
    "PreConsumedQuota": "500",
    "QuotaPerUnit": "500000",
    "DisplayInCurrencyEnabled": "true",
    "DisplayTokenStatEnabled": "true",
    "ApproximateTokenEnabled": "false",
    "LogConsumeEnabled": "true",
    "ModelRatio": json.dumps(DEFAULT_MODEL_RATIO, indent=2),
    "CompletionRatio": json.dumps(DEFAULT_COMPLETION_RATIO, indent=2),
    "GroupRatio": json.dumps(DEFAULT_GROUP_RATIO, indent=2),
    # Channels
    "RetryTimes": "0",
    "AutomaticDisableChannelEnabled": "false",
    "AutomaticEnableChannelEnabled": "false",
    "ChannelDisableThreshold": "5",
    # Consecutive transient failures (5xx, timeouts, 429) before a channel is disabled; one is never enough.
    "ChannelDisableFailureCount": "5",
}

INT_KEYS = {
    "SMTPPort", "QuotaForNewUser", "QuotaForInviter", "QuotaForInvitee", "QuotaRemindThreshold",
    "PreConsumedQuota", "RetryTimes", "ChannelDisableFailureCount",
}
FLOAT_KEYS = {"QuotaPerUnit", "ChannelDisableThreshold"}
JSON_KEYS = {"ModelRatio", "CompletionRatio", "GroupRatio"}
BOOL_KEYS = {k for k, v in DEFAULTS.items() if v in ("true", "false")}

# Grouped as one-api's settings pages group them.
GROUPS: dict[str, tuple[str, ...]] = {
    "operation": (
        "QuotaPerUnit", "ModelRatio", "CompletionRatio", "GroupRatio", "PreConsumedQuota",
        "QuotaForNewUser", "QuotaForInviter", "QuotaForInvitee", "QuotaRemindThreshold",
        "RetryTimes", "AutomaticDisableChannelEnabled", "AutomaticEnableChannelEnabled",
        "ChannelDisableThreshold", "ChannelDisableFailureCount", "DisplayInCurrencyEnabled", "DisplayTokenStatEnabled",
        "ApproximateTokenEnabled", "LogConsumeEnabled", "TopUpLink", "ChatLink",
    ),
    "system": (
        "PasswordLoginEnabled", "PasswordRegisterEnabled", "RegisterEnabled",
        "EmailVerificationEnabled", "EmailDomainRestrictionEnabled", "EmailDomainWhitelist",
        "SMTPServer", "SMTPPort", "SMTPAccount", "SMTPFrom", "SMTPToken",
        "GitHubOAuthEnabled", "GitHubClientId", "GitHubClientSecret",
        "OidcEnabled", "OidcClientId", "OidcClientSecret", "OidcWellKnown",
        "OidcAuthorizationEndpoint", "OidcTokenEndpoint", "OidcUserinfoEndpoint",
        "TurnstileCheckEnabled", "TurnstileSiteKey", "TurnstileSecretKey", "ServerAddress",
    ),
    "other": ("SystemName", "Logo", "Footer", "Notice", "About", "HomePageContent"),
}


def is_secret(key: str) -> bool:
    """one-api hides keys ending in Token or Secret from GET /api/option/."""
    return key.endswith(("Token", "Secret", "SecretKey"))


class OptionError(ValueError):
    pass


def parse(key: str, raw: str) -> Any:
    """Decode a stored text value to its Python type; OptionError names the key."""
    if key in BOOL_KEYS:
        lowered = str(raw).strip().lower()
        if lowered not in ("true", "false"):
            raise OptionError(gettext("%(key)s must be true or false") % {"key": key})
        return lowered == "true"
    if key in INT_KEYS:
        try:
            return int(str(raw).strip())
        except ValueError:
            raise OptionError(gettext("%(key)s must be a whole number") % {"key": key}) from None
    if key in FLOAT_KEYS:
        try:
            return float(str(raw).strip())
        except ValueError:
            raise OptionError(gettext("%(key)s must be a number") % {"key": key}) from None
    if key in JSON_KEYS:
        try:
            value = json_depth.loads(raw)
        except json.JSONDecodeError as exc:
            raise OptionError(gettext("%(key)s is not valid JSON: %(error)s at line %(line)d column %(column)d")
                              % {"key": key, "error": exc.msg, "line": exc.lineno, "column": exc.colno}) from None
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
            for k, v in value.items()
        ):
            raise OptionError(gettext("%(key)s must be a JSON object of names to non-negative numbers") % {"key": key})
        return value
    return str(raw)


def encode(key: str, value: Any) -> str:
    """The text form one-api stores: bools as "true"/"false", JSON for maps."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


class _Snapshot:
    """The decoded options of this process; swapped whole, read without locks."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {k: parse(k, v) for k, v in DEFAULTS.items()}
        self._lock = threading.Lock()
        # Monotonic time of the last load; -inf: the stored options were never read (monotonic() can be
        # smaller than SYNC_FREQUENCY on a machine that booted minutes ago, so 0 would look fresh).
        self.loaded_at = float("-inf")
        self.stale = False

    def load(self, stored: dict[str, str]) -> None:
        values = {k: parse(k, v) for k, v in DEFAULTS.items()}
        for key, raw in stored.items():
            if key in DEFAULTS:
                try:
                    values[key] = parse(key, raw)
                except OptionError:
                    # A bad stored value must not take the gateway down; keep the default.
                    pass
            else:
                values[key] = raw
        with self._lock:
            self.values = values
            self.loaded_at = time.monotonic()
            self.stale = False

    def mark_stale(self, kind: str) -> None:
        if kind == "options":
            self.stale = True


snapshot = _Snapshot()


def get(key: str) -> Any:
    return snapshot.values.get(key, DEFAULTS.get(key))


def quota_per_unit() -> Decimal:
    """Quota per US$1 (QuotaPerUnit), exact."""
    return Decimal(str(get("QuotaPerUnit") or 500000))


def in_currency() -> bool:
    """Whether people read amounts in US$ rather than quota units (DisplayInCurrencyEnabled)."""
    return bool(get("DisplayInCurrencyEnabled"))


def quota_in_usd(quota: int) -> Decimal:
    """Quota in US$, rounded half up to the micro-dollar: every page and form shows amounts this way."""
    return (Decimal(quota) / quota_per_unit()).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


def reload_from_db() -> None:
    from billing.models import Option

    snapshot.load(dict(Option.objects.values_list("key", "value")))


def ensure_fresh() -> None:
    """For sync callers (pages, /api): reload if never read, changed elsewhere, or older than SYNC_FREQUENCY.

    The relay reloads with its routes; a process serving only pages would otherwise keep the
    defaults it started with, or another instance's old values, until a relay request came.
    """
    from django.conf import settings

    if snapshot.stale or time.monotonic() - snapshot.loaded_at > settings.SYNC_FREQUENCY:
        reload_from_db()


def _listen() -> None:
    from oneapi_site.lib import changes

    changes.subscribe(snapshot.mark_stale)


_listen()
