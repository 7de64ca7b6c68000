"""The user's own `sk-` tokens: list, create, edit, enable/disable, delete.

Every route looks the token up among the signed-in user's own: another user's id is a 404, as a missing one.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors
from accounts.models import Token
from accounts.pages.redirects import local_url
from accounts.pages.token_forms import SERVICE_FIELDS, TokenForm, service_message, timestamp_to_local
from accounts.services import tokens as token_services
from billing.budget_status import budget_status, budget_text
from oneapi_site.lib import numbers
from oneapi_site.lib.errors import ServiceError
from oneapi_site.lib.limit_values import limits_summary
from providers.selectors import group_models

PER_PAGE = 10
MODELS_SHOWN = 3  # model names in a row's summary before "+N more"


def _own_token(request, token_id: int) -> Token:
    token = selectors.token_of(user=request.user, token_id=token_id)
    if token is None:
        raise Http404
    return token


PAGE_MAX = 100_000  # far past any user's tokens; a bigger offset overflows the database's integer


def _page_number(raw: str | None) -> int:
    page = numbers.int_or_none(raw or "1")
    return 1 if page is None else min(max(1, page), PAGE_MAX)


def _state(token: Token) -> tuple[str, str, str]:
    """(code, label, badge class) of what the relay would do with the token now, not only the stored status."""
    status = token.status
    if status == Token.Status.ENABLED and token.is_expired:
        status = Token.Status.EXPIRED
    elif status == Token.Status.ENABLED and not token.unlimited_quota and token.remain_quota <= 0:
        status = Token.Status.EXHAUSTED
    labels = {
        Token.Status.ENABLED: ("enabled", _("Enabled"), "badge-good"),
        Token.Status.DISABLED: ("disabled", _("Disabled"), ""),
        Token.Status.EXPIRED: ("expired", _("Expired"), "badge-bad"),
        Token.Status.EXHAUSTED: ("exhausted", _("Exhausted"), "badge-bad"),
    }
    return labels.get(status, ("unknown", str(status), ""))


def budget_line(holder) -> str:
    """"$3.2 of $10 spent today, resets at 2026-12-06 00:00", or "" without a budget."""
    status = budget_status(holder)
    return budget_text(status) if status else ""


def _row(token: Token) -> dict:
    code, label, badge = _state(token)
    models = token.model_list
    return {
        "limits": limits_summary(token),
        "budget": budget_line(token),
        "token": token,
        "state": code,
        "state_label": label,
        "badge": badge,
        "enabled": token.status == Token.Status.ENABLED,
        "full_key": f"sk-{token.key}",
        "created_at": timestamp_to_local(token.created_time),
        "expires_at": timestamp_to_local(token.expired_time),
        "models_shown": models[:MODELS_SHOWN],
        "models_more": max(0, len(models) - MODELS_SHOWN),
        "models_all": ", ".join(models),
    }


@login_required
@never_cache  # the page holds every key in full: no shared cache or back button may keep it
def token_list(request):
    keyword = request.GET.get("keyword", "").strip()
    page = _page_number(request.GET.get("p"))
    offset = (page - 1) * PER_PAGE
    if keyword:
        # A user's tokens are few; the search selector has no offset, so take up to this page and cut.
        found = selectors.token_search(user=request.user, keyword=keyword, limit=offset + PER_PAGE + 1)[offset:]
    else:
        found = selectors.token_list(user=request.user, offset=offset, limit=PER_PAGE + 1)
    created = numbers.int_or_none(request.GET.get("created", ""), minimum=0)
    return render(request, "accounts/tokens.html", {
        "rows": [_row(t) for t in found[:PER_PAGE]],
        "keyword": keyword,
        "page": page,
        "has_prev": page > 1,
        "has_next": len(found) > PER_PAGE,
        "created": created,
    })


def _save(request, form: TokenForm, token: Token | None) -> Token | None:
    """Run the service; its refusals land on the form's field."""
    try:
        if token is None:
            return token_services.token_create(user=request.user, by=request.user, **form.service_fields())
        return token_services.token_update(token=token, by=request.user, **form.service_fields())
    except ServiceError as exc:
        field = SERVICE_FIELDS.get(exc.field or "")
        form.add_error(field if field in form.fields else None, service_message(exc))
        return None


@login_required
@require_http_methods(["GET", "POST"])
def token_create(request):
    models = group_models(group=request.user.group)
    form = TokenForm(request.POST or None, group_models=models, owner=request.user)
    if request.method == "POST" and form.is_valid():
        token = _save(request, form, None)
        if token is not None:
            messages.success(request, _("Token “%(name)s” created. Copy its key below.") % {"name": token.name})
            return redirect(f"{reverse('tokens')}?created={token.pk}")
    return render(request, "accounts/token_form.html", {"form": form, "token": None, "group_models": models})


@login_required
@require_http_methods(["GET", "POST"])
def token_edit(request, token_id: int):
    token = _own_token(request, token_id)
    models = group_models(group=request.user.group)
    form = TokenForm(request.POST or None, group_models=models, owner=request.user, token=token)
    if request.method == "POST" and form.is_valid():
        if _save(request, form, token) is not None:
            messages.success(request, _("Token “%(name)s” saved.") % {"name": token.name})
            return redirect("tokens")
        token.refresh_from_db()  # the refused values were set on the instance
    return render(request, "accounts/token_form.html", {"form": form, "token": token, "group_models": models,
                                                        "budget_line": budget_line(token)})


def _back(request):
    """Back to the list page the action came from (a local URL only)."""
    return redirect(local_url(request, request.POST.get("next")) or "tokens")


@login_required
@require_POST
def token_status(request, token_id: int):
    token = _own_token(request, token_id)
    status = numbers.int_or_none(request.POST.get("status", "")) or 0
    if status not in (Token.Status.ENABLED, Token.Status.DISABLED):
        messages.error(request, _("Choose to enable or disable the token."))
        return _back(request)
    try:
        token_services.token_update(token=token, by=request.user, status_only=True, status=status)
    except ServiceError as exc:
        messages.error(request, service_message(exc))
        return _back(request)
    if status == Token.Status.ENABLED:
        messages.success(request, _("Token “%(name)s” enabled.") % {"name": token.name})
    else:
        messages.success(request, _("Token “%(name)s” disabled.") % {"name": token.name})
    return _back(request)


@login_required
@require_http_methods(["GET", "POST"])
def token_delete(request, token_id: int):
    """GET asks for confirmation; only POST deletes."""
    token = _own_token(request, token_id)
    if request.method == "POST":
        name = token.name
        token_services.token_delete(token=token, by=request.user)
        messages.success(request, _("Token “%(name)s” deleted.") % {"name": name})
        return _back(request)
    return render(request, "accounts/token_confirm_delete.html", {"token": token})
