"""Routes of providers under /api/; a trailing slash is optional."""

from oneapi_site.api import api_path
from providers.api import catalogue, channels

urlpatterns = [
    *api_path("channel/search", channels.ChannelSearchView.as_view()),
    *api_path("channel/models", channels.ChannelModelsView.as_view()),
    *api_path("channel/disabled", channels.DisabledChannelsView.as_view()),
    *api_path("channel/test/<int:channel_id>", channels.ChannelTestView.as_view()),
    *api_path("channel/test", channels.ChannelTestAllView.as_view()),
    *api_path("channel/update_balance/<int:channel_id>", channels.ChannelBalanceView.as_view()),
    *api_path("channel/update_balance", channels.ChannelBalanceAllView.as_view()),
    *api_path("channel/<int:channel_id>/keys/<int:index>/<str:action>", channels.ChannelKeyView.as_view()),
    *api_path("channel/<int:channel_id>", channels.ChannelDetailView.as_view()),
    *api_path("channel", channels.ChannelsView.as_view()),
    *api_path("group", catalogue.GroupsView.as_view()),
    *api_path("models", catalogue.ModelsByTypeView.as_view()),
]
