"""Pages read the stored options: after a restart, and after another instance changed them."""

import pytest
from django.urls import reverse

from billing.models import Option
from oneapi_site import options
from oneapi_site.lib import changes

pytestmark = pytest.mark.django_db


def register_open(client) -> bool:
    return 'id="register-form"' in client.get(reverse("register")).content.decode()


def test_a_fresh_process_reads_the_stored_options_before_its_first_page(client, monkeypatch):
    # On a machine booted minutes ago the monotonic clock is smaller than SYNC_FREQUENCY.
    monkeypatch.setattr(options.time, "monotonic", lambda: 5.0)
    Option.objects.create(key="RegisterEnabled", value="false")
    options.snapshot.__init__()  # what a process that just started holds: the defaults, never loaded
    assert register_open(client) is False


def test_another_instances_change_shows_on_the_next_page(client):
    options.reload_from_db()
    assert register_open(client) is True
    # Another instance writes the row and announces it; this process hears it from Redis.
    Option.objects.update_or_create(key="RegisterEnabled", defaults={"value": "false"})
    changes._notify_local("options")
    assert register_open(client) is False


def test_pages_do_not_reread_options_while_they_are_fresh(client, django_assert_num_queries):
    options.reload_from_db()
    client.get(reverse("login"))
    with django_assert_num_queries(0):
        client.get(reverse("login"))
