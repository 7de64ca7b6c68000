from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models

from oneapi_site.lib.timeutil import now_ts


class UserManager(BaseUserManager):
    def get_by_natural_key(self, username):
        return self.get(username=username)

    def create_user(self, username: str, password: str | None = None, **fields) -> "User":
        user = self.model(username=username, **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, username: str, password: str | None = None, **fields) -> "User":
        fields.setdefault("role", User.Role.ROOT)
        return self.create_user(username, password, **fields)


class User(AbstractBaseUser):
    """An account, with one-api's fields and codes so its data imports as is."""

    class Role(models.IntegerChoices):
        COMMON = 1, "common"
        ADMIN = 10, "admin"
        ROOT = 100, "root"

    class Status(models.IntegerChoices):
        ENABLED = 1, "enabled"
        DISABLED = 2, "disabled"
        DELETED = 3, "deleted"

    username = models.CharField(max_length=64, unique=True)
    display_name = models.CharField(max_length=64, blank=True, default="")
    email = models.CharField(max_length=128, blank=True, default="", db_index=True)
    role = models.SmallIntegerField(choices=Role.choices, default=Role.COMMON)
    status = models.SmallIntegerField(choices=Status.choices, default=Status.ENABLED)
    group = models.CharField(max_length=32, default="default", db_index=True)
    quota = models.BigIntegerField(default=0)
    used_quota = models.BigIntegerField(default=0)
    request_count = models.BigIntegerField(default=0)
    access_token = models.CharField(max_length=64, unique=True, null=True, blank=True)
    aff_code = models.CharField(max_length=16, unique=True, null=True, blank=True)
    inviter_id = models.BigIntegerField(default=0)
    created_time = models.BigIntegerField(default=now_ts)

    objects = UserManager()

    USERNAME_FIELD = "username"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        db_table = "users"

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


class Token(models.Model):
    """An `sk-` key a user hands to clients; the key is stored without the prefix."""

    class Status(models.IntegerChoices):
        ENABLED = 1, "enabled"
        DISABLED = 2, "disabled"
        EXPIRED = 3, "expired"
        EXHAUSTED = 4, "exhausted"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="tokens")
    key = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=64, blank=True, default="")
    status = models.SmallIntegerField(choices=Status.choices, default=Status.ENABLED)
    remain_quota = models.BigIntegerField(default=0)
    unlimited_quota = models.BooleanField(default=False)
    used_quota = models.BigIntegerField(default=0)
    expired_time = models.BigIntegerField(default=-1, help_text="Unix seconds; -1 never expires.")
    subnet = models.TextField(blank=True, default="", help_text="Comma-separated CIDR allow-list; empty allows all.")
    created_time = models.BigIntegerField(default=now_ts)
    accessed_time = models.BigIntegerField(default=now_ts)
    # Last: the field name shadows django.db.models inside this class body.
    models = models.TextField(blank=True, default="", help_text="Comma-separated model allow-list; empty allows all.")

    class Meta:
        db_table = "tokens"
        indexes = [models.Index(fields=["user", "name"])]

    def __str__(self) -> str:
        return self.name or f"token {self.pk}"

    @property
    def is_expired(self) -> bool:
        return self.expired_time != -1 and self.expired_time < now_ts()

    @property
    def masked_key(self) -> str:
        return f"sk-{self.key[:4]}...{self.key[-4:]}"

    @property
    def model_list(self) -> list[str]:
        return [m.strip() for m in self.models.split(",") if m.strip()]
