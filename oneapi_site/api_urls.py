"""`/api/...`: one-api's management routes, assembled from each app's api package."""

from django.urls import include, path, re_path

from oneapi_site.api import unknown_route

urlpatterns: list = [
    path("", include("accounts.api.urls")),
    path("", include("billing.api.urls")),
    path("", include("providers.api.urls")),
    re_path(r"^.*$", unknown_route),
]
