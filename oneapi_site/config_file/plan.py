"""What applying a file would change: every entry checked, then compared with the database.

Nothing here writes. A file that cannot be applied stops here with a ConfigFileError naming the file, the
entry and the field, before apply.py opens its transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from oneapi_site import options
from oneapi_site.config_file import document
from oneapi_site.config_file.document import ConfigFileError
from oneapi_site.config_file.export import stored_options
from oneapi_site.lib.errors import ServiceError
from providers.models import Channel, split_list
from providers.services import CHANNEL_FIELDS, channel_fields_clean

SHOWN_ITEMS = 8  # entries of a map's difference shown before "and N more"


@dataclass
class ChannelStep:
    label: str                     # channel "name" (type 1)
    fields: dict[str, Any]         # for a create, all of them; for an update, the changed ones
    channel_id: int | None = None  # None: a new channel
    changes: list[str] = field(default_factory=list)


@dataclass
class OptionStep:
    key: str
    text: str
    change: str


@dataclass
class Plan:
    channels: list[ChannelStep] = field(default_factory=list)
    deletes: list[tuple[int, str]] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    options: list[OptionStep] = field(default_factory=list)
    unchanged_channels: int = 0
    unchanged_options: int = 0


def channel_label(name: str, type_: int) -> str:
    return f'channel "{name}" (type {type_})'


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _more(items: list[str]) -> str:
    extra = len(items) - SHOWN_ITEMS
    return ", ".join(items[:SHOWN_ITEMS]) + (f" and {extra} more" if extra > 0 else "")


def map_difference(old: dict, new: dict, *, secret: frozenset[str] = frozenset()) -> str:
    """`+name value, -name, name old -> new`; a secret entry is named, its value never shown."""
    items = []
    for name in new:
        if name not in old:
            items.append(f"+{name}" + ("" if name in secret else f" {_shown(new[name])}"))
        elif old[name] != new[name]:
            items.append(name if name in secret else f"{name} {_shown(old[name])} -> {_shown(new[name])}")
    items += [f"-{name}" for name in old if name not in new]
    return _more(items)


def _list_difference(old: list[str], new: list[str]) -> str:
    items = [f"+{item}" for item in new if item not in old] + [f"-{item}" for item in old if item not in new]
    return _more(items) or "order"


def _field_change(name: str, old: Any, new: Any) -> str:
    if name == "key":
        return "key"  # never its text
    if name in document.LIST_FIELDS:
        return f"{name} {_list_difference(split_list(old), split_list(new))}"
    if isinstance(new, dict):
        secret = document.secret_config_keys() if name == "config" else frozenset()
        return f"{name} {map_difference(old or {}, new, secret=secret)}"
    if name == "system_prompt":
        return name
    return f"{name} {_shown(old)} -> {_shown(new)}"


def _channel_fields(path: str, number: int, entry: Any) -> tuple[str, dict[str, Any]]:
    where = f"{path}: channels #{number}"
    if not isinstance(entry, dict):
        raise ConfigFileError(f"{where}: must be a mapping of channel fields")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigFileError(f"{where}: name: required, as text")
    where = f'{where} "{name}"'
    for key in entry:
        if key not in CHANNEL_FIELDS:
            raise ConfigFileError(f"{where}: {key}: not a channel field (the fields are {', '.join(CHANNEL_FIELDS)})")
    if entry.get("type") is None:
        raise ConfigFileError(f"{where}: type: required (channels are matched by name and type)")
    try:
        cleaned = channel_fields_clean({k: v for k, v in entry.items() if k != "key"})
    except ServiceError as exc:
        raise ConfigFileError(f"{where}: {exc.field or 'value'}: {exc}") from None
    key = entry.get("key")
    if key is not None and str(key).strip():
        cleaned["key"] = str(key)
    return where, cleaned


def _stored_value(channel: Channel, name: str, wanted: Any) -> Any:
    stored = getattr(channel, name)
    if name == "config" and isinstance(wanted, dict):
        # An export without keys leaves secret config values out; the update keeps the stored ones.
        for secret in document.secret_config_keys():
            if (stored or {}).get(secret) and not wanted.get(secret):
                wanted[secret] = stored[secret]
    return stored


# Enabled and auto-disabled are both "in service": which of them holds is health's call (channel tests, failures),
# so a file applied at every start neither revives a dead channel nor disables a recovered one.
HEALTH_STATUSES = frozenset({Channel.Status.ENABLED, Channel.Status.AUTO_DISABLED})


def _same(name: str, stored: Any, wanted: Any) -> bool:
    if name == "status" and {stored, wanted} <= HEALTH_STATUSES:
        return True
    if name in document.LIST_FIELDS:
        return split_list(stored) == split_list(wanted)
    return stored == wanted


def _plan_channels(path: str, entries: Any, plan: Plan, *, prune: bool) -> None:
    if not isinstance(entries, list):
        raise ConfigFileError(f"{path}: channels: must be a list of channels")
    matched: set[int] = set()
    seen: dict[str, int] = {}
    # Compared in Python: MySQL's default collation would match "Main" to "main" and ignore trailing spaces.
    by_name: dict[tuple[str, int], list[Channel]] = {}
    for channel in Channel.objects.order_by("id"):
        by_name.setdefault((channel.name, channel.type), []).append(channel)
    for number, entry in enumerate(entries, start=1):
        where, fields = _channel_fields(path, number, entry)
        name, type_ = fields["name"], fields["type"]
        if name in seen:
            raise ConfigFileError(f"{where}: name: also the name of channels #{seen[name]}; channels are matched "
                                  f"by name, so a name appears once in the file")
        seen[name] = number
        stored = by_name.get((name, type_), [])
        if len(stored) > 1:
            raise ConfigFileError(f"{where}: {len(stored)} stored channels are named {name!r} with type {type_}; "
                                  f"rename all but one so the file names one channel")
        label = channel_label(name, type_)
        if not stored:
            if "key" not in fields:
                raise ConfigFileError(f"{where}: key: required for a channel the database does not have yet")
            plan.channels.append(ChannelStep(label=label, fields=fields))
            continue
        channel = stored[0]
        matched.add(channel.pk)
        step = ChannelStep(label=label, fields={}, channel_id=channel.pk)
        for name_, wanted in fields.items():
            old = _stored_value(channel, name_, wanted)
            if not _same(name_, old, wanted):
                step.fields[name_] = wanted
                step.changes.append(_field_change(name_, old, wanted))
        if step.fields:
            plan.channels.append(step)
        else:
            plan.unchanged_channels += 1
    for channel in (channel for group in by_name.values() for channel in group if channel.pk not in matched):
        label = channel_label(channel.name, channel.type)
        if prune:
            plan.deletes.append((channel.pk, label))
        else:
            plan.kept.append(label)


def _option_error(where: str, exc: ServiceError) -> ConfigFileError:
    return ConfigFileError(f"{where}: {exc}")


def _checked_text(where: str, key: str, value: Any) -> str:
    if document.is_structured(key) and not isinstance(value, (dict, list)):
        raise ConfigFileError(f"{where}: must be a mapping")
    try:
        text = document.option_text(key, value)
        options.parse(key, text)
    except ServiceError as exc:
        raise _option_error(where, exc) from None
    return text


def _wanted_options(path: str, data: dict) -> dict[str, str]:
    """The option texts the file sets, each checked, by option key."""
    wanted: dict[str, str] = {}
    prices, plain, groups = (data.get(name) for name in ("prices", "options", "groups"))
    price_keys, plain_keys, group_fields = (document.price_keys(), document.plain_option_keys(),
                                            document.group_fields())
    for section, given, allowed in (("prices", prices, price_keys), ("options", plain, plain_keys)):
        if given is None:
            continue
        if not isinstance(given, dict):
            raise ConfigFileError(f"{path}: {section}: must be a mapping of option names to values")
        for key, value in given.items():
            where = f"{path}: {section}: {key}"
            if key not in allowed:
                hint = ("a pricing option, under prices" if key in price_keys else
                        "an option of groups (one field per group)" if key in group_fields.values() else
                        "another option, under options" if key in plain_keys else "not an option this gateway has")
                raise ConfigFileError(f"{where}: {hint}")
            wanted[key] = _checked_text(where, key, value)
    if groups is not None:
        if not isinstance(groups, dict):
            raise ConfigFileError(f"{path}: groups: must be a mapping of group names to their settings")
        maps: dict[str, dict[str, Any]] = {key: {} for key in group_fields.values()}
        for group, entry in groups.items():
            where = f"{path}: groups: {group}"
            if not isinstance(group, str) or not group.strip():
                raise ConfigFileError(f"{where}: a group name is text")
            entry = entry or {}
            if not isinstance(entry, dict):
                raise ConfigFileError(f"{where}: must be a mapping of {', '.join(group_fields)}")
            for name, value in entry.items():
                if name not in group_fields:
                    raise ConfigFileError(f"{where}: {name}: not a group setting (they are "
                                          f"{', '.join(group_fields)})")
                key = group_fields[name]
                if key == "GroupRatio" and (isinstance(value, bool) or not isinstance(value, (int, float))):
                    raise ConfigFileError(f"{where}: {name}: must be a non-negative number")
                _checked_text(f"{where}: {name}", key, {group: value})
                maps[key][group] = value
        for key, value in maps.items():
            wanted[key] = _checked_text(f"{path}: groups", key, value)
    return wanted


def _canonical(key: str, text: str) -> Any:
    return json.loads(text) if document.is_structured(key) else options.parse(key, text)


def _plan_options(path: str, data: dict, plan: Plan) -> None:
    current = stored_options()
    for key, text in _wanted_options(path, data).items():
        old, new = _canonical(key, current[key]), _canonical(key, text)
        if old == new:
            plan.unchanged_options += 1
            continue
        if options.is_secret(key):
            change = "changed"
        elif isinstance(new, dict) and isinstance(old, dict):
            change = map_difference(old, new)
        else:
            change = (f"{_shown(document.option_value(key, current[key]))} -> "
                      f"{_shown(document.option_value(key, text))}")
        plan.options.append(OptionStep(key=key, text=text, change=change))


def plan_build(path: str, data: dict, *, prune: bool = False) -> Plan:
    plan = Plan()
    if "channels" in data:  # a file without the section manages no channels: --prune removes none
        _plan_channels(path, data["channels"] or [], plan, prune=prune)
    _plan_options(path, data, plan)
    return plan
