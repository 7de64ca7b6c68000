"""Run the test suite's OpenAI-protocol mock upstream in its own process for the benchmark.

A process of its own, not a thread: it must not share a GIL with the load
generator. Prints `PORT <n>` once it listens, then serves until killed.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.mock_upstream import MockUpstream


def main() -> None:
    mock = MockUpstream().start(record=False)
    print(f"PORT {mock.port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    mock.stop()


if __name__ == "__main__":
    main()
