"""Keys of multi-key channels going down and coming back; the channel follows its keys.

A key the vendor refuses (providers/health.py decides what is fatal) is disabled alone; the channel is
auto-disabled only when no key of it is left, and comes back with its first key. An auto-disabled key is
tried again through a half-open probe: after PROBE_COOLDOWN one real test request is sent with that key
alone (relay/probe.py), and each probe it fails doubles the wait, up to a day. An operator's switch of a
key is final until the operator switches it back.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import F

from billing.models import Log
from billing.services import log_record
from oneapi_site import options
from oneapi_site.lib import changes
from oneapi_site.lib.errors import ServiceError
from oneapi_site.lib.timeutil import now_ts
from providers.models import Channel, ChannelKey
from providers.services import channel_auto_switch

PROBE_COOLDOWN = 5 * 60  # seconds before an auto-disabled key is probed the first time
PROBE_COOLDOWN_MAX = 24 * 3600  # the doubling stops here: a dead key is probed at least once a day
LAST_ERROR_MAX = 500


def _lock_channel(channel_id: int) -> None:
    """Key changes of one channel one at a time: two keys dying at once must not each see the other alive
    (and leave the channel up with no key). Taken before any other read, so what follows reads what the
    other change committed (InnoDB's snapshot starts at the first plain read)."""
    Channel.objects.select_for_update().filter(pk=channel_id).values_list("id", flat=True).first()


def _live_count(channel_id: int) -> int:
    return ChannelKey.objects.filter(channel_id=channel_id, status=ChannelKey.Status.ENABLED).count()


def _system_log(channel_id: int, text: str) -> None:
    log_record(user_id=0, type=Log.Type.SYSTEM, channel_id=channel_id, content=f"Channel #{channel_id} {text}")


@transaction.atomic
def key_set_status(*, channel_id: int, index: int, enabled: bool) -> ChannelKey:
    """An operator's switch of one key. Enabling a key of an auto-disabled channel brings the channel back;
    disabling the last live key takes it out."""
    _lock_channel(channel_id)
    row = ChannelKey.objects.select_for_update().filter(channel_id=channel_id, index=index).first()
    if row is None:
        raise ServiceError(f"channel {channel_id} has no key number {index}", field="index")
    if enabled:
        row.status, row.disabled_at, row.failures, row.probes_failed, row.probe_after = (
            ChannelKey.Status.ENABLED, 0, 0, 0, 0)
    elif row.status == ChannelKey.Status.ENABLED or row.status == ChannelKey.Status.AUTO_DISABLED:
        row.status, row.disabled_at = ChannelKey.Status.MANUALLY_DISABLED, row.disabled_at or now_ts()
    row.save()
    _system_log(channel_id, f"key {index + 1} ({row.masked}) was {'enabled' if enabled else 'disabled'} by an admin")
    if enabled:
        channel_auto_switch(channel_id=channel_id, enabled=True, reason=f"key {index + 1} was enabled")
    elif _live_count(channel_id) == 0:
        channel_auto_switch(channel_id=channel_id, enabled=False, reason="no key of it is enabled")
    changes.publish("channels")
    return row


@transaction.atomic
def key_auto_disable(*, channel_id: int, index: int, key_fingerprint: str, reason: str) -> bool:
    """The gateway takes a dead key out (the vendor refused it); the channel too when it was the last.
    False when the key is not an enabled one any more (another request, or an edit, got there first)."""
    _lock_channel(channel_id)
    now = now_ts()
    updated = ChannelKey.objects.filter(channel_id=channel_id, index=index, fingerprint=key_fingerprint,
                                        status=ChannelKey.Status.ENABLED).update(
        status=ChannelKey.Status.AUTO_DISABLED, disabled_at=now, probe_after=now + PROBE_COOLDOWN,
        probes_failed=0, last_error=reason[:LAST_ERROR_MAX], failures=F("failures") + 1)
    if not updated:
        return False
    _system_log(channel_id, f"key {index + 1} was disabled automatically: {reason}")
    if _live_count(channel_id) == 0:
        channel_auto_switch(channel_id=channel_id, enabled=False, reason=f"all its keys are down, the last: {reason}")
    changes.publish("channels")
    return True


def keys_due_for_probe(*, channel_id: int | None = None, now: int | None = None) -> list[ChannelKey]:
    """Auto-disabled keys whose cooldown has passed (of one channel, or of all)."""
    rows = ChannelKey.objects.filter(status=ChannelKey.Status.AUTO_DISABLED, probe_after__lte=now or now_ts())
    if channel_id is not None:
        rows = rows.filter(channel_id=channel_id)
    return list(rows.select_related("channel").order_by("channel_id", "index"))


@transaction.atomic
def key_probed(*, channel_id: int, index: int, key_fingerprint: str, success: bool, message: str) -> bool:
    """A half-open probe's verdict: a pass brings the key back (and its channel, if the gateway had disabled
    it for lack of keys); a failure doubles the wait before the next probe. Whether the key is back."""
    _lock_channel(channel_id)
    row = ChannelKey.objects.select_for_update().filter(
        channel_id=channel_id, index=index, fingerprint=key_fingerprint,
        status=ChannelKey.Status.AUTO_DISABLED).first()
    if row is None:
        return False
    if not success:
        row.probes_failed += 1
        row.failures += 1
        row.last_error = message[:LAST_ERROR_MAX]
        row.probe_after = now_ts() + min(PROBE_COOLDOWN * 2 ** row.probes_failed, PROBE_COOLDOWN_MAX)
        row.save()
        return False
    row.status, row.disabled_at, row.probes_failed, row.probe_after, row.failures = (
        ChannelKey.Status.ENABLED, 0, 0, 0, 0)
    row.save()
    _system_log(channel_id, f"key {index + 1} ({row.masked}) was enabled again automatically: it passed a probe")
    if options.get("AutomaticEnableChannelEnabled"):  # the channel follows one-api's switch, as on a test
        channel_auto_switch(channel_id=channel_id, enabled=True, reason=f"key {index + 1} passed a probe")
    changes.publish("channels")
    return True




@transaction.atomic
def keys_restore(*, channel_id: int, states: dict[int, tuple[int, str, int]]) -> int:
    """Carry keys' states over from another gateway (new-api's channel_info, providers/channel_keys.py): each
    line's (status, last error, disabled at). An auto-disabled key is probed after the usual cooldown from
    when it was disabled. How many keys were set."""
    now = now_ts()
    done = 0
    for index, (status, reason, disabled_at) in states.items():
        disabled_at = disabled_at or now
        done += ChannelKey.objects.filter(channel_id=channel_id, index=index).update(
            status=status, last_error=reason[:LAST_ERROR_MAX], disabled_at=disabled_at,
            probe_after=disabled_at + PROBE_COOLDOWN if status == ChannelKey.Status.AUTO_DISABLED else 0)
    if done:
        changes.publish("channels")
    return done
