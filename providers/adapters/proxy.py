"""Proxy (type 43, one-api's relay/adaptor/proxy): the request goes to the channel's base URL as it came.

The path the client called is kept under the base URL (one-api strips only its /v1/oneapi/proxy/{id} prefix),
the body is the client's, and the key is the Authorization header as it is, with no "Bearer " added: a
proxy channel's key is whatever header value the service behind it expects. On the OpenAI routes the answer
comes back as the service sent it and is billed as OpenAI's (its usage, else its text counted).
"""

from __future__ import annotations

from typing import ClassVar

from providers.adapters.base import ChannelInfo
from providers.adapters.openai import PATHS, OpenAIAdapter


class ProxyAdapter(OpenAIAdapter):
    channel_type = 43
    label = "Proxy"
    default_base_url = ""  # a proxy has no vendor: the operator says where it goes
    modes = tuple(PATHS)
    config_fields: ClassVar[tuple[str, ...]] = ()
    native_protocols: ClassVar[tuple[str, ...]] = ()

    def auth_headers(self, channel: ChannelInfo) -> dict[str, str]:
        return {"Authorization": channel.key}

    def balance_requests(self, channel: ChannelInfo) -> list:
        return []
