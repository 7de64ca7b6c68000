#!/usr/bin/env python3
"""What recording a relay request costs: the pipeline's metric hooks (oneapi_site/metrics.py) around a call
that does nothing, with recording off and on, in microseconds of CPU per request.

    .venv/bin/python bench/metrics_hooks.py [--requests N]

The relay's whole request costs about 300-500 us of CPU (bench/relay_overhead.py, "server CPU ms / req");
this isolates the hooks' share, which the end-to-end bench cannot tell from the machine's noise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oneapi_site.settings")

import django  # noqa: E402

django.setup()

from oneapi_site import metrics  # noqa: E402

CALLER = SimpleNamespace(user=SimpleNamespace(group="default"))
CHANNEL = SimpleNamespace(id=1, type=1, model_mapping={})
CALL = SimpleNamespace(model="gpt-4o-mini")
TOKENS = SimpleNamespace(prompt=11, completion=7, cached=0)
KNOWN = {"gpt-4o-mini": "openai"}


async def _call_channel(**kwargs):
    metrics.answer_started()
    return SimpleNamespace(interrupted=None)


@metrics.recorded
async def _relay(*, caller, client_protocol: str) -> None:
    metrics.routed(known_models=KNOWN, model="gpt-4o-mini", stream=True, mode="chat")
    await metrics.attempt(_call_channel, channel=CHANNEL, call=CALL)
    metrics.charged(channel_id=1, tokens=TOKENS, quota=20)


async def _run(requests: int) -> float:
    started = time.process_time()
    for _ in range(requests):
        await _relay(caller=CALLER, client_protocol="openai")
    return (time.process_time() - started) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50_000)
    opts = parser.parse_args()
    figures = {}
    for label, exposed in (("off", False), ("on", True), ("off", False), ("on", True)):
        metrics.exposed = exposed
        figures.setdefault(label, []).append(asyncio.run(_run(opts.requests)))
    off, on = min(figures["off"]), min(figures["on"])
    print(f"hooks per request, recording off: {off:.1f} us CPU; on: {on:.1f} us CPU; recording adds {on - off:.1f} us")


if __name__ == "__main__":
    main()
