"""Mail over SMTP: a password reset answers without waiting for the SMTP server, so its answer time
does not tell whether the address has an account."""

import threading
from unittest import mock

import pytest

from accounts.verification import password_reset_send
from billing.services import option_set
from oneapi_site.lib import mail

pytestmark = pytest.mark.django_db


class HeldConnection:
    """An SMTP connection whose server answers only when the test says so."""

    def __init__(self):
        self.release = threading.Event()
        self.sent = []

    def send_messages(self, messages):
        self.release.wait(10)
        self.sent.extend((threading.current_thread().name, m) for m in messages)
        return len(messages)


def test_a_reset_link_is_mailed_in_the_background(settings, alice):
    settings.EMAIL_BACKEND = mail.SMTP_BACKEND
    option_set(key="SMTPServer", value="smtp.example.test")
    option_set(key="SMTPFrom", value="noreply@example.test")
    alice.email = "alice@example.com"
    alice.save()
    connection = HeldConnection()
    with mock.patch.object(mail, "get_connection", return_value=connection):
        password_reset_send(email="alice@example.com")  # returns while the server still holds the message
        assert connection.sent == []
        connection.release.set()
        mail._outbox.submit(lambda: None).result(10)  # the sender works in order: this waits for the mail
    [(thread, message)] = connection.sent
    assert thread.startswith("oneapi-mail")
    assert message.to == ["alice@example.com"] and "/user/reset/?email=alice%40example.com&token=" in message.body


def test_other_mail_still_reports_whether_it_was_sent(settings):
    settings.EMAIL_BACKEND = mail.SMTP_BACKEND
    option_set(key="SMTPServer", value="smtp.example.test")
    refusing = mock.Mock(send_messages=mock.Mock(side_effect=OSError("connection refused")))
    with mock.patch.object(mail, "get_connection", return_value=refusing):
        assert mail.mail_send(to=["a@example.com"], subject="s", body="b") is False
