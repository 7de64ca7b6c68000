"""When a channel should be taken out of rotation, and when it may come back.

An invalid key, exhausted vendor credit or a suspended account disables a channel
at once; transient failures (5xx, 429, timeouts) only after
`ChannelDisableFailureCount` in a row, so one slow answer never does (one-api's
users lost whole fleets to single timeouts: one-api issues #292, #1269). Only
channels the gateway disabled itself (status 3) come back on a passing test;
a channel an operator disabled stays off.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict

from django.db import Error as DatabaseError
from django.db import close_old_connections

from oneapi_site import options
from providers import key_health
from providers.adapters.base import UpstreamError
from providers.channel_keys import fingerprint
from providers.models import Channel
from providers.services import channel_auto_switch

log = logging.getLogger(__name__)

# one-api's list (monitor/manage.go), lower-cased message fragments that mean "this key is dead".
FATAL_TYPES = {"insufficient_quota", "authentication_error", "permission_error", "forbidden"}
FATAL_CODES = {"invalid_api_key", "account_deactivated", "insufficient_quota"}
FATAL_PHRASES = (
    "your access was terminated", "violation of our policies", "your credit balance is too low",
    "organization has been disabled", "credit", "balance", "permission denied",
    "organization has been restricted", "api key not valid", "api key expired", "已欠费",
    "incorrect api key", "invalid api key", "account is suspended", "account has been suspended",
)


def is_fatal(err: UpstreamError) -> bool:
    """The key itself is refused: retrying later will not help."""
    if err.status == 401:
        return True
    if (err.type or "") in FATAL_TYPES or str(err.code or "") in FATAL_CODES:
        return True
    if err.status in (400, 402, 403):
        message = err.message.lower()
        return any(phrase in message for phrase in FATAL_PHRASES)
    return False


def is_transient(err: UpstreamError) -> bool:
    return err.retryable


# What transient failures are counted against: a channel (its id), or one key of a multi-key channel
# (channel id, key line), so a key that keeps failing goes alone.
Subject = int | tuple[int, int]


class FailureCounter:
    """Consecutive transient failures per channel (or key of a channel), on this instance."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[Subject, int] = defaultdict(int)

    def failed(self, subject: Subject) -> int:
        with self._lock:
            self._counts[subject] += 1
            return self._counts[subject]

    def snapshot(self) -> dict[int, int]:
        """Each channel's failures in a row (a multi-key channel's: those of its key that failed most)."""
        found: dict[int, int] = {}
        with self._lock:
            for subject, count in self._counts.items():
                channel_id = subject if isinstance(subject, int) else subject[0]
                found[channel_id] = max(found.get(channel_id, 0), count)
        return found

    def succeeded(self, subject: Subject) -> None:
        if subject in self._counts:
            with self._lock:
                self._counts.pop(subject, None)


failures = FailureCounter()


def _count(subject: Subject, err: UpstreamError) -> int:
    """The subject's failures in a row after this one; 0 when this one does not count (ours, or the key's)."""
    if err.local or is_fatal(err) or not is_transient(err):
        return 0
    return failures.failed(subject)


def verdict(channel_id: Subject, err: UpstreamError) -> str | None:
    """The reason to disable the channel (or the key) now, or None. Counts the failure either way."""
    if err.local:
        return None
    if is_fatal(err):
        return f"the vendor refused the key: {err.message[:200]}"
    count = _count(channel_id, err)
    if count and count >= max(1, options.get("ChannelDisableFailureCount")):
        return f"{count} failures in a row, the last: {err.message[:200]}"
    return None


def report_failure(channel_id: int, err: UpstreamError, *,
                   key: tuple[int, str] | None = None) -> asyncio.Future | None:
    """Called by the relay on the event loop: decide now, write in a worker thread. `key` is the (line, key) a
    multi-key channel was called with: its failures are that key's, and it goes alone (the channel with its
    last key). When the channel, or the key, is being disabled: the write, done when it has landed (its
    result says whether it disabled anything); None otherwise."""
    subject = channel_id if key is None else (channel_id, key[0])
    if not options.get("AutomaticDisableChannelEnabled"):
        # Counted all the same: /metrics and the console's dashboard show failures in a row with the option
        # off (its default), they only disable nothing.
        _count(subject, err)
        return None
    reason = verdict(subject, err)
    if reason is None:
        return None
    failures.succeeded(subject)  # start counting afresh if it is ever re-enabled
    loop = asyncio.get_running_loop()
    if key is None:
        future = loop.run_in_executor(None, _disable_quietly, channel_id, reason)
    else:
        future = loop.run_in_executor(None, _disable_key_quietly, channel_id, key[0], fingerprint(key[1]), reason)
    future.add_done_callback(lambda f: f.exception())  # never "exception was never retrieved"
    return future


def _disable_quietly(channel_id: int, reason: str) -> None:
    close_old_connections()
    try:
        channel_auto_switch(channel_id=channel_id, enabled=False, reason=reason)
    except DatabaseError as exc:  # the database is down: one line, not a traceback per failed request
        log.warning("could not auto-disable channel %s: the database is unavailable (%s)", channel_id,
                    type(exc).__name__)
    except Exception:
        log.exception("could not auto-disable channel %s", channel_id)


def key_is_dead(err: UpstreamError) -> bool:
    """The vendor refused the key itself: another key of the channel may still answer."""
    return not err.local and is_fatal(err)


def _disable_key_quietly(channel_id: int, index: int, key_fingerprint: str, reason: str) -> bool:
    close_old_connections()
    try:
        return key_health.key_auto_disable(channel_id=channel_id, index=index, key_fingerprint=key_fingerprint,
                                           reason=reason)
    except DatabaseError as exc:
        log.warning("could not auto-disable key %s of channel %s: the database is unavailable (%s)", index + 1,
                    channel_id, type(exc).__name__)
    except Exception:
        log.exception("could not auto-disable key %s of channel %s", index + 1, channel_id)
    return False


def report_success(channel_id: int, *, key_index: int | None = None) -> None:
    failures.succeeded(channel_id if key_index is None else (channel_id, key_index))


def channel_tested(*, channel_id: int, success: bool, error: UpstreamError | None,
                   key: tuple[int, str] | None = None) -> None:
    """A channel test's verdict (relay/probe.py): a pass brings a channel the gateway disabled back; a
    refused key, or the last of too many failures, takes an enabled one out. `key` is the (line, key) a
    multi-key channel was tested with: its failures are that key's, and it goes alone."""
    status = Channel.objects.filter(pk=channel_id).values_list("status", flat=True).first()
    if success:
        report_success(channel_id, key_index=None if key is None else key[0])
        if status == Channel.Status.AUTO_DISABLED and options.get("AutomaticEnableChannelEnabled"):
            channel_auto_switch(channel_id=channel_id, enabled=True, reason="it passed a channel test")
        return
    if not options.get("AutomaticDisableChannelEnabled") or error is None:
        return
    if key is not None:
        reason = verdict((channel_id, key[0]), error)
        if reason is not None:
            failures.succeeded((channel_id, key[0]))
            key_health.key_auto_disable(channel_id=channel_id, index=key[0], key_fingerprint=fingerprint(key[1]),
                                        reason=f"channel test: {reason}")
        return
    if status == Channel.Status.ENABLED:
        reason = verdict(channel_id, error)
        if reason is not None:
            failures.succeeded(channel_id)
            channel_auto_switch(channel_id=channel_id, enabled=False, reason=f"channel test: {reason}")
