"""One source row into our model's fields: pure functions, each noting in the report what it could not carry.

Column names and meanings are one-api's GORM models (model/user.go, token.go, channel.go, redemption.go,
log.go) and new-api's additions to them; ids are kept so token.user_id and log.channel_id stay right.
"""

from __future__ import annotations

import json
from typing import Any

from accounts.hashers import from_oneapi
from accounts.models import Token, User
from billing.models import Log, RedemptionCode
from oneapi_site.importer.report import Report
from oneapi_site.lib import json_depth, numbers
from providers import channel_overrides
from providers.channel_keys import new_api_key_states, split_keys
from providers.labels import unsupported_reason
from providers.models import Ability, Channel, split_list
from providers.oneapi_other import OTHER_AS_CONFIG

# one-api's ChannelConfig (model/channel.go): the keys our adapters read by the same names.
CONFIG_KEYS = ("region", "sk", "ak", "user_id", "api_version", "library_id", "plugin", "vertex_ai_project_id",
               "vertex_ai_adc")

# new-api's channel columns the channel's config takes by the same names (with its setting's proxy).
NEW_API_OVERRIDES = ("param_override", "header_override")

# Columns each table carries (or reads to decide); any other column holding a value is reported as dropped.
CARRIED = {
    "users": {"id", "username", "password", "display_name", "role", "status", "email", "github_id", "oidc_id",
              "access_token", "quota", "used_quota", "request_count", "group", "aff_code", "inviter_id",
              "deleted_at"},
    "tokens": {"id", "user_id", "key", "status", "name", "created_time", "accessed_time", "expired_time",
               "remain_quota", "unlimited_quota", "used_quota", "models", "subnet", "model_limits_enabled",
               "model_limits", "allow_ips", "deleted_at"},
    "channels": {"id", "type", "key", "status", "name", "weight", "created_time", "test_time", "response_time",
                 "base_url", "other", "balance", "balance_updated_time", "models", "group", "used_quota",
                 "model_mapping", "priority", "config", "system_prompt", "tag", "channel_info", "setting",
                 *NEW_API_OVERRIDES},
    "redemptions": {"id", "user_id", "key", "status", "name", "quota", "created_time", "redeemed_time",
                    "used_user_id", "deleted_at"},
    "logs": {"id", "user_id", "created_at", "type", "content", "username", "token_name", "model_name", "quota",
             "prompt_tokens", "completion_tokens", "channel_id", "request_id", "elapsed_time", "is_stream",
             "system_prompt_reset", "token_id", "use_time"},
}


def text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray, memoryview)):  # source.py's rows replace NUL in str values only
        return bytes(value).decode("utf-8", "replace").replace("\x00", "\ufffd")
    return str(value)


def without_nul(value: Any) -> Any:
    """Parsed JSON with each NUL ("\\u0000") in its strings as U+FFFD, as source.py does for the columns'
    text: PostgreSQL stores none in text or jsonb."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    return value


def whole(value: Any, default: int = 0, *, bounds: tuple[int, int] = numbers.BIGINT) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    except OverflowError:  # an infinity, which a SQLite column may hold: as far as the bounds go
        return bounds[1] if value > 0 else bounds[0]
    return min(max(number, bounds[0]), bounds[1])


def flag(value: Any) -> bool:
    if isinstance(value, (bytes, bytearray)):  # MySQL's bit(1)
        return any(value)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "t")
    return bool(value)


def _max(model, name: str) -> int:
    return model._meta.get_field(name).max_length


def _bounded(value: Any, model, name: str, report: Report, table: str, example: str) -> str:
    value = text(value).strip()
    limit = _max(model, name)
    if len(value) > limit:
        report.note(table, f"{name} cut to {limit} characters", example)
        value = value[:limit]
    return value


def report_dropped(table: str, row: dict[str, Any], report: Report) -> None:
    for column, value in row.items():
        if column in CARRIED[table] or value in (None, "", 0, False, b"", "{}", "[]", "null"):
            continue
        report.drop(table, column)


def _role(value: Any) -> int:
    role = whole(value, 1)
    if role >= User.Role.ROOT:
        return User.Role.ROOT
    return User.Role.ADMIN if role >= User.Role.ADMIN else User.Role.COMMON


def user_fields(row: dict[str, Any], report: Report) -> dict[str, Any]:
    example = f"user {row['id']} ({text(row.get('username'))})"
    status = whole(row.get("status"), 1)
    if status not in User.Status.values:
        status = User.Status.DISABLED
    if row.get("deleted_at"):  # new-api deletes softly
        status = User.Status.DELETED
    password = from_oneapi(text(row.get("password")))
    if password is None:
        report.note("users", "no bcrypt password hash: signs in by another way or resets the password", example)
    aff_code = text(row.get("aff_code")).strip() or None
    if aff_code and len(aff_code) > _max(User, "aff_code"):
        report.note("users", "aff code longer than 16 characters: not carried", example)
        aff_code = None
    access_token = text(row.get("access_token")).strip() or None
    return {
        "id": whole(row["id"]),
        "username": _bounded(row.get("username"), User, "username", report, "users", example),
        "password": password,
        "display_name": _bounded(row.get("display_name"), User, "display_name", report, "users", example),
        "email": _bounded(row.get("email"), User, "email", report, "users", example),
        "role": _role(row.get("role")),
        "status": status,
        "group": _bounded(row.get("group") or "default", User, "group", report, "users", example),
        "quota": whole(row.get("quota")),
        "used_quota": whole(row.get("used_quota")),
        "request_count": whole(row.get("request_count")),
        "access_token": access_token if access_token and len(access_token) <= _max(User, "access_token") else None,
        "aff_code": aff_code,
        "inviter_id": whole(row.get("inviter_id")),
        "github_id": _bounded(row.get("github_id"), User, "github_id", report, "users", example),
        "oidc_id": _bounded(row.get("oidc_id"), User, "oidc_id", report, "users", example),
    }


def _comma_list(value: Any) -> str:
    return ",".join(split_list(text(value).replace("\n", ",")))


def token_fields(row: dict[str, Any], report: Report) -> dict[str, Any] | None:
    example = f"token {row['id']} ({text(row.get('name'))})"
    if row.get("deleted_at"):
        report.skip("tokens", "deleted in new-api", example)
        return None
    key = text(row.get("key")).strip().removeprefix("sk-")
    if not key or len(key) > _max(Token, "key"):
        report.skip("tokens", "no key, or a key longer than 64 characters", example)
        return None
    status = whole(row.get("status"), 1)
    models = text(row.get("models"))
    if "model_limits_enabled" in row:  # new-api: an allow-list that is on or off
        models = text(row.get("model_limits")) if flag(row.get("model_limits_enabled")) else ""
    subnet = text(row.get("subnet")) or text(row.get("allow_ips"))
    return {
        "id": whole(row["id"]),
        "user_id": whole(row.get("user_id")),
        "key": key,
        "status": status if status in Token.Status.values else Token.Status.DISABLED,
        "name": _bounded(row.get("name"), Token, "name", report, "tokens", example),
        "created_time": whole(row.get("created_time")),
        "accessed_time": whole(row.get("accessed_time")),
        "expired_time": whole(row.get("expired_time"), -1),
        "remain_quota": whole(row.get("remain_quota")),
        "unlimited_quota": flag(row.get("unlimited_quota")),
        "used_quota": whole(row.get("used_quota")),
        "models": _comma_list(models),
        "subnet": _comma_list(subnet),
    }


def channel_info(row: dict[str, Any]) -> Any:
    """new-api's channel_info, parsed, for new_api_key_states (None when it is no JSON)."""
    raw = row.get("channel_info")
    if isinstance(raw, (str, bytes)):
        try:
            return without_nul(json.loads(raw or "{}"))
        except (ValueError, RecursionError):
            return None
    return without_nul(raw)


def _json_object(value: Any, column: str, report: Report, example: str) -> dict:
    raw = text(value).strip()
    if not raw:
        return {}
    try:
        parsed = without_nul(json.loads(raw))
    except (ValueError, RecursionError):  # RecursionError: JSON nested past Python's limit
        report.note("channels", f"{column} is not JSON: not carried", example)
        return {}
    if not isinstance(parsed, dict):
        report.note("channels", f"{column} is not a JSON object: not carried", example)
        return {}
    return parsed


def _model_mapping(row: dict[str, Any], report: Report, example: str) -> dict[str, str]:
    mapping = _json_object(row.get("model_mapping"), "model_mapping", report, example)
    limit = Log._meta.get_field("model_name").max_length
    kept = {k: v for k, v in mapping.items() if isinstance(v, str) and v and len(k) <= limit and len(v) <= limit}
    if len(kept) != len(mapping):
        report.note("channels", "model_mapping entries that are not model name to model name: dropped", example)
    return kept


def _new_api_overrides(row: dict[str, Any], report: Report, example: str) -> dict[str, Any]:
    """new-api's param_override and header_override columns and its setting's proxy, which the channel's config
    takes by the same names and in the same format (providers/channel_overrides.py), checked as a save checks
    them: one this gateway would refuse is left out and named, rather than failing every request of the channel."""
    found: dict[str, Any] = {name: text(row.get(name)).strip() for name in NEW_API_OVERRIDES}
    setting = _json_object(row.get("setting"), "setting", report, example)
    for name, value in setting.items():
        if name != "proxy" and value not in (None, "", False, 0):
            report.drop("channels", f"setting.{name}")
    found["proxy"] = setting.get("proxy")
    carried: dict[str, Any] = {}
    for name, value in found.items():
        if value in (None, ""):
            continue
        try:
            checked = channel_overrides.clean_config({name: value})
        except ValueError:  # OverrideInvalid, ProxyInvalid
            checked = None
        if checked is None or json_depth.holds_nul(checked):  # no jsonb column holds a NUL
            report.note("channels", f"{name} left out, as this gateway would refuse it", example)
            continue
        carried.update(checked)
    return carried


def _config(row: dict[str, Any], channel_type: int, report: Report, example: str) -> dict[str, Any]:
    raw = _json_object(row.get("config"), "config", report, example)
    config = {k: str(v) for k, v in raw.items() if k in CONFIG_KEYS and v not in (None, "")}
    for name in raw.keys() - set(CONFIG_KEYS):
        if raw[name] not in (None, "", False, 0):
            report.drop("channels", f"config.{name}")
    other = text(row.get("other")).strip()
    if other:
        name = OTHER_AS_CONFIG.get(channel_type)
        if name:
            config.setdefault(name, other)
        else:
            report.drop("channels", "other")
    config.update(_new_api_overrides(row, report, example))
    return config


def _route_names(value: Any, column: str, report: Report, example: str) -> str:
    """A comma list of models or groups without the names too long for a route (Ability's column): SQLite
    sources hold any length, and one such name stopped the import on MariaDB and PostgreSQL."""
    limit = _max(Ability, column)
    names = split_list(text(value).replace("\n", ","))
    kept = [name for name in names if len(name) <= limit]
    if len(kept) < len(names):
        report.note("channels", f"{column} names too long for a route (over {limit} characters): left out", example)
    # MySQL's collation takes "gpt-4o" and "GPT-4o" for one route (a duplicate key); the channel checks refuse them.
    once, folded = [], set()
    for name in kept:
        if name.lower() not in folded:
            folded.add(name.lower())
            once.append(name)
    if len(once) < len(kept):
        report.note("channels", f"{column} names that differ only in letter case from one before: left out", example)
    return ",".join(once)


def channel_fields(row: dict[str, Any], report: Report) -> dict[str, Any]:
    example = f"channel {row['id']} ({text(row.get('name'))})"
    channel_type = whole(row.get("type"), 0, bounds=numbers.INT)
    key = text(row.get("key"))
    status = whole(row.get("status"), 1)
    if status not in Channel.Status.values:
        status = Channel.Status.MANUALLY_DISABLED
    # new-api's multi-key channel is one of ours: its mode, and each key's state after the write (run.py).
    key_mode, _ = new_api_key_states(channel_info(row))
    # Kept out of routing, whatever the source said: a type no adapter serves (the console and /api/channel/
    # say why, providers/labels.py), or several keys in one channel that does not say it holds several, which
    # would go out as one key.
    if reason := unsupported_reason(channel_type):
        report.note("channels", f"kept disabled: {reason}", example)
    elif not key_mode and len([line for line in key.splitlines() if line.strip()]) > 1:
        reason = ("kept disabled: the key holds several keys in a channel of one key; set its key_mode to "
                  "round_robin (or random) to take them in turn, or give each its channel")
        report.note("channels", reason, example)
    if reason:
        status = Channel.Status.MANUALLY_DISABLED
    group = _route_names(row.get("group"), "group", report, example) or "default"
    return {
        "id": whole(row["id"]),
        "type": channel_type,
        "name": _bounded(row.get("name"), Channel, "name", report, "channels", example) or f"channel {row['id']}",
        "key": "\n".join(split_keys(key)) if key_mode else key.strip(),
        "key_mode": key_mode,
        "status": status,
        "base_url": _bounded(text(row.get("base_url")).strip().rstrip("/"), Channel, "base_url", report,
                             "channels", example),
        "models": _route_names(row.get("models"), "model", report, example),
        "group": group[:_max(Channel, "group")],
        "tag": _bounded(row.get("tag"), Channel, "tag", report, "channels", example),  # new-api's
        "model_mapping": _model_mapping(row, report, example),
        "priority": whole(row.get("priority")),
        "weight": whole(row.get("weight"), bounds=(0, numbers.INT[1])),
        "config": _config(row, channel_type, report, example),
        "system_prompt": text(row.get("system_prompt")),
        "response_time": whole(row.get("response_time"), bounds=numbers.INT),
        "test_time": whole(row.get("test_time")),
        "balance": float(row.get("balance") or 0),
        "balance_updated_time": whole(row.get("balance_updated_time")),
        "used_quota": whole(row.get("used_quota")),
        "created_time": whole(row.get("created_time")),
    }


def redemption_fields(row: dict[str, Any], report: Report, user_ids: set[int]) -> dict[str, Any] | None:
    example = f"redemption {row['id']} ({text(row.get('name'))})"
    if row.get("deleted_at"):
        report.skip("redemptions", "deleted in new-api", example)
        return None
    key = text(row.get("key")).strip()
    if not key or len(key) > _max(RedemptionCode, "key"):
        report.skip("redemptions", "no key, or a key longer than 32 characters", example)
        return None
    status = whole(row.get("status"), 1)
    creator, redeemer = whole(row.get("user_id")), whole(row.get("used_user_id"))
    return {
        "id": whole(row["id"]),
        "user_id": creator if creator in user_ids else None,
        "key": key,
        "status": status if status in RedemptionCode.Status.values else RedemptionCode.Status.DISABLED,
        "name": _bounded(row.get("name"), RedemptionCode, "name", report, "redemptions", example),
        "quota": whole(row.get("quota")),
        "created_time": whole(row.get("created_time")),
        "redeemed_time": whole(row.get("redeemed_time")),
        "redeemed_by_id": redeemer if redeemer in user_ids else None,
    }


def _cut(value: Any, name: str) -> str:
    return text(value)[:_max(Log, name)]


def log_fields(row: dict[str, Any]) -> dict[str, Any]:
    elapsed = row.get("elapsed_time")
    if elapsed is None and row.get("use_time") is not None:  # new-api counts whole seconds
        elapsed = whole(row.get("use_time")) * 1000
    log_type = whole(row.get("type"))
    return {
        "id": whole(row["id"]),
        "user_id": whole(row.get("user_id")),
        "created_at": whole(row.get("created_at")),
        "type": log_type if log_type in Log.Type.values else Log.Type.UNKNOWN,
        "content": text(row.get("content")),
        "username": _cut(row.get("username"), "username"),
        "token_id": whole(row.get("token_id")),
        "token_name": _cut(row.get("token_name"), "token_name"),
        "model_name": _cut(row.get("model_name"), "model_name"),
        "quota": whole(row.get("quota")),
        "prompt_tokens": whole(row.get("prompt_tokens"), bounds=numbers.INT),
        "completion_tokens": whole(row.get("completion_tokens"), bounds=numbers.INT),
        "channel_id": whole(row.get("channel_id")),
        "request_id": _cut(row.get("request_id"), "request_id"),
        "elapsed_time": whole(elapsed, bounds=numbers.INT),
        "is_stream": flag(row.get("is_stream")),
        "system_prompt_reset": flag(row.get("system_prompt_reset")),
    }
