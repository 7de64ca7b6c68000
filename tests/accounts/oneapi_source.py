"""A real one-api database to import: the tables as one-api's GORM models create them (model/user.go,
token.go, channel.go, ability.go, redemption.go, option.go, log.go at v0.6.x), on SQLite, MariaDB or PostgreSQL, holding
bcrypt hashes made as Go makes them ($2a$10$) and 48-character keys. new_api=True adds new-api's columns."""

from __future__ import annotations

import json
import secrets
import sqlite3
import string
from dataclasses import dataclass, field

import bcrypt

# GORM's column types per dialect: SQLite's, and MySQL's (longtext; varchar(191) where a column is indexed).
TYPES = {
    "sqlite": {"pk": "integer PRIMARY KEY AUTOINCREMENT", "text": "text", "itext": "text", "int": "integer",
               "bool": "numeric", "float": "real"},
    "mysql": {"pk": "bigint AUTO_INCREMENT PRIMARY KEY", "text": "longtext", "itext": "varchar(191)",
              "int": "bigint", "bool": "boolean", "float": "double"},
    "postgresql": {"pk": "bigserial PRIMARY KEY", "text": "text", "itext": "text", "int": "bigint",
                   "bool": "boolean", "float": "decimal"},
}

SCHEMA = """
CREATE TABLE `users` (`id` {pk}, `username` {itext} UNIQUE, `password` {text} NOT NULL, `display_name` {itext},
  `role` {int} DEFAULT 1, `status` {int} DEFAULT 1, `email` {itext}, `github_id` {itext}, `wechat_id` {itext},
  `lark_id` {itext}, `oidc_id` {itext}, `access_token` char(32), `quota` {int} DEFAULT 0,
  `used_quota` {int} DEFAULT 0, `request_count` {int} DEFAULT 0, `group` varchar(32) DEFAULT 'default',
  `aff_code` varchar(32), `inviter_id` {int} {users_extra});
CREATE UNIQUE INDEX `idx_users_access_token` ON `users` (`access_token`);
CREATE UNIQUE INDEX `idx_users_aff_code` ON `users` (`aff_code`);
CREATE TABLE `tokens` (`id` {pk}, `user_id` {int}, `key` char(48), `status` {int} DEFAULT 1, `name` {itext},
  `created_time` {int}, `accessed_time` {int}, `expired_time` {int} DEFAULT -1, `remain_quota` {int} DEFAULT 0,
  `unlimited_quota` {bool} DEFAULT false, `used_quota` {int} DEFAULT 0, `models` {text},
  `subnet` varchar(191) DEFAULT '' {tokens_extra});
CREATE UNIQUE INDEX `idx_tokens_key` ON `tokens` (`key`);
CREATE TABLE `channels` (`id` {pk}, `type` {int} DEFAULT 0, `key` {text}, `status` {int} DEFAULT 1,
  `name` {itext}, `weight` {int} DEFAULT 0, `created_time` {int}, `test_time` {int}, `response_time` {int},
  `base_url` varchar(191) DEFAULT '', `other` {text}, `balance` {float}, `balance_updated_time` {int},
  `models` {text}, `group` varchar(32) DEFAULT 'default', `used_quota` {int} DEFAULT 0,
  `model_mapping` varchar(1024) DEFAULT '', `priority` {int} DEFAULT 0, `config` {text},
  `system_prompt` {text} {channels_extra});
CREATE TABLE `abilities` (`group` varchar(32), `model` varchar(191), `channel_id` {int}, `enabled` {bool},
  `priority` {int} DEFAULT 0, PRIMARY KEY (`group`, `model`, `channel_id`));
CREATE TABLE `redemptions` (`id` {pk}, `user_id` {int}, `key` char(32), `status` {int} DEFAULT 1,
  `name` {itext}, `quota` {int} DEFAULT 100, `created_time` {int}, `redeemed_time` {int} {redemptions_extra});
CREATE UNIQUE INDEX `idx_redemptions_key` ON `redemptions` (`key`);
CREATE TABLE `options` (`key` varchar(191) PRIMARY KEY, `value` {text});
CREATE TABLE `logs` (`id` {pk}, `user_id` {int}, `created_at` {int}, `type` {int}, `content` {text},
  `username` varchar(191) DEFAULT '', `token_name` varchar(191) DEFAULT '', `model_name` varchar(191) DEFAULT '',
  `quota` {int} DEFAULT 0, `prompt_tokens` {int} DEFAULT 0, `completion_tokens` {int} DEFAULT 0,
  `channel_id` {int}, `request_id` varchar(191) DEFAULT '', `elapsed_time` {int} DEFAULT 0,
  `is_stream` {bool} DEFAULT false, `system_prompt_reset` {bool} DEFAULT false {logs_extra});
"""

# new-api's columns beside one-api's (QuantumNous/new-api model/*.go).
NEW_API_EXTRA = {
    "users_extra": ", `setting` {text}, `aff_count` {int} DEFAULT 0, `deleted_at` datetime, `linux_do_id` {itext}",
    "tokens_extra": ", `model_limits_enabled` {bool} DEFAULT false, `model_limits` varchar(1024) DEFAULT '',"
                    " `allow_ips` {text}, `group` {itext} DEFAULT '', `deleted_at` datetime",
    "channels_extra": ", `tag` {itext}, `setting` {text}, `param_override` {text}, `header_override` {text},"
                      " `auto_ban` {int} DEFAULT 1, `channel_info` {text}",
    "redemptions_extra": ", `used_user_id` {int}, `expired_time` {int}, `deleted_at` datetime",
    "logs_extra": ", `token_id` {int} DEFAULT 0, `group` {itext}, `other` {text}",
}


def go_bcrypt(password: str) -> str:
    """A hash as one-api's golang.org/x/crypto/bcrypt makes it: $2a$, cost 10."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(10, prefix=b"2a")).decode()


def one_api_key() -> str:
    """one-api's token key: 48 letters and digits, stored without sk-."""
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(48))


@dataclass
class OneAPIData:
    upstream_url: str
    unserved_type: int
    logs: int = 2500
    root_password: str = "root-pass-0001"
    alice_password: str = "alice-pass-01"
    alice_key: str = field(default_factory=one_api_key)
    bob_key: str = field(default_factory=one_api_key)
    root_access_token: str = field(default_factory=lambda: secrets.token_hex(16))

    def tables(self) -> dict[str, list[dict]]:
        ratio = {"gpt-4o-mini": 0.075, "gpt-3.5-turbo": 0.25}
        return {
            "users": [
                dict(id=1, username="root", password=go_bcrypt(self.root_password), display_name="Root User",
                     role=100, status=1, email="root@example.com", access_token=self.root_access_token,
                     quota=500_000_000_000_000, used_quota=0, request_count=0, group="default", aff_code="R00t",
                     inviter_id=0, github_id="", wechat_id="", lark_id="", oidc_id=""),
                dict(id=2, username="alice", password=go_bcrypt(self.alice_password), display_name="Alice",
                     role=1, status=1, email="alice@example.com", access_token=secrets.token_hex(16),
                     quota=1_234_567, used_quota=890, request_count=12, group="vip", aff_code="Ab1x", inviter_id=0,
                     github_id="4242", wechat_id="wx-alice", lark_id="", oidc_id="oidc-sub-alice"),
                dict(id=5, username="bob", password=go_bcrypt("bob-pass-0001"), display_name="", role=1, status=2,
                     email="", access_token=secrets.token_hex(16), quota=0, used_quota=0, request_count=0,
                     group="default", aff_code="B0bb", inviter_id=2, github_id="", wechat_id="", lark_id="",
                     oidc_id=""),
            ],
            "tokens": [
                dict(id=3, user_id=2, key=self.alice_key, status=1, name="alice-app", created_time=1_700_000_000,
                     accessed_time=1_700_000_100, expired_time=-1, remain_quota=400_000, unlimited_quota=False,
                     used_quota=1000, models="", subnet=""),
                dict(id=8, user_id=5, key=self.bob_key, status=2, name="bob-app", created_time=1_700_000_000,
                     accessed_time=1_700_000_000, expired_time=1_900_000_000, remain_quota=0, unlimited_quota=True,
                     used_quota=0, models="gpt-4o-mini", subnet="10.0.0.0/8"),
            ],
            "channels": [
                dict(id=4, type=1, key="sk-upstream-imported", status=1, name="openai main", weight=3,
                     created_time=1_690_000_000, test_time=1_700_000_000, response_time=420,
                     base_url=self.upstream_url, other="", balance=12.5, balance_updated_time=1_700_000_000,
                     models="gpt-4o-mini,gpt-3.5-turbo", group="default,vip", used_quota=77_000,
                     model_mapping=json.dumps({"gpt-3.5-turbo": "gpt-4o-mini"}), priority=5, config="",
                     system_prompt=""),
                dict(id=6, type=3, key="azure-key", status=3, name="azure", weight=0, created_time=1_690_000_000,
                     test_time=0, response_time=0, base_url="https://example.openai.azure.com", other="2024-02-01",
                     balance=0, balance_updated_time=0, models="gpt-4o", group="default", used_quota=0,
                     model_mapping="", priority=0, config="{}", system_prompt=None),
                dict(id=11, type=34, key="pat_coze", status=1, name="coze", weight=0, created_time=1_690_000_000,
                     test_time=0, response_time=0, base_url="", other="", balance=0, balance_updated_time=0,
                     models="bot-123", group="default", used_quota=0, model_mapping="", priority=0,
                     config=json.dumps({"user_id": "coze-user", "region": ""}), system_prompt="Be brief."),
                dict(id=12, type=self.unserved_type, key="some-key", status=1, name="unserved", weight=0,
                     created_time=1_690_000_000, test_time=0, response_time=0, base_url="", other="", balance=0,
                     balance_updated_time=0, models="some-model", group="default", used_quota=0, model_mapping="",
                     priority=0, config="", system_prompt=""),
            ],
            "abilities": [dict(group="default", model="gpt-4o-mini", channel_id=4, enabled=True, priority=5)],
            "redemptions": [
                dict(id=1, user_id=1, key=secrets.token_hex(16), status=1, name="card", quota=5000,
                     created_time=1_700_000_000, redeemed_time=0),
                dict(id=2, user_id=1, key=secrets.token_hex(16), status=3, name="used card", quota=100,
                     created_time=1_700_000_000, redeemed_time=1_700_000_500),
            ],
            "options": [
                dict(key="ModelRatio", value=json.dumps(ratio)),
                dict(key="GroupRatio", value=json.dumps({"default": 1, "vip": 0.5})),
                dict(key="SystemName", value="Imported One API"),
                dict(key="RetryTimes", value="three"),
                dict(key="Theme", value="berry"),
            ],
            "logs": [
                dict(id=i, user_id=2, created_at=1_700_000_000 + i, type=2, content="倍率：0.075 × 1 × 4",
                     username="alice", token_name="alice-app", model_name="gpt-4o-mini", quota=10 + i,
                     prompt_tokens=11, completion_tokens=7, channel_id=4, request_id=f"req-{i}", elapsed_time=300,
                     is_stream=i % 2 == 0, system_prompt_reset=False)
                for i in range(1, self.logs + 1)
            ],
        }


def _create(connection, dialect: str, *, new_api: bool) -> None:
    extra = {k: (v.format(**TYPES[dialect]) if new_api else "") for k, v in NEW_API_EXTRA.items()}
    cursor = connection.cursor()
    for statement in SCHEMA.format(**TYPES[dialect], **extra).split(";"):
        if statement.strip():
            cursor.execute(_quoted(statement, dialect))
    cursor.close()


def _quoted(sql: str, dialect: str) -> str:
    """GORM quotes names with backticks on SQLite and MySQL, with double quotes on PostgreSQL."""
    return sql.replace("`", '"') if dialect == "postgresql" else sql


def _fill(connection, dialect: str, tables: dict[str, list[dict]]) -> None:
    mark = "?" if dialect == "sqlite" else "%s"
    cursor = connection.cursor()
    for table, rows in tables.items():
        if not rows:
            continue
        columns = list(rows[0])
        sql = (f"INSERT INTO `{table}` ({', '.join(f'`{c}`' for c in columns)}) "
               f"VALUES ({', '.join([mark] * len(columns))})")
        cursor.executemany(_quoted(sql, dialect), [tuple(row[c] for c in columns) for row in rows])
    connection.commit()
    cursor.close()


def build_sqlite(path, data: OneAPIData, *, new_api: bool = False, extra: dict | None = None) -> str:
    connection = sqlite3.connect(path)
    _create(connection, "sqlite", new_api=new_api)
    _fill(connection, "sqlite", {**data.tables(), **(extra or {})})
    connection.close()
    return str(path)


MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "passwd": ""}


def build_mariadb(name: str, data: OneAPIData, *, new_api: bool = False) -> str:
    """A scratch database `name` on the local MariaDB; its SQL_DSN. Raises OSError-like errors when unreachable."""
    import MySQLdb

    server = MySQLdb.connect(charset="utf8mb4", connect_timeout=3, **MARIADB)
    cursor = server.cursor()
    cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    cursor.close()
    server.select_db(name)
    _create(server, "mysql", new_api=new_api)
    _fill(server, "mysql", data.tables())
    server.close()
    return f"root:@tcp(127.0.0.1:3306)/{name}"


def drop_mariadb(name: str) -> None:
    import MySQLdb

    server = MySQLdb.connect(charset="utf8mb4", connect_timeout=3, **MARIADB)
    server.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
    server.close()


POSTGRES = "postgres://postgres@127.0.0.1:5432"


def build_postgres(name: str, data: OneAPIData) -> str:
    """A scratch database `name` on the local PostgreSQL; its postgres:// URL."""
    import psycopg

    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True, connect_timeout=3) as server:
        server.execute(f'DROP DATABASE IF EXISTS "{name}"')
        server.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(f"{POSTGRES}/{name}", connect_timeout=3) as db:
        _create(db, "postgresql", new_api=False)
        _fill(db, "postgresql", data.tables())
    return f"{POSTGRES}/{name}"


def drop_postgres(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True, connect_timeout=3) as server:
        server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
