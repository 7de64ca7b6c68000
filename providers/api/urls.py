"""Routes of providers under /api/; a trailing slash is optional."""

from oneapi_site.api import api_path
from providers.api import catalogue, channels, fleet

urlpatterns = [
    *api_path("channel/search", channels.ChannelSearchView.as_view()),
    *api_path("channel/models", channels.ChannelModelsView.as_view()),
    *api_path("channel/disabled", channels.DisabledChannelsView.as_view()),
    *api_path("channel/batch", fleet.ChannelBatchView.as_view()),
    *api_path("channel/batch/tag", fleet.ChannelBatchTagView.as_view()),
    *api_path("channel/tag/enabled", fleet.TagStatusView.as_view(action="enable")),
    *api_path("channel/tag/disabled", fleet.TagStatusView.as_view(action="disable")),
    *api_path("channel/tag/models", fleet.TagModelsView.as_view()),
    *api_path("channel/tag", fleet.TagView.as_view()),
    *api_path("channel/copy/<int:channel_id>", fleet.ChannelCopyView.as_view()),
    *api_path("channel/fetch_models/<int:channel_id>", fleet.FetchModelsView.as_view()),
    *api_path("channel/fetch_models", fleet.FetchModelsPreviewView.as_view()),
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
