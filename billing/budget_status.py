"""What a token's or user's budget has spent this period, and when it resets, as people read it.

The pages, the console and /api show the same figures: spending counted by the ledger (budget_spent, for the
period that began at budget_period_start) is this period's only while that period lasts (billing/budgets.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone
from django.utils.translation import gettext

from billing import money
from billing.budgets import period_end, spent_now
from oneapi_site.lib.limit_fields import BudgetPeriod
from oneapi_site.lib.timeutil import now_ts


@dataclass(frozen=True)
class BudgetStatus:
    budget: int     # quota per period
    period: str     # day, week or month
    spent: int      # quota spent in the period holding `ts`
    resets_at: int  # unix seconds at which the next period begins

    @property
    def left(self) -> int:
        return max(0, self.budget - self.spent)


def budget_status(holder, *, ts: int | None = None) -> BudgetStatus | None:
    """The budget of a Token or User (anything with the Budget fields); None when it has none."""
    if not holder.budget_quota or not holder.budget_period:
        return None
    ts = now_ts() if ts is None else ts
    spent = spent_now(period=holder.budget_period, spent=holder.budget_spent,
                      spent_period_start=holder.budget_period_start, ts=ts)
    return BudgetStatus(budget=holder.budget_quota, period=holder.budget_period, spent=spent,
                        resets_at=period_end(holder.budget_period, ts))


def reset_text(ts: int) -> str:
    """The wall-clock time a budget resets, in the gateway's time zone (TZ)."""
    return datetime.fromtimestamp(ts, tz=timezone.get_current_timezone()).strftime("%Y-%m-%d %H:%M")


def budget_text(status: BudgetStatus) -> str:
    """"$3.2 of $10 spent today, resets at 2026-12-06 00:00", in the unit people read quota in."""
    values = {"spent": money.quota_text(status.spent), "budget": money.quota_text(status.budget),
              "resets": reset_text(status.resets_at)}
    if status.period == BudgetPeriod.DAY:
        return gettext("%(spent)s of %(budget)s spent today, resets at %(resets)s") % values
    if status.period == BudgetPeriod.WEEK:
        return gettext("%(spent)s of %(budget)s spent this week, resets at %(resets)s") % values
    return gettext("%(spent)s of %(budget)s spent this month, resets at %(resets)s") % values


def budget_brief(status: BudgetStatus) -> str:
    """For a list column: "$3.2 of $10 today"."""
    values = {"spent": money.quota_text(status.spent), "budget": money.quota_text(status.budget)}
    if status.period == BudgetPeriod.DAY:
        return gettext("%(spent)s of %(budget)s today") % values
    if status.period == BudgetPeriod.WEEK:
        return gettext("%(spent)s of %(budget)s this week") % values
    return gettext("%(spent)s of %(budget)s this month") % values
