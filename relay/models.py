from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from oneapi_site.lib.timeutil import now_ts


class StoredResponse(models.Model):
    """Which channel holds a Response its vendor stored, and whose it is (relay/stored.py): the record that
    sends later requests about it there, and only for its owner. Kept here only when Redis is not configured."""

    # OpenAI's ids are "resp_" and some 50 characters; other vendors' are no longer.
    response_id = models.CharField(_("response id"), max_length=191, primary_key=True)
    channel_id = models.BigIntegerField(_("channel id"))
    user_id = models.BigIntegerField(_("user id"))
    created_at = models.BigIntegerField(_("created"), default=now_ts, db_index=True)

    class Meta:
        db_table = "stored_responses"
        verbose_name = _("stored response")
        verbose_name_plural = _("stored responses")

    def __str__(self) -> str:
        return self.response_id
