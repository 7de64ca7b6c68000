"""The key ring at unit level: turns over live keys, refused and capped keys passed over, marks forgotten."""

from collections import Counter

from providers.adapters.base import ChannelInfo
from relay.keys import KeyRing

KEYS = ((0, "sk-a"), (2, "sk-c"), (3, "sk-d"))  # line 1 is down in the snapshot


def channel(**fields) -> ChannelInfo:
    base = dict(id=7, type=1, name="pool", key="sk-a", base_url="", models=("m",), model_mapping={}, config={},
                system_prompt="", priority=0, weight=0, keys=KEYS, key_mode="round_robin")
    return ChannelInfo(**{**base, **fields})


def picks(ring: KeyRing, pool: ChannelInfo, times: int, refused=frozenset()) -> list[tuple[str, int]]:
    chosen = [ring.pick(pool, refused=set(refused)) for _ in range(times)]
    return [(c.key, index) for c, index in chosen]


def test_keys_take_turns_and_each_pick_holds_one_key():
    assert picks(KeyRing(), channel(), 6) == [("sk-a", 0), ("sk-c", 2), ("sk-d", 3)] * 2


def test_a_one_key_channel_is_sent_as_it_is():
    single = channel(keys=(), key_mode="")
    picked, index = KeyRing().pick(single, refused=set())
    assert picked is single and index is None


def test_refused_and_marked_keys_are_passed_over_until_a_channel_change():
    ring = KeyRing()
    assert {key for key, _ in picks(ring, channel(), 4, refused={(7, 0)})} == {"sk-c", "sk-d"}
    ring.mark_down(7, 2)
    assert {key for key, _ in picks(ring, channel(), 4)} == {"sk-a", "sk-d"}
    assert ring.pick(channel(), refused={(7, 0), (7, 3)}) is None
    assert ring.has_live(channel(), refused={(7, 0)}) and not ring.has_live(channel(), refused={(7, 0), (7, 3)})
    ring.changed("tokens")
    assert ring.pick(channel(), refused={(7, 0), (7, 3)}) is None
    ring.written(7, 2, disabled=True)
    ring.changed("channels")  # the new snapshot says which keys live
    assert ring.pick(channel(), refused={(7, 0), (7, 3)})[1] == 2


def test_random_picks_only_live_keys():
    ring = KeyRing()
    used = Counter(key for key, _ in picks(ring, channel(key_mode="random"), 60, refused={(7, 3)}))
    assert set(used) == {"sk-a", "sk-c"}


def test_a_key_at_its_cap_waits_for_the_next_minute():
    ring = KeyRing()
    now = [120.0]
    ring.clock = lambda: now[0]
    capped = channel(key_rpm=2)
    assert Counter(key for key, _ in picks(ring, capped, 6)) == {"sk-a": 2, "sk-c": 2, "sk-d": 2}
    assert ring.pick(capped, refused=set()) is None and ring.at_cap(capped)
    now[0] += 60
    assert ring.pick(capped, refused=set()) is not None and not ring.at_cap(capped)


def test_a_mark_outlives_a_channel_change_that_comes_before_its_write_lands():
    # Another instance's change (or any edit) reloads a snapshot still listing the key live: before the
    # fix it forgot the mark, and the dead key was sent to again (MariaDB + Redis CI, test_multikey).
    ring = KeyRing()
    ring.mark_down(7, 2)
    ring.changed("channels")
    assert {key for key, _ in picks(ring, channel(), 4)} == {"sk-a", "sk-d"}
    ring.written(7, 2, disabled=True)
    assert {key for key, _ in picks(ring, channel(), 4)} == {"sk-a", "sk-d"}
    ring.changed("channels")  # a change after the write: the snapshot now says whether the key lives
    assert {key for key, _ in picks(ring, channel(), 6)} == {"sk-a", "sk-c", "sk-d"}


def test_a_mark_whose_write_disabled_nothing_goes_at_once():
    ring = KeyRing()
    ring.mark_down(7, 2)
    ring.written(7, 2, disabled=False)  # an edit got there first, or the database is down
    assert {key for key, _ in picks(ring, channel(), 6)} == {"sk-a", "sk-c", "sk-d"}
