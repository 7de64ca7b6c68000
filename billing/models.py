from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from oneapi_site.lib.timeutil import now_ts, ts_text


class RedemptionCode(models.Model):
    """A prepaid card: a secret key worth `quota`, redeemable once."""

    class Status(models.IntegerChoices):
        ENABLED = 1, _("enabled")
        DISABLED = 2, _("disabled")
        USED = 3, _("used")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="created_redemptions", verbose_name=_("created by"), help_text=_("Who created it."),
    )
    key = models.CharField(_("key"), max_length=32, unique=True)
    status = models.SmallIntegerField(_("status"), choices=Status.choices, default=Status.ENABLED)
    name = models.CharField(_("name"), max_length=64)
    quota = models.BigIntegerField(_("quota"), default=100)
    created_time = models.BigIntegerField(_("created"), default=now_ts)
    redeemed_time = models.BigIntegerField(_("redeemed"), default=0)
    # one-api does not record the redeemer; an operator chasing a dispute needs it.
    redeemed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="redeemed_codes", verbose_name=_("redeemed by"),
    )

    class Meta:
        db_table = "redemptions"
        verbose_name = _("redemption code")
        verbose_name_plural = _("redemption codes")

    def __str__(self) -> str:
        return self.name


# The APIs a client may speak to /v1 (relay/codecs), as people read them in the logs.
# A context of their own: the bare names may mean a vendor elsewhere, and are translated otherwise there.
CLIENT_PROTOCOL_LABELS = {"openai": pgettext_lazy("client protocol", "OpenAI"),
                          "anthropic": pgettext_lazy("client protocol", "Anthropic"),
                          "responses": pgettext_lazy("client protocol", "Responses"),
                          "gemini": pgettext_lazy("client protocol", "Gemini")}


class Log(models.Model):
    """A usage or account event; consume logs are the ledger that quotas must match."""

    class Type(models.IntegerChoices):
        UNKNOWN = 0, _("unknown")
        TOPUP = 1, _("top-up")
        CONSUME = 2, _("consume")
        MANAGE = 3, _("manage")
        SYSTEM = 4, _("system")
        TEST = 5, _("test")

    # Plain ids, not foreign keys: logs outlive deleted users, tokens and channels.
    user_id = models.BigIntegerField(_("user id"), default=0, db_index=True)
    created_at = models.BigIntegerField(_("time"), default=now_ts, db_index=True)
    type = models.SmallIntegerField(_("type"), choices=Type.choices, default=Type.UNKNOWN, db_index=True)
    content = models.TextField(_("content"), blank=True, default="")
    username = models.CharField(_("username"), max_length=64, blank=True, default="", db_index=True)
    token_id = models.BigIntegerField(_("token id"), default=0, db_index=True)
    token_name = models.CharField(_("token name"), max_length=64, blank=True, default="", db_index=True)
    model_name = models.CharField(_("model name"), max_length=255, blank=True, default="", db_index=True)
    quota = models.BigIntegerField(_("quota"), default=0)
    prompt_tokens = models.IntegerField(_("prompt tokens"), default=0)
    completion_tokens = models.IntegerField(_("completion tokens"), default=0)
    # The parts of the counts above priced apart (billing/pricing.py). one-api has no such columns: a database
    # default lets its writers (a one-api sharing the database) insert without them.
    cached_tokens = models.IntegerField(_("cached tokens"), default=0, db_default=0,
                                        help_text=_("Prompt tokens read from the vendor's cache."))
    cache_write_tokens = models.IntegerField(_("cache write tokens"), default=0, db_default=0,
                                             help_text=_("Prompt tokens written to the vendor's cache."))
    cache_write_1h_tokens = models.IntegerField(_("1-hour cache write tokens"), default=0, db_default=0,
                                                help_text=_("Of the cache writes, those kept for an hour."))
    reasoning_tokens = models.IntegerField(_("reasoning tokens"), default=0, db_default=0,
                                           help_text=_("Completion tokens spent thinking."))
    channel_id = models.BigIntegerField(_("channel id"), default=0, db_index=True)
    request_id = models.CharField(_("request id"), max_length=64, blank=True, default="")
    elapsed_time = models.IntegerField(_("elapsed time"), default=0, help_text=_("Milliseconds."))
    is_stream = models.BooleanField(_("stream"), default=False)
    system_prompt_reset = models.BooleanField(_("system prompt reset"), default=False)
    # Which API the client spoke ("openai", "anthropic"); blank on logs written before it was recorded.
    client_protocol = models.CharField(_("client protocol"), max_length=16, blank=True, default="")

    class Meta:
        db_table = "logs"
        verbose_name = _("log")
        verbose_name_plural = _("logs")
        indexes = [models.Index(fields=["user_id", "type", "created_at"])]

    def __str__(self) -> str:
        # The console titles a log's page with this: which entry, what kind, when.
        return gettext("Log #%(id)s: %(type)s at %(time)s") % {
            "id": self.pk, "type": self.get_type_display(), "time": ts_text(self.created_at)}

    def client_protocol_label(self) -> str:
        """The client's API by name, in the reader's language ("" on logs written before it was recorded)."""
        return str(CLIENT_PROTOCOL_LABELS.get(self.client_protocol, self.client_protocol))


class WrittenCharge(models.Model):
    """The id of a charge that was also kept in Redis until written (billing/journal.py), recorded in the
    transaction that wrote it: a replay after a crash skips it, so no charge is taken twice. Pruned after 7 days
    (billing/journal.py WRITTEN_KEPT_SECONDS), past the longest a journal entry is replayed."""

    charge_id = models.CharField(max_length=64, unique=True)
    created_at = models.BigIntegerField(db_index=True)

    class Meta:
        db_table = "written_charges"


class Option(models.Model):
    """A run-time setting, stored as text as in one-api's `options` table."""

    key = models.CharField(_("key"), max_length=64, primary_key=True)
    value = models.TextField(_("value"), blank=True, default="")

    class Meta:
        db_table = "options"
        verbose_name = _("option")
        verbose_name_plural = _("options")

    def __str__(self) -> str:
        return self.key


class UsageDaily(models.Model):
    """Consumption summed per local day, group, model, channel, user and token: what the operator dashboard
    reads, so it never scans the logs. The ledger writer adds each batch in the transaction that writes its
    charges (billing.services.charges_apply), with relative upserts, so concurrent instances stay exact;
    failed upstream attempts are added the same way by billing/usage_errors.py."""

    day = models.DateField(_("day"))
    group = models.CharField(_("group"), max_length=64, blank=True, default="")
    model_name = models.CharField(_("model name"), max_length=255, blank=True, default="")
    channel_id = models.BigIntegerField(_("channel id"), default=0)
    user_id = models.BigIntegerField(_("user id"), default=0)
    token_id = models.BigIntegerField(_("token id"), default=0)
    requests = models.BigIntegerField(_("requests"), default=0)
    quota = models.BigIntegerField(_("quota"), default=0)
    prompt_tokens = models.BigIntegerField(_("prompt tokens"), default=0)
    completion_tokens = models.BigIntegerField(_("completion tokens"), default=0)
    cached_tokens = models.BigIntegerField(_("cached tokens"), default=0)
    elapsed_ms = models.BigIntegerField(_("elapsed time"), default=0, help_text=_("Summed milliseconds."))
    # Upstream attempts that failed (billing/usage_errors.py): not charges, counted apart from requests.
    errors = models.BigIntegerField(_("errors"), default=0)

    class Meta:
        db_table = "usage_daily"
        verbose_name = _("daily usage")
        verbose_name_plural = _("daily usage")
        constraints = [models.UniqueConstraint(
            fields=["day", "group", "model_name", "channel_id", "user_id", "token_id"], name="usage_daily_key")]
        # A user's dashboard reads their own days (billing.selectors.user_dashboard); the key's leading day
        # alone would walk every user's rows of the week.
        indexes = [models.Index(fields=["user_id", "day"], name="usage_daily_user_day")]


class BodyCapture(models.Model):
    """A /v1 request and its answer as sent, kept for debugging a token listed in BodyCaptureTokenIds.

    Each side is cut to CAPTURE_LIMIT bytes, known secret fields of the request are masked, and rows older
    than BodyCaptureRetentionHours are deleted (billing/retention.py)."""

    created_at = models.BigIntegerField(_("time"), default=now_ts, db_index=True)
    request_id = models.CharField(_("request id"), max_length=64, blank=True, default="")
    user_id = models.BigIntegerField(_("user id"), default=0)
    token_id = models.BigIntegerField(_("token id"), default=0, db_index=True)
    path = models.CharField(_("path"), max_length=255, blank=True, default="")
    status = models.IntegerField(_("status"), default=0)
    request_body = models.TextField(_("request body"), blank=True, default="")
    response_body = models.TextField(_("response body"), blank=True, default="")
    request_truncated = models.BooleanField(_("request cut"), default=False)
    response_truncated = models.BooleanField(_("response cut"), default=False)

    class Meta:
        db_table = "body_captures"
        verbose_name = _("captured body")
        verbose_name_plural = _("captured bodies")

    def __str__(self) -> str:
        return gettext("Capture #%(id)s: %(path)s at %(time)s") % {
            "id": self.pk, "path": self.path, "time": ts_text(self.created_at)}
