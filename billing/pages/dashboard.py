"""Dashboard: balance, used quota, request count and the 7-day usage chart by model."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from billing import money, selectors
from billing.budget_status import budget_status, budget_text
from billing.pages import chart
from oneapi_site.lib.limit_values import limits_summary
from oneapi_site.lib.timeutil import now_ts


@login_required
def dashboard(request):
    now = now_ts()
    rows = selectors.user_dashboard(user_id=request.user.pk, now=now)
    days = selectors.dashboard_days(now=now)
    unit = money.display_unit()
    usage = chart.usage_chart(rows, days=days, unit=unit, fmt=money.amount)
    usage_narrow = chart.usage_chart(rows, days=days, unit=unit, fmt=money.amount,
                                     width=chart.NARROW_WIDTH, height=chart.NARROW_HEIGHT)
    totals = {
        "requests": sum(r["RequestCount"] for r in rows),
        "quota": sum(r["Quota"] for r in rows),
        "prompt": sum(r["PromptTokens"] for r in rows),
        "completion": sum(r["CompletionTokens"] for r in rows),
    }
    budget = budget_status(request.user, ts=now)
    return render(request, "billing/dashboard.html", {
        "account": request.user,
        "budget_line": budget_text(budget) if budget else "",
        "limits": limits_summary(request.user),
        "chart": usage,
        "chart_narrow": usage_narrow,   # drawn for phones instead of the wide one (site.css)
        # Newest day first, models by name within a day (sorted is stable).
        "rows": sorted(sorted(rows, key=lambda r: r["ModelName"]), key=lambda r: r["Day"], reverse=True),
        "totals": totals,
        "first_day": days[0] if days else "",
        "last_day": days[-1] if days else "",
        "unit_name": money.unit_name(),
    })
