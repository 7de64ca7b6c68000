"""JSON shapes of users and tokens as one-api's clients read them, and the bodies they send."""

from __future__ import annotations

from rest_framework import serializers

from accounts.models import Token, User
from billing.budget_status import budget_status
from oneapi_site.lib import limit_values
from oneapi_site.lib.limit_fields import BudgetPeriod
from oneapi_site.lib.number_fields import WholeNumberInput, column


def limits_json(holder) -> dict:
    """The rate limits and budget (issue 11) beside one-api's fields; budget_spent is this period's and
    budget_reset_time when it starts again (0 without a budget)."""
    status = budget_status(holder)
    return {
        **{name: getattr(holder, name) for name in limit_values.LIMIT_FIELDS},
        "budget_quota": holder.budget_quota,
        "budget_period": holder.budget_period,
        "budget_spent": status.spent if status else 0,
        "budget_reset_time": status.resets_at if status else 0,
    }


def user_json(user: User) -> dict:
    """A user without password or access token; one-api's OAuth ids are kept empty for its web pages."""
    return {
        "id": user.pk,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "status": user.status,
        "email": user.email,
        "github_id": user.github_id,
        "wechat_id": "",
        "lark_id": "",
        "oidc_id": user.oidc_id,
        "quota": user.quota,
        "used_quota": user.used_quota,
        "request_count": user.request_count,
        "group": user.group,
        "aff_code": user.aff_code or "",
        "inviter_id": user.inviter_id,
        "created_time": user.created_time,
        **limits_json(user),
        "price_ratio": user.price_ratio,
    }


def login_json(user: User) -> dict:
    return {"id": user.pk, "username": user.username, "display_name": user.display_name,
            "role": user.role, "status": user.status, "group": user.group}


def token_json(token: Token) -> dict:
    """The owner sees the key, without `sk-`, as one-api returns it."""
    return {
        "id": token.pk,
        "user_id": token.user_id,
        "key": token.key,
        "name": token.name,
        "status": token.status,
        "created_time": token.created_time,
        "accessed_time": token.accessed_time,
        "expired_time": token.expired_time,
        "remain_quota": token.remain_quota,
        "unlimited_quota": token.unlimited_quota,
        "used_quota": token.used_quota,
        "models": token.models,
        "subnet": token.subnet,
        **limits_json(token),
    }


class PriceRatioInput(serializers.Field):
    """A decimal ratio, read by the bounded parser; its error goes out naming the key, as WholeNumberInput's."""

    def to_internal_value(self, data) -> float:
        return limit_values.price_ratio_clean(data)

    def to_representation(self, value):
        return value


class LimitsInput(serializers.Serializer):
    """The limit and budget keys of a token or user body; each may be left out (kept, or the default)."""

    rpm_limit = WholeNumberInput(minimum=0, maximum=limit_values.LIMIT_MAX, required=False)
    tpm_limit = WholeNumberInput(minimum=0, maximum=limit_values.LIMIT_MAX, required=False)
    concurrency_limit = WholeNumberInput(minimum=0, maximum=limit_values.LIMIT_MAX, required=False)
    rpd_limit = WholeNumberInput(minimum=0, maximum=limit_values.LIMIT_MAX, required=False)
    budget_quota = WholeNumberInput(minimum=0, maximum=limit_values.BUDGET_MAX, required=False)
    budget_period = serializers.ChoiceField(choices=BudgetPeriod.values, required=False, allow_blank=True)


class CommaListField(serializers.Field):
    """one-api sends lists as "a,b"; accept a JSON array too."""

    def to_internal_value(self, data):
        if isinstance(data, (list, tuple)):
            if not all(isinstance(item, str) for item in data):
                self.fail("invalid")
            return ",".join(data)
        if not isinstance(data, str):
            self.fail("invalid")
        return data

    default_error_messages = {"invalid": "must be a comma-separated string or a list of strings"}


class LoginInput(serializers.Serializer):
    username = serializers.CharField(allow_blank=True, trim_whitespace=True)
    password = serializers.CharField(allow_blank=True, trim_whitespace=False)


class TextOrNull(serializers.CharField):
    """Optional text that one-api's pages send as null when it is unset (the register page's `aff_code` without
    an invite), read as "" as one-api's Go decoder reads a null string."""

    def __init__(self, **kwargs):
        super().__init__(required=False, allow_blank=True, allow_null=True, default="", **kwargs)

    def validate_empty_values(self, data):
        if data is None:
            return True, ""
        return super().validate_empty_values(data)


class RegisterInput(serializers.Serializer):
    username = serializers.CharField(allow_blank=True)
    password = serializers.CharField(allow_blank=True, trim_whitespace=False)
    display_name = TextOrNull()
    email = TextOrNull()
    verification_code = TextOrNull()
    aff_code = TextOrNull()


class SelfUpdateInput(serializers.Serializer):
    username = serializers.CharField(required=False, allow_blank=True)
    display_name = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    password = serializers.CharField(required=False, allow_blank=True, allow_null=True, trim_whitespace=False)


class UserCreateInput(serializers.Serializer):
    username = serializers.CharField(allow_blank=True)
    password = serializers.CharField(allow_blank=True, trim_whitespace=False)
    display_name = serializers.CharField(required=False, allow_blank=True, default="")
    role = WholeNumberInput(column=column(User, "role"), required=False, default=User.Role.COMMON)


class UserUpdateInput(LimitsInput):
    id = WholeNumberInput(column=column(User, "id"))
    username = serializers.CharField(required=False, allow_blank=True)
    display_name = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    password = serializers.CharField(required=False, allow_blank=True, allow_null=True, trim_whitespace=False)
    email = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    group = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    role = WholeNumberInput(column=column(User, "role"), required=False, allow_null=True)
    status = WholeNumberInput(column=column(User, "status"), required=False, allow_null=True)
    quota = WholeNumberInput(column=column(User, "quota"), required=False, allow_null=True)
    price_ratio = PriceRatioInput(required=False)


class UserManageInput(serializers.Serializer):
    id = WholeNumberInput(column=column(User, "id"), required=False)
    username = serializers.CharField(required=False, allow_blank=True)
    action = serializers.CharField()


class RedeemInput(serializers.Serializer):
    key = serializers.CharField(allow_blank=True)


class TokenInput(LimitsInput):
    id = WholeNumberInput(column=column(Token, "id"), required=False)
    name = serializers.CharField(required=False, allow_blank=True)
    expired_time = WholeNumberInput(column=column(Token, "expired_time"), required=False)
    remain_quota = WholeNumberInput(column=column(Token, "remain_quota"), required=False)
    unlimited_quota = serializers.BooleanField(required=False)
    models = CommaListField(required=False, allow_null=True)
    subnet = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    status = serializers.ChoiceField(choices=Token.Status.values, required=False)
