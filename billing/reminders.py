"""The low-balance reminder: one e-mail when a user's quota falls below QuotaRemindThreshold (one-api's).

one-api mails on every pre-consume that crosses the threshold or finds the balance used up. Here the ledger
asks after each batch it writes (billing/ledger.py), for the users in it, with one query; a user is mailed
once per crossing: `User.quota_reminded_at` is set by a guarded UPDATE (only while below the threshold and
not yet reminded), so of two instances writing the same user's charges one sends. A credit that brings the
balance back to the threshold or above (top-up, redemption, a balance edit) clears it
(`quota_reminder_rearm`), so the next crossing mails again. A threshold of 0 turns the reminder off.

The mail is handed to oneapi_site.lib.mail in the background (the ledger's writer does not wait on SMTP);
a mail the SMTP server refuses is logged there and not sent again until the next crossing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from accounts.models import User
from billing import money
from oneapi_site import options
from oneapi_site.lib.mail import SMTP_BACKEND, mail_send
from oneapi_site.lib.timeutil import now_ts

log = logging.getLogger(__name__)


def _threshold() -> int:
    return int(options.get("QuotaRemindThreshold") or 0)


def quota_reminders_send(*, user_ids: Iterable[int]) -> int:
    """Mail the users among `user_ids` whose balance is below the threshold and who were not reminded since
    it last was above; returns how many were mailed. Users without an e-mail address are skipped."""
    threshold = _threshold()
    user_ids = sorted(set(user_ids))
    if threshold <= 0 or not user_ids or not _mail_ready():
        return 0  # without SMTP nobody is marked reminded: the first crossing once it is set up still mails
    below = (User.objects.filter(pk__in=user_ids, quota__lt=threshold, quota_reminded_at=0).exclude(email="")
             .values_list("pk", "username", "email", "quota"))
    sent = 0
    for user_id, username, email, quota in below:
        claimed = User.objects.filter(pk=user_id, quota__lt=threshold, quota_reminded_at=0).update(
            quota_reminded_at=now_ts())
        if not claimed:  # another instance, or a flush running beside this one, got there first
            continue
        try:
            _mail(email=email, username=username, quota=quota, threshold=threshold)
        except Exception:  # one user's mail never keeps the next one's from going out
            log.exception("the low-balance mail to user %s failed", user_id)
            continue
        sent += 1
    return sent


def _mail_ready() -> bool:
    return settings.EMAIL_BACKEND != SMTP_BACKEND or bool(options.get("SMTPServer"))


def quota_reminder_rearm(*, user_id: int) -> None:
    """After a credit: a balance back at the threshold or above may be reminded again when it next falls."""
    User.objects.filter(pk=user_id, quota__gte=_threshold()).exclude(quota_reminded_at=0).update(
        quota_reminded_at=0)


def _mail(*, email: str, username: str, quota: int, threshold: int) -> None:
    # No request to take a language from: the site's language, as the console's default.
    with translation.override(settings.LANGUAGE_CODE):
        site = options.get("SystemName") or "One API"
        values = {"site": site, "username": username, "amount": money.quota_text(quota),
                  "threshold": money.quota_text(threshold),
                  "link": f"{str(options.get('ServerAddress') or '').rstrip('/')}{reverse('topup')}"}
        if quota <= 0:
            subject = _("%(site)s: your quota is used up") % values
            body = _("Hello %(username)s,\n\nyour quota on %(site)s is used up (balance: %(amount)s); requests "
                     "are refused until you top up:\n%(link)s\n") % values
        else:
            subject = _("%(site)s: your quota is running low") % values
            body = _("Hello %(username)s,\n\nyour quota on %(site)s is %(amount)s, below %(threshold)s. Top up "
                     "in time to keep using it:\n%(link)s\n") % values
    mail_send(to=[email], subject=subject, body=body, wait=False)
