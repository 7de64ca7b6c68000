"""Shared setup for the billing page tests: setting options (isolation and logged-in clients are in conftest).

Import into a test module with `from tests.billing.pages_fixtures import *`.
"""

import pytest

from billing.services import option_set

__all__ = ["set_option"]


@pytest.fixture
def set_option(db):
    def set_(key, value):
        option_set(key=key, value=value)

    return set_
