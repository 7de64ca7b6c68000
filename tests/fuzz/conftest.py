"""Settings and fixtures of the fuzz tests.

CI runs a fixed set of examples (derandomized: the same on every run, nothing read from or written to
Hypothesis' example database), bounded so tests/fuzz takes a minute or two. To look harder:

    FUZZ_EXAMPLES=500 FUZZ_PROFILE=fuzz-dev pytest tests/fuzz

`fuzz-dev` draws new examples on every run and prints a `@reproduce_failure` blob for what it finds.
"""

from __future__ import annotations

import logging
import os

import pytest
from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))

_shared = dict(
    max_examples=EXAMPLES,
    deadline=None,  # a request may take a while on a busy CI machine; only what it answers matters
    database=None,
    # The fixtures (database rows, clients, mock upstreams) serve every example of a test on purpose.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.large_base_example],
)
settings.register_profile("fuzz-ci", derandomize=True, **_shared)
settings.register_profile("fuzz-dev", derandomize=False, print_blob=True, **_shared)
settings.load_profile(os.environ.get("FUZZ_PROFILE", "fuzz-ci"))


class LogWatch(logging.Handler):
    """Every record at ERROR or above, and every record carrying a traceback, from any logger or thread."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)

    def clear(self) -> None:
        self.records.clear()

    def assert_quiet(self) -> None:
        shown = []
        for record in self.records:
            text = f"{record.levelname} {record.name}: {record.getMessage()}"
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            shown.append(text)
        assert not shown, "the log got errors or tracebacks:\n" + "\n".join(shown)


@pytest.fixture
def log_watch():
    watch = LogWatch()
    root = logging.getLogger()
    root.addHandler(watch)
    yield watch
    root.removeHandler(watch)
