"""Mail to people, with the SMTP settings operators edit at run time (one-api's SMTP* options)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from billing import options

log = logging.getLogger(__name__)

SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


def mail_send(*, to: list[str], subject: str, body: str) -> bool:
    """Send one message; False (and a log line) when SMTP is not set up or the server refuses."""
    to = [address for address in to if address]
    if not to:
        return False
    if settings.EMAIL_BACKEND == SMTP_BACKEND:
        server = options.get("SMTPServer")
        if not server:
            return False
        port = int(options.get("SMTPPort") or 587)
        connection = get_connection(
            SMTP_BACKEND, host=server, port=port, username=options.get("SMTPAccount") or None,
            password=options.get("SMTPToken") or None, use_ssl=port == 465, use_tls=port == 587, timeout=10)
        sender = options.get("SMTPFrom") or options.get("SMTPAccount")
    else:  # tests and development swap the backend (locmem, console)
        connection = get_connection()
        sender = options.get("SMTPFrom") or "oneapi@localhost"
    try:
        EmailMessage(subject=subject, body=body, from_email=sender, to=to, connection=connection).send()
    except Exception as exc:  # a mail failure must never fail the action that wanted to report it
        log.warning("could not send mail %r: %s", subject, type(exc).__name__)
        return False
    return True
