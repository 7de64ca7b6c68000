"""Writes to channels and the abilities derived from them."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections, connection, transaction
from django.utils.translation import gettext

from accounts.models import User
from billing.models import Log
from billing.services import log_record
from oneapi_site.lib import changes, json_depth, limit_values, numbers
from oneapi_site.lib.errors import ServiceError
from oneapi_site.lib.lengths import items_bounded, text_bounded
from oneapi_site.lib.mail import mail_send
from oneapi_site.lib.timeutil import now_ts
from providers import channel_overrides, masking, outbound_proxy
from providers.adapters import ADAPTERS, adapter_for, secret_config_fields
from providers.adapters.base import ChannelInfo, RequestContext, UpstreamError
from providers.channel_keys import check_key_lines, keys_sync, live_keys, split_keys
from providers.labels import unsupported_reason, unsupported_type_refusal
from providers.models import Ability, Channel, split_list

log = logging.getLogger(__name__)

CHANNEL_FIELDS = (
    "type", "name", "key", "status", "base_url", "models", "group", "tag", "model_mapping", "priority",
    "weight", "config", "system_prompt", "key_mode", "key_rpm_limit", *limit_values.LIMIT_FIELDS,
)


def _as_json_object(value: Any, field: str) -> dict:
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json_depth.loads(value)
        except json.JSONDecodeError as exc:
            raise ServiceError(f"{field} is not valid JSON: {exc.msg}", field=field) from None
        except ValueError:  # a number of more than 4,300 digits: Python refuses to read it
            raise ServiceError(f"{field} is not valid JSON: a number has too many digits", field=field) from None
    if not isinstance(value, dict):
        raise ServiceError(f"{field} must be a JSON object", field=field)
    if json_depth.holds_lone_surrogate(value):  # Python reads "\ud800" from JSON, but it is no text a column holds
        raise ServiceError(f"{field} holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text",
                           field=field)
    if json_depth.holds_nul(value):  # a YAML file's "\0" (the /api parser refuses it first): no jsonb holds it
        raise ServiceError(f"{field} holds a NUL character, which is not text", field=field)
    return value


# Text that goes to TEXT columns, bounded by what it can mean: one key, a long system prompt, not megabytes.
CHANNEL_TEXT_MAX_LENGTH = 65_535
# Keys one create may carry, one per line (one-api sets no limit; the request body's limit, API_MAX_BODY_MB,
# is the other bound). Each becomes a channel with its routes, all in one transaction.
CHANNEL_BATCH_MAX_KEYS = 10_000
_INTEGER_FIELDS = ("priority", "weight", "type", "status")


def _column_max(name: str) -> int:
    return Channel._meta.get_field(name).max_length


def _bounded_list(name: str, value: str) -> str:
    """models or group as stored: the text bounded before it is split, each item fitting the abilities
    column it becomes a route in, and the group list fitting its own column."""
    value = text_bounded(value, field=name, maximum=CHANNEL_TEXT_MAX_LENGTH)
    item_max = Ability._meta.get_field("model" if name == "models" else "group").max_length
    items = items_bounded(split_list(value), field=name, item_maximum=item_max)
    if (twin := case_twin(items)) is not None:
        # MySQL's collation takes them for one route: the second route was a duplicate key there (a 500).
        raise ServiceError(gettext("“%(first)s” and “%(second)s” in %(field)s differ only in letter case; "
                                   "give one of them") % {"field": name, "first": twin[0], "second": twin[1]},
                           field=name)
    joined = ",".join(items)
    return text_bounded(joined, field=name, maximum=_column_max("group")) if name == "group" else joined


def case_twin(names: list[str]) -> tuple[str, str] | None:
    """The first two names that differ only in letter case, if any."""
    seen: dict[str, str] = {}
    for item in names:
        first = seen.setdefault(item.lower(), item)
        if first != item:
            return first, item
    return None


def _clean(fields: dict[str, Any], *, stored_config: dict | None = None) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in CHANNEL_FIELDS or value is None:
            continue
        if name in ("models", "group") and isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        if name in ("models", "group"):
            value = _bounded_list(name, value)
        if name == "tag":
            value = str(value).strip()
        if name in ("name", "base_url", "tag"):
            value = text_bounded(value, field=name, maximum=_column_max(name))
        if name == "system_prompt":
            value = text_bounded(value, field=name, maximum=CHANNEL_TEXT_MAX_LENGTH)
        if name == "key":
            value = str(value)  # bounded key by key: channel_keys on create, as one key on update
        if name == "model_mapping":
            value = _as_json_object(value, name)
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
                raise ServiceError("model_mapping must map model names to model names", field=name)
            items_bounded([*value, *value.values()], field=name,
                          item_maximum=Ability._meta.get_field("model").max_length)
        if name == "config":
            value = _as_json_object(value, name)
            try:
                value = channel_overrides.clean_config(value, stored=stored_config)
            except ValueError as exc:  # the message names the config key and what is wrong
                raise ServiceError(str(exc), field="config") from None
        if name in limit_values.LIMIT_FIELDS or name == "key_rpm_limit":
            value = limit_values.limit_clean(name, value)
        if name in _INTEGER_FIELDS:
            low, high = numbers.column_range(Channel._meta.get_field(name))
            value = numbers.parse_int(value, field=name, minimum=low, maximum=high)
        if name == "type" and value not in ADAPTERS:
            raise ServiceError(unsupported_type_refusal(value), field="type")
        if name == "key_mode":
            value = "" if value in ("single", "") else str(value)
            if value not in Channel.KeyMode.values:
                raise ServiceError("key_mode must be single, round_robin or random", field=name)
        if name == "status" and value not in Channel.Status.values:
            raise ServiceError("status must be 1, 2 or 3", field=name)
        if name == "base_url":
            value = str(value).strip().rstrip("/")
            if value and not value.startswith(("http://", "https://")):
                raise ServiceError("base_url must start with http:// or https://", field=name)
        cleaned[name] = value
    return cleaned


def channel_fields_clean(fields: dict[str, Any]) -> dict[str, Any]:
    """The given channel fields as a create or update would store them (unknown names and None dropped),
    or a ServiceError naming the field; for callers that compare before they write (import_config, batch edits)."""
    return _clean(fields)


def _abilities(channel: Channel) -> list[Ability]:
    """The channel's routes: one per (group, model), as one-api builds them on every save."""
    enabled = channel.status == Channel.Status.ENABLED
    return [Ability(group=group, model=model, channel=channel, enabled=enabled,
                    priority=channel.priority, weight=channel.weight)
            for group in channel.group_list for model in channel.model_list]


def abilities_rebuild(*, channel: Channel) -> None:
    """Replace the channel's routes with the ones its fields give now."""
    Ability.objects.filter(channel=channel).delete()
    Ability.objects.bulk_create(_abilities(channel))


def abilities_rebuild_many(*, channel_ids: list[int]) -> None:
    """Replace the routes of many channels at once (a batch edit): one delete and a few inserts."""
    channels = list(Channel.objects.filter(pk__in=channel_ids))
    Ability.objects.filter(channel_id__in=channel_ids).delete()
    Ability.objects.bulk_create([ability for channel in channels for ability in _abilities(channel)],
                                batch_size=1000)


def channel_keys(text: str) -> list[str]:
    """The keys of a create's key field, one per line (blank lines skipped), each bounded as a key."""
    keys = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if len(keys) > CHANNEL_BATCH_MAX_KEYS:
        raise ServiceError(gettext("key holds %(count)d keys; one batch may create at most %(max)d channels")
                              % {"count": len(keys), "max": CHANNEL_BATCH_MAX_KEYS}, field="key")
    for number, key in enumerate(keys, start=1):
        if len(key) > CHANNEL_TEXT_MAX_LENGTH:  # the message names the line, never the key's text
            raise ServiceError(gettext("key number %(number)d may have at most %(max)d characters")
                                  % {"number": number, "max": CHANNEL_TEXT_MAX_LENGTH}, field="key")
    return keys


@transaction.atomic
def channel_create(**fields: Any) -> list[Channel]:
    """Create a channel; a key field of several lines creates one channel per line (one-api's batch), or
    one channel holding them all when it has a key mode (round-robin or random)."""
    cleaned = _clean(fields)
    if not cleaned.get("name"):
        raise ServiceError("name is required", field="name")
    keys = channel_keys(cleaned.get("key", ""))
    if not keys:
        raise ServiceError("key is required", field="key")
    if cleaned.get("key_mode"):
        check_key_lines(cleaned["key"])
        keys = ["\n".join(keys)]
    created = []
    for key in keys:
        channel = Channel(**{**cleaned, "key": key})
        channel.save()
        keys_sync(channel=channel)  # each key's health row follows its line
        created.append(channel)
    # New channels have no routes to replace: all of them in a few inserts, not a delete and an insert each.
    Ability.objects.bulk_create([ability for channel in created for ability in _abilities(channel)],
                                batch_size=1000)
    changes.publish("channels")
    return created


@transaction.atomic
def channel_update(*, channel: Channel, **fields: Any) -> Channel:
    """Apply the given fields; an omitted or empty key keeps the stored one (one-api)."""
    channel.refresh_from_db()  # the routes rebuilt below follow the status health has left, not a stale one
    cleaned = _clean(fields, stored_config=channel.config or {})
    if not cleaned.get("key", "").strip():
        cleaned.pop("key", None)
    elif cleaned.get("key_mode", channel.key_mode):
        channel_keys(cleaned["key"])  # several keys: each bounded as a key, as on create
    else:
        text_bounded(cleaned["key"], field="key", maximum=CHANNEL_TEXT_MAX_LENGTH)
    if "config" in cleaned:
        # Secret config values are never shown back, so an edit that leaves them empty keeps them.
        stored = channel.config or {}
        for name in secret_config_fields():
            if stored.get(name) and not cleaned["config"].get(name):
                cleaned["config"][name] = stored[name]
    for name, value in cleaned.items():
        setattr(channel, name, value)
    if channel.type not in ADAPTERS:  # a stored type no adapter serves (imported): it must change to save
        raise ServiceError(unsupported_type_refusal(channel.type), field="type")
    if not channel.name:
        raise ServiceError("name is required", field="name")
    was_multi_key = bool(Channel.objects.filter(pk=channel.pk).values_list("key_mode", flat=True).first())
    if channel.multi_key and ("key" in cleaned or "key_mode" in cleaned):
        check_key_lines(channel.key)
        channel.key = "\n".join(channel_keys(channel.key))
        cleaned.setdefault("key", channel.key)
    elif was_multi_key and not channel.multi_key and "key" not in cleaned and len(split_keys(channel.key)) > 1:
        raise ServiceError("a channel of one key cannot keep several keys: give the key it keeps", field="key")
    # The given fields only: the ledger adds to used_quota meanwhile, and tests and balance checks write
    # their own columns; a whole-row save would put back the values this instance was read with.
    channel.save(update_fields=list(cleaned))
    if "key" in cleaned or "key_mode" in cleaned:
        keys_sync(channel=channel)  # each key's health row follows its line
    abilities_rebuild(channel=channel)
    changes.publish("channels")
    return channel


@transaction.atomic
def channel_set_status(*, channel_id: int, status: int) -> bool:
    updated = Channel.objects.filter(pk=channel_id).exclude(status=status).update(status=status)
    Ability.objects.filter(channel_id=channel_id).update(enabled=status == Channel.Status.ENABLED)
    if updated:
        changes.publish("channels")
    return bool(updated)


@transaction.atomic
def channel_delete(*, channel_id: int) -> int:
    deleted, _ = Channel.objects.filter(pk=channel_id).delete()
    changes.publish("channels")
    return deleted


@transaction.atomic
def channels_delete_disabled() -> int:
    ids = list(Channel.objects.exclude(status=Channel.Status.ENABLED).values_list("id", flat=True))
    Channel.objects.filter(pk__in=ids).delete()
    changes.publish("channels")
    return len(ids)


# --- Channel test -------------------------------------------------------------

@dataclass(frozen=True)
class ChannelTestResult:
    success: bool
    message: str
    time: float  # seconds
    model: str


def _test_model(channel: Channel, requested: str | None) -> str:
    models = channel.model_list
    if requested:
        # The test's log keeps the model's name in a column of this size, as routes do.
        limit = Ability._meta.get_field("model").max_length
        if len(requested) > limit:
            raise ServiceError(f"model must be at most {limit} characters", field="model")
        return requested
    # one-api's default, unless the channel does not serve it.
    return "gpt-3.5-turbo" if not models or "gpt-3.5-turbo" in models else models[0]


def _require_adapter(channel: Channel) -> None:
    """A channel of a type without an adapter (imported) cannot be tested or asked its balance: say why."""
    if channel.type not in ADAPTERS:
        raise ServiceError(unsupported_reason(channel.type), field="type")


class NoLiveKey(ServiceError):
    """A multi-key channel has no enabled key to test with: the test fails, saying so."""


def _test_key(channel: Channel, key_index: int | None) -> tuple[str, int | None]:
    """The key a test sends with: a one-key channel's key; of a multi-key channel, line `key_index`, or
    else its first enabled key."""
    if not channel.multi_key:
        return channel.key, None
    keys = split_keys(channel.key)
    if key_index is None:
        live = live_keys(key_text=channel.key, states=channel.key_states.values_list("index", "fingerprint", "status"))
        if not live:
            raise NoLiveKey(gettext("every key of this channel is disabled; disabled keys are tried again "
                                    "one by one after their cooldown"), field="key")
        key_index = live[0][0]
    if not 0 <= key_index < len(keys):
        raise ServiceError(f"the channel has no key number {key_index}", field="index")
    return keys[key_index], key_index


def channel_test_subject(*, channel_id: int, model: str | None = None,
                         key_index: int | None = None) -> tuple[ChannelInfo, str, int | None]:
    """What a channel test sends to (relay/probe.py): the channel as the relay sees it holding one key, the
    model to ask, and the key's line for a multi-key channel (see _test_key)."""
    channel = Channel.objects.filter(pk=channel_id).first()
    if channel is None:
        raise ServiceError("no such channel", field="id")
    _require_adapter(channel)
    model = _test_model(channel, model)
    key, key_index = _test_key(channel, key_index)
    info = ChannelInfo(id=channel.id, type=channel.type, name=channel.name, key=key,
                       base_url=channel.base_url, models=tuple(channel.model_list),
                       model_mapping=dict(channel.model_mapping or {}), config=dict(channel.config or {}),
                       system_prompt="", priority=channel.priority, weight=channel.weight)
    return info, model, key_index


def channel_test_record(*, channel_id: int, model: str, success: bool, message: str,
                        seconds: float) -> ChannelTestResult:
    """Record a channel test (relay/probe.py): its response time and its log line. Switching the channel
    off or back on by the verdict is providers/health.py's."""
    channel = Channel.objects.filter(pk=channel_id).first()
    if channel is None:  # deleted while it was being tested
        raise ServiceError("no such channel", field="id")
    result = ChannelTestResult(success, message, round(seconds, 3), model)
    Channel.objects.filter(pk=channel.pk).update(
        response_time=int(result.time * 1000) if result.success else 0, test_time=now_ts())
    verdict = "passed" if result.success else f"failed: {result.message[:200]}"
    log_record(user_id=0, type=Log.Type.TEST, channel_id=channel.pk, model_name=model,
               elapsed_time=int(result.time * 1000),
               content=f"Channel #{channel.pk} {channel.name} test with {model} {verdict}")
    return result


# --- Health -------------------------------------------------------------------

def _notify_root(subject: str, body: str) -> None:
    emails = list(User.objects.filter(role=User.Role.ROOT, status=User.Status.ENABLED)
                  .exclude(email="").values_list("email", flat=True))
    mail_send(to=emails, subject=subject, body=body)


def channel_auto_switch(*, channel_id: int, enabled: bool, reason: str) -> bool:
    """Take an enabled channel out of rotation (status 3), or bring back one the gateway disabled
    itself; log it and tell root. False when the channel was not in the status it leaves, so a
    channel an operator disabled stays off."""
    leaving, entering = Channel.Status.ENABLED, Channel.Status.AUTO_DISABLED
    if enabled:
        leaving, entering = entering, leaving
    what = "enabled again" if enabled else "disabled"
    with transaction.atomic():
        updated = Channel.objects.filter(pk=channel_id, status=leaving).update(status=entering)
        if not updated:
            return False
        Ability.objects.filter(channel_id=channel_id).update(enabled=enabled)
        name = Channel.objects.filter(pk=channel_id).values_list("name", flat=True).first() or ""
        log_record(user_id=0, type=Log.Type.SYSTEM, channel_id=channel_id,
                   content=f"Channel #{channel_id} {name} was {what} automatically: {reason}")
        changes.publish("channels")
    _notify_root(f"Channel #{channel_id} {name} was {what}",
                 f"oneapi {what} channel #{channel_id} ({name}) automatically.\nReason: {reason}")
    return True


# --- Test every channel, balances ----------------------------------------------

TEST_ALL_LOCK = "oneapi:channel-test-all:lock"
TEST_ALL_PROGRESS = "oneapi:channel-test-all:progress"


def channels_test_all_start(*, scope: str = "all", test: Callable[..., ChannelTestResult],
                            background: bool = True) -> dict:
    """Test every channel (or only the disabled ones) with `test` (relay/probe.channel_test), one run at
    a time across instances.

    The lock lives in the shared cache, so with Redis a second instance (or a second
    click) sees the run in progress instead of starting another.
    """
    if scope not in ("all", "disabled"):
        raise ServiceError("scope must be all or disabled", field="scope")
    if not cache.add(TEST_ALL_LOCK, now_ts(), timeout=6 * 3600):
        return channels_test_progress() or {"running": True}
    channels = Channel.objects.order_by("id")
    if scope == "disabled":
        channels = channels.exclude(status=Channel.Status.ENABLED)
    ids = list(channels.values_list("id", flat=True))
    progress = {"running": True, "scope": scope, "total": len(ids), "done": 0, "passed": 0, "failed": 0,
                "started": now_ts(), "finished": 0}
    cache.set(TEST_ALL_PROGRESS, progress, None)
    if background:
        threading.Thread(target=_test_all, args=(ids, progress, test, True), daemon=True,
                         name="oneapi-test-all").start()
    else:
        _test_all(ids, progress, test, False)
    return progress


def _test_all(ids: list[int], progress: dict, test: Callable[..., ChannelTestResult], own_thread: bool) -> None:
    try:
        for channel_id in ids:
            if own_thread:
                close_old_connections()
            try:
                passed = test(channel_id=channel_id).success
            except Exception:
                log.exception("testing channel %s failed", channel_id)
                passed = False
            progress["done"] += 1
            progress["passed" if passed else "failed"] += 1
            cache.set(TEST_ALL_PROGRESS, progress, None)
            if settings.POLLING_INTERVAL:
                time.sleep(settings.POLLING_INTERVAL)
    finally:
        progress.update(running=False, finished=now_ts())
        cache.set(TEST_ALL_PROGRESS, progress, None)
        cache.delete(TEST_ALL_LOCK)
        if own_thread:
            connection.close()


def channels_test_progress() -> dict | None:
    return cache.get(TEST_ALL_PROGRESS)


def channel_update_balance(*, channel_id: int) -> float:
    """Ask the vendor for the account's balance and store it (one-api's update_balance)."""
    channel = Channel.objects.filter(pk=channel_id).first()
    if channel is None:
        raise ServiceError("no such channel", field="id")
    _require_adapter(channel)
    # A multi-key channel's keys are one account's keys, as a rule: its first key tells the balance.
    key = (split_keys(channel.key) or [""])[0] if channel.multi_key else channel.key
    info = ChannelInfo(id=channel.id, type=channel.type, name=channel.name, key=key,
                       base_url=channel.base_url, models=tuple(channel.model_list), model_mapping={},
                       config=dict(channel.config or {}), system_prompt="", priority=0, weight=0)
    adapter = adapter_for(channel.type)
    requests = adapter.balance_requests(info)
    if not requests:
        raise ServiceError(f"{adapter.label} channels expose no balance", field="type")
    bodies = []
    try:
        proxy = str(info.config.get("proxy") or "") or settings.RELAY_PROXY
        with httpx.Client(timeout=httpx.Timeout(30, connect=10), proxy=outbound_proxy.httpx_proxy(proxy)) as client:
            for request in requests:
                response = client.request(request.method, request.url, headers=request.headers)
                if response.status_code != 200:
                    ctx = RequestContext(channel=info, mode="balance", body={}, stream=False, client_model="")
                    raise adapter.parse_error(ctx, status=response.status_code, body=response.content,
                                              headers=response.headers)
                bodies.append(response.content)
        balance = adapter.balance_usd(info, adapter.parse_balance(bodies))
    except httpx.HTTPError as exc:
        raise ServiceError(f"could not reach the vendor: {type(exc).__name__}") from None
    except UpstreamError as err:  # the vendor answered, and said no: its own words, the key masked out
        raise ServiceError(masking.mask_error(err, adapter.secrets(info)).message) from None
    except (KeyError, IndexError, TypeError, ValueError):
        raise ServiceError("the vendor's balance answer was not understood") from None
    Channel.objects.filter(pk=channel_id).update(balance=balance, balance_updated_time=now_ts())
    return balance


def channels_update_balance_all() -> dict[int, float | str]:
    """Every enabled channel whose vendor exposes a balance; errors are reported per channel."""
    results: dict[int, float | str] = {}
    for channel_id, type_id in Channel.objects.filter(status=Channel.Status.ENABLED).values_list("id", "type"):
        if type_id not in ADAPTERS:
            continue
        try:
            results[channel_id] = channel_update_balance(channel_id=channel_id)
        except ServiceError as exc:
            results[channel_id] = str(exc)
    return results
