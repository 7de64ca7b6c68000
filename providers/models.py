from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from oneapi_site.lib.limit_fields import RateLimits
from oneapi_site.lib.timeutil import now_ts


class Channel(RateLimits):
    """An upstream account: one vendor key with its models, groups and routing weight."""

    class Status(models.IntegerChoices):
        ENABLED = 1, _("enabled")
        MANUALLY_DISABLED = 2, _("manually disabled")
        AUTO_DISABLED = 3, _("auto-disabled")

    class KeyMode(models.TextChoices):
        SINGLE = "", _("one key")
        ROUND_ROBIN = "round_robin", _("several keys, in turn")
        RANDOM = "random", _("several keys, at random")

    type = models.IntegerField(_("type"), default=1, help_text=_("one-api's numeric channel type."))
    name = models.CharField(_("name"), max_length=128, db_index=True)
    key = models.TextField(_("key"), help_text=_("The vendor credential. Never shown back in full."))
    status = models.SmallIntegerField(_("status"), choices=Status.choices, default=Status.ENABLED)
    key_mode = models.CharField(
        _("key mode"), max_length=16, blank=True, default=KeyMode.SINGLE, choices=KeyMode.choices,
        help_text=_("With several keys, the key field holds one key per line, each with its own health."))
    key_rpm_limit = models.PositiveIntegerField(
        _("requests per minute per key"), default=0,
        help_text=_("Several keys: a key that has had this many requests this minute is passed over until the "
                    "next; 0: no limit. Counted by each gateway instance."))
    base_url = models.CharField(_("base URL"), max_length=512, blank=True, default="")
    group = models.CharField(_("group"), max_length=256, default="default",
                             help_text=_("Comma-separated user groups."))
    model_mapping = models.JSONField(_("model mapping"), blank=True, default=dict,
                                     help_text=_('{"client model": "upstream model"}'))
    tag = models.CharField(_("tag"), max_length=64, blank=True, default="", db_index=True,
                           help_text=_("A label to find and edit channels together (new-api's tag)."))
    priority = models.BigIntegerField(_("priority"), default=0)
    weight = models.PositiveIntegerField(_("weight"), default=0,
                                         help_text=_("Share within its priority; 0 counts as 1."))
    config = models.JSONField(_("config"), blank=True, default=dict)
    system_prompt = models.TextField(_("system prompt"), blank=True, default="")
    response_time = models.IntegerField(_("response time"), default=0, help_text=_("Last test, in milliseconds."))
    test_time = models.BigIntegerField(_("last test"), default=0)
    balance = models.FloatField(_("balance"), default=0)
    balance_updated_time = models.BigIntegerField(_("balance updated"), default=0)
    used_quota = models.BigIntegerField(_("used quota"), default=0)
    created_time = models.BigIntegerField(_("created"), default=now_ts)
    # Last: the field name shadows django.db.models inside this class body.
    models = models.TextField(_("models"), blank=True, default="",
                              help_text=_("Comma-separated models this channel serves."))

    class Meta:
        db_table = "channels"
        verbose_name = _("channel")
        verbose_name_plural = _("channels")

    def __str__(self) -> str:
        return self.name

    @property
    def model_list(self) -> list[str]:
        return split_list(self.models)

    @property
    def group_list(self) -> list[str]:
        return split_list(self.group) or ["default"]

    @property
    def multi_key(self) -> bool:
        return bool(self.key_mode)


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


class ChannelKey(models.Model):
    """The health of one key of a multi-key channel. The key's text stays in Channel.key (line `index`);
    this row knows it only by a fingerprint, so an edit that moves or replaces keys keeps each key's state."""

    class Status(models.IntegerChoices):
        ENABLED = 1, _("enabled")
        MANUALLY_DISABLED = 2, _("manually disabled")
        AUTO_DISABLED = 3, _("auto-disabled")

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="key_states")
    index = models.PositiveIntegerField(_("line"))
    fingerprint = models.CharField(max_length=64)
    masked = models.CharField(_("key"), max_length=16)
    status = models.SmallIntegerField(_("status"), choices=Status.choices, default=Status.ENABLED)
    failures = models.PositiveIntegerField(_("failures"), default=0)
    last_error = models.TextField(_("last error"), blank=True, default="")
    disabled_at = models.BigIntegerField(_("disabled at"), default=0)
    # The half-open probe: an auto-disabled key is tried again with one real request after this time,
    # and every probe it fails doubles the wait (providers/channel_keys.py).
    probe_after = models.BigIntegerField(default=0)
    probes_failed = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "channel_keys"
        verbose_name = _("channel key")
        verbose_name_plural = _("channel keys")
        ordering = ("channel", "index")
        constraints = [models.UniqueConstraint(fields=["channel", "index"], name="channel_key_index")]

    def __str__(self) -> str:
        return f"#{self.channel_id} key {self.index + 1}"
