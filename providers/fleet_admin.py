"""The console's fleet tools for channels: the tag filter, batch actions that ask for a value first (priority,
weight, groups, models, tag), copies, deleting the auto-disabled, and the page that sets the models an upstream
lists beside the channel's own. ChannelAdmin (providers/admin.py) mixes them in; every write is providers.fleet's.

A batch by tag is the tag filter, then "select all" across its pages: the action gets every filtered channel.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from oneapi_site.lib.errors import ServiceError
from providers import fleet
from providers.models import Channel


class TagFilter(admin.SimpleListFilter):
    title = _("tag")
    parameter_name = "tag"

    def lookups(self, request, model_admin):
        return [(tag, tag) for tag in fleet.tags()]

    def queryset(self, request, queryset):
        return queryset.filter(tag=self.value()) if self.value() else queryset


class BatchValueForm(forms.Form):
    """The value a batch action sets; `mode` only for the list fields."""

    value = forms.CharField(label=_("Value"), required=False, max_length=65_535)
    mode = forms.ChoiceField(label=_("How"), required=False, initial="replace", choices=[
        ("replace", _("Replace the list")), ("add", _("Add to the list")), ("remove", _("Remove from the list"))])


# action name: (its label, the batch action it runs, what the value is, whether it edits a list)
VALUE_ACTIONS = {
    "set_priority": (_("Set priority of selected channels"), "priority", _("Priority (a whole number)."), False),
    "set_weight": (_("Set weight of selected channels"), "weight", _("Weight (a whole number, 0 or more)."), False),
    "set_groups": (_("Set groups of selected channels"), "groups", _("Comma-separated groups."), True),
    "set_models": (_("Set models of selected channels"), "models", _("Comma-separated models."), True),
    "set_tag": (_("Set tag of selected channels"), "tag", _("The tag; empty clears it."), False),
}


def _value_action(name: str):
    label, batch_action, help_text, edits_list = VALUE_ACTIONS[name]

    def action(self, request, queryset):
        return self.batch_with_value(request, queryset, name=name, label=label, batch_action=batch_action,
                                     help_text=help_text, edits_list=edits_list)

    action.__name__ = name
    return admin.action(description=label, permissions=["change"])(action)


class FleetAdminMixin:
    fleet_actions = ("copy_channels", *VALUE_ACTIONS)

    set_priority = _value_action("set_priority")
    set_weight = _value_action("set_weight")
    set_groups = _value_action("set_groups")
    set_models = _value_action("set_models")
    set_tag = _value_action("set_tag")

    @admin.display(description=_("group"), ordering="group")
    def group_and_tag(self, obj: Channel) -> str:
        # The tag under the groups, not a column of its own: the list already fills a laptop's width.
        if not obj.tag:
            return obj.group
        return format_html('{}<br><span class="channel-tag" title="{}">{}</span>', obj.group, gettext("tag"), obj.tag)

    def batch_with_value(self, request, queryset, *, name, label, batch_action, help_text, edits_list):
        """First the page that asks for the value; its submit runs the batch on the same selection."""
        form = BatchValueForm(request.POST if "apply" in request.POST else None)
        form.fields["value"].help_text = help_text
        if not edits_list:
            del form.fields["mode"]
        if form.is_bound and form.is_valid():
            ids = list(queryset.values_list("id", flat=True))
            try:
                changed = fleet.channels_batch(action=batch_action, ids=ids, value=form.cleaned_data["value"],
                                               mode=form.cleaned_data.get("mode") or "replace")
            except ServiceError as exc:
                form.add_error("value", str(exc))
            else:
                self.message_user(request, ngettext("%(count)d channel changed.", "%(count)d channels changed.",
                                                    changed) % {"count": changed}, messages.SUCCESS)
                return None
        select_across = request.POST.get("select_across") == "1"
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": label,
            "form": form,
            "action": name,
            "count": queryset.count(),
            "channels": queryset.only("id", "name")[:20],
            "select_across": select_across,
            "selected": selected[:1] if select_across else selected,
            "changelist_url": reverse("admin:providers_channel_changelist"),
        }
        return TemplateResponse(request, "admin/providers/channel/batch_value.html", context)

    @admin.action(description=_("Copy selected channels"), permissions=["add"])
    def copy_channels(self, request, queryset):
        copies = []
        for channel in queryset.only("id", "name"):
            try:
                copies.append(fleet.channel_copy(channel_id=channel.pk))
            except ServiceError as exc:  # a type without an adapter, a name with no room for the suffix
                self.message_user(request, gettext("%(name)s was not copied: %(error)s")
                                  % {"name": channel.name, "error": exc}, messages.ERROR)
        if not copies:
            return
        self.message_user(request, ngettext("%(count)d channel copied; the copy is named with %(suffix)s.",
                                            "%(count)d channels copied; each copy is named with %(suffix)s.",
                                            len(copies)) % {"count": len(copies), "suffix": fleet.COPY_SUFFIX},
                          messages.SUCCESS)

    # --- pages -------------------------------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("delete-auto-disabled/", view(self.delete_auto_disabled_view),
                 name="providers_channel_delete_auto_disabled"),
            path("<int:channel_id>/fetch-models/", view(self.fetch_models_view),
                 name="providers_channel_fetch_models"),
            *super().get_urls(),
        ]

    def delete_auto_disabled_view(self, request):
        if request.method != "POST" or not self.has_delete_permission(request):
            raise PermissionDenied
        deleted = fleet.channels_delete_auto_disabled()
        self.message_user(request, ngettext("Deleted %(count)d auto-disabled channel.",
                                            "Deleted %(count)d auto-disabled channels.", deleted)
                          % {"count": deleted}, messages.SUCCESS)
        return redirect("admin:providers_channel_changelist")

    def fetch_models_view(self, request, channel_id: int):
        """GET: the upstream's list beside the channel's, to tick; POST: apply what was ticked."""
        channel = Channel.objects.filter(pk=channel_id).first()
        if channel is None or not self.has_change_permission(request, channel):
            raise PermissionDenied
        change_url = reverse("admin:providers_channel_change", args=[channel_id])
        if request.method == "POST":
            try:
                models = fleet.channel_models_apply(channel_id=channel_id, add=request.POST.getlist("add"),
                                                    remove=request.POST.getlist("remove"))
            except ServiceError as exc:  # a name the routes cannot hold: nothing changed, and the page says why
                self.message_user(request, gettext("The models were not applied: %(error)s") % {"error": exc},
                                  messages.ERROR)
                return redirect(change_url)
            self.message_user(request, ngettext("The channel serves %(count)d model now.",
                                                "The channel serves %(count)d models now.", len(models))
                              % {"count": len(models)}, messages.SUCCESS)
            return redirect(change_url)
        try:
            diff = fleet.channel_fetch_models(channel_id=channel_id)
        except ServiceError as exc:
            self.message_user(request, gettext("Could not fetch the models: %(error)s") % {"error": exc},
                              messages.ERROR)
            return redirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": channel,
            "title": gettext("Models %(name)s's upstream lists") % {"name": channel.name},
            "diff": diff,
            "change_url": change_url,
            "changelist_url": reverse("admin:providers_channel_changelist"),
        }
        return TemplateResponse(request, "admin/providers/channel/fetch_models.html", context)
