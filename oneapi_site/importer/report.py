"""What an import carried and what it could not, as the operator reads it after a run or a dry run."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

# Examples listed per note: enough to find the rows, not a page per row.
EXAMPLES_SHOWN = 5


# Why a column is not carried, where an operator would ask ("users.wechat_id: 3 (no WeChat sign-in here)").
WHY_DROPPED = {
    "wechat_id": "no WeChat sign-in here", "lark_id": "no Lark sign-in here",
    "linux_do_id": "no LinuxDO sign-in here", "telegram_id": "no Telegram sign-in here",
    "discord_id": "no Discord sign-in here",
    "tokens.group": "a token uses its user's group here", "logs.group": "logs keep no group here",
}


@dataclass
class TableResult:
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0


@dataclass
class Report:
    source: str = ""
    flavour: str = ""
    dry_run: bool = False
    tables: dict[str, TableResult] = field(default_factory=lambda: defaultdict(TableResult))
    # (table, note) -> examples: "user 7 (bob)", an option's key...
    notes: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    # (table, column) -> rows where the dropped column held a value
    dropped: Counter = field(default_factory=Counter)

    def note(self, table: str, text: str, example: str = "") -> None:
        self.notes[(table, text)].append(example)

    def drop(self, table: str, column: str) -> None:
        self.dropped[(table, column)] += 1

    def skip(self, table: str, text: str, example: str) -> None:
        self.tables[table].skipped += 1
        self.note(table, f"skipped: {text}", example)

    def lines(self) -> list[str]:
        head = f"Source: {self.source} ({self.flavour})"
        out = [head + (" -- dry run: nothing written; the counts say what an import would do" if self.dry_run
                       else "")]
        for table, result in self.tables.items():
            out.append(f"  {table}: {result.read} read, {result.created} new, {result.updated} changed, "
                       f"{result.unchanged} unchanged, {result.skipped} skipped")
        if self.dropped:
            out.append("Columns not carried (rows where they held a value):")
            for (table, column), count in sorted(self.dropped.items()):
                why = WHY_DROPPED.get(column) or WHY_DROPPED.get(f"{table}.{column}")
                out.append(f"  {table}.{column}: {count}" + (f" ({why})" if why else ""))
        if self.notes:
            out.append("Notes:")
            for (table, text), examples in self.notes.items():
                named = [e for e in examples if e]
                tail = f": {', '.join(named[:EXAMPLES_SHOWN])}" if named else ""
                if len(named) > EXAMPLES_SHOWN:
                    tail += f" and {len(named) - EXAMPLES_SHOWN} more"
                count = f" ({len(examples)} rows)" if len(examples) > 1 else ""
                out.append(f"  {table}: {text}{count}{tail}")
        return out
