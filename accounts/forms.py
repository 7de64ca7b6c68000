"""Admin forms for users and tokens. They validate input; the admin's save calls the services."""

from __future__ import annotations

from datetime import datetime

from django import forms
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts import permissions
from accounts.models import Token, User
from accounts.services.tokens import TOKEN_MODELS_MAX_LENGTH, TOKEN_SUBNET_MAX_LENGTH
from accounts.services.users import password_validate
from billing.amount_fields import QuotaAmountField
from oneapi_site.lib import limit_values, numbers
from oneapi_site.lib.errors import ServiceError
from oneapi_site.lib.limit_values import BUDGET_FIELDS, LIMIT_FIELDS
from oneapi_site.lib.number_fields import form_error

# Columns the ledger moves while a change form is open. Whether the operator changed them is judged against
# the value the form showed (a hidden initial input), not against the row at save time, which has moved since:
# an untouched field is then not sent to the service, and never writes back a stale balance.
LEDGER_MOVED_USER_FIELDS = ("quota",)
LEDGER_MOVED_TOKEN_FIELDS = ("remain_quota", "status")


def _compare_with_shown(form: forms.BaseForm, names: tuple[str, ...]) -> None:
    for name in names:
        if name in form.fields:
            form.fields[name].show_hidden_initial = True


def role_choices(*, actor: User, target: User | None) -> list[tuple[int, str]]:
    """Roles `actor` may give `target` (accounts.permissions); root keeps its own."""
    if target is not None and target.role == User.Role.ROOT:
        return [(User.Role.ROOT, User.Role.ROOT.label)]
    givable = permissions.roles_givable(actor)
    return [(value, label) for value, label in User.Role.choices if value in givable]


class _RoleRulesMixin:
    """one-api's rules: root stays an enabled root; nobody else becomes root or reaches the actor's role."""

    actor: User

    def _limit_role(self, target: User | None) -> None:
        field = self.fields.get("role")
        if field is not None:
            field.choices = role_choices(actor=self.actor, target=target)
            if target is not None and target.role == User.Role.ROOT:
                field.help_text = gettext("Root stays root.")

    def clean_role(self) -> int:
        role = int(self.cleaned_data["role"])
        allowed = {value for value, _label in role_choices(actor=self.actor, target=self._target())}
        if role not in allowed:
            raise forms.ValidationError(gettext("You cannot give this role."))
        return role

    def _target(self) -> User | None:
        instance = getattr(self, "instance", None)
        return instance if instance is not None and instance.pk else None


class PriceRatioField(forms.CharField):
    """A user's price ratio, 0 to 10,000 with up to six decimals, through the bounded parser."""

    def to_python(self, value) -> float | None:
        if isinstance(value, float):
            return value
        text = (super().to_python(value) or "").strip()
        if not text:
            return None
        try:
            return float(numbers.parse_decimal(text, field=str(self.label), minimum=0,
                                               maximum=limit_values.PRICE_RATIO_MAX,
                                               places=limit_values.PRICE_RATIO_PLACES))
        except ServiceError as exc:
            raise form_error(exc) from None

    def prepare_value(self, value):
        return limit_values.ratio_text(value) if isinstance(value, float) else value


class _LimitsMixin:
    """The rate limit and budget inputs of a user or token change form. An input the post does not carry
    is left as it is (a console page saved from before these fields existed sends none)."""

    def _set_up_limits(self) -> None:
        budget = self.fields.get("budget_quota")
        if budget is not None:
            budget.help_text = budget.help()
        for name in LIMIT_FIELDS:
            if name in self.fields:
                self.fields[name].required = False

    def clean(self):
        cleaned = super().clean()
        for name in LIMIT_FIELDS:
            if name in cleaned and cleaned[name] is None:
                cleaned[name] = 0
        if "budget_quota" in cleaned and cleaned["budget_quota"] is None:
            cleaned["budget_quota"] = 0
        if cleaned.get("budget_quota") and not cleaned.get("budget_period") and "budget_period" in self.fields:
            self.add_error("budget_period", gettext("Choose the period the budget is spent over."))
        return cleaned

    def limit_fields(self) -> dict:
        """The limit and budget values posted: for an existing row, only those the operator changed."""
        names = [name for name in (*LIMIT_FIELDS, *BUDGET_FIELDS) if name in self.fields and name in self.data]
        if self.instance.pk:
            names = [name for name in names if name in self.changed_data]
        return {name: self.cleaned_data[name] for name in names if name in self.cleaned_data}


def _budget_amount_field() -> QuotaAmountField:
    return QuotaAmountField(label=_("Budget"), required=False, maximum=limit_values.BUDGET_MAX, zero_is_none=True)


class UserCreationForm(_RoleRulesMixin, forms.ModelForm):
    password1 = forms.CharField(label=_("Password"), strip=False, widget=forms.PasswordInput(render_value=False))
    password2 = forms.CharField(label=_("Password again"), strip=False,
                                widget=forms.PasswordInput(render_value=False))

    class Meta:
        model = User
        fields = ("username", "display_name", "email", "role", "group", "quota")

    def __init__(self, *args, actor: User, **kwargs):
        self.actor = actor
        super().__init__(*args, **kwargs)
        self._limit_role(None)

    def clean(self):
        cleaned = super().clean()
        p1, p2 = cleaned.get("password1"), cleaned.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", gettext("The two passwords differ."))
        elif p1:
            try:
                password_validate(password=p1, user=User(username=cleaned.get("username") or ""))
            except ServiceError as exc:
                self.add_error("password1", str(exc))
        return cleaned


class UserChangeForm(_LimitsMixin, _RoleRulesMixin, forms.ModelForm):
    new_password = forms.CharField(
        label=_("New password"), required=False, strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Leave empty to keep the current password."),
    )
    budget_quota = _budget_amount_field()
    price_ratio = PriceRatioField(
        label=_("Price ratio"), required=False,
        help_text=_("Multiplies the group's ratio in every charge of this user: 0.8 charges four fifths of the "
                    "list price, 1 the list price; 0 to 10,000."))

    class Meta:
        model = User
        fields = ("display_name", "email", "role", "status", "group", "quota", *LIMIT_FIELDS, *BUDGET_FIELDS,
                  "price_ratio")

    def __init__(self, *args, actor: User, **kwargs):
        self.actor = actor
        super().__init__(*args, **kwargs)
        self._set_up_limits()
        _compare_with_shown(self, LEDGER_MOVED_USER_FIELDS)
        self._limit_role(self.instance)
        if "status" in self.fields:
            # Deleting is its own action (a soft delete that frees the username).
            allowed = {User.Status.ENABLED, User.Status.DISABLED, self.instance.status}
            if self.instance.role == User.Role.ROOT:
                allowed = {User.Status.ENABLED}
                self.fields["status"].help_text = gettext("Root cannot be disabled.")
            self.fields["status"].choices = [(v, label) for v, label in User.Status.choices if v in allowed]

    def clean_status(self) -> int:
        status = int(self.cleaned_data["status"])
        if self.instance.role == User.Role.ROOT and status != User.Status.ENABLED:
            raise forms.ValidationError(gettext("Root cannot be disabled."))
        return status

    def clean_new_password(self) -> str:
        password = self.cleaned_data.get("new_password") or ""
        if password:
            try:
                password_validate(password=password, user=self.instance)
            except ServiceError as exc:
                raise forms.ValidationError(str(exc)) from None
        return password


def _to_datetime(ts: int) -> datetime | None:
    if ts is None or ts == -1:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.get_current_timezone())


class TokenForm(_LimitsMixin, forms.ModelForm):
    """Never carries the key: it is shown once on creation and masked afterwards."""

    budget_quota = _budget_amount_field()

    expired_time = forms.DateTimeField(
        label=_("Expires"), required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text=_("Empty: never expires."),
    )
    models = forms.CharField(label=_("Models"), required=False, widget=forms.Textarea(attrs={"rows": 2}),
                             max_length=TOKEN_MODELS_MAX_LENGTH,
                             help_text=_("Comma-separated model allow-list; empty allows all."))
    subnet = forms.CharField(label=_("Subnet"), required=False, max_length=TOKEN_SUBNET_MAX_LENGTH,
                             help_text=_("Comma-separated IPs or CIDRs; empty allows all."))

    class Meta:
        model = Token
        fields = ("user", "name", "remain_quota", "unlimited_quota", "expired_time", "models", "subnet", "status",
                  *LIMIT_FIELDS, *BUDGET_FIELDS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._set_up_limits()
        if self.instance.pk:
            self.initial["expired_time"] = _to_datetime(self.instance.expired_time)
            _compare_with_shown(self, LEDGER_MOVED_TOKEN_FIELDS)

    def clean_expired_time(self) -> int:
        value = self.cleaned_data.get("expired_time")
        return -1 if value is None else int(value.timestamp())

    def service_fields(self) -> dict:
        """The arguments of token_create, or of token_update: for an edit, only what the operator changed."""
        names = ("name", "remain_quota", "unlimited_quota", "expired_time", "models", "subnet", "status")
        if self.instance.pk:
            names = tuple(name for name in names if name in self.changed_data)
        return {**{name: self.cleaned_data[name] for name in names if name in self.cleaned_data},
                **self.limit_fields()}
