"""Top-up: redeem a prepaid code, or go to the operator's own payment page (TopUpLink)."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters

from accounts.models import User
from billing import services
from billing.money import quota_text
from billing.pages.forms import TopUpForm
from oneapi_site import options
from oneapi_site.lib.errors import ServiceError


def top_up_url(link: str, *, user: User) -> str:
    """one-api's TopUp page: the link with username, user_id and a fresh transaction_id appended.

    The external payment page credits the user through POST /api/topup; the transaction id
    lets it recognise a retried payment. Only http(s) links are offered: anything else
    (javascript:, a typo) would be a broken or dangerous button.
    """
    parts = urlsplit((link or "").strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [("username", user.username), ("user_id", str(user.pk)), ("transaction_id", str(uuid.uuid4()))]
    return urlunsplit(parts._replace(query=urlencode(query)))


@login_required
@sensitive_post_parameters("key")  # an unused code is money: no error report may print it
def topup(request):
    if request.method == "POST":
        form = TopUpForm(request.POST)
        if form.is_valid():
            try:
                credited = services.redemption_redeem(user_id=request.user.pk, key=form.cleaned_data["key"])
            except ServiceError as exc:
                form.add_error("key", str(exc))
            else:
                balance = User.objects.filter(pk=request.user.pk).values_list("quota", flat=True).first() or 0
                messages.success(request, _("Redeemed %(amount)s. Your balance is now %(balance)s.") % {
                    "amount": quota_text(credited), "balance": quota_text(balance)})
                return redirect("topup")
    else:
        form = TopUpForm()
    return render(request, "billing/topup.html", {
        "form": form,
        "balance": User.objects.filter(pk=request.user.pk).values_list("quota", flat=True).first() or 0,
        "top_up_url": top_up_url(options.get("TopUpLink"), user=request.user),
    })
