"""The rate limits and spending budget a token, a user or a channel may carry, as abstract model fields.

Limits are enforced by relay/limits.py, budgets by billing/budgets.py; 0 means no limit. A budget is spending
per period (a calendar day, ISO week or month in TZ) on top of the prepaid quota: `budget_spent` is what the
period that began at `budget_period_start` (unix seconds) has spent, written by the ledger with the charges.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

# The four limits' field names, in the order relay/limits/caps.Caps holds them.
LIMIT_FIELDS = ("rpm_limit", "tpm_limit", "concurrency_limit", "rpd_limit")


class RateLimits(models.Model):
    rpm_limit = models.PositiveIntegerField(_("requests per minute"), default=0, help_text=_("0: no limit."))
    tpm_limit = models.PositiveIntegerField(_("tokens per minute"), default=0,
                                            help_text=_("Prompt and completion tokens; 0: no limit."))
    concurrency_limit = models.PositiveIntegerField(_("concurrent requests"), default=0,
                                                    help_text=_("Requests in flight at once; 0: no limit."))
    rpd_limit = models.PositiveIntegerField(_("requests per day"), default=0, help_text=_("0: no limit."))

    class Meta:
        abstract = True


class BudgetPeriod(models.TextChoices):
    NONE = "", _("none")
    DAY = "day", _("day")
    WEEK = "week", _("week")
    MONTH = "month", _("month")


class Budget(models.Model):
    budget_quota = models.BigIntegerField(_("budget"), default=0,
                                          help_text=_("Quota that may be spent per period; 0: no budget."))
    budget_period = models.CharField(_("budget period"), max_length=8, blank=True, default="",
                                     choices=BudgetPeriod.choices)
    budget_spent = models.BigIntegerField(_("spent this period"), default=0, editable=False)
    budget_period_start = models.BigIntegerField(default=0, editable=False)

    class Meta:
        abstract = True
