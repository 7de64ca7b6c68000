"""Every quota move and every log write.

Each move is one guarded statement or one transaction, so concurrent requests,
retries and redemptions can neither lose an update nor apply one twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import F
from django.utils.translation import gettext

from accounts import permissions
from accounts.models import Token, User
from billing import money, reminders, rollup
from billing.models import Log, Option, RedemptionCode, WrittenCharge
from billing.shared_quota import shared
from oneapi_site import options
from oneapi_site.lib import changes, numbers
from oneapi_site.lib.errors import ServiceError
from oneapi_site.lib.keys import uuid_hex
from oneapi_site.lib.lengths import text_bounded
from oneapi_site.lib.timeutil import now_ts
from providers.models import Channel

BALANCE_MAX = numbers.BIGINT[1]  # what users.quota holds; a credit past it is refused, never wrapped or floated
REDEMPTION_NAME_MAX_LENGTH = 20  # one-api's 1 to 20 characters
REDEMPTION_BATCH_MAX = 100
REMARK_MAX_LENGTH = 255


def log_record(*, user_id: int, type: int, content: str, username: str = "", quota: int = 0, **extra) -> Log:
    if not username and user_id:
        username = User.objects.filter(pk=user_id).values_list("username", flat=True).first() or ""
    return Log.objects.create(user_id=user_id, type=type, content=content, username=username, quota=quota, **extra)


def _quota(value: int, *, field: str, minimum: int = numbers.BIGINT[0], maximum: int = BALANCE_MAX) -> int:
    """A quota argument, checked again here: the management command and future callers have no form."""
    return numbers.parse_int(value, field=field, minimum=minimum, maximum=maximum)


def _user_credit(*, user_id: int, quota: int) -> bool:
    """Add `quota` to the balance in one guarded statement, unless the sum would pass BALANCE_MAX
    (SQLite would store a float, MySQL and PostgreSQL would fail). False when nothing was added."""
    ceiling = BALANCE_MAX - max(quota, 0)
    credited = User.objects.filter(pk=user_id, quota__lte=ceiling).update(quota=F("quota") + quota) == 1
    if credited:
        reminders.quota_reminder_rearm(user_id=user_id)
    return credited


def _balance_full_error(field: str) -> ServiceError:
    return ServiceError(gettext("The balance cannot hold this much quota: it would pass %(max)s.")
                           % {"max": BALANCE_MAX}, field=field)


# --- Redemption codes -------------------------------------------------------

def _redemption_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > REDEMPTION_NAME_MAX_LENGTH:
        raise ServiceError("name must be 1 to 20 characters", field="name")
    return name


def redemption_create_batch(*, creator: User | None, name: str, quota: int, count: int = 1) -> list[str]:
    name = _redemption_name(name)
    count = numbers.parse_int(count, field="count", minimum=1, maximum=REDEMPTION_BATCH_MAX)
    quota = _quota(quota, field="quota", minimum=1)
    codes = [RedemptionCode(user=creator, key=uuid_hex(), name=name, quota=quota) for _ in range(count)]
    with transaction.atomic():
        RedemptionCode.objects.bulk_create(codes)
    return [c.key for c in codes]


@transaction.atomic
def redemption_redeem(*, user_id: int, key: str) -> int:
    """Credit the code's quota to the user once; a second redeemer, even concurrent, is refused."""
    key = (key or "").strip()
    if not key:
        raise ServiceError(gettext("Enter a redemption code."), field="key")
    code = RedemptionCode.objects.filter(key=key).values("id", "quota", "status").first()
    if code is None:
        raise ServiceError(gettext("This redemption code does not exist."), field="key")
    # The status guard makes the claim one statement: two redeemers cannot both see status 1.
    claimed = RedemptionCode.objects.filter(pk=code["id"], status=RedemptionCode.Status.ENABLED).update(
        status=RedemptionCode.Status.USED, redeemed_time=now_ts(), redeemed_by_id=user_id)
    if claimed != 1:
        # Re-read: the code may have been claimed by a concurrent redeemer since the first read.
        status = RedemptionCode.objects.filter(pk=code["id"]).values_list("status", flat=True).first()
        if status == RedemptionCode.Status.DISABLED:
            raise ServiceError(gettext("This redemption code has been disabled."), field="key")
        raise ServiceError(gettext("This redemption code has already been used."), field="key")
    if not _user_credit(user_id=user_id, quota=code["quota"]):
        raise _balance_full_error("key")  # the claim above rolls back with this transaction
    shared.adjust_on_commit(kind="u", subject_id=user_id, delta=code["quota"])
    log_record(user_id=user_id, type=Log.Type.TOPUP, quota=code["quota"],
               content=f"Redeemed a code for {money.log_amount(code['quota'])}")
    changes.publish("users")
    return code["quota"]


def _check_balance_actor(*, by: User | None, user_id: int, field: str) -> None:
    """An admin moves only the balance of users below them; root's, their own and other admins' are not
    theirs to set (accounts.permissions). `by` None is the system itself."""
    if by is None:
        return
    target = User.objects.filter(pk=user_id).first()
    if target is None:
        raise ServiceError("no such user", field=field)
    if not permissions.user_can_manage(by, target):
        raise ServiceError(gettext("You cannot change the balance of a user whose role is equal to or above "
                                      "yours."), field=field)


@transaction.atomic
def user_topup(*, user_id: int, quota: int, remark: str = "", by: User | None = None) -> None:
    """An admin credits a user (one-api's POST /api/topup).

    Only a positive amount, as one-api's IncreaseUserQuota refuses a negative one: a deduction is a
    balance edit (PUT /api/user/, the console), which user_quota_set writes as a manage log.
    """
    _check_balance_actor(by=by, user_id=user_id, field="user_id")  # who asks first: a refusal says why
    quota = _quota(quota, field="quota", minimum=1)
    remark = text_bounded(remark, field="remark", maximum=REMARK_MAX_LENGTH)
    if not _user_credit(user_id=user_id, quota=quota):
        if not User.objects.filter(pk=user_id).exists():
            raise ServiceError("no such user", field="user_id")
        raise _balance_full_error("quota")
    shared.adjust_on_commit(kind="u", subject_id=user_id, delta=quota)
    note = f" ({remark})" if remark else ""
    log_record(user_id=user_id, type=Log.Type.TOPUP, quota=quota,
               content=f"Top-up by an administrator: {money.log_amount(quota)}{note}")
    changes.publish("users")


@transaction.atomic
def user_quota_set(*, user_id: int, quota: int, by: User | None = None) -> None:
    """An admin sets a user's balance; the change is written as a manage log (one-api)."""
    _check_balance_actor(by=by, user_id=user_id, field="id")
    quota = _quota(quota, field="quota")
    old = User.objects.select_for_update().filter(pk=user_id).values_list("quota", flat=True).first()
    if old is None:
        raise ServiceError("no such user", field="id")
    if old == quota:
        return
    if not numbers.BIGINT[0] <= quota - old <= numbers.BIGINT[1]:
        # The manage log records the difference in a BIGINT too: from +8e18 to -8e18 it would not fit.
        raise ServiceError(gettext("This change is too large to record in one step: change the balance "
                                      "in two smaller steps."), field="quota")
    User.objects.filter(pk=user_id).update(quota=quota)
    # `old` is the row's value under its lock, so the difference is exactly what this write moved.
    shared.adjust_on_commit(kind="u", subject_id=user_id, delta=quota - old)
    reminders.quota_reminder_rearm(user_id=user_id)
    who = f" by {by.username}" if by else ""
    log_record(user_id=user_id, type=Log.Type.MANAGE, quota=quota - old,
               content=f"Quota changed{who} from {money.log_amount(old)} to {money.log_amount(quota)}")
    changes.publish("users")


# --- Usage settlement --------------------------------------------------------

@dataclass(frozen=True)
class Charge:
    """One finished request, ready to be written: the quota moves and its consume log."""

    user_id: int
    username: str
    token_id: int
    token_name: str
    unlimited: bool
    channel_id: int
    model_name: str
    quota: int
    prompt_tokens: int
    completion_tokens: int
    request_id: str
    elapsed_ms: int
    is_stream: bool
    content: str
    created_at: int
    system_prompt_reset: bool = False
    client_protocol: str = "openai"
    # Parts of prompt_tokens and completion_tokens, for the log (billing.models.Log).
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    # The budget period the charge counts in (billing/budgets.py), for a user or token with a budget period:
    # its kind ("day", "week", "month"; "" for none) and start.
    user_period_start: int = 0
    token_period_start: int = 0
    user_budget_period: str = ""
    token_budget_period: str = ""
    # Set when the charge is also kept in Redis until written (billing/journal.py): written once, by this id.
    charge_id: str = ""
    # The user's group when the request was made, for the daily roll-up (billing/rollup.py).
    group: str = ""


def _budget_updates(spending: dict[tuple[int, int, str], int]) -> list[tuple]:
    """Parameters of _budget_sql per (row, period start, period kind), oldest period first."""
    return [(ps, amount, ps, amount, ps, ps, row, kind) for (row, ps, kind), amount in sorted(spending.items())]


def _budget_sql(table: str) -> str:
    """Add a charge to the spending of its period, or restart the spending from it when a newer period began;
    a charge for an older period than the row's does not count (its period is over), nor one of another kind
    of period than the row's (made before its period was changed, which restarts the spending: token_update,
    user_update). Relative, so exact under concurrent batches. budget_spent is assigned first: MySQL evaluates
    SET left to right, so its CASE still reads the old budget_period_start."""
    q = connection.ops.quote_name
    spent, start = q("budget_spent"), q("budget_period_start")
    return (f"UPDATE {q(table)} SET {spent} = CASE WHEN {start} = %s THEN {spent} + %s "
            f"WHEN {start} < %s THEN %s ELSE {spent} END, "
            f"{start} = CASE WHEN {start} < %s THEN %s ELSE {start} END "
            f"WHERE {q('id')} = %s AND {q('budget_period')} = %s")


def charges_apply(charges: Iterable[Charge]) -> int:
    """Write a batch of charges in one transaction: summed relative UPDATEs plus the logs.

    Summing per id keeps the statement count small under load; relative updates keep
    concurrent instances from overwriting each other; one transaction keeps logs and
    quotas in step.
    """
    charges = list(charges)
    if not charges:
        return 0
    if not any(c.charge_id for c in charges):
        _charges_write(charges)
        return len(charges)
    with transaction.atomic():
        charges = _not_yet_written(charges)
        if charges:
            _charges_write(charges)
    return len(charges)


def _not_yet_written(charges: list[Charge]) -> list[Charge]:
    """The charges whose id (if they have one) was never written, the ids recorded in the same transaction, so
    a charge replayed from Redis after a crash (billing/journal.py) is taken once whoever writes it first."""
    ids = [c.charge_id for c in charges if c.charge_id]
    if not ids:
        return charges
    done = set(WrittenCharge.objects.filter(charge_id__in=ids).values_list("charge_id", flat=True))
    now = now_ts()
    new = [(i, now) for i in ids if i not in done]
    if new:  # one executemany, as the logs: a model instance per charge cost the writer thread's CPU
        quote = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {quote(WrittenCharge._meta.db_table)} ({quote('charge_id')}, "
                               f"{quote('created_at')}) VALUES (%s, %s)", new)
    return [c for c in charges if c.charge_id not in done]


def _charges_write(charges: list[Charge]) -> None:
    per_user: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    per_token: dict[int, int] = defaultdict(int)
    per_channel: dict[int, int] = defaultdict(int)
    user_budget: dict[tuple[int, int, str], int] = defaultdict(int)
    token_budget: dict[tuple[int, int, str], int] = defaultdict(int)
    for c in charges:
        if c.user_period_start and c.quota:
            user_budget[(c.user_id, c.user_period_start, c.user_budget_period)] += c.quota
        if c.token_period_start and c.quota and c.token_id:
            token_budget[(c.token_id, c.token_period_start, c.token_budget_period)] += c.quota
        per_user[c.user_id][0] += c.quota
        per_user[c.user_id][1] += 1
        if c.token_id and not c.unlimited:
            per_token[c.token_id] += c.quota
        if c.channel_id:
            per_channel[c.channel_id] += c.quota
    touched = {c.token_id for c in charges if c.token_id}
    now = now_ts()
    q = connection.ops.quote_name
    # Relative single-statement UPDATEs (as F() would write them), sent with executemany:
    # the ORM's per-statement overhead held the GIL long enough to show in the relay's p99.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {q(User._meta.db_table)} SET {q('quota')} = {q('quota')} - %s, "
            f"{q('used_quota')} = {q('used_quota')} + %s, {q('request_count')} = {q('request_count')} + %s "
            f"WHERE {q('id')} = %s",
            [(per_user[u][0], per_user[u][0], per_user[u][1], u) for u in sorted(per_user)])
        if user_budget:
            cursor.executemany(_budget_sql(User._meta.db_table), _budget_updates(user_budget))
        if touched:
            cursor.executemany(
                f"UPDATE {q(Token._meta.db_table)} SET {q('remain_quota')} = {q('remain_quota')} - %s, "
                f"{q('used_quota')} = {q('used_quota')} + %s, {q('accessed_time')} = %s WHERE {q('id')} = %s",
                [(per_token.get(t, 0), per_token.get(t, 0), now, t) for t in sorted(touched)])
        if token_budget:
            cursor.executemany(_budget_sql(Token._meta.db_table), _budget_updates(token_budget))
        if per_channel:
            cursor.executemany(
                f"UPDATE {q(Channel._meta.db_table)} SET {q('used_quota')} = {q('used_quota')} + %s "
                f"WHERE {q('id')} = %s",
                [(per_channel[ch], ch) for ch in sorted(per_channel)])
        # As one-api: a token that ran dry shows as exhausted until its owner adds quota.
        exhausted = 0
        if per_token:
            exhausted = Token.objects.filter(pk__in=list(per_token), unlimited_quota=False, remain_quota__lte=0,
                                             status=Token.Status.ENABLED).update(status=Token.Status.EXHAUSTED)
        if options.get("LogConsumeEnabled"):
            _consume_logs_insert(charges, cursor)
        # Written whether or not consume logs are: the operator dashboard reads only the roll-up.
        rollup.rollup_add(rollup.charge_rows(charges), cursor)
        if exhausted:
            changes.publish("tokens")


_LOG_COLUMNS = ("user_id", "created_at", "type", "content", "username", "token_id", "token_name", "model_name",
                "quota", "prompt_tokens", "completion_tokens", "channel_id", "request_id", "elapsed_time",
                "is_stream", "system_prompt_reset", "client_protocol", "cached_tokens", "cache_write_tokens",
                "cache_write_1h_tokens", "reasoning_tokens")


def _consume_logs_insert(charges: list[Charge], cursor) -> None:
    """One executemany: building a model instance per log cost more CPU than the relay's request."""
    quote = connection.ops.quote_name
    sql = (f"INSERT INTO {quote(Log._meta.db_table)} ({', '.join(quote(c) for c in _LOG_COLUMNS)}) "
           f"VALUES ({', '.join(['%s'] * len(_LOG_COLUMNS))})")
    rows = [(c.user_id, c.created_at, Log.Type.CONSUME, c.content, c.username, c.token_id, c.token_name,
             c.model_name, c.quota, c.prompt_tokens, c.completion_tokens, c.channel_id, c.request_id,
             c.elapsed_ms, c.is_stream, c.system_prompt_reset, c.client_protocol, c.cached_tokens,
             c.cache_write_tokens, c.cache_write_1h_tokens, c.reasoning_tokens) for c in charges]
    cursor.executemany(sql, rows)


# --- Options -----------------------------------------------------------------

TURNSTILE_KEYS = ("TurnstileSiteKey", "TurnstileSecretKey")


def _login_switch_check(key: str) -> None:
    """Turning on GitHub, OIDC or Turnstile is refused until its credentials are set (one-api, for GitHub and
    Turnstile)."""

    def missing(*keys: str) -> bool:
        return any(not str(options.get(k) or "").strip() for k in keys)

    if key == "TurnstileCheckEnabled" and missing(*TURNSTILE_KEYS):
        raise ServiceError(gettext("set TurnstileSiteKey and TurnstileSecretKey before enabling Turnstile"),
                              field=key)

    if key == "GitHubOAuthEnabled" and missing("GitHubClientId", "GitHubClientSecret"):
        raise ServiceError(gettext("set GitHubClientId and GitHubClientSecret before enabling GitHub login"),
                              field=key)
    if key == "OidcEnabled":
        if missing("OidcClientId", "OidcClientSecret"):
            raise ServiceError(gettext("set OidcClientId and OidcClientSecret before enabling OIDC login"),
                                  field=key)
        if missing("OidcWellKnown") and missing("OidcAuthorizationEndpoint", "OidcTokenEndpoint",
                                                "OidcUserinfoEndpoint"):
            raise ServiceError(gettext(
                "set OidcWellKnown, or all of OidcAuthorizationEndpoint, OidcTokenEndpoint and "
                "OidcUserinfoEndpoint, before enabling OIDC login"), field=key)


def option_set(*, key: str, value) -> str:
    """Validate and store one option; the relay sees it by its next request."""
    key = (key or "").strip()
    if not key:
        raise ServiceError("key is required", field="key")
    text = options.encode(key, value)
    options.parse(key, text)  # refuses a bad value with a ServiceError on the key
    if key in ("GitHubOAuthEnabled", "OidcEnabled", "TurnstileCheckEnabled") and options.parse(key, text):
        _login_switch_check(key)
    if key in TURNSTILE_KEYS and not text.strip() and options.get("TurnstileCheckEnabled"):
        # Without them every sign-in would be refused, root's included.
        raise ServiceError(gettext("turn TurnstileCheckEnabled off before clearing %(key)s") % {"key": key},
                              field=key)
    Option.objects.update_or_create(key=key, defaults={"value": text})
    options.reload_from_db()
    changes.publish("options")
    return text


# --- Management API ------------------------------------------------------------

@transaction.atomic
def user_signup_gifts(*, user_id: int, inviter_id: int = 0) -> None:
    """one-api's registration rewards, each with a system log: new user, invitee, inviter."""
    gifts = [(user_id, options.get("QuotaForNewUser") or 0, "Welcome gift for a new user")]
    if inviter_id:
        gifts.append((user_id, options.get("QuotaForInvitee") or 0, "Gift for signing up with an invitation code"))
        gifts.append((inviter_id, options.get("QuotaForInviter") or 0, "Reward for inviting a user"))
    for target, quota, reason in gifts:
        if quota <= 0:
            continue
        if not _user_credit(user_id=target, quota=quota):
            continue  # a balance that cannot hold the gift (or a user deleted meanwhile) goes without it
        shared.adjust_on_commit(kind="u", subject_id=target, delta=quota)
        log_record(user_id=target, type=Log.Type.SYSTEM, quota=quota, content=f"{reason}: {money.log_amount(quota)}")
    changes.publish("users")


def redemption_update(*, code: RedemptionCode, status_only: bool = False, name: str | None = None,
                      quota: int | None = None, status: int | None = None) -> RedemptionCode:
    """Rename, reprice, enable or disable a code; a used code keeps its status and quota."""
    used = code.status == RedemptionCode.Status.USED
    update_fields = []
    if status is not None and status != code.status:
        if used:
            raise ServiceError("this code has been redeemed; its status cannot change", field="status")
        if status not in (RedemptionCode.Status.ENABLED, RedemptionCode.Status.DISABLED):
            raise ServiceError("status must be 1 (enabled) or 2 (disabled)", field="status")
        code.status = status
        update_fields.append("status")
    if not status_only:
        if name is not None:
            code.name = _redemption_name(name)
            update_fields.append("name")
        if quota is not None and quota != code.quota:
            if used:
                raise ServiceError("this code has been redeemed; its quota cannot change", field="quota")
            code.quota = _quota(quota, field="quota", minimum=1)
            update_fields.append("quota")
    if update_fields:
        # The status guard keeps an edit from reviving a code redeemed since it was read.
        rows = RedemptionCode.objects.filter(pk=code.pk)
        if not used:
            rows = rows.exclude(status=RedemptionCode.Status.USED)
        if not rows.update(**{f: getattr(code, f) for f in update_fields}):
            raise ServiceError("this code has just been redeemed; reload it", field="status")
    return code


def redemption_delete(*, code_id: int) -> int:
    deleted, _ = RedemptionCode.objects.filter(pk=code_id).delete()
    return deleted


def logs_prune(*, before: int, batch: int = 5000) -> int:
    """Delete the logs made before `before` (unix seconds), `batch` at a time; returns how many went.

    Each DELETE takes an id range of at most `batch` old rows and commits on its own, so no statement holds
    locks on the logs long enough to stall the ledger's inserts, however many rows go."""
    deleted = 0
    while True:
        ids = list(Log.objects.filter(created_at__lt=before).order_by("id").values_list("id", flat=True)[:batch])
        if not ids:
            return deleted
        gone, _ = Log.objects.filter(id__gte=ids[0], id__lte=ids[-1], created_at__lt=before).delete()
        deleted += gone


def logs_delete_before(*, timestamp: int) -> int:
    """Drop logs older than `timestamp` (unix seconds); one DELETE, since logs have no dependants."""
    if timestamp <= 0:
        raise ServiceError("target_timestamp must be a unix time", field="target_timestamp")
    deleted, _ = Log.objects.filter(created_at__lt=timestamp).delete()
    return deleted
