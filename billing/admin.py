"""The operator console for redemption codes, logs and options; writes go through billing.services."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection, transaction
from django.http import HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from accounts import permissions
from accounts.models import User
from billing import log_export, money, services
from billing.forms import OptionsForm, RedemptionBatchForm
from billing.log_text import describe
from billing.models import BodyCapture, Log, Option, RedemptionCode
from oneapi_site import options
from oneapi_site.lib import numbers
from oneapi_site.lib.admin import OfferedFiltersMixin, RowIdsMixin, ServiceErrorsMixin, mask_secret, unix_text
from oneapi_site.lib.errors import ServiceError
from oneapi_site.lib.number_fields import WholeNumbersAdminMixin

# --- Redemption codes ---------------------------------------------------------


def redemption_csv(codes) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="redemption-codes-{timezone.now():%Y%m%d-%H%M%S}.csv"'
    writer = csv.writer(response)
    # In the operator's language, as the console shows them (msgids are the models' verbose names).
    writer.writerow([gettext("name"), gettext("key"), gettext("quota"), gettext("status"), gettext("created")])
    for code in codes:
        writer.writerow([code.name, code.key, code.quota, code.get_status_display(), unix_text(code.created_time)])
    return response


@admin.register(RedemptionCode)
class RedemptionCodeAdmin(WholeNumbersAdminMixin, ServiceErrorsMixin, RowIdsMixin, OfferedFiltersMixin,
                          admin.ModelAdmin):
    list_display = ("id", "name", "key_masked", "status", "quota_display", "created", "redeemed", "redeemed_by")
    list_display_links = ("id", "name")
    list_filter = ("status",)
    list_select_related = ("redeemed_by",)
    search_fields = ("name", "=id")
    ordering = ("-id",)
    actions = ("export_csv",)
    fields = ("name", "quota", "status", "key_masked", "created", "redeemed", "redeemed_by", "user")
    readonly_fields = ("key_masked", "created", "redeemed", "redeemed_by", "user")

    @admin.display(description=_("key"))
    def key_masked(self, obj: RedemptionCode) -> str:
        return mask_secret(obj.key)

    @admin.display(description=_("quota"), ordering="quota")
    def quota_display(self, obj: RedemptionCode) -> str:
        return money.quota_with_usd(obj.quota)

    @admin.display(description=_("created"), ordering="created_time")
    def created(self, obj: RedemptionCode) -> str:
        return unix_text(obj.created_time)

    @admin.display(description=_("redeemed"), ordering="redeemed_time")
    def redeemed(self, obj: RedemptionCode) -> str:
        return unix_text(obj.redeemed_time)

    @admin.action(description=_("Export selected as CSV (with keys)"), permissions=["view"])
    def export_csv(self, request, queryset):
        return redemption_csv(queryset.order_by("id"))

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        services.redemption_update(code=RedemptionCode.objects.get(pk=obj.pk), name=data["name"],
                                   quota=data["quota"], status=data["status"])

    def delete_model(self, request, obj):
        services.redemption_delete(code_id=obj.pk)

    def delete_queryset(self, request, queryset):
        for code_id in list(queryset.values_list("id", flat=True)):
            services.redemption_delete(code_id=code_id)

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("batch/", self.admin_site.admin_view(self.batch_view), name="{}_{}_batch".format(*info)),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        # Codes are made in batches, with random keys: one form for one or a hundred.
        return HttpResponseRedirect(reverse("admin:billing_redemptioncode_batch"))

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # No button posts "save as new", yet Django honours it on any change form: it would be an add.
        if "_saveasnew" in request.POST:
            return self.add_view(request, form_url, extra_context)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def batch_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = RedemptionBatchForm(request.POST or None)
        created = []
        if request.method == "POST" and form.is_valid():
            try:
                keys = services.redemption_create_batch(creator=request.user, **form.cleaned_data)
            except ServiceError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, str(exc))
            else:
                created = list(RedemptionCode.objects.filter(key__in=keys).order_by("id"))
                count, name = len(created), created[0].name
                self.log_addition(request, created[0], ngettext(
                    "Created %(count)d code named “%(name)s”.", "Created %(count)d codes named “%(name)s”.",
                    count) % {"count": count, "name": name})
                self.message_user(request, ngettext(
                    "Created %(count)d code. Copy or download the key now: it is masked from here on.",
                    "Created %(count)d codes. Copy or download the keys now: they are masked from here on.",
                    count) % {"count": count}, messages.WARNING)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Create redemption codes"),
            "form": form,
            "created": created,
            "keys_text": "\n".join(c.key for c in created),
            "changelist_url": reverse("admin:billing_redemptioncode_changelist"),
        }
        return TemplateResponse(request, "admin/billing/redemptioncode/batch.html", context)


# --- Logs ---------------------------------------------------------------------


class EstimatedCountPaginator(Paginator):
    """COUNT(*) over a big InnoDB table reads all of it; stop counting at a cap.

    Unfiltered, past the cap, the page count comes from the table statistics
    (MySQL/MariaDB), which are cheap and close enough for a pager.
    """

    cap = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        capped = queryset.order_by()[: self.cap + 1].count()
        if capped <= self.cap:
            return capped
        if not queryset.query.where and connection.vendor == "mysql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                    "AND TABLE_NAME = %s", [queryset.model._meta.db_table])
                row = cursor.fetchone()
            if row and row[0]:
                return max(int(row[0]), self.cap)
        return self.cap


class InputFilter(admin.ListFilter):
    """A filter typed into a box (values too many to list): one GET parameter per input."""

    template = "admin/billing/log/input_filter.html"
    inputs: tuple[tuple[str, str, str], ...] = ()  # (parameter, label, input type)

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        self.values = {}
        for name, _label, _kind in self.inputs:
            if name in params:
                value = params.pop(name)
                value = value[-1] if isinstance(value, list) else value
                if value:
                    self.values[name] = value
                    self.used_parameters[name] = value
        self.preserved = [(k, v) for k, vs in request.GET.lists() for v in vs
                          if k not in self.expected_parameters() and k != "p"]

    def has_output(self) -> bool:
        return True

    def expected_parameters(self):
        return [name for name, _label, _kind in self.inputs]

    def choices(self, changelist):
        return [{"name": name, "label": label, "type": kind, "value": self.values.get(name, "")}
                for name, label, kind in self.inputs]

    def queryset(self, request, queryset):
        return queryset


class CreatedFilter(InputFilter):
    title = _("created")
    inputs = (("created_from", _("from"), "date"), ("created_to", _("to (inclusive)"), "date"))

    def queryset(self, request, queryset):
        tz = timezone.get_current_timezone()
        for name, lookup, extra in (("created_from", "created_at__gte", 0), ("created_to", "created_at__lt", 1)):
            if name in self.values:
                try:
                    day = datetime.strptime(self.values[name], "%Y-%m-%d")
                except ValueError:
                    continue
                start = datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(days=extra)
                queryset = queryset.filter(**{lookup: int(start.timestamp())})
        return queryset


class ExactFilter(InputFilter):
    field = ""
    numeric = False

    def queryset(self, request, queryset):
        value = self.values.get(self.inputs[0][0], "").strip()
        if not value:
            return queryset
        if self.numeric:
            value = numbers.int_or_none(value, minimum=0)  # "²" or 30 digits: no such id, not a 500
            if value is None:
                return queryset.none()
        return queryset.filter(**{self.field: value})


class ModelNameFilter(ExactFilter):
    title = _("model")
    field = "model_name"
    inputs = (("model_name", _("model name"), "text"),)


class ChannelIdFilter(ExactFilter):
    title = _("channel")
    field = "channel_id"
    numeric = True
    inputs = (("channel_id", _("channel id"), "number"),)


class UsernameFilter(ExactFilter):
    title = _("user")
    field = "username"
    inputs = (("username", _("username"), "text"),)


@admin.register(Log)
class LogAdmin(RowIdsMixin, OfferedFiltersMixin, admin.ModelAdmin):
    # Token counts share a column, and so do time and streaming: the list fits a 1280 px console.
    list_display = ("id", "created", "type", "username", "token_name", "model_with_protocol", "channel_id",
                    "quota_display", "token_counts", "elapsed", "content_short")
    list_filter = ("type", CreatedFilter, ModelNameFilter, ChannelIdFilter, UsernameFilter)
    # Exact or prefix matches, so the indexes serve them.
    search_fields = ("=username", "=token_name", "^model_name", "=request_id")
    ordering = ("-id",)
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50
    # A log's own page: every field read-only, times as dates and content in the reader's language.
    fields = ("created", "type", "username", "user_id", "token_name", "token_id", "model_name", "channel_id",
              "quota_display", "prompt_tokens", "cached_tokens", "cache_write_tokens", "cache_write_1h_tokens",
              "completion_tokens", "reasoning_tokens", "elapsed", "is_stream", "system_prompt_reset",
              "client_protocol", "request_id", "content_text")
    readonly_fields = fields

    @admin.display(description=_("time"), ordering="created_at")
    def created(self, obj: Log) -> str:
        return unix_text(obj.created_at)

    @admin.display(description=_("model"), ordering="model_name")
    def model_with_protocol(self, obj: Log) -> str:
        # The client's protocol under the model, not a column of its own: the list fits a 1280 px console.
        if not obj.client_protocol:
            return obj.model_name
        return format_html('{}<div class="quiet client-protocol" title="{}">{}</div>', obj.model_name,
                           gettext("client protocol"), obj.client_protocol_label())

    @admin.display(description=_("quota"), ordering="quota")
    def quota_display(self, obj: Log) -> str:
        return money.quota_with_usd(obj.quota)

    @admin.display(description=_("prompt + completion tokens"))
    def token_counts(self, obj: Log) -> str:
        if not obj.prompt_tokens and not obj.completion_tokens:
            return "-"
        parts = [(obj.cached_tokens, gettext("cached")), (obj.cache_write_tokens, gettext("cache write")),
                 (obj.reasoning_tokens, gettext("reasoning"))]
        told = ", ".join(f"{name} {count}" for count, name in parts if count)
        return f"{obj.prompt_tokens} + {obj.completion_tokens}" + (f" ({told})" if told else "")

    @admin.display(description=_("elapsed"))
    def elapsed(self, obj: Log) -> str:
        text = f"{obj.elapsed_time / 1000:.2f} s" if obj.elapsed_time else "-"
        return f"{text}, {gettext('stream')}" if obj.is_stream else text

    @admin.display(description=_("content"))
    def content_text(self, obj: Log) -> str:
        return describe(obj.content)

    @admin.display(description=_("content"))
    def content_short(self, obj: Log) -> str:
        text = describe(obj.content)  # billing's own sentences in the reader's language
        return text if len(text) <= 80 else text[:77] + "..."

    def get_urls(self):
        export = path("export/", self.admin_site.admin_view(self.export_view), name="billing_log_export")
        return [export, *super().get_urls()]

    def export_view(self, request):
        """The logs the list shows (its filters and search), every page of them, as a streamed CSV file."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(reverse("admin:billing_log_changelist"))
        return log_export.csv_response(request, changelist.get_queryset(request))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        # Logs are the ledger: only root prunes them.
        return permissions.role_at_least(request.user, User.Role.ROOT)


# --- Captured bodies ------------------------------------------------------------


@admin.register(BodyCapture)
class BodyCaptureAdmin(admin.ModelAdmin):
    """Read-only: what the relay captured for the tokens in BodyCaptureTokenIds (billing/body_capture.py)."""

    list_display = ("id", "created", "request_id", "token_id", "user_id", "path", "status", "request_truncated",
                    "response_truncated")
    list_filter = ("status",)
    search_fields = ("=request_id", "=token_id")
    ordering = ("-id",)
    show_full_result_count = False
    fields = ("created", "request_id", "user_id", "token_id", "path", "status", "request_body",
              "request_truncated", "response_body", "response_truncated")
    readonly_fields = fields

    @admin.display(description=_("time"), ordering="created_at")
    def created(self, obj: BodyCapture) -> str:
        return unix_text(obj.created_at)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# --- Options ------------------------------------------------------------------


@admin.register(Option)
class OptionAdmin(admin.ModelAdmin):
    """No changelist: its URL is the grouped options page (root only, through User.has_perm)."""

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [path("", self.admin_site.admin_view(self.options_view), name="{}_{}_changelist".format(*info))]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def options_view(self, request):
        if not self.has_change_permission(request):
            raise PermissionDenied
        options.reload_from_db()
        form = OptionsForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            changed = form.changed_values()
            try:
                with transaction.atomic():
                    for key, value in changed.items():
                        services.option_set(key=key, value=value)
            except ServiceError as exc:
                options.reload_from_db()  # the snapshot saw writes that were rolled back
                form.add_error(exc.field if exc.field in form.fields else None, str(exc))
            else:
                if changed:
                    self.message_user(request, gettext("Saved %(keys)s.") % {"keys": ", ".join(changed)},
                                      messages.SUCCESS)
                else:
                    self.message_user(request, gettext("Nothing changed."), messages.INFO)
                return HttpResponseRedirect(request.path)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Options"),
            "form": form,
        }
        return TemplateResponse(request, "admin/billing/option/options.html", context)
