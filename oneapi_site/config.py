"""Environment variables, read once, with one-api's names and meanings.

A bad value stops start-up with a message that names the variable, so an
operator who mistypes `SYNC_FREQUENCY=10s` learns it before the first request.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit


class ConfigError(Exception):
    pass


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_int(name: str, default: int, *, minimum: int | None = 0) -> int:
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


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


def parse_trusted_proxies(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """`TRUSTED_PROXIES`: comma-separated IPs or CIDRs whose X-Forwarded-For is believed; empty trusts none."""
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"TRUSTED_PROXIES: {item!r} is not an IP address or CIDR range") from None
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
