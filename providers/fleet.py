"""Writes over many channels at once: batch edits by selection or tag, copies, deleting the auto-disabled,
and the models an upstream lists set beside the channel's own list.

Each batch is one transaction that rebuilds the routes it changes (services.abilities_rebuild_many) and tells
the relay caches once, however many channels it touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext

from oneapi_site.lib import changes, numbers
from oneapi_site.lib.errors import ServiceError
from oneapi_site.lib.lengths import text_bounded
from oneapi_site.lib.timeutil import now_ts
from providers import channel_keys, masking, outbound_proxy, services
from providers.adapters import ADAPTERS, adapter_for
from providers.adapters.base import ChannelInfo, RequestContext, UpstreamError
from providers.labels import unsupported_type_refusal
from providers.models import Ability, Channel, split_list

# What a batch does: status, routing numbers, list fields (replace, add or remove items), the tag, or delete.
BATCH_ACTIONS = ("enable", "disable", "priority", "weight", "groups", "models", "tag", "delete")
LIST_MODES = ("replace", "add", "remove")
# As many channels as one create may make (services.CHANNEL_BATCH_MAX_KEYS): a fleet is edited in one go.
BATCH_MAX_IDS = services.CHANNEL_BATCH_MAX_KEYS
COPY_SUFFIX = "_copy"


def channel_ids_select(*, ids: Any = None, tag: Any = None) -> list[int]:
    """The ids of the channels a batch names: given ids that exist, or every channel with the tag."""
    if ids is not None and tag not in (None, ""):
        raise ServiceError(gettext("give ids or tag, not both"), field="ids")
    if ids is not None:
        if not isinstance(ids, list | tuple) or not all(type(i) is int for i in ids):
            raise ServiceError(gettext("ids must be a list of channel ids"), field="ids")
        # An id past the column's range is no channel; the database would fail on it rather than say so.
        ids = [i for i in ids if numbers.BIGINT[0] <= i <= numbers.BIGINT[1]]
        if len(ids) > BATCH_MAX_IDS:
            raise ServiceError(gettext("a batch may name at most %(max)d channels") % {"max": BATCH_MAX_IDS},
                               field="ids")
        return sorted(Channel.objects.filter(pk__in=ids).values_list("id", flat=True))
    if isinstance(tag, str) and tag.strip():
        return sorted(Channel.objects.filter(tag=tag.strip()).values_list("id", flat=True))
    raise ServiceError(gettext("name the channels: ids or tag"), field="ids")


def _items(value: Any, field: str) -> list[str]:
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return split_list(",".join(value))
    if isinstance(value, str):
        return split_list(value)
    raise ServiceError(gettext("%(field)s must be a comma-separated text or a list of names") % {"field": field},
                       field="value")


def _edit_list(ids: list[int], column: str, value: Any, mode: str) -> None:
    """models or group of each channel replaced by, extended with, or cleared of the given items."""
    if mode not in LIST_MODES:
        raise ServiceError(gettext("mode must be replace, add or remove"), field="mode")
    items = _items(value, column)
    for channel in Channel.objects.filter(pk__in=ids).only("id", column):
        current = split_list(getattr(channel, column))
        if mode == "replace":
            wanted = items
        elif mode == "add":
            wanted = split_list(",".join([*current, *items]))
        else:
            wanted = [item for item in current if item not in items]
        if column == "group" and not wanted:
            raise ServiceError(gettext("channel #%(id)d would be left in no group") % {"id": channel.pk},
                               field="value")
        text = services.channel_fields_clean({column: ",".join(wanted)})[column]
        if text != getattr(channel, column):
            Channel.objects.filter(pk=channel.pk).update(**{column: text})


def _number(action: str, value: Any) -> int:
    if value is None or value == "":
        raise ServiceError(gettext("%(action)s needs a value") % {"action": action}, field="value")
    return services.channel_fields_clean({action: value})[action]


def _apply(ids: list[int], action: str, value: Any, mode: str) -> int:
    """One batch action on existing channels, inside the caller's transaction; the count it changed."""
    channels = Channel.objects.filter(pk__in=ids)
    if action in ("enable", "disable"):
        status = Channel.Status.ENABLED if action == "enable" else Channel.Status.MANUALLY_DISABLED
        changed = channels.exclude(status=status).update(status=status)
        Ability.objects.filter(channel_id__in=ids).update(enabled=status == Channel.Status.ENABLED)
        return changed
    if action in ("priority", "weight"):
        number = _number(action, value)
        channels.update(**{action: number})
        Ability.objects.filter(channel_id__in=ids).update(**{action: number})
        return len(ids)
    if action in ("groups", "models"):
        _edit_list(ids, "group" if action == "groups" else "models", value, mode)
        services.abilities_rebuild_many(channel_ids=ids)
        return len(ids)
    if action == "tag":
        if value is not None and not isinstance(value, str):
            raise ServiceError(gettext("the tag must be text"), field="value")
        tag = services.channel_fields_clean({"tag": value or ""})["tag"]
        return channels.update(tag=tag)
    if action == "delete":
        return channels.delete()[1].get(Channel._meta.label, 0)
    raise ServiceError(gettext("action must be one of: %(actions)s") % {"actions": ", ".join(BATCH_ACTIONS)},
                       field="action")


@transaction.atomic
def channels_batch(*, action: str, ids: Any = None, tag: Any = None, value: Any = None,
                   mode: str = "replace") -> int:
    """Apply `action` to the channels named by ids or tag; the number of channels it changed."""
    if action not in BATCH_ACTIONS:
        raise ServiceError(gettext("action must be one of: %(actions)s") % {"actions": ", ".join(BATCH_ACTIONS)},
                           field="action")
    selected = channel_ids_select(ids=ids, tag=tag)
    if not selected:
        return 0
    changed = _apply(selected, action, value, mode)
    changes.publish("channels")
    return changed


@transaction.atomic
def channels_tag_edit(*, tag: Any, new_tag: Any = None, priority: Any = None, weight: Any = None,
                      models: Any = None, groups: Any = None, model_mapping: Any = None) -> int:
    """new-api's edit of a tag's channels: each field given replaces that field on all of them."""
    selected = channel_ids_select(tag=tag)
    if not selected:
        return 0
    for action, value in (("priority", priority), ("weight", weight)):
        if value not in (None, ""):
            _apply(selected, action, value, "replace")
    for action, value in (("models", models), ("groups", groups)):
        if value not in (None, ""):
            _apply(selected, action, value, "replace")
    if model_mapping not in (None, ""):
        mapping = services.channel_fields_clean({"model_mapping": model_mapping})["model_mapping"]
        Channel.objects.filter(pk__in=selected).update(model_mapping=mapping)
    if new_tag not in (None, ""):
        _apply(selected, "tag", new_tag, "replace")
    changes.publish("channels")
    return len(selected)


def tag_models(*, tag: str) -> str:
    """new-api's models of a tag: the longest model list among its channels, as stored."""
    lists = Channel.objects.filter(tag=tag).values_list("models", flat=True)
    return max(lists, key=lambda text: len(split_list(text)), default="")


def tags() -> list[str]:
    return sorted(t for t in Channel.objects.exclude(tag="").values_list("tag", flat=True).distinct())


# --- Copy, delete the auto-disabled -------------------------------------------------------------------

# Per-channel history a copy starts without: it has never been tested, nor used when balances are reset.
_FRESH = {"response_time": 0, "test_time": 0}
_SPENT = {"balance": 0, "balance_updated_time": 0, "used_quota": 0}


@transaction.atomic
def channel_copy(*, channel_id: int, suffix: str = COPY_SUFFIX, reset_balance: bool = True) -> Channel:
    """A new channel with the source's key, settings and routes, named with `suffix` (new-api's copy)."""
    source = Channel.objects.filter(pk=channel_id).first()
    if source is None:
        raise ServiceError(gettext("no such channel"), field="id")
    if source.type not in ADAPTERS:
        raise ServiceError(unsupported_type_refusal(source.type), field="type")
    fields = {f.attname: getattr(source, f.attname) for f in Channel._meta.concrete_fields if not f.primary_key}
    fields.update(_FRESH, created_time=now_ts(), **(_SPENT if reset_balance else {}))
    fields["name"] = text_bounded(source.name + (suffix or ""), field="name",
                                  maximum=Channel._meta.get_field("name").max_length)
    copy = Channel.objects.create(**fields)
    channel_keys.keys_sync(channel=copy)  # each key's own state: without it a dead key never goes alone
    services.abilities_rebuild(channel=copy)
    changes.publish("channels")
    return copy


@transaction.atomic
def channels_delete_auto_disabled() -> int:
    """Delete the channels health took out of rotation (status 3); those an operator parked stay."""
    ids = list(Channel.objects.filter(status=Channel.Status.AUTO_DISABLED).values_list("id", flat=True))
    if ids:
        Channel.objects.filter(pk__in=ids).delete()
        changes.publish("channels")
    return len(ids)


# --- The models an upstream lists ---------------------------------------------------------------------

@dataclass(frozen=True)
class ModelListDiff:
    upstream: list[str]  # as the vendor lists them
    current: list[str]  # the channel's models
    added: list[str]  # listed upstream, not served by the channel
    missing: list[str]  # served by the channel (after its mapping), not listed upstream


def model_list_diff(*, upstream: Iterable[str], current: list[str], mapping: dict) -> ModelListDiff:
    upstream = list(dict.fromkeys(upstream))
    listed, served = set(upstream), set(current) | set((mapping or {}).values())
    return ModelListDiff(upstream=upstream, current=list(current),
                         added=[m for m in upstream if m not in served],
                         missing=[m for m in current if (mapping or {}).get(m, m) not in listed])


# A model list is kilobytes (OpenRouter's, the longest, about a megabyte with its descriptions); past this the
# upstream is not sending one, and reading on would only fill the memory.
MODEL_LIST_MAX_BYTES = 16 * 1024 * 1024


def _get_bounded(request, *, proxy: str) -> tuple[int, httpx.Headers, bytes]:
    with httpx.Client(timeout=httpx.Timeout(30, connect=10), proxy=outbound_proxy.httpx_proxy(proxy)) as client, \
            client.stream(request.method, request.url, headers=request.headers) as response:
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MODEL_LIST_MAX_BYTES:
                raise ServiceError(gettext("the vendor's model list is larger than %(mb)d MB")
                                   % {"mb": MODEL_LIST_MAX_BYTES // (1024 * 1024)})
            chunks.append(chunk)
        return response.status_code, response.headers, b"".join(chunks)


def channel_fetch_models(*, channel_id: int) -> ModelListDiff:
    """Ask the vendor which models the channel's key may use, and set them beside the channel's list."""
    info, _, _ = services.channel_test_subject(channel_id=channel_id)
    names = _upstream_models(info)
    return model_list_diff(upstream=names, current=list(info.models), mapping=info.model_mapping)


def models_fetch(*, type: Any, key: Any, base_url: Any = "", config: Any = None) -> list[str]:
    """The models an upstream lists for a channel not saved yet (new-api's POST /api/channel/fetch_models)."""
    fields = services.channel_fields_clean({"type": type, "base_url": base_url or "", "config": config or {}})
    if "type" not in fields:
        raise ServiceError(gettext("type is required"), field="type")
    if not isinstance(key, str) or not key.strip():
        raise ServiceError(gettext("key is required"), field="key")
    info = ChannelInfo(id=0, type=fields["type"], name="", key=key.strip(), base_url=fields["base_url"], models=(),
                       model_mapping={}, config=fields["config"], system_prompt="", priority=0, weight=0)
    return _upstream_models(info)


def _upstream_models(info: ChannelInfo) -> list[str]:
    adapter = adapter_for(info.type)
    request = adapter.model_list_request(info)
    if request is None:
        raise ServiceError(gettext("%(type)s channels do not list their models") % {"type": adapter.label},
                           field="type")
    try:
        # The channel's way out, as its requests and balance queries take it (providers/outbound_proxy.py).
        status, headers, body = _get_bounded(request, proxy=str(info.config.get("proxy") or "")
                                             or settings.RELAY_PROXY)
        if status != 200:
            ctx = RequestContext(channel=info, mode="models", body={}, stream=False, client_model="")
            raise adapter.parse_error(ctx, status=status, body=body, headers=headers)
        return list(dict.fromkeys(adapter.parse_model_list(body)))
    except ServiceError:  # said already (a ValueError, so ahead of the clause that reads a bad list)
        raise
    except httpx.HTTPError as exc:
        raise ServiceError(gettext("could not reach the vendor: %(error)s") % {"error": type(exc).__name__}) \
            from None
    except UpstreamError as err:  # the vendor said no: its own words, the key masked out
        raise ServiceError(masking.mask_error(err, adapter.secrets(info)).message) from None
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, orjson.JSONDecodeError):
        raise ServiceError(gettext("the vendor's model list was not understood")) from None


@transaction.atomic
def channel_models_apply(*, channel_id: int, add: Iterable[str] = (), remove: Iterable[str] = ()) -> list[str]:
    """The chosen models of a fetched list added to the channel and the chosen missing ones removed."""
    channel = Channel.objects.filter(pk=channel_id).first()
    if channel is None:
        raise ServiceError(gettext("no such channel"), field="id")
    removing = set(remove)
    models = [m for m in split_list(",".join([*channel.model_list, *add])) if m not in removing]
    services.channel_update(channel=channel, models=",".join(models))
    return models
