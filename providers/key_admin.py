"""The console's view of multi-key channels: each key's state on its channel's page, and a key list whose
actions enable or disable keys one by one (through providers.key_health). Keys are shown masked only."""

from __future__ import annotations

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from oneapi_site.lib.admin import unix_text
from oneapi_site.lib.errors import ServiceError
from providers import key_health
from providers.models import ChannelKey


class KeyStateMixin:
    @admin.display(description=_("line"), ordering="index")
    def line(self, obj: ChannelKey) -> int:
        return obj.index + 1

    @admin.display(description=_("disabled at"), ordering="disabled_at")
    def disabled(self, obj: ChannelKey) -> str:
        return unix_text(obj.disabled_at, empty="-")

    @admin.display(description=_("next probe"))
    def next_probe(self, obj: ChannelKey) -> str:
        if obj.status != ChannelKey.Status.AUTO_DISABLED:
            return "-"
        return unix_text(obj.probe_after, empty="-")


class ChannelKeyInline(KeyStateMixin, admin.TabularInline):
    """Read-only rows on the channel's page; the switches are on the key list it links to."""

    model = ChannelKey
    extra = 0
    can_delete = False
    fields = ("line", "masked", "status", "failures", "last_error", "disabled", "next_probe", "manage")
    readonly_fields = fields
    verbose_name_plural = _("keys (each line of the key field)")

    @admin.display(description=_("switch"))
    def manage(self, obj: ChannelKey) -> str:
        url = reverse("admin:providers_channelkey_changelist") + f"?channel__id__exact={obj.channel_id}"
        return format_html('<a href="{}">{}</a>', url, gettext("enable / disable"))

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ChannelKey)
class ChannelKeyAdmin(KeyStateMixin, admin.ModelAdmin):
    """Keys are added and removed by editing their channel's key field; here they are switched."""

    list_display = ("channel", "line", "masked", "status", "failures", "last_error", "disabled", "next_probe")
    list_display_links = None
    list_filter = ("status",)
    list_select_related = ("channel",)
    search_fields = ("channel__name", "=channel__id")
    ordering = ("channel_id", "index")
    actions = ("enable_keys", "disable_keys")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)  # the actions, never a form

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description=_("Enable selected keys"), permissions=["change"])
    def enable_keys(self, request, queryset):
        self._switch(request, queryset, enabled=True)

    @admin.action(description=_("Disable selected keys"), permissions=["change"])
    def disable_keys(self, request, queryset):
        self._switch(request, queryset, enabled=False)

    def _switch(self, request, queryset, *, enabled: bool) -> None:
        done = 0
        for channel_id, index in queryset.values_list("channel_id", "index"):
            try:
                key_health.key_set_status(channel_id=channel_id, index=index, enabled=enabled)
            except ServiceError as exc:  # the channel's key field was edited meanwhile
                self.message_user(request, str(exc), messages.WARNING)
            else:
                done += 1
        text = (ngettext("%(count)d key enabled.", "%(count)d keys enabled.", done) if enabled
                else ngettext("%(count)d key disabled.", "%(count)d keys disabled.", done))
        self.message_user(request, text % {"count": done}, messages.SUCCESS)
