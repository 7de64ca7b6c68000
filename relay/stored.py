"""Answers a vendor stored, and which channel holds each: a Response made with `store` on a channel that serves
the Responses API natively lives at that channel's vendor, so every later request about it (retrieve, delete,
input items, cancel, a new Response's `previous_response_id`) must go to that channel, and only for the user
who made it.

Where the record is kept: in Redis when it is configured (shared by every instance, expiring with the 30 days
OpenAI keeps a stored Response), else in the `stored_responses` table (relay/models.py), whose rows count for
30 days too. Either is written off the request path, in a background task, so a Response costs its client no
wait; this process also keeps its recent records in memory, because a client sends its next turn the moment
the last one ends, before that write may have landed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import caches
from django.db import close_old_connections

from relay.models import StoredResponse

log = logging.getLogger("oneapi.relay")

TTL = 30 * 24 * 3600  # OpenAI keeps a stored Response 30 days
RECENT = 10_000  # records kept in memory, the newest
PRUNE_EVERY = 3600  # seconds between deletions of the table's expired rows
KEY = "stored_response:"
MAX_ID = 191  # the table's key length (relay/models.py)


class StoredAnswers:
    def __init__(self) -> None:
        self.recent: OrderedDict[str, tuple[int, int, float]] = OrderedDict()  # id -> channel, user, expiry
        self.pending: set[asyncio.Task] = set()
        self.pruned_at = 0.0

    def remember(self, answer_id: str, *, channel_id: int, user_id: int) -> None:
        """Record that `channel_id` holds `answer_id`, made by `user_id`; the write happens in the background."""
        if not answer_id or len(answer_id) > MAX_ID:
            return  # no vendor's id is that long: not one to find again
        self._keep(answer_id, channel_id, user_id)
        task = asyncio.get_running_loop().create_task(self._write(answer_id, channel_id, user_id))
        self.pending.add(task)  # held, or the loop may drop the task before it runs
        task.add_done_callback(self.pending.discard)

    async def channel_of(self, answer_id: str, *, user_id: int) -> int | None:
        """The channel holding `answer_id` when `user_id` made it; None for an unknown id or another user's."""
        hit = self.recent.get(answer_id)
        if hit is None or hit[2] < time.time():
            try:
                found = await sync_to_async(_read, thread_sensitive=False)(answer_id)
            except Exception:  # the store is down: as unknown, which the client is told plainly
                log.warning("could not read the stored response %s's channel", answer_id, exc_info=True)
                return None
            if found is None:
                return None
            hit = (*found, time.time() + TTL)
            self.recent[answer_id] = hit
        channel_id, owner, _ = hit
        return channel_id if owner == user_id else None

    async def forget(self, answer_id: str) -> None:
        """The vendor deleted `answer_id`: forget its channel."""
        self.recent.pop(answer_id, None)
        try:
            await sync_to_async(_delete, thread_sensitive=False)(answer_id)
        except Exception:  # it expires in time; a later request gets the vendor's own "not found"
            log.warning("could not forget the stored response %s", answer_id, exc_info=True)

    async def drain(self) -> None:
        """Wait for the writes under way (tests, shutdown)."""
        while self.pending:
            await asyncio.gather(*list(self.pending), return_exceptions=True)

    def _keep(self, answer_id: str, channel_id: int, user_id: int) -> None:
        self.recent[answer_id] = (channel_id, user_id, time.time() + TTL)
        self.recent.move_to_end(answer_id)
        while len(self.recent) > RECENT:
            self.recent.popitem(last=False)

    async def _write(self, answer_id: str, channel_id: int, user_id: int) -> None:
        prune = not settings.REDIS_CONN_STRING and time.monotonic() - self.pruned_at > PRUNE_EVERY
        if prune:
            self.pruned_at = time.monotonic()
        try:
            await sync_to_async(_write, thread_sensitive=False)(answer_id, channel_id, user_id, prune)
        except Exception:  # this instance still knows it; others do not, and say so plainly
            log.warning("could not record the stored response %s's channel", answer_id, exc_info=True)


def _write(answer_id: str, channel_id: int, user_id: int, prune: bool) -> None:
    if settings.REDIS_CONN_STRING:
        caches["default"].set(KEY + answer_id, f"{channel_id}:{user_id}", timeout=TTL)
        return
    close_old_connections()
    StoredResponse.objects.update_or_create(response_id=answer_id, defaults={
        "channel_id": channel_id, "user_id": user_id, "created_at": int(time.time())})
    if prune:
        StoredResponse.objects.filter(created_at__lt=int(time.time()) - TTL).delete()


def _read(answer_id: str) -> tuple[int, int] | None:
    if settings.REDIS_CONN_STRING:
        value = caches["default"].get(KEY + answer_id)
        if not isinstance(value, str) or ":" not in value:
            return None
        channel_id, user_id = value.split(":", 1)
        return int(channel_id), int(user_id)
    close_old_connections()
    row = StoredResponse.objects.filter(response_id=answer_id, created_at__gte=int(time.time()) - TTL).values_list(
        "channel_id", "user_id").first()
    return None if row is None else (int(row[0]), int(row[1]))


def _delete(answer_id: str) -> None:
    if settings.REDIS_CONN_STRING:
        caches["default"].delete(KEY + answer_id)
        return
    close_old_connections()
    StoredResponse.objects.filter(response_id=answer_id).delete()


stored = StoredAnswers()
