"""Personal settings: profile, password, management access token, invite link.

One page of small forms; each posts a hidden `action` naming which one it is.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from accounts.limits import critical_limited
from accounts.models import User
from accounts.services.users import (
    DISPLAY_NAME_MAX_LENGTH,
    USERNAME_MAX_LENGTH,
    display_name_clean,
    password_length_check,
    user_access_token_reset,
    user_aff_code_ensure,
    user_profile_update,
    username_clean,
)
from oneapi_site.lib.address import page_address
from oneapi_site.lib.errors import ServiceError
from oneapi_site.lib.number_fields import form_error


class ProfileForm(forms.Form):
    """The fields only: the rules and their messages are accounts.services.users', as for /api."""

    username = forms.CharField(
        label=gettext_lazy("Username"), required=False,
        widget=forms.TextInput(attrs={"autocomplete": "username", "data-testid": "settings-username",
                                      "maxlength": USERNAME_MAX_LENGTH, "required": True}),
    )
    display_name = forms.CharField(
        label=gettext_lazy("Display name"), required=False,
        help_text=gettext_lazy("Shown in the top bar. Empty uses your username."),
        widget=forms.TextInput(attrs={"data-testid": "settings-display-name", "maxlength": DISPLAY_NAME_MAX_LENGTH}),
    )

    def __init__(self, *args, user: User, **kwargs):
        self.user = user
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    def clean_username(self) -> str:
        try:
            return username_clean(self.cleaned_data["username"], user_id=self.user.pk)
        except ServiceError as exc:
            raise form_error(exc) from None

    def clean_display_name(self) -> str:
        try:
            return display_name_clean(self.cleaned_data["display_name"])
        except ServiceError as exc:
            raise form_error(exc) from None


class PasswordForm(PasswordChangeForm):
    """Django's form (current password, validators); one-api also caps the length."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["old_password"].widget.attrs.pop("autofocus", None)  # one form of several on the page

    def clean(self):
        cleaned = super().clean()
        password = cleaned.get("new_password2")
        if password and "new_password2" not in self.errors:
            try:
                password_length_check(password)
            except ServiceError as exc:
                self.add_error("new_password2", str(exc))
        return cleaned


ROLE_LABELS = {
    User.Role.COMMON: gettext_lazy("User"),
    User.Role.ADMIN: gettext_lazy("Administrator"),
    User.Role.ROOT: gettext_lazy("Root"),
}


def invite_link(request, aff_code: str) -> str:
    return f"{page_address(request)}/register/?aff={aff_code}"


def _render(request, *, profile_form=None, password_form=None, new_access_token: str = "", status: int = 200):
    user = request.user
    aff_code = user_aff_code_ensure(user=user)
    return render(request, "accounts/settings.html", {
        "profile_form": profile_form or ProfileForm(user=user, initial={
            "username": user.username, "display_name": user.display_name}),
        "password_form": password_form or PasswordForm(user=user),
        "new_access_token": new_access_token,
        "has_access_token": bool(user.access_token),
        "invite_link": invite_link(request, aff_code),
        "invited_count": User.objects.filter(inviter_id=user.pk).count(),
        "role_label": ROLE_LABELS.get(user.role, str(user.role)),
    }, status=status)


def _save_profile(request):
    form = ProfileForm(request.POST, user=request.user)
    if form.is_valid():
        try:
            user_profile_update(user=request.user, username=form.cleaned_data["username"],
                                display_name=form.cleaned_data["display_name"])
        except ServiceError as exc:
            request.user.refresh_from_db()
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            messages.success(request, _("Your profile is saved."))
            return redirect("settings")
    return _render(request, profile_form=form)


def _change_password(request):
    # The current password is a secret someone holding a stolen session could guess at.
    if critical_limited(request):
        return render(request, "accounts/rate_limited.html", status=429)
    form = PasswordForm(user=request.user, data=request.POST)
    if form.is_valid():
        # The service, not form.save(): a whole-row save would write back a quota the relay has moved since.
        try:
            user = user_profile_update(user=request.user, password=form.cleaned_data["new_password1"])
        except ServiceError as exc:
            form.add_error("new_password1", str(exc))
        else:
            update_session_auth_hash(request, user)  # stay signed in here; other sessions end
            messages.success(request, _("Your password is changed."))
            return redirect("settings")
    return _render(request, password_form=form)


def _reset_access_token(request):
    value = user_access_token_reset(user=request.user)
    # Shown in this answer only, not stored in the (cookie) session: reloading the page hides it.
    messages.success(request, _("A new access token is made; the old one no longer works."))
    return _render(request, new_access_token=value)


ACTIONS = {"profile": _save_profile, "password": _change_password, "access_token": _reset_access_token}


@login_required
@require_http_methods(["GET", "POST"])
@sensitive_post_parameters("old_password", "new_password1", "new_password2")
@never_cache  # a new access token is shown in this answer
def settings_view(request):
    if request.method == "GET":
        return _render(request)
    action = ACTIONS.get(request.POST.get("action", ""))
    if action is None:
        return HttpResponseBadRequest(_("Unknown action."))
    return action(request)
