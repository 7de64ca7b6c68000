"""Environment variables, read once, with one-api's names and meanings.

django-environ reads and casts them (`env.int("PORT", 3000, minimum=1)`), and `.env`
adds to them. A bad value stops start-up with a message that names the variable, so
an operator who mistypes `SYNC_FREQUENCY=10s` learns it before the first request.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import environ


class ConfigError(Exception):
    pass


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class Environment(environ.Env):
    """django-environ's reader, reading each variable the way one-api does and refusing what it cannot read.

    - A value is taken as written, less the blanks around it. django-environ would take one that starts with
      `$` for the name of another variable, so `SESSION_SECRET=$ecret` would quietly become another value.
    - A number, switch or list set blank keeps its default; a string set blank is blank (`SQLITE_PATH=` is
      not the default path, as in one-api).
    - A value that cannot be read stops start-up with a ConfigError naming the variable. Switches are true
      or false (also 1/0, yes/no, on/off): django-environ reads any other word, a typo too, as false.
    """

    def get_value(self, var, cast=None, default=environ.Env.NOTSET, parse_default=False):
        value = self.ENVIRON.get(var, "").strip()
        if var not in self.ENVIRON or (not value and cast is not str):
            if default is self.NOTSET:
                raise ConfigError(f"{var} must be set")
            return default
        try:
            return self.parse_value(value, cast)
        except ValueError as exc:
            raise ConfigError(f"{var} {exc}, got {value!r}") from None

    @classmethod
    def parse_value(cls, value, cast):
        if cast is bool:
            if value.lower() in _TRUE:
                return True
            if value.lower() in _FALSE:
                return False
            raise ValueError("must be true or false")
        if cast is int:
            try:
                return int(value)
            except ValueError:
                raise ValueError("must be a whole number") from None
        return super().parse_value(value, cast)

    def int(self, var, default=environ.Env.NOTSET, *, minimum: int | None = 0):
        """A whole number, at least `minimum` (0 unless said; None for no bound)."""
        value = self.get_value(var, cast=int, default=default)
        if minimum is not None and value < minimum:
            raise ConfigError(f"{var} must be at least {minimum}, got {value}")
        return value


env = Environment()


def _line_left_out(record: logging.LogRecord) -> bool:
    """django-environ logs a `.env` line it cannot read in full, and that line may hold a secret."""
    if isinstance(record.msg, str) and record.msg.startswith("Invalid line"):
        record.msg, record.args = ".env: skipped a line that is not NAME=value", ()
    return True


_dotenvs_read: set[Path] = set()


def read_dotenv(path: Path) -> None:
    """Add the variables of the `.env` file at `path` (if there is one) to the environment, as one-api does
    at start; a variable set in the environment already keeps its value. Once per process: the server reads
    it before its settings do, and would warn twice about a line it skips."""
    if path in _dotenvs_read:
        return
    _dotenvs_read.add(path)
    logging.getLogger("environ.environ").addFilter(_line_left_out)
    Environment.read_env(path)


@dataclass(frozen=True)
class Database:
    engine: str  # "sqlite", "mysql" or "postgresql"
    name: str
    user: str = ""
    password: str = ""
    host: str = ""
    port: str = ""
    options: tuple[tuple[str, str], ...] = ()


# one-api's Go driver form: user:pass@tcp(host:3306)/dbname?charset=utf8mb4&parseTime=True
_GO_MYSQL = re.compile(
    r"^(?P<user>[^:@/]*)(?::(?P<password>[^@]*))?@(?:(?P<proto>\w+)\((?P<addr>[^)]*)\))?/(?P<name>[^?]*)(?:\?(?P<query>.*))?$"
)


def parse_sql_dsn(dsn: str, *, sqlite_path: str) -> Database:
    """Turn `SQL_DSN` into connection facts; empty means SQLite at `sqlite_path`."""
    dsn = dsn.strip()
    if not dsn:
        return Database(engine="sqlite", name=sqlite_path)
    if dsn.startswith(("postgres://", "postgresql://")):
        parts = urlsplit(dsn)
        return Database(
            engine="postgresql",
            name=unquote(parts.path.lstrip("/")) or "postgres",
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            host=parts.hostname or "",
            port=str(parts.port or ""),
        )
    if dsn.startswith("mysql://"):
        parts = urlsplit(dsn)
        return Database(
            engine="mysql",
            name=unquote(parts.path.lstrip("/")),
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            host=parts.hostname or "127.0.0.1",
            port=str(parts.port or 3306),
        )
    match = _GO_MYSQL.match(dsn)
    if not match or not match["name"]:
        raise ConfigError(
            "SQL_DSN is not understood: use postgres://user:pass@host:5432/db, "
            "mysql://user:pass@host:3306/db or user:pass@tcp(host:3306)/db"
        )
    addr = match["addr"] or "127.0.0.1:3306"
    if match["proto"] == "unix":
        host, port = addr, ""
    else:
        host, _, port = addr.rpartition(":") if ":" in addr else (addr, "", "3306")
    query = tuple(parse_qsl(match["query"] or ""))
    return Database(
        engine="mysql",
        name=match["name"],
        user=match["user"],
        password=match["password"] or "",
        host=host or "127.0.0.1",
        port=port or "3306",
        options=query,
    )


# No proxy is believed unless the operator names it. Trusting loopback and private ranges by default let any
# client on the LAN, in the compose network or relayed by Docker's userland proxy (which connects from the
# bridge gateway) write its own X-Forwarded-For past the per-address limits and the tokens' IP allow-lists.
DEFAULT_TRUSTED_PROXIES = ""


def parse_trusted_proxies(text: str, *, name: str = "TRUSTED_PROXIES",
                          ) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """`TRUSTED_PROXIES`: comma-separated IPs or CIDRs whose X-Forwarded-For is believed; empty trusts none.
    Other lists of addresses (METRICS_ALLOWED_IPS) are read the same way under their own `name`."""
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"{name}: {item!r} is not an IP address or CIDR range") from None
    return tuple(networks)


# The container's health check and someone on the machine itself reach the gateway by these names.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def parse_allowed_hosts(text: str) -> list[str]:
    """`ALLOWED_HOSTS`: comma-separated host names this site answers to (Django's patterns: `.example.com`
    covers its subdomains). Empty or `*`: any host, as one-api answers. Naming them also lets mailed
    password-reset links use the request's host when ServerAddress is unset (oneapi_site/lib/address.py)."""
    hosts = [item.strip().lower() for item in text.split(",") if item.strip()]
    if not hosts or "*" in hosts:
        return ["*"]
    for host in hosts:
        bracketed_ipv6 = host.startswith("[") and host.endswith("]")
        if "/" in host or " " in host or (":" in host and not bracketed_ipv6):
            raise ConfigError(f"ALLOWED_HOSTS: {host!r} is not a host name (no scheme, port or path)")
    return [*hosts, *(h for h in LOOPBACK_HOSTS if h not in hosts)]


def database_problem(exc: Exception) -> str:
    """What an operator reads when a management command cannot reach the database (SQL_DSN): the driver's first
    line and what to do, instead of a traceback through Django's internals. Drivers never echo the password."""
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    text = f"The database in SQL_DSN cannot be used: {detail}"
    if "1049" in detail or "does not exist" in detail:
        text += ("\nCreate it first, for example: CREATE DATABASE <name> CHARACTER SET utf8mb4; (MySQL/MariaDB) "
                 "or createdb <name> (PostgreSQL), then run the command again.")
    elif "refused" in detail or "2002" in detail or "2003" in detail or "2005" in detail:
        text += "\nIs the database server running, and do the host and port in SQL_DSN point at it?"
    return text
