"""Logs: the user's own records, filtered, with totals and keyset pages."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from billing import selectors
from billing.pages.forms import LOG_TYPE_LABELS, LogFilterForm
from billing.selectors import LogFilter

PAGE_SIZE = 20


ID_MAX = 2**63 - 1  # BIGINT: a larger number is no id, and the database would refuse to compare with it


def _id_param(request, name: str) -> int | None:
    value = request.GET.get(name, "").strip()
    # isdecimal, not isdigit: "²" is a digit that int() refuses; and int() refuses past 4,300 digits,
    # so the length is checked first (an id has at most 19).
    if not (value.isdecimal() and value.isascii() and len(value) <= len(str(ID_MAX))):
        return None
    return int(value) if int(value) <= ID_MAX else None


@login_required
def logs(request):
    form = LogFilterForm(request.GET or None)
    page = totals = None
    if form.is_bound and not form.is_valid():
        # Bad filters list nothing rather than silently listing everything.
        rows = []
    else:
        data = form.cleaned_data if form.is_bound else {}
        start, end = form.timestamps() if form.is_bound else (0, 0)
        # The user's id comes from the session alone: no parameter can widen the filter.
        f = LogFilter(user_id=request.user.pk, type=data.get("type") or 0, start_timestamp=start,
                      end_timestamp=end, model_name=(data.get("model_name") or "").strip(),
                      token_name=(data.get("token_name") or "").strip())
        page = selectors.log_keyset_page(f=f, before=_id_param(request, "before"),
                                         after=_id_param(request, "after"), size=PAGE_SIZE)
        totals = selectors.logs_totals(f=f)
        rows = [
            {"log": log, "type_label": LOG_TYPE_LABELS.get(log.type, log.type),
             "created": dt.datetime.fromtimestamp(log.created_at, tz=dt.UTC)}
            for log in page.logs
        ]
    return render(request, "billing/logs.html", {"form": form, "rows": rows, "page": page, "totals": totals})
