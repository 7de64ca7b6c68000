"""`make run` and `make install-mysql` on a fresh machine: the real targets, run with stand-ins for the commands
they call (the virtualenv's python and pip, apt-get, pkg-config), which record what they were asked to do."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

MYSQL = "oneapi:123456@tcp(db:3306)/one-api"


def stand_in(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def run_make(target: str, tmp_path: Path, *, pkg_config_knows: tuple[str, ...] = (), lint_passes: bool = True,
             **env: str) -> list[str]:
    """Run `make target` for real; the commands it ran, in order, as the stand-ins recorded them.

    The virtualenv is installed but has no MySQL driver (`python -c "import MySQLdb"` fails, as on a fresh
    machine); pkg-config finds only the packages in `pkg_config_knows`; its ruff finds nothing to report
    unless `lint_passes` is False, when make must fail."""
    calls = tmp_path / "calls.log"
    calls.touch()
    record = f'echo "$(basename "$0") $*" >> "{calls}"'
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    stand_in(venv / "bin" / "python", f'if [ "$1" = "-c" ]; then exit 1; fi\n{record}')
    stand_in(venv / "bin" / "pip", record)
    stand_in(venv / "bin" / "pytest", record)
    stand_in(venv / "bin" / "pip-compile", record)
    stand_in(venv / "bin" / "ruff", f"{record}\nexit {0 if lint_passes else 1}")
    for marker in ("bin/activate", ".installed", ".installed-test"):
        (venv / marker).touch()
    tools = tmp_path / "tools"
    tools.mkdir()
    stand_in(tools / "apt-get", record)
    known = " ".join(pkg_config_knows)
    stand_in(tools / "pkg-config", f'{record}\nfor p in {known}; do [ "$2" = "$p" ] && exit 0; done\nexit 1')
    environ = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "SQL_DSN")}
    environ["PATH"] = f"{tools}{os.pathsep}{environ.get('PATH', '')}"
    done = subprocess.run(["make", target, f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True,
                          env={**environ, **env})
    assert (done.returncode == 0) == lint_passes, done.stdout + done.stderr
    return calls.read_text().splitlines()


def index_of(calls: list[str], text: str) -> int:
    return next(i for i, call in enumerate(calls) if text in call)


def test_make_run_installs_the_mysql_driver_when_sql_dsn_names_mysql(tmp_path):
    calls = run_make("run", tmp_path, SQL_DSN=MYSQL)
    assert "pip install --quiet -r requirements-mysql.txt" in calls
    # ... before it migrates, seeds and serves.
    assert index_of(calls, "requirements-mysql.txt") < index_of(calls, "manage.py migrate")
    assert calls[-3:] == ["python manage.py migrate --noinput", "python manage.py seed", "python -m oneapi_site.serve"]


@pytest.mark.parametrize("dsn", ["", "postgres://pg:secret@127.0.0.1:5432/oneapi"])
def test_make_run_needs_no_mysql_driver_for_sqlite_or_postgres(tmp_path, dsn):
    calls = run_make("run", tmp_path, SQL_DSN=dsn)
    assert not any("requirements-mysql.txt" in call or call.startswith("apt-get") for call in calls)
    assert calls == ["python manage.py migrate --noinput", "python manage.py seed", "python -m oneapi_site.serve"]


def test_make_install_mysql_installs_the_client_headers_and_pkg_config_when_missing(tmp_path):
    calls = run_make("install-mysql", tmp_path)
    assert calls[-3:] == [
        "apt-get update -qq",
        "apt-get install -y -qq default-libmysqlclient-dev pkg-config",
        "pip install --quiet -r requirements-mysql.txt",
    ]


@pytest.mark.parametrize("found", ["mysqlclient", "libmariadb"])
def test_make_install_mysql_leaves_apt_alone_when_pkg_config_finds_the_client(tmp_path, found):
    calls = run_make("install-mysql", tmp_path, pkg_config_knows=(found,))
    assert not any(call.startswith("apt-get") for call in calls), calls
    assert calls[-1] == "pip install --quiet -r requirements-mysql.txt"
    assert calls[0] == "pkg-config --exists mysqlclient"


def test_make_test_runs_the_linter_before_the_suite(tmp_path):
    calls = run_make("test", tmp_path, PYTEST_ARGS="-x tests/site")
    assert index_of(calls, "ruff check .") < index_of(calls, "pytest -q -x tests/site")


def test_make_test_stops_when_the_linter_finds_something(tmp_path):
    calls = run_make("test", tmp_path, lint_passes=False)
    assert "ruff check ." in calls
    assert not any(call.startswith("pytest") for call in calls), calls


@pytest.mark.parametrize("target, args", [("requirements", "--quiet"), ("requirements-upgrade", "--quiet --upgrade")])
def test_make_requirements_compiles_the_runtime_pins_first_as_the_others_are_constrained_by_them(tmp_path, target,
                                                                                                   args):
    calls = run_make(target, tmp_path, pkg_config_knows=("mysqlclient",))
    assert [call for call in calls if call.startswith("pip-compile")] == [
        f"pip-compile {args} -o requirements.txt requirements.in",
        f"pip-compile {args} -o requirements-test.txt requirements-test.in",
        f"pip-compile {args} -o requirements-mysql.txt requirements-mysql.in",
        f"pip-compile {args} -o requirements-otel.txt requirements-otel.in",
    ]


def test_make_import_oneapi_installs_the_mysql_driver_for_a_mysql_source_then_imports(tmp_path):
    calls = run_make("import-oneapi", tmp_path, SOURCE=MYSQL, ARGS="--dry-run")
    assert index_of(calls, "requirements-mysql.txt") < index_of(calls, "manage.py import_oneapi")
    assert index_of(calls, "manage.py migrate") < index_of(calls, "manage.py import_oneapi")
    assert calls[-1] == f"python manage.py import_oneapi {MYSQL} --dry-run"


def test_make_import_oneapi_reads_a_sqlite_file_without_the_mysql_driver(tmp_path):
    calls = run_make("import-oneapi", tmp_path, SOURCE="/data/one-api.db")
    assert not any("requirements-mysql.txt" in call for call in calls)
    assert calls[-1] == "python manage.py import_oneapi /data/one-api.db"


def test_make_import_oneapi_wants_a_source(tmp_path):
    # run_make's lint_passes=False only says that make must fail here
    calls = run_make("import-oneapi", tmp_path, lint_passes=False)
    assert not any("import_oneapi" in call for call in calls)
