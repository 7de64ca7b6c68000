"""The token form of the self-service pages: quota in the unit the user sees, expiry, allow-lists.

It validates and converts input to the service's arguments; accounts.services.tokens.token_create/update save.
"""

from __future__ import annotations

import re
from datetime import datetime

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Token, User
from accounts.services.tokens import (
    EXPIRY_MAX,
    TOKEN_NAME_MAX_LENGTH,
    TOKEN_SUBNET_MAX_LENGTH,
    caps_apply,
    validate_subnets,
)
from billing import money
from oneapi_site import options
from oneapi_site.lib import numbers
from oneapi_site.lib.errors import ServiceError
from oneapi_site.lib.limit_fields import BudgetPeriod
from oneapi_site.lib.limit_values import BUDGET_MAX, LIMIT_FIELDS, LIMIT_MAX
from oneapi_site.lib.number_fields import WholeNumberField, form_error
from oneapi_site.lib.timeutil import now_ts

NAME_MAX_LENGTH = TOKEN_NAME_MAX_LENGTH
QUOTA_MAX = numbers.BIGINT[1]  # what tokens.remain_quota holds
DATETIME_FORMAT = "%Y-%m-%dT%H:%M"  # what <input type="datetime-local"> sends and shows
# The page's own words for the parser's commonest refusals; the rarer ones (an exponent, too many digits,
# too large) are the parser's, naming the field.
QUOTA_MESSAGES = {
    "invalid": _("Enter a number."),
    "not_finite": _("Enter a number."),
    "min_value": _("The quota must not be negative."),
    "not_whole": _("Enter a whole number of quota units."),
}
BUDGET_MESSAGES = {**QUOTA_MESSAGES, "min_value": _("The budget must not be negative.")}
LIMIT_LABELS = {
    "rpm_limit": _("Requests per minute"),
    "tpm_limit": _("Tokens per minute"),
    "concurrency_limit": _("Requests at once"),
    "rpd_limit": _("Requests per day"),
}
PERIOD_PHRASES = {  # "at most $10 a day"
    BudgetPeriod.DAY: _("%(amount)s a day"),
    BudgetPeriod.WEEK: _("%(amount)s a week"),
    BudgetPeriod.MONTH: _("%(amount)s a month"),
}


def _amount(text: str, *, label: str, maximum: int, messages: dict, budget: bool = False) -> int | None:
    """An amount typed in the unit the user reads quota in: US$ (rounded half up to whole quota) or quota units,
    through the bounded parser: the text's shape is checked before any arithmetic, so 1e500000 costs nothing."""
    text = (text or "").strip().replace(",", "")  # 1,000 as people write it
    if not text:
        return None
    try:
        if options.in_currency() and budget:  # a budget of 0 is none: US$ too few for one quota unit are refused
            return numbers.parse_budget_in_usd(text, field=label, per_unit=options.quota_per_unit(), maximum=maximum)
        if options.in_currency():
            return numbers.parse_quota_in_usd(text, field=label, per_unit=options.quota_per_unit(), minimum=0,
                                              maximum=maximum)
        return numbers.parse_int(text, field=label, minimum=0, maximum=maximum)
    except ServiceError as exc:
        raise form_error(exc, messages) from None


def split_list(text: str) -> list[str]:
    """Commas, spaces or new lines between items."""
    return [item for item in re.split(r"[\s,]+", text or "") if item]


def timestamp_to_local(ts: int) -> datetime | None:
    if ts is None or ts == -1:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.get_current_timezone())


class TokenForm(forms.Form):
    name = forms.CharField(
        label=_("Name"), max_length=NAME_MAX_LENGTH,
        error_messages={"required": _("Give the token a name."),
                        "max_length": _("The name may have at most %(limit_value)d characters.")},
        widget=forms.TextInput(attrs={"autocomplete": "off", "data-testid": "token-name"}),
    )
    quota = forms.CharField(
        required=False,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "data-testid": "token-quota"}),
    )
    unlimited_quota = forms.BooleanField(
        label=_("Unlimited quota"), required=False,
        help_text=_("The token may spend the whole balance of your account."),
        widget=forms.CheckboxInput(attrs={"data-testid": "token-unlimited"}),
    )
    never_expires = forms.BooleanField(
        label=_("Never expires"), required=False, initial=True,
        widget=forms.CheckboxInput(attrs={"data-testid": "token-never-expires"}),
    )
    expires_at = forms.DateTimeField(
        label=_("Expires at"), required=False, input_formats=[DATETIME_FORMAT, "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        error_messages={"invalid": _("Enter a date and time, for example 2030-01-31 18:00.")},
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "data-testid": "token-expires-at"},
                                   format=DATETIME_FORMAT),
    )
    models = forms.MultipleChoiceField(
        label=_("Allowed models"), required=False,
        help_text=_("Tick none to allow every model your group can use."),
        error_messages={"invalid_choice": _("%(value)s is not a model your group can use.")},
        widget=forms.CheckboxSelectMultiple,
    )
    subnet = forms.CharField(
        label=_("Allowed IP addresses"), required=False, max_length=TOKEN_SUBNET_MAX_LENGTH,
        error_messages={"max_length": _("The list may have at most %(limit_value)d characters.")},
        help_text=_("IP addresses or CIDR ranges such as 10.0.0.0/8, separated by commas or new lines. "
                    "Empty allows every address."),
        widget=forms.Textarea(attrs={"rows": 2, "class": "mono", "data-testid": "token-subnet"}),
    )

    budget = forms.CharField(
        required=False,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "data-testid": "token-budget"}),
    )
    budget_period = forms.ChoiceField(
        label=_("Budget period"), required=False, choices=BudgetPeriod.choices,
        widget=forms.Select(attrs={"data-testid": "token-budget-period"}),
    )

    def __init__(self, *args, group_models: list[str], owner: User, token: Token | None = None, **kwargs):
        self.token = token
        self.owner = owner
        # The owner's own limits bound the token's (accounts.services.tokens); root's tokens are free.
        self.capped = caps_apply(by=owner, owner=owner)
        if "initial" not in kwargs:
            kwargs["initial"] = self.initial_for(token) if token is not None else self.initial_new(owner)
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self._add_limit_fields()
        choices = list(group_models)
        if token is not None:
            # A model the group has lost since stays listed, so saving other changes keeps it.
            choices += [m for m in token.model_list if m not in choices]
            # Whether the quota was changed is judged against the amount the page showed (a hidden input),
            # not against the balance at save time, which the relay has spent from since.
            self.fields["quota"].show_hidden_initial = True
        self.fields["models"].choices = [(m, m) for m in choices]
        if options.in_currency():
            self.fields["quota"].label = _("Quota (US$)")
            self.fields["quota"].help_text = _("In US dollars; %(units)s quota units make US$1.") % {
                "units": numbers.plain(options.quota_per_unit())}
        else:
            self.fields["quota"].label = _("Quota")
            self.fields["quota"].help_text = _("In quota units.")
        self.fields["expires_at"].help_text = _("Time zone: %(tz)s.") % {"tz": timezone.get_current_timezone_name()}
        if token is None and not self.is_bound:
            self.initial.setdefault("quota", money.form_amount(int(options.quota_per_unit())))

    def _add_limit_fields(self) -> None:
        for name in LIMIT_FIELDS:
            most = getattr(self.owner, name) if self.capped else 0
            self.fields[name] = WholeNumberField(
                label=LIMIT_LABELS[name], required=False, minimum=0, maximum=LIMIT_MAX,
                widget=forms.NumberInput(attrs={"data-testid": f"token-{name.replace('_', '-')}"}),
                help_text=(_("1 to %(most)s: your account's limit.") % {"most": f"{most:,}"} if most
                           else _("Empty or 0: no limit of the token's own.")))
        budget = self.fields["budget"]
        budget.label = _("Budget (US$)") if options.in_currency() else _("Budget")
        if self.capped and self.owner.budget_quota and self.owner.budget_period:
            budget.help_text = _("Spending allowed per period on top of the quota; your account's budget is "
                                 "%(budget)s.") % {"budget": self._owner_budget()}
        else:
            budget.help_text = _("Spending allowed per period on top of the quota; empty or 0: no budget.")

    def _owner_budget(self) -> str:
        return str(PERIOD_PHRASES[self.owner.budget_period]) % {
            "amount": money.quota_text(self.owner.budget_quota)}

    @staticmethod
    def initial_new(owner: User) -> dict:
        """A new token starts at its owner's limits: the most it may have, and what a form left alone keeps."""
        return {name: getattr(owner, name) or "" for name in LIMIT_FIELDS}

    @staticmethod
    def initial_for(token: Token) -> dict:
        expires = timestamp_to_local(token.expired_time)
        return {
            **{name: getattr(token, name) or "" for name in LIMIT_FIELDS},
            "budget": money.form_amount(token.budget_quota) if token.budget_quota else "",
            "budget_period": token.budget_period,
            "name": token.name,
            "quota": money.form_amount(token.remain_quota),
            "unlimited_quota": token.unlimited_quota,
            "never_expires": expires is None,
            "expires_at": expires,
            "models": token.model_list,
            "subnet": "\n".join(split_list(token.subnet)),
        }

    def clean_name(self) -> str:
        return self.cleaned_data["name"].strip()

    def clean_quota(self) -> int | None:
        return _amount(self.cleaned_data.get("quota"), label=str(self.fields["quota"].label), maximum=QUOTA_MAX,
                       messages=QUOTA_MESSAGES)

    def clean_budget(self) -> int:
        return _amount(self.cleaned_data.get("budget"), label=str(self.fields["budget"].label), maximum=BUDGET_MAX,
                       messages=BUDGET_MESSAGES, budget=True) or 0

    def _changed(self, name: str) -> bool:
        """Judged against what the page showed: a stored limit above a since-lowered account limit, left
        alone, is not the user's doing and does not stop other edits."""
        return self.token is None or name in self.changed_data

    def _clean_limits(self, cleaned: dict) -> None:
        for name in LIMIT_FIELDS:
            if name not in cleaned:
                continue
            cleaned[name] = cleaned[name] or 0
            most = getattr(self.owner, name)
            if self.capped and most and self._changed(name) and not 1 <= cleaned[name] <= most:
                self.add_error(name, _("The most allowed is %(most)s, your account's limit; 0 (no limit) is "
                                       "more than that.") % {"most": f"{most:,}"})

    def _clean_budget(self, cleaned: dict) -> None:
        if "budget" not in cleaned:
            return
        amount, period = cleaned["budget"], cleaned.get("budget_period") or ""
        if amount and not period:
            self.add_error("budget_period", _("Choose the period the budget is spent over."))
            return
        owner = self.owner
        changed = self._changed("budget") or self._changed("budget_period")
        if (self.capped and changed and owner.budget_quota and owner.budget_period == period
                and not 1 <= amount <= owner.budget_quota):
            self.add_error("budget", _("The most allowed is %(budget)s, your account's budget; 0 (no budget) is "
                                       "more than that.") % {"budget": self._owner_budget()})

    def clean_subnet(self) -> str:
        items = split_list(self.cleaned_data.get("subnet") or "")
        bad = []
        for item in items:
            try:
                validate_subnets(item)
            except ServiceError:
                bad.append(item)
        if bad:
            raise forms.ValidationError(
                _("Not an IP address or CIDR range: %(items)s.") % {"items": ", ".join(bad)})
        return ",".join(items)

    def clean(self):
        cleaned = super().clean()
        self._clean_limits(cleaned)
        self._clean_budget(cleaned)
        if not cleaned.get("unlimited_quota") and "quota" in cleaned and cleaned["quota"] is None:
            self.add_error("quota", _("Enter a quota, or tick “Unlimited quota”."))
        if not cleaned.get("never_expires") and "expires_at" in cleaned:
            expires = cleaned.get("expires_at")
            if expires is None:
                self.add_error("expires_at", _("Pick an expiry date, or tick “Never expires”."))
            elif self.token is None and int(expires.timestamp()) <= now_ts():
                self.add_error("expires_at", _("The expiry must be in the future."))
            elif int(expires.timestamp()) > EXPIRY_MAX:
                self.add_error("expires_at", _("Pick a date before the year 9999."))
        return cleaned

    def service_fields(self) -> dict:
        """The arguments of accounts.services.tokens.token_create / token_update."""
        data = self.cleaned_data
        expires = None if data["never_expires"] else data["expires_at"]
        fields = {
            "name": data["name"],
            "unlimited_quota": data["unlimited_quota"],
            "expired_time": -1 if expires is None else int(expires.timestamp()),
            "models": list(data["models"]),
            "subnet": data["subnet"],
        }
        if self.token is None:
            fields["remain_quota"] = data["quota"] or 0
        elif data["quota"] is not None and "quota" in self.changed_data:
            # Untouched, or emptied for an unlimited token: the balance stays what the ledger has made it.
            fields["remain_quota"] = data["quota"]
        for name in LIMIT_FIELDS:
            if self._changed(name):
                fields[name] = data[name]
        if self._changed("budget") or self._changed("budget_period"):
            fields["budget_quota"] = data["budget"]
            fields["budget_period"] = data["budget_period"] or ""
        return fields


# Service messages (English, shared with /api) as the pages say them; unknown ones pass through.
SERVICE_FIELDS = {"remain_quota": "quota", "expired_time": "expires_at", "name": "name", "subnet": "subnet",
                  "models": "models", "budget_quota": "budget", "budget_period": "budget_period",
                  **{name: name for name in LIMIT_FIELDS}}
SERVICE_MESSAGES = {
    "the token has expired: change its expiry before enabling it":
        _("This token has expired: set a later expiry before enabling it."),
    "the token has no quota left: add quota before enabling it":
        _("This token has no quota left: add quota or make it unlimited before enabling it."),
    "remain_quota must not be negative": _("The quota must not be negative."),
}


def service_message(exc: ServiceError) -> str:
    text = str(exc)
    return str(SERVICE_MESSAGES.get(text, text))
