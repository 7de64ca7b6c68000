from __future__ import annotations

from django.db import models

from oneapi_site.lib.timeutil import now_ts


class Channel(models.Model):
    """An upstream account: one vendor key with its models, groups and routing weight."""

    class Status(models.IntegerChoices):
        ENABLED = 1, "enabled"
        MANUALLY_DISABLED = 2, "manually disabled"
        AUTO_DISABLED = 3, "auto-disabled"

    type = models.IntegerField(default=1, help_text="one-api's numeric channel type.")
    name = models.CharField(max_length=128, db_index=True)
    key = models.TextField(help_text="The vendor credential. Never shown back in full.")
    status = models.SmallIntegerField(choices=Status.choices, default=Status.ENABLED)
    base_url = models.CharField(max_length=512, blank=True, default="")
    group = models.CharField(max_length=256, default="default", help_text="Comma-separated user groups.")
    model_mapping = models.JSONField(blank=True, default=dict, help_text='{"client model": "upstream model"}')
    priority = models.BigIntegerField(default=0)
    weight = models.PositiveIntegerField(default=0, help_text="Share within its priority; 0 counts as 1.")
    config = models.JSONField(blank=True, default=dict)
    system_prompt = models.TextField(blank=True, default="")
    response_time = models.IntegerField(default=0, help_text="Last test, in milliseconds.")
    test_time = models.BigIntegerField(default=0)
    balance = models.FloatField(default=0)
    balance_updated_time = models.BigIntegerField(default=0)
    used_quota = models.BigIntegerField(default=0)
    created_time = models.BigIntegerField(default=now_ts)
    # Last: the field name shadows django.db.models inside this class body.
    models = models.TextField(blank=True, default="", help_text="Comma-separated models this channel serves.")

    class Meta:
        db_table = "channels"

    def __str__(self) -> str:
        return self.name

    @property
    def model_list(self) -> list[str]:
        return split_list(self.models)

    @property
    def group_list(self) -> list[str]:
        return split_list(self.group) or ["default"]


def split_list(value: str) -> list[str]:
    """One-api keeps lists as comma-separated text; keep order, drop blanks and repeats."""
    seen: dict[str, None] = {}
    for item in (value or "").split(","):
        item = item.strip()
        if item:
            seen.setdefault(item, None)
    return list(seen)


class Ability(models.Model):
    """One (group, model, channel) route, derived from the channel on every save."""

    group = models.CharField(max_length=32)
    model = models.CharField(max_length=255)
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="abilities")
    enabled = models.BooleanField(default=True)
    priority = models.BigIntegerField(default=0, db_index=True)
    weight = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "abilities"
        constraints = [
            models.UniqueConstraint(fields=["group", "model", "channel"], name="ability_group_model_channel"),
        ]
        indexes = [models.Index(fields=["group", "model"])]
