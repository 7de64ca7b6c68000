"""`manage.py` with a database it cannot use says what is wrong and what to do, without a traceback."""

import importlib.util
import os
import subprocess
import sys

import pytest

from tests.e2e.servers import ROOT, free_port

MYSQL_DRIVER = importlib.util.find_spec("MySQLdb") is not None


def manage(dsn: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SQL_DSN": dsn, "REDIS_CONN_STRING": ""}
    return subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def mariadb_up() -> bool:
    try:
        import MySQLdb
        MySQLdb.connect(host="127.0.0.1", port=3306, user="root", passwd="").close()
    except Exception:
        return False
    return True


@pytest.mark.skipif(not mariadb_up(), reason="needs MariaDB at 127.0.0.1:3306")
def test_a_database_that_does_not_exist_is_named_with_how_to_create_it():
    done = manage("root:@tcp(127.0.0.1:3306)/oneapi_missing_for_this_test")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "Unknown database 'oneapi_missing_for_this_test'" in done.stderr
    assert "CREATE DATABASE" in done.stderr


@pytest.mark.parametrize("dsn", [
    pytest.param("root:s3cret-pw@tcp(127.0.0.1:{port})/oneapi", id="mysql",
                 marks=pytest.mark.skipif(not MYSQL_DRIVER, reason="needs the MySQL driver (make install-mysql)")),
    pytest.param("postgres://oneapi:s3cret-pw@127.0.0.1:{port}/oneapi", id="postgresql"),
])
def test_a_server_that_does_not_answer_is_named_with_what_to_check(dsn):
    done = manage(dsn.format(port=free_port()))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "Is the database server running" in done.stderr
    assert "s3cret-pw" not in done.stderr + done.stdout


@pytest.mark.skipif(MYSQL_DRIVER, reason="the MySQL driver is installed here")
def test_a_mysql_dsn_without_its_driver_says_how_to_install_it():
    done = manage("root:@tcp(127.0.0.1:3306)/oneapi")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "make install-mysql" in done.stderr
