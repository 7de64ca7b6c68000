"""GET /api/group/ (admin) and GET /api/models (user)."""

from __future__ import annotations

from rest_framework.views import APIView

from accounts.api.authentication import IsAdmin, IsUser
from oneapi_site import options
from oneapi_site.api import ok
from providers import selectors


class GroupsView(APIView):
    """The user groups an admin can assign: the keys of the GroupRatio option."""

    permission_classes = [IsAdmin]

    def get(self, request):
        return ok(list(options.get("GroupRatio") or {}))


class ModelsByTypeView(APIView):
    """{channel type: [model names]}; JSON object keys are the type ids as strings."""

    permission_classes = [IsUser]

    def get(self, request):
        return ok({str(t): models for t, models in selectors.models_by_channel_type().items()})
