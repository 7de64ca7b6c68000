"""The operator console for channels; every write goes through providers.services."""

from __future__ import annotations

import logging

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import redirect
from django.urls import path
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from billing import money
from oneapi_site.lib import numbers
from oneapi_site.lib.admin import OfferedFiltersMixin, RowIdsMixin, ServiceErrorsMixin, mask_secret, unix_text
from oneapi_site.lib.errors import ServiceError
from oneapi_site.lib.limit_values import LIMIT_FIELDS
from oneapi_site.lib.number_fields import WholeNumbersAdminMixin
from providers import fleet, labels, services
from providers.adapters import ADAPTERS
from providers.channel_keys import split_keys
from providers.fleet_admin import FleetAdminMixin, TagFilter
from providers.forms import ChannelForm, config_field_types
from providers.key_admin import ChannelKeyInline
from providers.models import Channel, split_list
from relay import probe

log = logging.getLogger(__name__)


class TypeFilter(admin.SimpleListFilter):
    title = _("type")
    parameter_name = "type"

    def lookups(self, request, model_admin):
        used = set(Channel.objects.values_list("type", flat=True).distinct())
        return [(t, labels.type_label(t) if t in ADAPTERS else gettext("type %(type)s") % {"type": t})
                for t in sorted(used)]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        # The query string is typed by anyone: a value that is no type number matches nothing, never a 500.
        channel_type = numbers.int_or_none(self.value(), minimum=numbers.INT[0], maximum=numbers.INT[1])
        return queryset.none() if channel_type is None else queryset.filter(type=channel_type)


class GroupFilter(admin.SimpleListFilter):
    """Groups are a comma-separated list: match one whole item."""

    title = _("group")
    parameter_name = "group"

    def lookups(self, request, model_admin):
        groups: set[str] = set()
        for value in Channel.objects.values_list("group", flat=True).distinct():
            groups.update(split_list(value))
        return [(g, g) for g in sorted(groups)]

    def queryset(self, request, queryset):
        g = self.value()
        if not g:
            return queryset
        return queryset.filter(Q(group=g) | Q(group__startswith=f"{g},") | Q(group__endswith=f",{g}")
                               | Q(group__contains=f",{g},"))


@admin.register(Channel)
class ChannelAdmin(WholeNumbersAdminMixin, ServiceErrorsMixin, RowIdsMixin, OfferedFiltersMixin, FleetAdminMixin,
                   admin.ModelAdmin):
    form = ChannelForm
    list_display = ("id", "name", "type_label", "status", "priority", "weight", "response", "used_display",
                    "balance_display", "group_and_tag", "models_short", "key_masked")
    list_display_links = ("id", "name")
    list_filter = (TypeFilter, "status", GroupFilter, TagFilter)
    search_fields = ("name", "=id")
    ordering = ("-priority", "id")
    actions = ("test_channels", "update_balances", "enable_channels", "disable_channels",
               *FleetAdminMixin.fleet_actions)
    change_list_template = "admin/providers/channel/change_list.html"
    readonly_fields = ("key_masked", "response", "tested", "used_display", "balance_display", "created",
                       "unsupported")

    @admin.display(description=_("type"), ordering="type")
    def type_label(self, obj: Channel) -> str:
        reason = labels.unsupported_reason(obj.type)
        if reason:  # kept out of routing whatever its status says: the list shows why
            return format_html('{} <span class="errornote" title="{}">{}</span>', labels.type_label(obj.type),
                               reason, gettext("not routed"))
        return labels.type_label(obj.type)

    @admin.display(description=_("routing"))
    def unsupported(self, obj: Channel) -> str:
        return labels.unsupported_reason(obj.type) or gettext("Routed by its status.")

    @admin.display(description=_("response"), ordering="response_time")
    def response(self, obj: Channel) -> str:
        return f"{obj.response_time / 1000:.2f} s" if obj.response_time else "-"

    @admin.display(description=_("last test"))
    def tested(self, obj: Channel) -> str:
        return unix_text(obj.test_time, empty=gettext("not tested yet"))

    @admin.display(description=_("used quota"), ordering="used_quota")
    def used_display(self, obj: Channel) -> str:
        return money.quota_with_usd(obj.used_quota)

    @admin.display(description=_("balance"), ordering="balance")
    def balance_display(self, obj: Channel) -> str:
        return f"${obj.balance:,.2f}" if obj.balance_updated_time else "-"

    @admin.display(description=_("models"))
    def models_short(self, obj: Channel) -> str:
        models = obj.model_list
        text = ", ".join(models[:4])
        return f"{text} (+{len(models) - 4})" if len(models) > 4 else text

    @admin.display(description=_("key"))
    def key_masked(self, obj: Channel) -> str:
        if obj.pk and obj.multi_key:  # each key's state is on the channel's page
            count = len(split_keys(obj.key))
            return ngettext("%(count)d key", "%(count)d keys", count) % {"count": count}
        return mask_secret(obj.key) if obj.pk else "-"

    @admin.display(description=_("created"))
    def created(self, obj: Channel) -> str:
        return unix_text(obj.created_time)

    def get_fieldsets(self, request, obj=None):
        config_fields = [f"config_{name}" for name in config_field_types()]
        fieldsets = [
            (None, {"fields": ["name", "type", "status", "key", "key_mode", "key_rpm_limit", "base_url", "models",
                               "model_picker", "group", "tag"]}),
            (_("Routing"), {"fields": ["priority", "weight", "model_mapping", "system_prompt"]}),
            (_("Rate limits"), {"fields": list(LIMIT_FIELDS),
                                "description": _("The channel's own cap: at it, requests go to the next channel. "
                                                 "0 is no limit.")}),
            (_("Config"), {"fields": [*config_fields, "config"]}),
        ]
        if obj is not None and labels.unsupported_reason(obj.type):
            fieldsets.insert(0, (_("Not routed"), {"fields": ["unsupported"]}))
        if obj is not None:
            fieldsets.append((_("Health"), {"fields": ["key_masked", "response", "tested", "used_display",
                                                       "balance_display", "created"]}))
        return fieldsets

    def get_inlines(self, request, obj):
        # Each key's state, on a multi-key channel's page only (a one-key channel's health is the channel's).
        return (ChannelKeyInline,) if obj is not None and obj.multi_key else ()

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ()

    def get_form(self, request, obj=None, change=False, **kwargs):
        # The form adds one input per adapter config field itself; let its Meta pick the model fields.
        kwargs["fields"] = None
        return super().get_form(request, obj, change, **kwargs)

    # --- Writes: the services rebuild abilities and tell the relay caches -------

    def save_model(self, request, obj, form, change):
        fields = form.channel_fields()
        if change:
            # Re-read: the form put an empty key on `obj`, and the service keeps the stored one.
            services.channel_update(channel=Channel.objects.get(pk=obj.pk), **fields)
            return
        created = services.channel_create(**fields)
        obj.pk = obj.id = created[0].pk
        obj.key = ""
        if len(created) > 1:
            self.message_user(request, ngettext(
                "Created %(count)d channel, one per key line.", "Created %(count)d channels, one per key line.",
                len(created)) % {"count": len(created)}, messages.SUCCESS)

    def delete_model(self, request, obj):
        services.channel_delete(channel_id=obj.pk)

    def delete_queryset(self, request, queryset):
        fleet.channels_batch(action="delete", ids=list(queryset.values_list("id", flat=True)))

    # --- Actions -----------------------------------------------------------------

    def get_urls(self):
        urls = [path("test-all/", self.admin_site.admin_view(self.test_all_view), name="providers_channel_test_all")]
        return urls + super().get_urls()

    def test_all_view(self, request):
        """Start testing every channel (or the disabled ones) in the background, then back to the list."""
        if request.method != "POST" or not self.has_change_permission(request):
            raise PermissionDenied
        try:
            progress = probe.channels_test_all(scope=request.POST.get("scope", "all"))
        except ServiceError as exc:  # a scope the console's buttons never post
            self.message_user(request, str(exc), messages.ERROR)
            return redirect("admin:providers_channel_changelist")
        total = progress.get("total", 0)
        self.message_user(request, ngettext("Testing %(count)d channel in the background.",
                                            "Testing %(count)d channels in the background.", total)
                          % {"count": total}, messages.SUCCESS)
        return redirect("admin:providers_channel_changelist")

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "test_progress": services.channels_test_progress(),
                         "has_delete_permission": self.has_delete_permission(request)}
        return super().changelist_view(request, extra_context)

    @admin.action(description=_("Update balance of selected channels"), permissions=["change"])
    def update_balances(self, request, queryset):
        for channel in queryset.only("id", "name"):
            try:
                balance = services.channel_update_balance(channel_id=channel.pk)
            except ServiceError as exc:
                self.message_user(request, f"{channel.name}: {exc}", messages.WARNING)
            else:
                self.message_user(request, gettext("%(name)s: balance %(balance).2f")
                                  % {"name": channel.name, "balance": balance}, messages.SUCCESS)

    @admin.action(description=_("Test selected channels"), permissions=["change"])
    def test_channels(self, request, queryset):
        channel_test = probe.channel_test
        for channel in queryset.only("id", "name"):
            try:
                result = channel_test(channel_id=channel.pk, model=None)
            except ServiceError as exc:  # the channel cannot be tested (a type without an adapter): it says why
                self.message_user(request, gettext("%(name)s: the test could not run: %(error)s")
                                  % {"name": channel.name, "error": exc}, messages.ERROR)
                continue
            except Exception as exc:  # a broken vendor or adapter must not take the page down
                log.exception("channel test failed to run for channel %s", channel.pk)
                self.message_user(request, gettext("%(name)s: the test could not run: %(error)s")
                                  % {"name": channel.name, "error": exc}, messages.ERROR)
                continue
            model = getattr(result, "model", "") or ""
            if result.success:
                self.message_user(request, gettext("%(name)s: OK with %(model)s in %(seconds).2f s.")
                                  % {"name": channel.name, "model": model, "seconds": result.time}, messages.SUCCESS)
            else:
                self.message_user(request, gettext("%(name)s: failed with %(model)s: %(error)s")
                                  % {"name": channel.name, "model": model, "error": result.message}, messages.ERROR)

    @admin.action(description=_("Enable selected channels"), permissions=["change"])
    def enable_channels(self, request, queryset):
        changed = self._set_status(queryset, Channel.Status.ENABLED)
        self.message_user(request, ngettext("%(count)d channel enabled.", "%(count)d channels enabled.", changed)
                          % {"count": changed}, messages.SUCCESS)

    @admin.action(description=_("Disable selected channels"), permissions=["change"])
    def disable_channels(self, request, queryset):
        changed = self._set_status(queryset, Channel.Status.MANUALLY_DISABLED)
        self.message_user(request, ngettext("%(count)d channel disabled.", "%(count)d channels disabled.", changed)
                          % {"count": changed}, messages.SUCCESS)

    def _set_status(self, queryset, status: int) -> int:
        action = "enable" if status == Channel.Status.ENABLED else "disable"
        return fleet.channels_batch(action=action, ids=list(queryset.values_list("id", flat=True)))
