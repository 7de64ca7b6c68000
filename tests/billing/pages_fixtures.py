"""Shared setup for the billing page tests: setting options (isolation and logged-in clients are in conftest).

A pytest plugin (tests/conftest.py's pytest_plugins): every test module has these fixtures.
"""

import pytest

from billing.services import option_set


@pytest.fixture
def set_option(db):
    def set_(key, value):
        option_set(key=key, value=value)

    return set_
