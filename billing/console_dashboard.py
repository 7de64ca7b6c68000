"""The operator dashboard on the console's front page: site-wide usage per day for 7 or 30 days by model,
channel or group, the top users and tokens, the slowest and failing channels, and the ledger's state.

Every figure of usage comes from the daily roll-up (billing/rollup.py), never from the logs, so the page costs
the same on a million logs as on ten. Failed upstream attempts are counted into it apart from the charges
(billing/usage_errors.py); a channel's error rate is its failed attempts over all its attempts.
"""

from __future__ import annotations

import functools
from decimal import Decimal

from django.utils.translation import gettext_lazy as _

from accounts.models import Token, User
from billing import money, selectors
from billing.ledger import ledger
from billing.pages import chart
from providers import health
from providers.models import Channel

SERIES = len(chart.PALETTE) - 1   # the rest share one colour as "other"
PERIODS = (7, 30)
DIMENSION_LABELS = {"model": _("model"), "channel": _("channel"), "group": _("group")}
MEASURE_LABELS = {"quota": _("quota"), "requests": _("requests"), "tokens": _("tokens"),
                  "errors": _("failed attempts")}


def _choice(value: str | None, allowed, default):
    return value if value in allowed else default


def _channel_names(ids) -> dict[int, str]:
    return dict(Channel.objects.filter(pk__in=list(ids)).values_list("id", "name"))


def _series(rows: list[dict], *, by: str, measure: str) -> list[dict]:
    """Chart rows (Day, ModelName, Quota) of `measure`: the SERIES largest keys by name, the rest as one."""
    totals: dict = {}
    for r in rows:
        totals[r["key"]] = totals.get(r["key"], 0) + r[measure]
    kept = set(sorted(totals, key=lambda k: (-totals[k], str(k)))[:SERIES])
    names = _channel_names(totals) if by == "channel" else {}
    other = str(_("(other)"))

    def label(key) -> str:
        if key not in kept:
            return other
        if by == "channel":
            return f"#{key} {names.get(key, '')}".strip()
        return str(key) or "-"

    return [{"Day": r["day"].isoformat(), "ModelName": label(r["key"]), "Quota": r[measure]} for r in rows]


def _plain(value: Decimal) -> str:
    return f"{int(value):,}" if value == int(value) else f"{value:,.2f}"


def dashboard_context(request) -> dict:
    days = int(_choice(request.GET.get("days"), {str(p) for p in PERIODS}, "7"))
    by = _choice(request.GET.get("by"), selectors.USAGE_DIMENSIONS, "model")
    measure = _choice(request.GET.get("measure"), selectors.USAGE_MEASURES, "quota")
    window = selectors.usage_days(days=days)
    since = window[0]
    rows = selectors.usage_by_day(since=since, by=by)
    in_money = measure == "quota"
    unit, fmt = (money.display_unit(), money.amount) if in_money else (1, _plain)
    drawn = chart.usage_chart(_series(rows, by=by, measure=measure), days=[d.isoformat() for d in window],
                              unit=unit, fmt=fmt)

    per_day = {d: {"day": d, "requests": 0, "tokens": 0, "quota": 0, "errors": 0} for d in window}
    for r in rows:
        day = per_day.get(r["day"])
        if day is not None:
            for field in ("requests", "tokens", "quota", "errors"):
                day[field] += r[field]

    top_users = selectors.usage_top(since=since, by="user_id")
    user_names = dict(User.objects.filter(pk__in=[u["id"] for u in top_users]).values_list("id", "username"))
    for u in top_users:
        u["name"] = user_names.get(u["id"], "")
    top_tokens = selectors.usage_top(since=since, by="token_id")
    token_rows = {t[0]: t[1:] for t in Token.objects.filter(pk__in=[t["id"] for t in top_tokens])
                  .values_list("id", "name", "user__username")}
    for t in top_tokens:
        t["name"], t["owner"] = token_rows.get(t["id"], ("", ""))

    return {
        "ops": {
            "days": days, "periods": PERIODS, "by": by, "measure": measure,
            "dimensions": DIMENSION_LABELS.items(), "measures": MEASURE_LABELS.items(),
            "chart": drawn, "unit_name": money.unit_name() if in_money else MEASURE_LABELS[measure],
            "first_day": window[0].isoformat(), "last_day": window[-1].isoformat(),
            "per_day": sorted(per_day.values(), key=lambda d: d["day"], reverse=True),
            "totals": {f: sum(d[f] for d in per_day.values()) for f in ("requests", "tokens", "quota", "errors")},
            "top_users": top_users, "top_tokens": top_tokens,
            "channels": _channels(since),
            "ledger": _ledger_state(),
        },
    }


def _channels(since) -> dict:
    """The channels that need a look: not serving or failing in a row here, failing most often, slowest."""
    usage = selectors.usage_channels(since=since)
    failing = health.failures.snapshot()
    rows = list(Channel.objects.values("id", "name", "status", "response_time", "test_time"))
    for row in rows:
        row["requests"], row["latency"], row["errors"] = usage.get(row["id"], (0, 0, 0))
        attempts = row["requests"] + row["errors"]
        row["error_rate"] = f"{100 * row['errors'] / attempts:.1f}%" if attempts else "-"
        row["failures"] = failing.get(row["id"], 0)
        row["status_label"] = Channel.Status(row["status"]).label if row["status"] in Channel.Status.values else ""
    down = [r for r in rows if r["status"] != Channel.Status.ENABLED or r["failures"]]
    down.sort(key=lambda r: (r["status"] == Channel.Status.ENABLED, -r["failures"], r["id"]))
    erring = sorted((r for r in rows if r["errors"]),
                    key=lambda r: (-r["errors"] / (r["requests"] + r["errors"]), -r["errors"], r["id"]))[:10]
    slow = sorted((r for r in rows if r["requests"]), key=lambda r: (-r["latency"], r["id"]))[:10]
    return {"down": down[:20], "erring": erring, "slow": slow}


def _ledger_state() -> dict:
    return {"pending": len(ledger.pending), "failures": ledger.failures, "parked": ledger.parked_count,
            "running": ledger._thread is not None and ledger._thread.is_alive()}


def with_dashboard(index):
    """The admin site's index view, with the dashboard for those who may read the logs."""
    @functools.wraps(index)
    def view(request, extra_context=None):
        context = dict(extra_context or {})
        if request.user.is_active and request.user.has_perm("billing.view_log"):
            context.update(dashboard_context(request))
        return index(request, extra_context=context)
    return view
