import os
import subprocess
import sys
from pathlib import Path

import pytest

from oneapi_site.config import ConfigError, env_int, parse_sql_dsn

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("dsn, expected", [
    ("", ("sqlite", "/data/x.db", "", "", "", "")),
    ("oneapi:123456@tcp(db:3306)/one-api?charset=utf8mb4&parseTime=True",
     ("mysql", "one-api", "oneapi", "123456", "db", "3306")),
    ("root:@tcp(127.0.0.1:3306)/oneapi", ("mysql", "oneapi", "root", "", "127.0.0.1", "3306")),
    ("root@tcp(localhost)/oneapi", ("mysql", "oneapi", "root", "", "localhost", "3306")),
    ("mysql://u:p%40ss@h:3307/db", ("mysql", "db", "u", "p@ss", "h", "3307")),
    ("postgres://pg:secret@127.0.0.1:5432/oneapi", ("postgresql", "oneapi", "pg", "secret", "127.0.0.1", "5432")),
])
def test_sql_dsn_forms_of_one_api_are_understood(dsn, expected):
    db = parse_sql_dsn(dsn, sqlite_path="/data/x.db")
    assert (db.engine, db.name, db.user, db.password, db.host, db.port) == expected


def test_unparseable_dsn_names_the_variable():
    with pytest.raises(ConfigError, match="SQL_DSN"):
        parse_sql_dsn("nonsense", sqlite_path="x")


def test_bad_number_names_the_variable(monkeypatch):
    monkeypatch.setenv("SYNC_FREQUENCY", "10s")
    with pytest.raises(ConfigError, match="SYNC_FREQUENCY"):
        env_int("SYNC_FREQUENCY", 600)


@pytest.mark.parametrize("name, value", [("SYNC_FREQUENCY", "often"), ("DEBUG", "maybe"), ("PORT", "0"),
                                         ("SESSION_SECRET", "random_string")])
def test_start_up_stops_on_a_bad_value_naming_it(name, value, tmp_path):
    env = {**os.environ, name: value, "SQLITE_PATH": str(tmp_path / "x.db")}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                            text=True)
    assert result.returncode != 0
    assert name in result.stderr


def test_session_secret_is_generated_once_and_kept(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SESSION_SECRET"}
    env.update(SQLITE_PATH=str(tmp_path / "x.db"))
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    first = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env,
                           capture_output=True, text=True)
    second = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert first.stdout.strip() and first.stdout == second.stdout
    assert "SESSION_SECRET" in first.stderr
    assert (tmp_path / "session_secret").exists()
