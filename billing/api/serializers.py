"""JSON shapes of redemption codes and logs, and the bodies admins send."""

from __future__ import annotations

from rest_framework import serializers

from accounts.models import User
from billing.models import Log, RedemptionCode
from billing.services import REDEMPTION_BATCH_MAX
from oneapi_site.lib.number_fields import WholeNumberInput, column


def redemption_json(code: RedemptionCode) -> dict:
    return {
        "id": code.pk,
        "user_id": code.user_id,
        "key": code.key,
        "status": code.status,
        "name": code.name,
        "quota": code.quota,
        "created_time": code.created_time,
        "redeemed_time": code.redeemed_time,
        "redeemed_by": code.redeemed_by_id,
    }


def log_json(log: Log) -> dict:
    """one-api names the channel id column `channel` in JSON."""
    return {
        "id": log.pk,
        "user_id": log.user_id,
        "created_at": log.created_at,
        "type": log.type,
        "content": log.content,
        "username": log.username,
        "token_name": log.token_name,
        "model_name": log.model_name,
        "quota": log.quota,
        "prompt_tokens": log.prompt_tokens,
        "completion_tokens": log.completion_tokens,
        # Beyond one-api's fields (its clients ignore them): the parts priced apart.
        "cached_tokens": log.cached_tokens,
        "cache_write_tokens": log.cache_write_tokens,
        "cache_write_1h_tokens": log.cache_write_1h_tokens,
        "reasoning_tokens": log.reasoning_tokens,
        "channel": log.channel_id,
        "request_id": log.request_id,
        "elapsed_time": log.elapsed_time,
        "is_stream": log.is_stream,
        "system_prompt_reset": log.system_prompt_reset,
        "client_protocol": log.client_protocol,
    }


class RedemptionCreateInput(serializers.Serializer):
    name = serializers.CharField(allow_blank=True)
    quota = WholeNumberInput(column=column(RedemptionCode, "quota"), minimum=1)
    count = WholeNumberInput(minimum=1, maximum=REDEMPTION_BATCH_MAX, required=False, default=1)


class RedemptionUpdateInput(serializers.Serializer):
    id = WholeNumberInput(column=column(RedemptionCode, "id"))
    name = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    quota = WholeNumberInput(column=column(RedemptionCode, "quota"), minimum=1, required=False, allow_null=True)
    status = WholeNumberInput(column=column(RedemptionCode, "status"), required=False, allow_null=True)


class TopUpInput(serializers.Serializer):
    user_id = WholeNumberInput(column=column(User, "id"))
    # Positive only, as one-api's IncreaseUserQuota: a deduction is a balance edit, logged as such.
    quota = WholeNumberInput(column=column(User, "quota"), minimum=1)
    remark = serializers.CharField(required=False, allow_blank=True, default="")


class OptionInput(serializers.Serializer):
    key = serializers.CharField()
    value = serializers.JSONField()
