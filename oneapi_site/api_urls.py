"""`/api/...`: one-api's management routes, assembled from each app's api package."""

from django.urls import include, path

urlpatterns: list = [
]
