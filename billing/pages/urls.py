"""Self-service pages of billing: dashboard, top-up, logs, model prices."""

from django.urls import path

from billing.pages import dashboard, logs, models, topup

urlpatterns = [
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    path("topup/", topup.topup, name="topup"),
    path("log/", logs.logs, name="logs"),
    path("models/", models.models_view, name="models"),
]
