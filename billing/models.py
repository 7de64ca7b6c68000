from __future__ import annotations

from django.conf import settings
from django.db import models

from oneapi_site.lib.timeutil import now_ts


class RedemptionCode(models.Model):
    """A prepaid card: a secret key worth `quota`, redeemable once."""

    class Status(models.IntegerChoices):
        ENABLED = 1, "enabled"
        DISABLED = 2, "disabled"
        USED = 3, "used"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="created_redemptions", help_text="Who created it.",
    )
    key = models.CharField(max_length=32, unique=True)
    status = models.SmallIntegerField(choices=Status.choices, default=Status.ENABLED)
    name = models.CharField(max_length=64)
    quota = models.BigIntegerField(default=100)
    created_time = models.BigIntegerField(default=now_ts)
    redeemed_time = models.BigIntegerField(default=0)
    # one-api does not record the redeemer; an operator chasing a dispute needs it.
    redeemed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="redeemed_codes",
    )

    class Meta:
        db_table = "redemptions"

    def __str__(self) -> str:
        return self.name


class Log(models.Model):
    """A usage or account event; consume logs are the ledger that quotas must match."""

    class Type(models.IntegerChoices):
        UNKNOWN = 0, "unknown"
        TOPUP = 1, "top-up"
        CONSUME = 2, "consume"
        MANAGE = 3, "manage"
        SYSTEM = 4, "system"
        TEST = 5, "test"

    # Plain ids, not foreign keys: logs outlive deleted users, tokens and channels.
    user_id = models.BigIntegerField(default=0, db_index=True)
    created_at = models.BigIntegerField(default=now_ts, db_index=True)
    type = models.SmallIntegerField(choices=Type.choices, default=Type.UNKNOWN, db_index=True)
    content = models.TextField(blank=True, default="")
    username = models.CharField(max_length=64, blank=True, default="", db_index=True)
    token_id = models.BigIntegerField(default=0, db_index=True)
    token_name = models.CharField(max_length=64, blank=True, default="", db_index=True)
    model_name = models.CharField(max_length=255, blank=True, default="", db_index=True)
    quota = models.BigIntegerField(default=0)
    prompt_tokens = models.IntegerField(default=0)
    completion_tokens = models.IntegerField(default=0)
    channel_id = models.BigIntegerField(default=0, db_index=True)
    request_id = models.CharField(max_length=64, blank=True, default="")
    elapsed_time = models.IntegerField(default=0, help_text="Milliseconds.")
    is_stream = models.BooleanField(default=False)
    system_prompt_reset = models.BooleanField(default=False)

    class Meta:
        db_table = "logs"
        indexes = [models.Index(fields=["user_id", "type", "created_at"])]


class Option(models.Model):
    """A run-time setting, stored as text as in one-api's `options` table."""

    key = models.CharField(max_length=64, primary_key=True)
    value = models.TextField(blank=True, default="")

    class Meta:
        db_table = "options"

    def __str__(self) -> str:
        return self.key
