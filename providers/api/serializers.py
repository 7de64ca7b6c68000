"""JSON shapes of channels as one-api's clients read them; the key never leaves the server."""

from __future__ import annotations

import json

from rest_framework import serializers

from accounts.api.serializers import CommaListField
from oneapi_site.lib import limit_values
from oneapi_site.lib.number_fields import WholeNumberInput, column
from providers import channel_overrides
from providers.adapters import secret_config_fields
from providers.labels import unsupported_reason
from providers.models import Channel
from providers.oneapi_other import other_shown


def _json_text(value: dict) -> str:
    """one-api keeps model_mapping and config as JSON text; an empty map is ""."""
    return json.dumps(value, ensure_ascii=False) if value else ""


def _masked(config: dict) -> dict:
    """Credentials kept in config (Bedrock's sk, Vertex's key file) are write-only, like the key; a proxy's
    password is shown masked (sent back as shown, it keeps the stored one)."""
    secrets = secret_config_fields()
    return channel_overrides.shown({k: ("" if k in secrets and v else v) for k, v in (config or {}).items()})


def channel_json(channel: Channel) -> dict:
    return {
        "id": channel.pk,
        "type": channel.type,
        "name": channel.name,
        "status": channel.status,
        "base_url": channel.base_url,
        "models": channel.models,
        "group": channel.group,
        "tag": channel.tag,
        "model_mapping": _json_text(channel.model_mapping),
        "priority": channel.priority,
        "weight": channel.weight,
        "config": _json_text(_masked(channel.config)),
        "other": other_shown(channel.type, channel.config),  # one-api's page edits these settings there
        "system_prompt": channel.system_prompt,
        "key_mode": channel.key_mode or "single",
        "key_rpm_limit": channel.key_rpm_limit,
        "response_time": channel.response_time,
        "test_time": channel.test_time,
        "balance": channel.balance,
        "balance_updated_time": channel.balance_updated_time,
        "used_quota": channel.used_quota,
        "created_time": channel.created_time,
        **{name: getattr(channel, name) for name in limit_values.LIMIT_FIELDS},
        # Why the channel cannot route whatever its status says ("" when it can): a type without an adapter.
        "unsupported_reason": unsupported_reason(channel.type),
    }


class ChannelInput(serializers.Serializer):
    """model_mapping and config may be JSON text (one-api) or an object; the service parses both."""

    id = WholeNumberInput(column=column(Channel, "id"), required=False)
    type = WholeNumberInput(column=column(Channel, "type"), required=False)
    name = serializers.CharField(required=False, allow_blank=True)
    key = serializers.CharField(required=False, allow_blank=True, allow_null=True, trim_whitespace=False)
    status = WholeNumberInput(column=column(Channel, "status"), required=False)
    base_url = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    models = CommaListField(required=False, allow_null=True)
    group = CommaListField(required=False, allow_null=True)
    tag = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    model_mapping = serializers.JSONField(required=False, allow_null=True)
    priority = WholeNumberInput(column=column(Channel, "priority"), required=False, allow_null=True)
    weight = WholeNumberInput(column=column(Channel, "weight"), required=False, allow_null=True)
    config = serializers.JSONField(required=False, allow_null=True)
    system_prompt = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    other = serializers.CharField(required=False, allow_blank=True, allow_null=True)  # providers/oneapi_other.py
    # single (the default: several key lines make a channel each), round_robin or random (one channel).
    key_mode = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    key_rpm_limit = WholeNumberInput(column=column(Channel, "key_rpm_limit"), required=False)
    rpm_limit = WholeNumberInput(column=column(Channel, "rpm_limit"), required=False)
    tpm_limit = WholeNumberInput(column=column(Channel, "tpm_limit"), required=False)
    concurrency_limit = WholeNumberInput(column=column(Channel, "concurrency_limit"), required=False)
    rpd_limit = WholeNumberInput(column=column(Channel, "rpd_limit"), required=False)
