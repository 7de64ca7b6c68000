"""The operator console for users and tokens: forms validate, services write."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.models import Group
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts import permissions
from accounts.forms import TokenForm, UserChangeForm, UserCreationForm
from accounts.models import Token, User
from accounts.services.tokens import token_create, token_delete, token_update
from accounts.services.users import user_create, user_delete, user_update
from billing import money
from billing.budget_status import budget_brief, budget_status, budget_text
from oneapi_site.lib.admin import (
    IdAutocompleteSelect,
    OfferedFiltersMixin,
    RowIdsMixin,
    ServiceErrorsMixin,
    unix_text,
)
from oneapi_site.lib.limit_values import LIMIT_FIELDS, limits_summary
from oneapi_site.lib.number_fields import WholeNumbersAdminMixin

admin.site.unregister(Group)  # roles, not groups, grant access here


class LimitsDisplayMixin:
    """The columns and read-only lines of a user's or token's rate limits and budget (issue 11)."""

    @admin.display(description=_("limits"))
    def limits_display(self, obj) -> str:
        # One per line: the lists fit a 1280 px window (tests/e2e/test_browser.py).
        phrases = limits_summary(obj)
        return format_html_join(mark_safe("<br>"), "{}", ((p,) for p in phrases)) if phrases else "-"

    @admin.display(description=_("budget"), ordering="budget_quota")
    def budget_display(self, obj) -> str:
        status = budget_status(obj)
        return budget_brief(status) if status else "-"

    @admin.display(description=_("budget this period"))
    def budget_status_display(self, obj) -> str:
        status = budget_status(obj) if obj.pk else None
        return budget_text(status) if status else gettext("No budget.")


# --- Users ----------------------------------------------------------------------

@admin.register(User)
class UserAdmin(LimitsDisplayMixin, WholeNumbersAdminMixin, ServiceErrorsMixin, RowIdsMixin, OfferedFiltersMixin,
                admin.ModelAdmin):
    list_display = ("id", "username", "display_name", "role", "status", "group", "quota_display",
                    "used_quota_display", "request_count", "limits_display", "budget_display")
    list_display_links = ("id", "username")
    list_filter = ("role", "status", "group")
    search_fields = ("username", "display_name", "email", "=id")
    ordering = ("-id",)
    readonly_fields = ("username", "used_quota_display", "request_count", "created", "budget_status_display")
    change_fieldsets = (
        (None, {"fields": ("username", "display_name", "email")}),
        (_("Access"), {"fields": ("role", "status", "group", "new_password")}),
        (_("Quota"), {"fields": ("quota", "price_ratio", "used_quota_display", "request_count", "created")}),
        (_("Rate limits"), {"fields": LIMIT_FIELDS,
                            "description": _("Over all of the user's tokens; 0 is no limit.")}),
        (_("Budget"), {"fields": ("budget_quota", "budget_period", "budget_status_display"),
                       "description": _("Spending allowed per period on top of the balance; 0 is no budget.")}),
    )
    add_fieldsets = (
        (None, {"fields": ("username", "display_name", "email", "password1", "password2")}),
        (_("Access"), {"fields": ("role", "group", "quota")}),
    )

    @admin.display(description=_("quota"), ordering="quota")
    def quota_display(self, obj: User) -> str:
        return money.quota_with_usd(obj.quota)

    @admin.display(description=_("used quota"), ordering="used_quota")
    def used_quota_display(self, obj: User) -> str:
        return money.quota_with_usd(obj.used_quota)

    @admin.display(description=_("created"))
    def created(self, obj: User) -> str:
        return unix_text(obj.created_time)

    def get_queryset(self, request):
        # Admins see the users below them and themselves (accounts.permissions); root sees everyone.
        # The token form's owner autocomplete reads this too.
        return super().get_queryset(request) & permissions.users_within_reach(request.user)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return self.add_fieldsets
        if not self.has_change_permission(request, obj):  # an admin's own page: to read, nothing to set
            return [(name, {"fields": [f for f in opts["fields"] if f != "new_password"]})
                    for name, opts in self.change_fieldsets]
        return self.change_fieldsets

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = UserChangeForm if obj is not None else UserCreationForm
        form_class = super().get_form(request, obj, change, **kwargs)
        actor = request.user

        class WithActor(form_class):
            def __init__(self, *args, **kw):
                super().__init__(*args, actor=actor, **kw)

        return WithActor

    def has_change_permission(self, request, obj=None):
        if obj is not None and not permissions.user_can_manage(request.user, obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and (obj.is_root or obj.status == User.Status.DELETED):
            return False
        return self.has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            user = user_create(
                username=data["username"], password=data["password1"], display_name=data.get("display_name", ""),
                role=data["role"], group=data.get("group") or "default", quota=data.get("quota") or 0,
                email=data.get("email", ""))
            obj.pk = obj.id = user.pk
            return
        # Re-read, and send the quota only when it was edited: the relay moves it meanwhile, and
        # user_update sets it through billing.services.user_quota_set, which writes the manage log.
        user_update(
            user=User.objects.get(pk=obj.pk), by=request.user,
            display_name=data["display_name"], email=data["email"], group=data["group"], role=data["role"],
            status=data["status"], password=data.get("new_password") or None,
            quota=data["quota"] if "quota" in form.changed_data else None,
            price_ratio=data.get("price_ratio") if "price_ratio" in form.changed_data else None,
            **form.limit_fields())

    def delete_model(self, request, obj):
        # one-api deletes softly: status 3 and a freed username; tokens and logs stay.
        user_delete(user=obj, by=request.user)

    def delete_queryset(self, request, queryset):
        for user in queryset:
            user_delete(user=user, by=request.user)


# --- Tokens ---------------------------------------------------------------------

@admin.register(Token)
class TokenAdmin(LimitsDisplayMixin, WholeNumbersAdminMixin, ServiceErrorsMixin, RowIdsMixin, OfferedFiltersMixin,
                 admin.ModelAdmin):
    form = TokenForm
    list_display = ("id", "name", "user", "status", "remain_display", "unlimited_quota", "used_display",
                    "expiry", "limits_display", "budget_display", "key_display")
    list_display_links = ("id", "name")
    list_filter = ("status", "unlimited_quota")
    list_select_related = ("user",)
    search_fields = ("name", "user__username", "=id")
    autocomplete_fields = ("user",)
    ordering = ("-id",)
    readonly_fields = ("key_display", "used_display", "created", "accessed", "budget_status_display")

    @admin.display(description=_("remain"), ordering="remain_quota")
    def remain_display(self, obj: Token) -> str:
        return gettext("unlimited") if obj.unlimited_quota else money.quota_with_usd(obj.remain_quota)

    @admin.display(description=_("used quota"), ordering="used_quota")
    def used_display(self, obj: Token) -> str:
        return money.quota_with_usd(obj.used_quota)

    @admin.display(description=_("expires"), ordering="expired_time")
    def expiry(self, obj: Token) -> str:
        return gettext("never") if obj.expired_time == -1 else unix_text(obj.expired_time)[:10]

    @admin.display(description=_("key"))
    def key_display(self, obj: Token) -> str:
        return obj.masked_key if obj.pk else "-"

    @admin.display(description=_("created"))
    def created(self, obj: Token) -> str:
        return unix_text(obj.created_time)

    @admin.display(description=_("last used"))
    def accessed(self, obj: Token) -> str:
        return unix_text(obj.accessed_time)

    def get_queryset(self, request):
        # Admins see their own tokens and those of the users below them (accounts.permissions).
        return super().get_queryset(request) & permissions.tokens_managed_by(request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":  # whose quota a new token spends: the form accepts no one else
            kwargs["queryset"] = permissions.users_within_reach(request.user)
            kwargs["widget"] = IdAutocompleteSelect(db_field, self.admin_site, using=kwargs.get("using"))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None):
        if obj is not None and not permissions.token_can_manage(request.user, obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and not permissions.token_can_manage(request.user, obj):
            return False
        return super().has_delete_permission(request, obj)

    def get_fieldsets(self, request, obj=None):
        main = ["user", "name", "remain_quota", "unlimited_quota", "expired_time", "models", "subnet"]
        limits = (_("Rate limits"), {"fields": LIMIT_FIELDS, "description": _("0 is no limit.")})
        budget = ["budget_quota", "budget_period"]
        if obj is None:
            return ((None, {"fields": main}), limits, (_("Budget"), {"fields": budget}))
        return ((None, {"fields": [*main, "status"]}), limits,
                (_("Budget"), {"fields": [*budget, "budget_status_display"]}),
                (_("Usage"), {"fields": ["key_display", "used_display", "created", "accessed"]}))

    def get_readonly_fields(self, request, obj=None):
        # A token's owner is fixed once it exists: the key was handed to that user.
        return (*self.readonly_fields, "user") if obj is not None else ()

    def save_model(self, request, obj, form, change):
        fields = form.service_fields()
        if change:
            token_update(token=Token.objects.get(pk=obj.pk), by=request.user, **fields)
            return
        fields.pop("status", None)
        token = token_create(user=form.cleaned_data["user"], by=request.user, **fields)
        obj.pk = obj.id = token.pk
        self.message_user(request, format_html(
            "{} <code>sk-{}</code>", gettext("Copy the new key now, it is not shown again:"), token.key),
            messages.WARNING)

    def delete_model(self, request, obj):
        token_delete(token=obj, by=request.user)

    def delete_queryset(self, request, queryset):
        for token in queryset:
            token_delete(token=token, by=request.user)
