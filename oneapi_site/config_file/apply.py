"""Apply a file: its plan written through the services in one transaction, and the report of what changed.

The services validate as the console does and tell every instance on commit. A dry run writes the same way
and rolls back, so it also meets the checks only a write makes (a login switched on without its client id).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction

from billing.services import option_set
from oneapi_site import options
from oneapi_site.config_file import document
from oneapi_site.config_file.document import ConfigFileError
from oneapi_site.config_file.plan import Plan, plan_build
from oneapi_site.lib.errors import ServiceError
from providers.models import Channel
from providers.services import channel_create, channel_delete, channel_update


@dataclass
class ImportResult:
    lines: list[str] = field(default_factory=list)
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    dry_run: bool = False

    @property
    def changes(self) -> int:
        return self.added + self.changed + self.removed

    def summary(self) -> str:
        if not self.changes:
            text = f"no changes ({self.unchanged} unchanged)"
        else:
            text = (f"{self.added} added, {self.changed} changed, {self.removed} removed, "
                    f"{self.unchanged} unchanged")
        return text + (" (dry run: nothing written)" if self.dry_run else "")


def _option_order(step) -> int:
    """Switches turned off first and on last: a login is refused on before its credentials are set, and
    Turnstile's keys may not be cleared while it is on."""
    if step.key in options.BOOL_KEYS:
        return 2 if options.parse(step.key, step.text) else 0
    return 1


def _write(path: str, plan: Plan) -> None:
    for step in plan.channels:
        try:
            if step.channel_id is None:
                created = channel_create(**step.fields)
                if len(created) != 1:
                    raise ServiceError("holds several lines, which would make one channel of each; give one key",
                                       field="key")
            else:
                channel_update(channel=Channel.objects.get(pk=step.channel_id), **step.fields)
        except ServiceError as exc:
            raise ConfigFileError(f"{path}: {step.label}: {exc.field or 'value'}: {exc}") from None
    for channel_id, _label in plan.deletes:
        channel_delete(channel_id=channel_id)
    for step in sorted(plan.options, key=_option_order):
        try:
            option_set(key=step.key, value=step.text)
        except ServiceError as exc:
            raise ConfigFileError(f"{path}: {step.key}: {exc}") from None


def _report(plan: Plan, *, dry_run: bool) -> ImportResult:
    result = ImportResult(dry_run=dry_run, unchanged=plan.unchanged_channels + plan.unchanged_options)
    for step in plan.channels:
        if step.channel_id is None:
            result.added += 1
            result.lines.append(f"added   {step.label}")
        else:
            result.changed += 1
            result.lines.append(f"changed {step.label}: {'; '.join(step.changes)}")
    for _channel_id, label in plan.deletes:
        result.removed += 1
        result.lines.append(f"removed {label}")
    for step in plan.options:
        result.changed += 1
        result.lines.append(f"changed option {step.key}: {step.change}")
    for label in plan.kept:
        result.lines.append(f"kept    {label}: not in the file (--prune removes it)")
    return result


def config_import(*, path: str | Path, dry_run: bool = False, prune: bool = False) -> ImportResult:
    """Apply the file at `path` (or, with dry_run, only say what that would change); all of it or nothing."""
    path = str(path)
    data = document.read(path)
    try:
        with transaction.atomic():
            plan = plan_build(path, data, prune=prune)
            _write(path, plan)
            if dry_run:
                transaction.set_rollback(True)
    finally:
        # option_set loads each option into this process's snapshot as it writes; after a rollback (a dry
        # run, a refused entry) the snapshot must show the database again.
        options.reload_from_db()
    return _report(plan, dry_run=dry_run)
