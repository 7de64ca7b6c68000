"""Import a one-api database into this one: plan every row against what is here, then write (or, dry, don't).

Ids are the source's, so foreign keys (token.user_id, log.channel_id) stay right, and a second run finds its
rows: a row that differs is updated to the source's values, one that does not is left alone, nothing is made
twice. Balances (quotas, used quotas, request counts, channel balances) are the source's at import time; the
balances instances share in Redis move by the same difference.
Kept from here: a user whose id here belongs to someone else (another name) is not imported,
and a password changed or upgraded here (no longer one-api's bcrypt, nor the seeded root's) is kept, as is an
access token set here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from django.contrib.auth.hashers import check_password, make_password
from django.core.management.color import no_style
from django.db import connection, transaction
from django.db.models import Model

from accounts.hashers import OneAPIBCryptPasswordHasher
from accounts.models import DEFAULT_ROOT_PASSWORD, Token, User
from billing.models import Log, Option, RedemptionCode
from billing.shared_quota import shared
from oneapi_site import options
from oneapi_site.importer import mapping
from oneapi_site.importer.report import Report
from oneapi_site.importer.source import TABLES, Source
from oneapi_site.lib import changes
from oneapi_site.lib.errors import ServiceError
from providers.channel_keys import keys_sync, new_api_key_states
from providers.key_health import keys_restore
from providers.models import Ability, Channel
from providers.services import abilities_rebuild

LOG_BATCH = 1000
Progress = Callable[[int, int], None]


def _plan(model: type[Model], table: str, rows: list[dict[str, Any]], report: Report):
    """Split mapped rows into new objects and (object, changed fields) pairs; count what stays."""
    existing = model.objects.in_bulk([r["id"] for r in rows])
    new, changed = [], []
    for fields in rows:
        obj = existing.get(fields["id"])
        if obj is None:
            new.append(model(**fields))
            continue
        names = [n for n, v in fields.items() if n != "id" and getattr(obj, n) != v]
        if not names:
            report.tables[table].unchanged += 1
            continue
        before = {name: getattr(obj, name) for name in names}
        for name in names:
            setattr(obj, name, fields[name])
        changed.append((obj, names, before))
    report.tables[table].created += len(new)
    report.tables[table].updated += len(changed)
    return new, changed


# The balance each model shares across instances in Redis (billing/shared_quota.py), by its hash's kind.
SHARED_BALANCES = {User: ("u", "quota"), Token: ("t", "remain_quota")}


def _write(model: type[Model], new: list, changed: list, *, dry_run: bool) -> None:
    if dry_run:
        return
    model.objects.bulk_create(new, batch_size=500)
    kind, balance = SHARED_BALANCES.get(model, ("", ""))
    for obj, names, before in changed:
        obj.save(update_fields=names)
        if balance in names:  # Redis holds the balance less unwritten charges: move it as the database moved
            shared.adjust_on_commit(kind=kind, subject_id=obj.pk, delta=getattr(obj, balance) - before[balance])


def _users(source: Source, report: Report) -> list[dict[str, Any]]:
    rows = source.rows("users")
    report.tables["users"].read = len(rows)
    mapped = []
    for row in rows:
        mapping.report_dropped("users", row, report)
        mapped.append(mapping.user_fields(row, report))
    here = User.objects.in_bulk([u["id"] for u in mapped])
    by_name = {name.lower(): pk for pk, name in User.objects.values_list("id", "username")}
    # In any letter case: MySQL's collation takes "BoB9" and "BOB9" for one code, which one-api on SQLite kept
    # apart (its 4-character invite codes meet so among a few thousand users) and the unique index refused.
    by_token = {t.lower(): pk for pk, t in User.objects.exclude(access_token=None).values_list("id", "access_token")}
    by_aff = {c.lower(): pk for pk, c in User.objects.exclude(aff_code=None).values_list("id", "aff_code")}
    kept, seen = [], set()
    for user in mapped:
        example = f"user {user['id']} ({user['username']})"
        name = user["username"].lower()
        mine = here.get(user["id"])
        # root is root under any name: the seeded one here gives way to the source's
        same = mine is not None and (mine.username.lower() == name or mine.role == user["role"] == User.Role.ROOT)
        if not user["username"] or name in seen:
            report.skip("users", "no username, or one another source user has in another letter case", example)
            continue
        if mine is not None and not same:
            report.skip("users", "the id is another user's here", f"{example}, here {mine.username}")
            continue
        if by_name.get(name, user["id"]) != user["id"]:
            report.skip("users", "the username is another user's here", example)
            continue
        seen.add(name)
        for column, index in (("access_token", by_token), ("aff_code", by_aff)):
            if user[column] and index.setdefault(user[column].lower(), user["id"]) != user["id"]:
                report.note("users", f"{column} is another user's here (in any letter case): not carried", example)
                user[column] = None
        if mine is not None and mine.access_token and mine.access_token != user["access_token"]:
            # Rotated here (or seeded): as a password changed here, the one people use now, and one retired here
            # (perhaps leaked) must not work again because the source still holds it.
            report.note("users", "access_token set here: kept", example)
            del user["access_token"]
        if mine is not None and (user["password"] is None or _chosen_here(mine)):
            del user["password"]  # set or upgraded here: the password people use now
        elif user["password"] is None:
            user["password"] = make_password(None)
        kept.append(user)
    return kept


def _chosen_here(user: User) -> bool:
    """A password set or upgraded here, so not one-api's bcrypt, and not the seeded root's 123456 either."""
    if user.password.startswith(f"{OneAPIBCryptPasswordHasher.algorithm}$") or not user.has_usable_password():
        return False
    return not (user.role == User.Role.ROOT and check_password(DEFAULT_ROOT_PASSWORD, user.password))


def _tokens(source: Source, report: Report, user_ids: set[int]) -> list[dict[str, Any]]:
    rows = source.rows("tokens")
    report.tables["tokens"].read = len(rows)
    mapped = []
    for row in rows:
        mapping.report_dropped("tokens", row, report)
        if (token := mapping.token_fields(row, report)) is not None:
            mapped.append(token)
    by_key = {key: pk for pk, key in Token.objects.values_list("id", "key")}
    here = {pk: key for pk, key in Token.objects.filter(pk__in=[t["id"] for t in mapped]).values_list("id", "key")}
    kept, seen = [], set()
    for token in mapped:
        example = f"token {token['id']} ({token['name']})"
        if token["user_id"] not in user_ids:
            report.skip("tokens", "its user is not imported", example)
        elif token["key"] in seen or by_key.get(token["key"], token["id"]) != token["id"]:
            report.skip("tokens", "the key is another token's", example)
        elif here.get(token["id"], token["key"]) != token["key"]:
            report.skip("tokens", "the id is another token's here", example)
        else:
            seen.add(token["key"])
            kept.append(token)
    return kept


def _channels(source: Source, report: Report, *, dry_run: bool) -> None:
    rows = source.rows("channels")
    report.tables["channels"].read = len(rows)
    mapped = []
    for row in rows:
        mapping.report_dropped("channels", row, report)
        mapped.append(mapping.channel_fields(row, report))
    new, changed = _plan(Channel, "channels", mapped, report)
    _write(Channel, new, changed, dry_run=dry_run)
    if not dry_run:  # the routes of new and changed channels, built by our own rules (providers/services.py)
        key_states = {mapping.whole(row["id"]): new_api_key_states(mapping.channel_info(row))[1] for row in rows}
        for channel in [*new, *(obj for obj, _, _ in changed)]:
            abilities_rebuild(channel=channel)
            keys_sync(channel=channel)  # a multi-key channel's key rows, then the states new-api kept
            if channel.key_mode and key_states.get(channel.pk):
                keys_restore(channel_id=channel.pk, states=key_states[channel.pk])
    if "abilities" in source.tables:
        report.note("abilities", "rebuilt from the channels, not copied")


def _redemptions(source: Source, report: Report, user_ids: set[int]) -> list[dict[str, Any]]:
    rows = source.rows("redemptions")
    report.tables["redemptions"].read = len(rows)
    by_key = {key: pk for pk, key in RedemptionCode.objects.values_list("id", "key")}
    by_id = {pk: key for key, pk in by_key.items()}
    kept, seen = [], set()
    for row in rows:
        mapping.report_dropped("redemptions", row, report)
        code = mapping.redemption_fields(row, report, user_ids)
        if code is None:
            continue
        if code["key"] in seen or by_key.get(code["key"], code["id"]) != code["id"]:
            report.skip("redemptions", "the key is another code's", f"redemption {code['id']}")
            continue
        if by_id.get(code["id"], code["key"]) != code["key"]:  # a code made here: its holder may redeem it
            report.skip("redemptions", "the id is another code's here", f"redemption {code['id']}")
            continue
        seen.add(code["key"])
        kept.append(code)
    return kept


def _options(source: Source, report: Report, *, dry_run: bool) -> None:
    rows = source.rows("options")
    report.tables["options"].read = len(rows)
    here = dict(Option.objects.values_list("key", "value"))
    for row in rows:
        key, value = mapping.text(row.get("key")), mapping.text(row.get("value"))
        if key not in options.DEFAULTS:
            report.skip("options", "not used by this gateway", key)
            continue
        try:
            options.parse(key, value)
        except ServiceError as exc:
            report.skip("options", "refused", f"{key} ({exc})")
            continue
        if here.get(key) == value:
            report.tables["options"].unchanged += 1
            continue
        if key in here:
            report.tables["options"].updated += 1
        else:
            report.tables["options"].created += 1
        if not dry_run:
            Option.objects.update_or_create(key=key, defaults={"value": value})


def _logs(source: Source, report: Report, *, dry_run: bool, progress: Progress | None) -> None:
    result = report.tables["logs"]
    total, done = source.count("logs"), 0
    for batch in source.batches("logs", size=LOG_BATCH):
        for row in batch:
            mapping.report_dropped("logs", row, report)
        mapped = [mapping.log_fields(row) for row in batch]
        here = {pk: (user, at) for pk, user, at in
                Log.objects.filter(pk__in=[m["id"] for m in mapped]).values_list("id", "user_id", "created_at")}
        new = [Log(**m) for m in mapped if m["id"] not in here]
        # A log is never changed: one here with the same id, user and time is this one; another is kept.
        for m in mapped:
            if m["id"] in here and here[m["id"]] != (m["user_id"], m["created_at"]):
                report.skip("logs", "the id is another log's here", f"log {m['id']}")
            elif m["id"] in here:
                result.unchanged += 1
        if not dry_run:
            with transaction.atomic():
                Log.objects.bulk_create(new, batch_size=LOG_BATCH)
        result.read += len(batch)
        result.created += len(new)
        done += len(batch)
        if progress:
            progress(done, total)


def import_database(source: Source, *, dry_run: bool = False, logs: bool = False,
                    log_source: Source | None = None, progress: Progress | None = None) -> Report:
    """Import `source`; with `logs`, its logs too, or those of `log_source` (one-api's LOG_SQL_DSN)."""
    report = Report(source=source.label, flavour=source.flavour, dry_run=dry_run)
    # No transaction for a dry run: on SQLite one would hold the write lock a serving gateway needs.
    with contextlib.nullcontext() if dry_run else transaction.atomic():
        users = _users(source, report)
        new, changed = _plan(User, "users", users, report)
        _write(User, new, changed, dry_run=dry_run)
        # Only the users carried: a source id that is someone else's here must not hand them its tokens.
        user_ids = {u["id"] for u in users}
        new, changed = _plan(Token, "tokens", _tokens(source, report, user_ids), report)
        _write(Token, new, changed, dry_run=dry_run)
        _channels(source, report, dry_run=dry_run)
        new, changed = _plan(RedemptionCode, "redemptions", _redemptions(source, report, user_ids), report)
        _write(RedemptionCode, new, changed, dry_run=dry_run)
        _options(source, report, dry_run=dry_run)
        if not dry_run:
            _reset_sequences()
    if logs:
        _logs(log_source or source, report, dry_run=dry_run, progress=progress)
        if not dry_run:
            _reset_sequences()
    elif "logs" in source.tables:
        report.note("logs", f"{source.count('logs')} rows not read: add --logs to carry them")
    if others := sorted(source.tables - set(TABLES)):  # new-api's and later versions' own tables
        report.note("tables", f"not read: {', '.join(others)}")
    if not dry_run:
        options.reload_from_db()
        for kind in changes.KINDS:
            changes.publish(kind)
    return report


def _reset_sequences() -> None:
    """PostgreSQL's id sequences do not move past ids written by hand; the next insert would collide."""
    statements = connection.ops.sequence_reset_sql(no_style(), [User, Token, Channel, Ability, RedemptionCode, Log])
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
