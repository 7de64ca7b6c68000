"""The ASGI entry point: `/v1/...` to the bare relay, everything else to Django."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oneapi_site.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import re_path  # noqa: E402

from relay.asgi import RelayApp  # noqa: E402

relay_app = RelayApp()

application = ProtocolTypeRouter({
    "http": URLRouter([
        re_path(r"^v1/", relay_app),
        # Chat UIs call these without the /v1 prefix, as one-api allows.
        re_path(r"^dashboard/billing/", relay_app),
        re_path(r"", ASGIStaticFilesHandler(django_app)),
    ]),
})
