"""The one-api (or new-api) database an import reads: a plain DB-API connection, never a Django database.

SOURCE is what one-api's SQL_DSN takes (`user:pass@tcp(host:3306)/db`, `postgres://...`) or the path of its
SQLite file. Tables are read with `SELECT *` and rows handed out as dicts by column name, so a column an older
or newer version lacks or adds is seen, not guessed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from oneapi_site.config import ConfigError, parse_sql_dsn

# A database is taken for one-api's when it has these; abilities, redemptions and logs are read when present.
REQUIRED_TABLES = ("users", "tokens", "channels", "options")
TABLES = (*REQUIRED_TABLES, "abilities", "redemptions", "logs")
# Columns only new-api's tables have: their presence names the flavour in the report.
NEW_API_MARKS = {"channels": "tag", "users": "setting"}


class SourceError(Exception):
    """Why the source cannot be read, in one line for the operator (no password in it)."""


class Source:
    def __init__(self, connection, *, engine: str, label: str, required: tuple[str, ...] = REQUIRED_TABLES):
        self.connection = connection
        self.engine = engine  # "sqlite", "mysql" or "postgresql"
        self.label = label
        self.placeholder = "?" if engine == "sqlite" else "%s"
        self.tables = self._tables()
        missing = [t for t in required if t not in self.tables]
        if missing:
            raise SourceError(f"{label} is not a one-api database: it has no {', '.join(missing)} table")
        self._columns: dict[str, list[str]] = {}

    @property
    def flavour(self) -> str:
        marks = [column in self.columns(table) for table, column in NEW_API_MARKS.items()]
        return "new-api" if any(marks) else "one-api"

    def _tables(self) -> set[str]:
        if self.engine == "sqlite":
            sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        elif self.engine == "mysql":
            sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
        else:
            sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        with self._cursor() as cursor:
            cursor.execute(sql)
            return {str(row[0]).lower() for row in cursor.fetchall()}

    def _cursor(self):
        return _Closing(self.connection.cursor(), self.label)

    def columns(self, table: str) -> list[str]:
        if table not in self._columns:
            if table not in self.tables:
                self._columns[table] = []
            else:
                with self._cursor() as cursor:
                    cursor.execute(f"SELECT * FROM {table} WHERE 1 = 0")
                    self._columns[table] = [d[0].lower() for d in cursor.description]
        return self._columns[table]

    def count(self, table: str) -> int:
        if table not in self.tables:
            return 0
        with self._cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {table}")
            return int(cursor.fetchone()[0])

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of a small table (users, tokens, channels...), in id order where there is one."""
        if table not in self.tables:
            return []
        order = " ORDER BY id" if "id" in self.columns(table) else ""
        with self._cursor() as cursor:
            cursor.execute(f"SELECT * FROM {table}{order}")
            names = [d[0].lower() for d in cursor.description]
            return [_row(names, row) for row in cursor.fetchall()]

    def batches(self, table: str, *, size: int) -> Iterator[list[dict[str, Any]]]:
        """A large table (logs) in batches of `size` rows by id: nothing holds the whole table."""
        last = 0
        sql = f"SELECT * FROM {table} WHERE id > {self.placeholder} ORDER BY id LIMIT {int(size)}"
        while True:
            with self._cursor() as cursor:
                cursor.execute(sql, (last,))
                names = [d[0].lower() for d in cursor.description]
                batch = [_row(names, row) for row in cursor.fetchall()]
            if not batch:
                return
            yield batch
            last = batch[-1]["id"]

    def close(self) -> None:
        self.connection.close()


class _Closing:
    """A cursor closed after use, whose driver errors (each driver has its own classes) become a SourceError."""

    def __init__(self, cursor, label: str):
        self.cursor, self.label = cursor, label

    def __enter__(self):
        return self.cursor

    def __exit__(self, kind, exc, traceback):
        self.cursor.close()
        if exc is not None and not isinstance(exc, SourceError) and isinstance(exc, Exception):
            raise SourceError(f"cannot read {self.label}: {_first_line(exc)}") from None


def _row(names: list[str], values) -> dict[str, Any]:
    """A source row with each NUL in its text as U+FFFD, as the ledger writes one: SQLite and MySQL keep a NUL in
    text, PostgreSQL refuses it, so one such character stopped the import's step into a PostgreSQL gateway."""
    return {name: value.replace("\x00", "\ufffd") if isinstance(value, str) else value
            for name, value in zip(names, values, strict=True)}


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def open_source(text: str, *, required: tuple[str, ...] = REQUIRED_TABLES) -> Source:
    """Connect to SOURCE read-only where the driver can; a SourceError says why not, in one line.
    `required`: the tables it must have (one-api's LOG_SQL_DSN database has only logs)."""
    text = (text or "").strip()
    if not text:
        raise SourceError("SOURCE is empty: give one-api's SQL_DSN, a postgres:// URL or a SQLite file")
    looks_like_dsn = text.startswith(("postgres://", "postgresql://", "mysql://")) or "@tcp(" in text \
        or "@unix(" in text or "@/" in text
    if not looks_like_dsn:
        path = Path(text)
        if not path.is_file():
            raise SourceError(f"{text} is no SQLite file, and not a DSN "
                              "(user:pass@tcp(host:3306)/db or postgres://user:pass@host/db)")
        try:
            connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            return Source(connection, engine="sqlite", label=str(path), required=required)
        except sqlite3.DatabaseError as exc:
            raise SourceError(f"{text} cannot be read as SQLite: {_first_line(exc)}") from None
    try:
        db = parse_sql_dsn(text, sqlite_path="")
    except ConfigError as exc:
        raise SourceError(str(exc).replace("SQL_DSN", "SOURCE")) from None
    label = f"{db.engine} database {db.name!r} at {db.host or 'localhost'}{':' + db.port if db.port else ''}"
    try:
        if db.engine == "postgresql":
            import psycopg

            connection = psycopg.connect(host=db.host or None, port=db.port or None, user=db.user or None,
                                         password=db.password or None, dbname=db.name, connect_timeout=10)
            connection.read_only = True
            return Source(connection, engine="postgresql", label=label, required=required)
        try:
            import MySQLdb
        except ImportError:
            raise SourceError("reading a MySQL/MariaDB source needs the mysqlclient driver: "
                              "run make install-mysql") from None
        socket = {"unix_socket": db.host} if db.host.startswith("/") else {"host": db.host, "port": int(db.port)}
        connection = MySQLdb.connect(user=db.user, passwd=db.password, db=db.name, charset="utf8mb4",
                                     connect_timeout=10, **socket)
        return Source(connection, engine="mysql", label=label, required=required)
    except SourceError:
        raise
    except Exception as exc:  # each driver has its own error classes; the operator needs the first line
        raise SourceError(f"cannot read {label}: {_first_line(exc)}") from None
