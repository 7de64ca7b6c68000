"""Root-only settings: GET and PUT /api/option/."""

from __future__ import annotations

from rest_framework.views import APIView

from accounts.api.authentication import IsRoot
from billing import services
from billing.api.serializers import OptionInput
from billing.models import Option
from oneapi_site import options
from oneapi_site.api import fail, ok


class OptionsView(APIView):
    permission_classes = [IsRoot]

    def get(self, request):
        """Every option as stored text, defaults filled in; secrets (…Token, …Secret) are left out (one-api)."""
        values = {**options.DEFAULTS, **dict(Option.objects.values_list("key", "value"))}
        return ok([{"key": k, "value": v} for k, v in sorted(values.items()) if not options.is_secret(k)])

    def put(self, request):
        body = OptionInput(data=request.data)
        body.is_valid(raise_exception=True)
        key, value = body.validated_data["key"].strip(), body.validated_data["value"]
        if key not in options.DEFAULTS:
            # A typo would otherwise be stored silently and never take effect.
            return fail(f"unknown option {key!r}", field="key")
        if value is None:
            value = ""
        services.option_set(key=key, value=value)
        return ok()
