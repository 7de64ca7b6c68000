"""Admin routes over channels: /api/channel/. No response ever carries a channel's key."""

from __future__ import annotations

import threading

from django.db import connection
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.authentication import IsAdmin
from oneapi_site.api import SEARCH_LIMIT, fail, ok, page_window
from providers import channel_keys, fleet, key_health, selectors, services
from providers.api.serializers import ChannelInput, channel_json
from providers.models import Channel
from providers.oneapi_other import config_with_other
from relay import probe

NOT_FOUND = "channel not found"


class AdminView(APIView):
    permission_classes = [IsAdmin]


class ChannelsView(AdminView):
    def get(self, request):
        offset, limit = page_window(request)
        tag = request.query_params.get("tag", "").strip() or None
        return ok([channel_json(c) for c in selectors.channel_list(offset=offset, limit=limit, tag=tag)])

    def post(self, request):
        """A key of several lines makes one channel per line (one-api's batch add)."""
        body = ChannelInput(data=request.data)
        body.is_valid(raise_exception=True)
        fields = dict(body.validated_data)
        fields.pop("id", None)
        other = fields.pop("other", None)
        if other:
            fields["config"] = config_with_other(fields.get("config"), channel_type=fields.get("type"), other=other)
        channels = services.channel_create(**fields)
        return ok([channel_json(c) for c in channels])

    def put(self, request):
        """Fields left out are kept; an omitted or empty key keeps the stored one."""
        body = ChannelInput(data=request.data)
        body.is_valid(raise_exception=True)
        fields = dict(body.validated_data)
        channel = Channel.objects.filter(pk=fields.pop("id", 0) or 0).first()
        if channel is None:
            return fail(NOT_FOUND, field="id")
        other = fields.pop("other", None)
        if other:
            fields["config"] = config_with_other(fields.get("config", channel.config), other=other,
                                                 channel_type=fields.get("type", channel.type))
        channel = services.channel_update(channel=channel, **fields)
        return ok(channel_json(channel))


class ChannelSearchView(AdminView):
    def get(self, request):
        channels = selectors.channel_search(keyword=request.query_params.get("keyword", ""), limit=SEARCH_LIMIT)
        return ok([channel_json(c) for c in channels])


class ChannelDetailView(AdminView):
    def get(self, request, channel_id: int):
        """A multi-key channel's answer carries each key's state (masked) as `keys`."""
        channel = Channel.objects.filter(pk=channel_id).first()
        if channel is None:
            return fail(NOT_FOUND)
        return ok({**channel_json(channel), "keys": channel_keys.key_states(channel_id=channel.pk)})

    def delete(self, request, channel_id: int):
        if not services.channel_delete(channel_id=channel_id):
            return fail(NOT_FOUND)
        return ok()


class ChannelKeyView(AdminView):
    """POST /api/channel/:id/keys/:index/enable or /disable: one key of a multi-key channel (index from 0,
    as `keys` lists them)."""

    def post(self, request, channel_id: int, index: int, action: str):
        if action not in ("enable", "disable"):
            return fail("the action must be enable or disable", field="action")
        if not Channel.objects.filter(pk=channel_id).exists():
            return fail(NOT_FOUND)
        row = key_health.key_set_status(channel_id=channel_id, index=index, enabled=action == "enable")
        return ok(channel_keys.key_json(row))


class DisabledChannelsView(AdminView):
    def delete(self, request):
        """one-api deletes every disabled channel; `?status=3` only those health disabled (the console's)."""
        if request.query_params.get("status") == str(Channel.Status.AUTO_DISABLED):
            return ok(fleet.channels_delete_auto_disabled())
        return ok(services.channels_delete_disabled())


class ChannelModelsView(AdminView):
    """The built-in model catalogue; one-api answers {object: "list", data: [...]} here."""

    def get(self, request):
        models = [{"id": m, "object": "model", "owned_by": selectors.model_owner(m)} for m in selectors.known_models()]
        return ok(models, object="list")


class ChannelTestView(AdminView):
    """One test request; one-api's answer carries time (seconds) and modelName beside the envelope."""

    def get(self, request, channel_id: int):
        if not Channel.objects.filter(pk=channel_id).exists():
            return fail(NOT_FOUND)
        model = request.query_params.get("model", "").strip() or None
        result = probe.channel_test(channel_id=channel_id, model=model)
        return Response({"success": result.success, "message": result.message, "time": result.time,
                         "modelName": result.model})


class ChannelTestAllView(AdminView):
    """Start testing every channel in the background (`?scope=all|disabled`); answers the run's progress."""

    def get(self, request):
        progress = probe.channels_test_all(scope=request.query_params.get("scope", "all") or "all")
        return ok(progress)


class ChannelBalanceView(AdminView):
    """One-api's answer: {success, message, balance} beside the envelope."""

    def get(self, request, channel_id: int):
        if not Channel.objects.filter(pk=channel_id).exists():
            return fail(NOT_FOUND)
        balance = services.channel_update_balance(channel_id=channel_id)
        return Response({"success": True, "message": "", "balance": balance, "data": balance})


class ChannelBalanceAllView(AdminView):
    def get(self, request):
        threading.Thread(target=_balances_quietly, daemon=True, name="oneapi-balances").start()
        return ok(message="updating the balances of all enabled channels in the background")


def _balances_quietly() -> None:
    try:
        services.channels_update_balance_all()
    finally:
        connection.close()
