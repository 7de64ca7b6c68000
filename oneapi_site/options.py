"""Run-time options: one-api's keys, defaults and text encoding.

Values are stored as text (`"true"`, `"500"`, JSON) exactly as one-api stores
them. Reads go through an in-process snapshot refreshed on change, so the relay
never queries the table per request.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils.translation import gettext

from billing import price_tiers
from billing.models import Option
from billing.ratios import (
    DEFAULT_AUDIO_COMPLETION_RATIO,
    DEFAULT_AUDIO_RATIO,
    DEFAULT_CACHE_RATIO,
    DEFAULT_COMPLETION_RATIO,
    DEFAULT_CREATE_CACHE_RATIO,
    DEFAULT_GROUP_RATIO,
    DEFAULT_IMAGE_RATIO,
    DEFAULT_MODEL_RATIO,
)
from oneapi_site.lib import changes, json_depth, limit_values, numbers
from oneapi_site.lib.errors import ServiceError

log = logging.getLogger("oneapi")

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
    # Logs older than this many days are pruned daily (billing/retention.py); 0 keeps them for ever.
    "LogRetentionDays": "0",
    # Token ids (comma-separated) whose /v1 bodies are captured for debugging (billing/body_capture.py),
    # and how many hours captures are kept.
    "BodyCaptureTokenIds": "",
    "BodyCaptureRetentionHours": "24",
    "ModelRatio": json.dumps(DEFAULT_MODEL_RATIO, indent=2),
    "CompletionRatio": json.dumps(DEFAULT_COMPLETION_RATIO, indent=2),
    "GroupRatio": json.dumps(DEFAULT_GROUP_RATIO, indent=2),
    # new-api's prompt-cache prices, per model, as fractions of the input price (billing/pricing.py).
    "CacheRatio": json.dumps(DEFAULT_CACHE_RATIO, indent=2),
    "CreateCacheRatio": json.dumps(DEFAULT_CREATE_CACHE_RATIO, indent=2),
    # new-api's other price forms (billing/pricing.py): a US$ price per call ({"model": 0.04}), prices by prompt
    # size (billing/price_tiers.py), and audio and image tokens as multiples of the input price.
    "ModelPrice": "{}",
    "ModelTierPricing": "{}",
    "AudioRatio": json.dumps(DEFAULT_AUDIO_RATIO, indent=2),
    "AudioCompletionRatio": json.dumps(DEFAULT_AUDIO_COMPLETION_RATIO, indent=2),
    "ImageRatio": json.dumps(DEFAULT_IMAGE_RATIO, indent=2),
    # Channels
    "RetryTimes": "0",
    "AutomaticDisableChannelEnabled": "false",
    "AutomaticEnableChannelEnabled": "false",
    "ChannelDisableThreshold": "5",
    # Consecutive transient failures (5xx, timeouts, 429) before a channel is disabled; one is never enough.
    "ChannelDisableFailureCount": "5",
    # Aggregate rate limits over all of a group's requests, and over one model's in a group (relay/limits):
    # {"<group>": {"rpm": n, "tpm": n, "concurrency": n, "rpd": n}}, {"<group>": {"<model>": {...}}}.
    "GroupRateLimit": "{}",
    "GroupModelRateLimit": "{}",
}

# The range each number option must hold, both ends included: a value outside is refused when saved, and a
# stored one (an older version's, or typed into the table) falls back to the default. Quota amounts go into
# the BIGINT balance column; the rest are what the setting can sensibly mean.
QUOTA_RANGE = (0, numbers.BIGINT[1])
INT_RANGES: dict[str, tuple[int, int]] = {
    "SMTPPort": (1, 65535),
    "QuotaForNewUser": QUOTA_RANGE,
    "QuotaForInviter": QUOTA_RANGE,
    "QuotaForInvitee": QUOTA_RANGE,
    "QuotaRemindThreshold": QUOTA_RANGE,
    "PreConsumedQuota": QUOTA_RANGE,
    "RetryTimes": (0, 100),  # each retry is one more upstream call the client waits for
    "ChannelDisableFailureCount": (1, 10_000),
    "LogRetentionDays": (0, 36_500),
    "BodyCaptureRetentionHours": (1, 24 * 30),
}
# (minimum, maximum, decimal places). QuotaPerUnit divides every amount shown, so it must be above 0.
DECIMAL_RANGES: dict[str, tuple[Decimal, Decimal, int]] = {
    "QuotaPerUnit": (Decimal("0.000001"), Decimal(10**12), 6),
    "ChannelDisableThreshold": (Decimal(0), Decimal(86_400), 3),  # seconds
}
# Ratios multiply into every charge: at these bounds a million tokens still cost less than the BIGINT
# columns hold (10^4 x 10^4 x 10^4 x 10^6 < 2^63), and a typo such as 1e400 (infinity) never reaches pricing.
RATIO_MAX = 10_000
NAME_MAX_LENGTH = 255  # a model or group name longer than Log.model_name holds never matches a request
TEXT_MAX_LENGTH = 65_535  # one-api's options.value is TEXT; a page or a URL needs far less
INT_KEYS = set(INT_RANGES)
FLOAT_KEYS = set(DECIMAL_RANGES)
LIMIT_KEYS = {"GroupRateLimit", "GroupModelRateLimit"}
LIMIT_KINDS = ("rpm", "tpm", "concurrency", "rpd")
LIMIT_MAX = limit_values.LIMIT_MAX  # what a token's or user's own limit may be
# Names to non-negative numbers; ModelPrice's are US$ a call, up to RATIO_MAX as well.
JSON_KEYS = {"ModelRatio", "CompletionRatio", "GroupRatio", "CacheRatio", "CreateCacheRatio", "ModelPrice",
             "AudioRatio", "AudioCompletionRatio", "ImageRatio"}
# Edited as JSON text, as the ratio maps are: those, the tier table and the rate limits.
JSON_TEXT_KEYS = JSON_KEYS | {"ModelTierPricing"} | LIMIT_KEYS
BOOL_KEYS = {k for k, v in DEFAULTS.items() if v in ("true", "false")}

# Grouped as one-api's settings pages group them.
GROUPS: dict[str, tuple[str, ...]] = {
    "operation": (
        "QuotaPerUnit", "ModelRatio", "CompletionRatio", "CacheRatio", "CreateCacheRatio", "GroupRatio",
        "ModelPrice", "ModelTierPricing", "AudioRatio", "AudioCompletionRatio", "ImageRatio",
        "PreConsumedQuota",
        "QuotaForNewUser", "QuotaForInviter", "QuotaForInvitee", "QuotaRemindThreshold",
        "RetryTimes", "AutomaticDisableChannelEnabled", "AutomaticEnableChannelEnabled",
        "ChannelDisableThreshold", "ChannelDisableFailureCount", "GroupRateLimit", "GroupModelRateLimit",
        "DisplayInCurrencyEnabled", "DisplayTokenStatEnabled",
        "ApproximateTokenEnabled", "LogConsumeEnabled", "LogRetentionDays", "BodyCaptureTokenIds",
        "BodyCaptureRetentionHours", "TopUpLink", "ChatLink",
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


def parse(key: str, raw: str) -> Any:
    """Decode a stored text value to its Python type; a ServiceError names the key (as its field too).
    Numbers are read by the bounded parser (no exponent, no NaN or infinity, within the key's range)
    before any arithmetic."""
    text = str(raw)
    if len(text) > TEXT_MAX_LENGTH:
        raise ServiceError(gettext("%(key)s may have at most %(max)d characters")
                           % {"key": key, "max": TEXT_MAX_LENGTH}, field=key)
    if key in BOOL_KEYS:
        lowered = text.strip().lower()
        if lowered not in ("true", "false"):
            raise ServiceError(gettext("%(key)s must be true or false") % {"key": key}, field=key)
        return lowered == "true"
    if key in INT_RANGES:
        low, high = INT_RANGES[key]
        return numbers.parse_int(text, field=key, minimum=low, maximum=high)
    if key in DECIMAL_RANGES:
        low, high, places = DECIMAL_RANGES[key]
        return float(numbers.parse_decimal(text, field=key, minimum=low, maximum=high, places=places))
    if key in LIMIT_KEYS:
        return _rate_limits(key, text)
    if key in JSON_KEYS:
        return _ratios(key, text)
    if key == "ModelTierPricing":
        return price_tiers.parse(text, key=key)
    if key == "BodyCaptureTokenIds" and not re.fullmatch(r"\s*(\d+\s*(,\s*\d+\s*)*)?,?\s*", text):
        raise ServiceError(gettext("%(key)s must be token ids separated by commas") % {"key": key}, field=key)
    return text


def _load(key: str, text: str) -> Any:
    """The option's JSON, or a ServiceError naming the key and where the JSON breaks; None for a number of more
    than 4,300 digits (Python refuses to read it), which no option holds."""
    try:
        return json_depth.loads(text)
    except json.JSONDecodeError as exc:
        raise ServiceError(gettext("%(key)s is not valid JSON: %(error)s at line %(line)d column %(column)d")
                           % {"key": key, "error": exc.msg, "line": exc.lineno, "column": exc.colno},
                           field=key) from None
    except ValueError:
        return None


def _json_object(key: str, text: str) -> dict:
    value = _load(key, text)
    if not isinstance(value, dict):
        raise ServiceError(gettext("%(key)s must be a JSON object") % {"key": key}, field=key)
    if json_depth.holds_lone_surrogate(value):
        raise ServiceError(gettext("%(key)s holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text")
                           % {"key": key}, field=key)
    return value


def _rate_limits(key: str, text: str) -> dict:
    """GroupRateLimit ({group: limits}) or GroupModelRateLimit ({group: {model: limits}}), each `limits` an
    object of rpm, tpm, concurrency and rpd, whole numbers from 0 (no limit) to LIMIT_MAX."""
    value = _json_object(key, text)
    for group, entry in value.items():
        if key == "GroupModelRateLimit":
            if not isinstance(entry, dict):
                raise ServiceError(gettext('%(key)s "%(group)s" must be an object of model names to limits')
                                   % {"key": key, "group": group[:NAME_MAX_LENGTH]}, field=key)
            for model, limits in entry.items():
                _check_limits(key, f"{group[:NAME_MAX_LENGTH]}/{model[:NAME_MAX_LENGTH]}", limits)
        else:
            _check_limits(key, group[:NAME_MAX_LENGTH], entry)
    return value


def _check_limits(key: str, name: str, limits: Any) -> None:
    if not isinstance(limits, dict):
        raise ServiceError(gettext('%(key)s "%(name)s" must be an object such as {"rpm": 60, "tpm": 100000}')
                           % {"key": key, "name": name}, field=key)
    for kind, number in limits.items():
        if kind not in LIMIT_KINDS:
            raise ServiceError(gettext('%(key)s "%(name)s": unknown limit "%(kind)s" (use rpm, tpm, concurrency '
                                       'or rpd)') % {"key": key, "name": name, "kind": kind[:40]}, field=key)
        if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number <= LIMIT_MAX:
            raise ServiceError(gettext('%(key)s "%(name)s": %(kind)s must be a whole number from 0 to %(max)d')
                               % {"key": key, "name": name, "kind": kind, "max": LIMIT_MAX}, field=key)


def _ratios(key: str, text: str) -> dict[str, float]:
    value = _load(key, text)
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in value.items()
    ):
        raise ServiceError(gettext("%(key)s must be a JSON object of names to non-negative numbers")
                           % {"key": key}, field=key)
    if json_depth.holds_lone_surrogate(value):  # Python reads "\ud800" from JSON; no page or column holds it
        raise ServiceError(gettext("%(key)s holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text")
                           % {"key": key}, field=key)
    for name, ratio in value.items():
        field = f'{key} "{name[:NAME_MAX_LENGTH]}"'
        if len(name) > NAME_MAX_LENGTH:
            raise ServiceError(gettext("%(field)s: a name may have at most %(max)d characters")
                               % {"field": field, "max": NAME_MAX_LENGTH}, field=key)
        try:
            numbers.parse_decimal(ratio, field=field, minimum=0, maximum=RATIO_MAX)
        except ServiceError as exc:  # the message names the entry; the field stays the option
            raise ServiceError(str(exc), field=key, code=exc.code) from None
    return value


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
                except ServiceError as exc:
                    # A bad stored value must not take the gateway down; keep the default. The message names
                    # the key and what is wrong, never the value (some options are secrets).
                    log.warning("option %s: the stored value is refused (%s); using the default", key, exc)
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


def reload_from_db() -> None:
    snapshot.load(dict(Option.objects.values_list("key", "value")))


def ensure_fresh() -> None:
    """For sync callers (pages, /api): reload if never read, changed elsewhere, or older than SYNC_FREQUENCY.

    The relay reloads with its routes; a process serving only pages would otherwise keep the
    defaults it started with, or another instance's old values, until a relay request came.
    """
    if snapshot.stale or time.monotonic() - snapshot.loaded_at > settings.SYNC_FREQUENCY:
        reload_from_db()


changes.subscribe(snapshot.mark_stale)
