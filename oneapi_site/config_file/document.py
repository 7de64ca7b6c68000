"""The file's shape: its sections, which option goes in which, and reading and writing it as YAML.

```yaml
version: 1
channels:                # matched by name and type; a name appears once in the file
  - name: openai-main
    type: 1
    models: [gpt-4o, gpt-4o-mini]
    group: [default]
    ...                  # every channel field; key only in an export --with-keys
groups:                  # the group-level options, by group: GroupRatio's ratio, ...
  default: {ratio: 1}
prices:                  # every pricing option: QuotaPerUnit, ModelRatio, CompletionRatio, ModelPrice, ...
  ModelRatio: {gpt-4o: 1.25}
options:                 # the other options; secrets (…Token, …Secret) only in an export --with-keys
  RetryTimes: 2
```
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from oneapi_site import options
from providers.adapters import secret_config_fields
from providers.services import CHANNEL_FIELDS

VERSION = 1
SECTIONS = ("version", "channels", "groups", "prices", "options")
# Each field of a group's entry and the option that holds it, as a map keyed by group; a field whose option
# this version does not have is left out.
GROUP_FIELDS_ALL = {"ratio": "GroupRatio", "rate_limit": "GroupRateLimit",
                    "model_rate_limits": "GroupModelRateLimit"}
PRICE_KEYS_ALL = ("QuotaPerUnit", "ModelRatio", "CompletionRatio", "CacheRatio", "CreateCacheRatio",
                  "ModelPrice", "ModelTierPricing", "AudioRatio", "AudioCompletionRatio", "ImageRatio")
# What a create or an update accepts; the key is written only when asked (export --with-keys).
CHANNEL_FILE_FIELDS = tuple(name for name in CHANNEL_FIELDS if name != "key")
LIST_FIELDS = ("models", "group")


def secret_config_keys() -> frozenset[str]:
    """Channel config values a file holds only with --with-keys: the adapters' credentials, and the overrides
    that may carry one (a header with a token in it, a proxy URL with its password)."""
    return secret_config_fields() | {"header_override", "proxy"}


class ConfigFileError(Exception):
    """A file that cannot be applied; the message names the file, the entry and the field."""


def group_fields() -> dict[str, str]:
    return {field: key for field, key in GROUP_FIELDS_ALL.items() if key in options.DEFAULTS}


def price_keys() -> tuple[str, ...]:
    return tuple(key for key in PRICE_KEYS_ALL if key in options.DEFAULTS)


def plain_option_keys() -> tuple[str, ...]:
    taken = set(price_keys()) | set(group_fields().values())
    return tuple(key for key in options.DEFAULTS if key not in taken)


def is_structured(key: str) -> bool:
    """Options stored as JSON text, written to the file as YAML maps."""
    return key in options.JSON_TEXT_KEYS or options.DEFAULTS.get(key, "").lstrip().startswith(("{", "["))


def option_value(key: str, text: str) -> Any:
    """The stored text as the file shows it: maps as maps, switches as booleans, numbers as numbers."""
    if is_structured(key):
        return json.loads(text)
    if key in options.BOOL_KEYS or key in options.INT_KEYS:
        return options.parse(key, text)
    if key in options.FLOAT_KEYS:
        number = Decimal(str(options.parse(key, text)))
        return int(number) if number == number.to_integral_value() else float(number)
    return text


def option_text(key: str, value: Any) -> str:
    """The file's value as the text an option stores."""
    if value is None:
        return ""
    if isinstance(value, float):
        # YAML reads 0.000001 back as a float that str() writes as 1e-06, which the number parser refuses.
        return format(Decimal(repr(value)), "f")
    return options.encode(key, value)


def read(path: str | Path) -> dict:
    """The file's top level, or a ConfigFileError naming the file (and the line, for bad YAML)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"{path}: cannot be read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigFileError(f"{path}: {where}not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path}: the top level must be a mapping of {', '.join(SECTIONS)}")
    unknown = [str(name) for name in data if name not in SECTIONS]
    if unknown:
        raise ConfigFileError(f"{path}: unknown section {unknown[0]!r} (the sections are {', '.join(SECTIONS)})")
    if data.get("version", VERSION) != VERSION:
        raise ConfigFileError(f"{path}: version: this gateway reads version {VERSION} files")
    return data


class _Dumper(yaml.SafeDumper):
    """Texts of several lines as literal blocks and lists of names on one line, as a person would write them."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


def _list(dumper: yaml.SafeDumper, value: list) -> yaml.Node:
    flat = all(isinstance(item, (str, int, float)) for item in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flat)


_Dumper.add_representer(str, _text)
_Dumper.add_representer(list, _list)


def dump(document: dict) -> str:
    header = ("# oneapi configuration (manage.py export_config); apply with manage.py import_config FILE or\n"
              "# CONFIG_FILE=FILE at start. Channels are matched by name and type.\n")
    return header + yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
