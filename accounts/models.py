from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from oneapi_site.lib.limit_fields import Budget, RateLimits
from oneapi_site.lib.timeutil import now_ts

DEFAULT_ROOT_PASSWORD = "123456"  # one-api's seeded root password, refused as a new password


class UserManager(BaseUserManager):
    def get_by_natural_key(self, username):
        return self.get(username=username)

    def create_user(self, username: str, password: str | None = None, **fields) -> User:
        user = self.model(username=username, **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, username: str, password: str | None = None, **fields) -> User:
        fields.setdefault("role", User.Role.ROOT)
        return self.create_user(username, password, **fields)


class User(AbstractBaseUser, RateLimits, Budget):
    """An account, with one-api's fields and codes so its data imports as is."""

    class Role(models.IntegerChoices):
        COMMON = 1, _("common")
        ADMIN = 10, _("admin")
        ROOT = 100, _("root")

    class Status(models.IntegerChoices):
        ENABLED = 1, _("enabled")
        DISABLED = 2, _("disabled")
        DELETED = 3, _("deleted")

    username = models.CharField(_("username"), max_length=64, unique=True)
    display_name = models.CharField(_("display name"), max_length=64, blank=True, default="")
    email = models.CharField(_("email"), max_length=128, blank=True, default="", db_index=True)
    role = models.SmallIntegerField(_("role"), choices=Role.choices, default=Role.COMMON)
    status = models.SmallIntegerField(_("status"), choices=Status.choices, default=Status.ENABLED)
    group = models.CharField(_("group"), max_length=32, default="default", db_index=True)
    quota = models.BigIntegerField(_("quota"), default=0)
    used_quota = models.BigIntegerField(_("used quota"), default=0)
    request_count = models.BigIntegerField(_("request count"), default=0)
    access_token = models.CharField(max_length=64, unique=True, null=True, blank=True)
    aff_code = models.CharField(max_length=16, unique=True, null=True, blank=True)
    inviter_id = models.BigIntegerField(default=0)
    created_time = models.BigIntegerField(default=now_ts)
    # Sign-in by GitHub OAuth and OIDC (accounts/oauth.py); "" when not linked. one-api's column names.
    github_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    oidc_id = models.CharField(max_length=255, blank=True, default="", db_index=True,
                               help_text="The OIDC subject (`sub`), at most 255 characters by the spec.")
    # A negotiated price: multiplies the group ratio in every charge (billing/pricing.py).
    price_ratio = models.FloatField(_("price ratio"), default=1,
                                    help_text=_("Multiplies the group's ratio for this user; 1 is the list price."))
    # When the low-balance mail went out (billing/reminders.py); 0 until the balance next falls below
    # QuotaRemindThreshold. In the database, so instances share it and a restart does not mail again. A
    # database default lets one-api, sharing the database, insert users without it.
    quota_reminded_at = models.BigIntegerField(
        _("low-balance reminder sent"), default=0, db_default=0, editable=False,
        help_text=_("Unix seconds; 0: not since the balance was last above QuotaRemindThreshold."))
    # Rate limits and budget: oneapi_site/lib/limit_fields.py.

    objects = UserManager()

    USERNAME_FIELD = "username"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        db_table = "users"
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints = [
            # A name is taken in every case, so nobody becomes "ROOT" beside root. MariaDB's collation already
            # compares so (it makes no index on an expression, and needs none); SQLite and PostgreSQL do not.
            models.UniqueConstraint(Lower("username"), name="users_username_ci_unique",
                                    violation_error_message=_("This username is taken.")),
        ]

    def __str__(self) -> str:
        return self.username

    # Django's admin and auth ask these; our role and status answer them.
    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ENABLED

    @property
    def is_staff(self) -> bool:
        return self.role >= self.Role.ADMIN

    @property
    def is_superuser(self) -> bool:
        return self.role >= self.Role.ROOT

    @property
    def is_root(self) -> bool:
        return self.role >= self.Role.ROOT

    @property
    def is_admin(self) -> bool:
        return self.role >= self.Role.ADMIN

    def has_perm(self, perm: str, obj=None) -> bool:
        if not self.is_active or not self.is_staff:
            return False
        # Options hold ratios and secrets: root only, as one-api's /api/option.
        if perm.startswith("billing.") and "option" in perm:
            return self.is_root
        return True

    def has_perms(self, perm_list, obj=None) -> bool:
        return all(self.has_perm(p, obj) for p in perm_list)

    def has_module_perms(self, app_label: str) -> bool:
        return self.is_active and self.is_staff


class Token(RateLimits, Budget):
    """An `sk-` key a user hands to clients; the key is stored without the prefix."""

    class Status(models.IntegerChoices):
        ENABLED = 1, _("enabled")
        DISABLED = 2, _("disabled")
        EXPIRED = 3, _("expired")
        EXHAUSTED = 4, _("exhausted")

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="tokens", verbose_name=_("user"))
    key = models.CharField(_("key"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=64, blank=True, default="")
    status = models.SmallIntegerField(_("status"), choices=Status.choices, default=Status.ENABLED)
    remain_quota = models.BigIntegerField(_("remain quota"), default=0)
    unlimited_quota = models.BooleanField(_("unlimited quota"), default=False)
    used_quota = models.BigIntegerField(_("used quota"), default=0)
    expired_time = models.BigIntegerField(_("expires"), default=-1, help_text=_("Unix seconds; -1 never expires."))
    subnet = models.TextField(_("subnet"), blank=True, default="",
                              help_text=_("Comma-separated IPs or CIDRs; empty allows all."))
    created_time = models.BigIntegerField(default=now_ts)
    accessed_time = models.BigIntegerField(default=now_ts)
    # Last: the field name shadows django.db.models inside this class body.
    models = models.TextField(_("models"), blank=True, default="",
                              help_text=_("Comma-separated model allow-list; empty allows all."))

    class Meta:
        db_table = "tokens"
        verbose_name = _("token")
        verbose_name_plural = _("tokens")
        indexes = [models.Index(fields=["user", "name"])]

    def __str__(self) -> str:
        return self.name or gettext("token %(id)s") % {"id": self.pk}

    @property
    def is_expired(self) -> bool:
        return self.expired_time != -1 and self.expired_time < now_ts()

    @property
    def masked_key(self) -> str:
        return f"sk-{self.key[:4]}...{self.key[-4:]}"

    @property
    def model_list(self) -> list[str]:
        return [m.strip() for m in self.models.split(",") if m.strip()]
