"""The one `World` of the relay tests: a caller and a channel, and the mock upstream the channel points at.

The `world` fixture (tests/conftest.py) is an OpenAI channel at the shared mock; vendor tests build theirs
with `new_world(their_mock, type=..., key=..., ...)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import openai
from asgiref.sync import sync_to_async

from providers.models import Channel
from providers.services import channel_update
from tests.factories import ChannelFactory, TokenFactory, UserFactory


@dataclass
class World:
    """One caller and one channel: the user, their API key, the channel and the mock it points at."""

    user: Any
    token: Any
    channel: Any
    upstream: Any

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer sk-{self.token.key}"}

    async def set_key(self, key: str) -> None:
        """Give the channel another key, as an operator would (the relay's routes follow)."""
        await sync_to_async(lambda: channel_update(channel=Channel.objects.get(pk=self.channel.pk), key=key))()

    def sdk(self, relay_client) -> openai.AsyncOpenAI:
        """The official SDK, talking to the gateway through the test client."""
        return openai.AsyncOpenAI(base_url="http://testserver/v1", api_key=f"sk-{self.token.key}",
                                  http_client=relay_client, max_retries=0)


def new_world(upstream, *, username: str, token_name: str = "", quota: int = 10_000_000, base_path: str = "",
              **channel) -> World:
    """A user with `quota`, their API key (with half of it), and a channel (`channel` are its factory
    fields) at `upstream` (under `base_path`, for an SDK-style base), whose record and script start empty."""
    upstream.reset()
    user = UserFactory(username=username, quota=quota)
    token = TokenFactory(user=user, name=token_name or f"{username}-key", remain_quota=quota // 2)
    return World(user=user, token=token, channel=ChannelFactory(base_url=upstream.url + base_path, **channel),
                 upstream=upstream)
