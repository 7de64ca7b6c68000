"""What choosing a key of a multi-key channel costs the relay, per request, by the number of keys.

    python bench/key_pick.py

Prints microseconds per pick: a one-key channel (the common case, nothing to choose), round-robin and random
over N live keys, round-robin with one key refused in the request (a retry), and with a per-key cap counted.
"""

from __future__ import annotations

import os
import sys
import timeit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oneapi_site.settings")

import django  # noqa: E402

django.setup()

from providers.adapters.base import ChannelInfo  # noqa: E402
from relay.keys import KeyRing  # noqa: E402

ROUNDS = 20_000


def channel(keys: int, **fields) -> ChannelInfo:
    pool = tuple((i, f"sk-bench-key-{i:06d}") for i in range(keys))
    return ChannelInfo(id=1, type=1, name="bench", key=pool[0][1] if pool else "sk", base_url="", models=("m",),
                       model_mapping={}, config={}, system_prompt="", priority=0, weight=0, keys=pool,
                       **fields)


def per_pick(pool: ChannelInfo, refused: set) -> float:
    ring = KeyRing()
    seconds = min(timeit.repeat(lambda: ring.pick(pool, refused=refused), number=ROUNDS, repeat=3))
    return seconds / ROUNDS * 1e6


def main() -> None:
    print(f"one key: {per_pick(channel(0), set()):.2f} us")
    for n in (3, 100, 10_000):
        rr = per_pick(channel(n, key_mode="round_robin"), set())
        rnd = per_pick(channel(n, key_mode="random"), set())
        retry = per_pick(channel(n, key_mode="round_robin"), {(1, 0)})
        capped = per_pick(channel(n, key_mode="round_robin", key_rpm=10**9), set())
        print(f"{n:>6} keys: round-robin {rr:.2f} us, random {rnd:.2f} us, "
              f"after a refusal {retry:.2f} us, with a cap {capped:.2f} us")


if __name__ == "__main__":
    main()
