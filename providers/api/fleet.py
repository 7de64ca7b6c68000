"""Admin routes over many channels at once (new-api's names where it has them): batch edits by ids or tag,
tag edits, copies, and the models an upstream lists. No answer carries a key."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext

from oneapi_site.api import ok
from oneapi_site.lib.errors import ServiceError
from providers import fleet
from providers.api.channels import AdminView


def _body(request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ServiceError(gettext("the body must be a JSON object"))
    return request.data


def _names(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ServiceError(gettext("%(field)s must be a list of model names") % {"field": field}, field=field)
    return value


class ChannelBatchView(AdminView):
    """POST {ids | tag, action, value, mode}; new-api's batch delete ({ids} alone) still deletes."""

    def post(self, request):
        body = _body(request)
        # Only a body that names no action at all is new-api's delete: a null or empty one is a mistake.
        action = body["action"] if "action" in body else "delete" if set(body) == {"ids"} else None
        if not isinstance(action, str):
            raise ServiceError(gettext("action is required"), field="action")
        mode = body.get("mode") or "replace"
        changed = fleet.channels_batch(action=action, ids=body.get("ids"), tag=body.get("tag"),
                                       value=body.get("value"), mode=mode if isinstance(mode, str) else "")
        return ok(changed)


class ChannelBatchTagView(AdminView):
    """new-api's POST /api/channel/batch/tag {ids, tag}: a null or empty tag clears it."""

    def post(self, request):
        body = _body(request)
        return ok(fleet.channels_batch(action="tag", ids=body.get("ids"), value=body.get("tag") or ""))


class TagStatusView(AdminView):
    """new-api's POST /api/channel/tag/enabled and /tag/disabled {tag}."""

    action = ""

    def post(self, request):
        tag = _body(request).get("tag")
        if not isinstance(tag, str) or not tag.strip():
            raise ServiceError(gettext("tag is required"), field="tag")
        return ok(fleet.channels_batch(action=self.action, tag=tag))


class TagView(AdminView):
    def get(self, request):
        """Every tag in use."""
        return ok(fleet.tags())

    def put(self, request):
        """new-api's edit of a tag: {tag, new_tag, priority, weight, models, groups, model_mapping}."""
        body = _body(request)
        tag = body.get("tag")
        if not isinstance(tag, str) or not tag.strip():
            raise ServiceError(gettext("tag is required"), field="tag")
        fields = {name: body.get(name) for name in ("new_tag", "priority", "weight", "models", "groups",
                                                    "model_mapping")}
        return ok(fleet.channels_tag_edit(tag=tag, **fields))


class TagModelsView(AdminView):
    def get(self, request):
        tag = request.query_params.get("tag", "").strip()
        if not tag:
            raise ServiceError(gettext("tag is required"), field="tag")
        return ok(fleet.tag_models(tag=tag))


class ChannelCopyView(AdminView):
    """new-api's POST /api/channel/copy/:id?suffix=&reset_balance= ; answers {id} of the copy."""

    def post(self, request, channel_id: int):
        suffix = request.query_params.get("suffix", fleet.COPY_SUFFIX)
        reset = request.query_params.get("reset_balance", "true").strip().lower() not in ("false", "0", "no")
        copy = fleet.channel_copy(channel_id=channel_id, suffix=suffix, reset_balance=reset)
        return ok({"id": copy.pk})


class FetchModelsPreviewView(AdminView):
    def post(self, request):
        """new-api's preview for a channel not saved yet: {type, key, base_url, config} -> the upstream's models."""
        body = _body(request)
        return ok(fleet.models_fetch(type=body.get("type"), key=body.get("key"), base_url=body.get("base_url"),
                                     config=body.get("config")))


class FetchModelsView(AdminView):
    def get(self, request, channel_id: int):
        """The upstream's models as data (new-api), with what they add to and miss from the channel's list."""
        diff = fleet.channel_fetch_models(channel_id=channel_id)
        return ok(diff.upstream, current=diff.current, added=diff.added, missing=diff.missing)

    def post(self, request, channel_id: int):
        """{add: [...], remove: [...]}: apply the chosen part of the difference; answers the new list."""
        body = _body(request)
        add, remove = _names(body.get("add", []), "add"), _names(body.get("remove", []), "remove")
        return ok(",".join(fleet.channel_models_apply(channel_id=channel_id, add=add, remove=remove)))
