"""`make run` and `make install-mysql` on a fresh machine, dry-run (`make -n`): what they would do."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

MYSQL = "oneapi:123456@tcp(db:3306)/one-api"


def dry_run(target: str, tmp_path: Path, **env: str) -> str:
    """`make -n target` with a virtualenv that is installed but has no MySQL driver."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text("#!/bin/sh\nexit 1\n")  # every `python -c "import MySQLdb"` fails, as on a fresh machine
    python.chmod(0o755)
    for marker in ("bin/activate", ".installed", ".installed-test"):
        (venv / marker).touch()
    done = subprocess.run(["make", "-n", target, f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True,
                          env={**{k: v for k, v in os.environ.items() if k != "MAKEFLAGS"}, **env})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_run_installs_the_mysql_driver_when_sql_dsn_names_mysql(tmp_path):
    out = dry_run("run", tmp_path, SQL_DSN=MYSQL)
    assert "requirements-mysql.txt" in out
    # ... before it migrates.
    assert out.index("requirements-mysql.txt") < out.index("manage.py migrate")


@pytest.mark.parametrize("dsn", ["", "postgres://pg:secret@127.0.0.1:5432/oneapi"])
def test_make_run_needs_no_mysql_driver_for_sqlite_or_postgres(tmp_path, dsn):
    assert "requirements-mysql.txt" not in dry_run("run", tmp_path, SQL_DSN=dsn)


def test_make_install_mysql_installs_the_client_headers_and_pkg_config_when_missing(tmp_path):
    out = dry_run("install-mysql", tmp_path)
    check = next(line for line in out.splitlines() if "pkg-config --exists" in line)
    assert "apt-get install" in out and "pkg-config" in check
    assert "default-libmysqlclient-dev" in out or "libmariadb-dev" in out
