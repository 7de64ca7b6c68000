"""Admin forms for redemption batches and the options page."""

from __future__ import annotations

import json
from decimal import Decimal

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from billing.models import RedemptionCode
from billing.services import REDEMPTION_BATCH_MAX
from oneapi_site import options
from oneapi_site.lib import numbers
from oneapi_site.lib.errors import ServiceError
from oneapi_site.lib.number_fields import WholeNumberField

LONG_TEXT_KEYS = {"Notice", "About", "HomePageContent", "Footer", "EmailDomainWhitelist"}

# The options page labels each key with these; the key itself stays visible under its field (operators know
# one-api's names, and /api/option uses them).
GROUP_TITLES = {
    "operation": _("Operation settings"),
    "system": _("System settings"),
    "other": _("Other settings"),
}
OPTION_LABELS = {
    "QuotaPerUnit": _("Quota per US$1"),
    "ModelRatio": _("Model ratios"),
    "CompletionRatio": _("Completion ratios"),
    "CacheRatio": _("Cache read ratios (of the input price)"),
    "CreateCacheRatio": _("Cache write ratios (of the input price; 1-hour writes cost 1.6 times this)"),
    "GroupRatio": _("Group ratios"),
    "ModelPrice": _("Prices per call (US$; a model listed here is not priced by its ratios)"),
    "ModelTierPricing": _("Prices by prompt size (US$ per 1M tokens, new-api's tiers)"),
    "AudioRatio": _("Audio input ratios (of the input price)"),
    "AudioCompletionRatio": _("Audio output ratios (of the audio input price)"),
    "ImageRatio": _("Image input ratios (of the input price)"),
    "PreConsumedQuota": _("Quota held back before a request"),
    "QuotaForNewUser": _("Quota for a new user"),
    "QuotaForInviter": _("Quota rewarded to the inviter"),
    "QuotaForInvitee": _("Quota for a user who signs up with an invitation"),
    "QuotaRemindThreshold": _("Quota reminder threshold"),
    "RetryTimes": _("Retries on failure"),
    "AutomaticDisableChannelEnabled": _("Disable a channel automatically when it fails"),
    "AutomaticEnableChannelEnabled": _("Enable a channel again automatically when its test passes"),
    "ChannelDisableThreshold": _("Longest response time in a channel test (seconds)"),
    "ChannelDisableFailureCount": _("Consecutive failures before a channel is disabled"),
    "DisplayInCurrencyEnabled": _("Show quota in US$"),
    "DisplayTokenStatEnabled": _("Billing API reports the token's quota, not the user's"),
    "ApproximateTokenEnabled": _("Estimate token counts approximately (less work)"),
    "LogConsumeEnabled": _("Record consume logs"),
    "LogRetentionDays": _("Keep logs for this many days (0: for ever)"),
    "BodyCaptureTokenIds": _("Capture the request and response bodies of these token ids (comma-separated)"),
    "BodyCaptureRetentionHours": _("Keep captured bodies for this many hours"),
    "TopUpLink": _("Top-up link"),
    "ChatLink": _("Chat page link"),
    "PasswordLoginEnabled": _("Allow sign-in with a password"),
    "PasswordRegisterEnabled": _("Allow sign-up with a password"),
    "RegisterEnabled": _("Allow new users to sign up"),
    "EmailVerificationEnabled": _("Verify the e-mail address at sign-up"),
    "EmailDomainRestrictionEnabled": _("Allow only the listed e-mail domains"),
    "EmailDomainWhitelist": _("Allowed e-mail domains"),
    "SMTPServer": _("SMTP server"),
    "SMTPPort": _("SMTP port"),
    "SMTPAccount": _("SMTP account"),
    "SMTPFrom": _("Sender address"),
    "SMTPToken": _("SMTP password or token"),
    "GitHubOAuthEnabled": _("Allow sign-in with GitHub"),
    "GitHubClientId": _("GitHub client ID"),
    "GitHubClientSecret": _("GitHub client secret"),
    "OidcEnabled": _("Allow sign-in with OIDC"),
    "OidcClientId": _("OIDC client ID"),
    "OidcClientSecret": _("OIDC client secret"),
    "OidcWellKnown": _("OIDC discovery URL (.well-known)"),
    "OidcAuthorizationEndpoint": _("OIDC authorization endpoint"),
    "OidcTokenEndpoint": _("OIDC token endpoint"),
    "OidcUserinfoEndpoint": _("OIDC user info endpoint"),
    "TurnstileCheckEnabled": _("Check Turnstile on sign-in and sign-up"),
    "TurnstileSiteKey": _("Turnstile site key"),
    "TurnstileSecretKey": _("Turnstile secret key"),
    "ServerAddress": _("Server address"),
    "SystemName": _("System name"),
    "Logo": _("Logo URL"),
    "Footer": _("Footer"),
    "Notice": _("Notice"),
    "About": _("About"),
    "HomePageContent": _("Home page content"),
}


class RedemptionBatchForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=20,
                           help_text=_("Up to 20 characters; every code in the batch gets it."))
    quota = WholeNumberField(label=_("Quota"), column=RedemptionCode._meta.get_field("quota"), minimum=1,
                             help_text=_("Quota each code credits (500000 = $1 by default)."))
    count = WholeNumberField(label=_("Count"), minimum=1, maximum=REDEMPTION_BATCH_MAX, initial=1,
                             help_text=_("1 to 100 codes."))


def _field_for(key: str) -> forms.Field:
    label = OPTION_LABELS.get(key, key)
    if key in options.BOOL_KEYS:
        return forms.BooleanField(required=False, label=label)
    if key in options.INT_KEYS or key in options.FLOAT_KEYS:
        # Text, read by options.parse in clean(): the bounded parser, with the key's declared range.
        low, high = options.INT_RANGES.get(key) or options.DECIMAL_RANGES[key][:2]
        return forms.CharField(
            required=False, label=label,
            widget=forms.TextInput(attrs={"class": "vIntegerField", "inputmode": "decimal"}),
            help_text=_("From %(minimum)s to %(maximum)s.") % {"minimum": numbers.plain(low),
                                                                "maximum": numbers.plain(high)})
    if key in options.JSON_TEXT_KEYS:
        return forms.CharField(required=False, label=label, strip=False, widget=forms.Textarea(
            attrs={"rows": 10, "class": "vLargeTextField", "spellcheck": "false"}))
    if options.is_secret(key):
        return forms.CharField(required=False, label=label, widget=forms.PasswordInput(
            render_value=False, attrs={"autocomplete": "new-password", "placeholder": gettext("unchanged")}),
            help_text=_("Write-only: leave empty to keep the stored value."))
    if key in LONG_TEXT_KEYS:
        return forms.CharField(required=False, label=label, strip=False,
                               widget=forms.Textarea(attrs={"rows": 3, "class": "vLargeTextField"}))
    return forms.CharField(required=False, label=label, widget=forms.TextInput(attrs={"class": "vTextField"}))


def display_value(key: str, value):
    """The current value as its field shows it; secrets are never sent back."""
    if options.is_secret(key):
        return ""
    if key in options.JSON_TEXT_KEYS:
        return json.dumps(value, ensure_ascii=False, indent=2)
    if key in options.FLOAT_KEYS:
        return numbers.plain(Decimal(str(value)))  # 500000, not 500000.0
    return value


class OptionsForm(forms.Form):
    """One field per option key of oneapi_site.options.GROUPS; `changed_values()` feeds option_set."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for keys in options.GROUPS.values():
            for key in keys:
                self.fields[key] = _field_for(key)
                self.initial[key] = display_value(key, options.get(key))

    def groups(self):
        """(name, title, bound fields) per group of oneapi_site.options.GROUPS."""
        return [(name, GROUP_TITLES.get(name, name), [self[key] for key in keys])
                for name, keys in options.GROUPS.items()]

    def clean(self):
        cleaned = super().clean()
        numeric = options.INT_KEYS | options.FLOAT_KEYS
        for key in options.JSON_TEXT_KEYS | numeric:
            if key not in self.fields or key in self.errors:
                continue
            text = cleaned.get(key) or ""
            if key in numeric and not text.strip():
                self.add_error(key, gettext("%(key)s is required.") % {"key": key})
                continue
            try:
                cleaned[key] = options.parse(key, text)
            except ServiceError as exc:
                self.add_error(key, str(exc))
        return cleaned

    def changed_values(self) -> dict:
        """Keys whose value differs from the stored one, switches last (credentials first)."""
        changed = {}
        for key in self.fields:
            value = self.cleaned_data.get(key)
            if options.is_secret(key) and not value:
                continue
            if options.encode(key, value) != options.encode(key, options.get(key)):
                changed[key] = value
        return dict(sorted(changed.items(), key=lambda item: item[0] in options.BOOL_KEYS))
