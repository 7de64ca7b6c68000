"""Routes of billing under /api/; a trailing slash is optional."""

from billing.api import logs, options, redemptions
from oneapi_site.api import api_path

urlpatterns = [
    *api_path("topup", redemptions.TopUpView.as_view()),
    *api_path("redemption/search", redemptions.RedemptionSearchView.as_view()),
    *api_path("redemption/<int:code_id>", redemptions.RedemptionDetailView.as_view()),
    *api_path("redemption", redemptions.RedemptionsView.as_view()),
    *api_path("log/stat", logs.LogStatView.as_view()),
    *api_path("log/export", logs.LogExportView.as_view()),
    *api_path("log/self/export", logs.SelfLogExportView.as_view()),
    *api_path("log/search", logs.LogSearchView.as_view()),
    *api_path("log/self/stat", logs.SelfLogStatView.as_view()),
    *api_path("log/self/search", logs.SelfLogSearchView.as_view()),
    *api_path("log/self", logs.SelfLogsView.as_view()),
    *api_path("log", logs.LogsView.as_view()),
    *api_path("option", options.OptionsView.as_view()),
]
