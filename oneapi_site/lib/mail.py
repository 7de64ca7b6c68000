"""Mail to people, with the SMTP settings operators edit at run time (one-api's SMTP* options)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from oneapi_site import options

log = logging.getLogger(__name__)

SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"

# One sender in the background, for mail whose answer must not wait on the SMTP server.
_outbox = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oneapi-mail")


def mail_send(*, to: list[str], subject: str, body: str, wait: bool = True) -> bool:
    """Send one message; False (and a log line) when SMTP is not set up or the server refuses.

    wait=False hands an SMTP delivery to a background thread and answers True at once: a page that
    must answer alike whether or not it sent anything (password reset) cannot let the SMTP round
    trip show in its answer time. Other backends (tests, console) deliver in place either way.
    """
    to = [address for address in to if address]
    if not to:
        return False
    if not wait and settings.EMAIL_BACKEND == SMTP_BACKEND:
        _outbox.submit(mail_send, to=to, subject=subject, body=body)
        return True
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
