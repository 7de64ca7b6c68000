"""An oversized form is refused with a 400 and one warning line: no traceback, nothing at ERROR."""

import logging

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("form, logger", [
    ({**{f"f{i}": "x" for i in range(1_001)}, "username": "alice"}, "django.security.TooManyFieldsSent"),
    ({"username": "a" * 2_700_000, "password": "x"}, "django.security.RequestDataTooBig"),
], ids=["1001-fields", "2.7-MB"])
def test_an_oversized_form_is_a_400_and_a_warning_without_traceback(caplog, form, logger):
    with caplog.at_level(logging.INFO):
        response = Client().post("/login/", form)
    assert response.status_code == 400
    refused = [r for r in caplog.records if r.name == logger]
    assert refused and all(r.levelno == logging.WARNING and not r.exc_info for r in refused)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
