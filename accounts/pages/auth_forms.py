"""Forms of the sign-in pages. They check shapes; the rules live in accounts.services.users and
accounts.verification."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.services.users import PASSWORD_LENGTHS, USERNAME_MAX_LENGTH
from oneapi_site.lib.errors import ServiceError


def add_service_error(form: forms.Form, error: ServiceError) -> None:
    """Show a service's refusal next to the field it names, or above the form."""
    field = error.field if error.field in form.fields else None
    form.add_error(field, str(error))


class LoginForm(forms.Form):
    username = forms.CharField(label=_("Username or e-mail"), max_length=128,
                               widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}))
    password = forms.CharField(label=_("Password"), strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class RegisterForm(forms.Form):
    # No length validators: the lengths are accounts.services.users' rules, which say so in their own words.
    username = forms.CharField(label=_("Username"), widget=forms.TextInput(
        attrs={"autocomplete": "username", "maxlength": USERNAME_MAX_LENGTH}))
    password = forms.CharField(label=_("Password"), strip=False, widget=forms.PasswordInput(
        attrs={"autocomplete": "new-password", "maxlength": PASSWORD_LENGTHS[1]}))
    password2 = forms.CharField(label=_("Password again"), strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    email = forms.CharField(label=_("E-mail"), max_length=50, required=False,
                            widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    verification_code = forms.CharField(label=_("Verification code"), max_length=16, required=False,
                                        widget=forms.TextInput(attrs={"autocomplete": "one-time-code"}))
    aff_code = forms.CharField(label=_("Invitation code (optional)"), max_length=16, required=False)

    def __init__(self, *args, email_verification: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["username"].help_text = gettext("Up to %(max)d characters.") % {"max": USERNAME_MAX_LENGTH}
        self.fields["password"].help_text = gettext("%(low)d to %(high)d characters.") % {
            "low": PASSWORD_LENGTHS[0], "high": PASSWORD_LENGTHS[1]}
        if email_verification:
            self.fields["email"].required = True
            self.fields["verification_code"].required = True
        else:  # one-api asks no address when it cannot verify it
            del self.fields["email"]
            del self.fields["verification_code"]

    def clean(self):
        data = super().clean()
        if data.get("password") and data.get("password2") is not None and data["password"] != data["password2"]:
            self.add_error("password2", _("The two passwords do not match."))
        return data


class SendCodeForm(forms.Form):
    """The register form's "send code" button: only the address matters."""

    email = forms.CharField(label=_("E-mail"), max_length=50)


class ResetRequestForm(forms.Form):
    email = forms.CharField(label=_("E-mail"), max_length=50,
                            widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}))


class SetPasswordForm(forms.Form):
    """A new password, twice; the services apply one-api's length and the password validators."""

    new_password1 = forms.CharField(label=_("New password"), strip=False, widget=forms.PasswordInput(
        attrs={"autocomplete": "new-password", "maxlength": PASSWORD_LENGTHS[1]}))
    new_password2 = forms.CharField(label=_("New password again"), strip=False,
                                    widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def clean(self):
        data = super().clean()
        one, two = data.get("new_password1"), data.get("new_password2")
        if one and two and one != two:
            self.add_error("new_password2", _("The two passwords do not match."))
        return data


class ChangePasswordForm(SetPasswordForm):
    field_order = ["old_password", "new_password1", "new_password2"]

    old_password = forms.CharField(label=_("Current password"), strip=False,
                                   widget=forms.PasswordInput(attrs={"autocomplete": "current-password",
                                                                     "autofocus": True}))

    def __init__(self, *args, user, **kwargs):
        self.user = user
        super().__init__(*args, **kwargs)

    def clean_old_password(self):
        value = self.cleaned_data["old_password"]
        if not self.user.check_password(value):
            raise forms.ValidationError(_("The current password is wrong."))
        return value
