import os
import subprocess
import sys
from pathlib import Path

import pytest

from oneapi_site.config import ConfigError, env, parse_sql_dsn, read_dotenv

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
        env.int("SYNC_FREQUENCY", 600)


@pytest.mark.parametrize("name, value", [("SYNC_FREQUENCY", "often"), ("DEBUG", "maybe"), ("PORT", "0"),
                                         ("SESSION_SECRET", "random_string"), ("RELAY_PROXY", "ftp://proxy:21"),
                                         ("RELAY_PROXY", "socks5://no-port")])
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


@pytest.mark.parametrize("value, read", [
    ("", ("default", 7, False, [])),  # set blank: a string is blank, the others keep their default
    ("  12  ", ("12", 12, None, ["12"])),
    ("$HOME", ("$HOME", None, None, ["$HOME"])),  # taken as written, never as the name of another variable
    ("yes", ("yes", None, True, ["yes"])),
    ("a,b,", ("a,b,", None, None, ["a", "b"])),
])
def test_values_are_read_as_written(monkeypatch, value, read):
    monkeypatch.setenv("ONEAPI_TEST_VALUE", value)
    as_string, as_number, as_switch, as_list = read
    assert env.str("ONEAPI_TEST_VALUE", "default") == (as_string.strip() if value.strip() else "")
    if as_number is not None:
        assert env.int("ONEAPI_TEST_VALUE", 7) == as_number
    if as_switch is not None:
        assert env.bool("ONEAPI_TEST_VALUE", False) is as_switch
    assert env.list("ONEAPI_TEST_VALUE", default=[]) == as_list


def test_unset_values_keep_their_default(monkeypatch):
    monkeypatch.delenv("ONEAPI_TEST_VALUE", raising=False)
    assert (env.str("ONEAPI_TEST_VALUE", "x"), env.int("ONEAPI_TEST_VALUE", 7), env.bool("ONEAPI_TEST_VALUE", True),
            env.list("ONEAPI_TEST_VALUE", default=["y"])) == ("x", 7, True, ["y"])


@pytest.mark.parametrize("value, message", [("often", "must be a whole number, got 'often'"),
                                            ("-1", "must be at least 0, got -1")])
def test_bad_numbers_name_the_variable_and_the_value(monkeypatch, value, message):
    monkeypatch.setenv("ONEAPI_TEST_VALUE", value)
    with pytest.raises(ConfigError, match=f"^ONEAPI_TEST_VALUE {message}$"):
        env.int("ONEAPI_TEST_VALUE", 7)


def test_a_switch_that_is_neither_true_nor_false_is_refused(monkeypatch):
    monkeypatch.setenv("ONEAPI_TEST_VALUE", "ture")  # django-environ alone reads any such word as false
    with pytest.raises(ConfigError, match="^ONEAPI_TEST_VALUE must be true or false, got 'ture'$"):
        env.bool("ONEAPI_TEST_VALUE", False)


def test_a_secret_starting_with_a_dollar_is_kept_as_written(tmp_path):
    env_vars = {**os.environ, "SESSION_SECRET": "$HOME-and-more", "SQLITE_PATH": str(tmp_path / "x.db")}
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    done = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env_vars,
                          capture_output=True, text=True)
    assert done.stdout.splitlines()[-1] == "$HOME-and-more", done.stdout + done.stderr


def write_dotenv(folder: Path, text: str) -> Path:
    path = folder / ".env"
    path.write_text(text)
    return path


def test_dotenv_adds_its_variables_under_those_already_set(monkeypatch, tmp_path):
    monkeypatch.delenv("ONEAPI_TEST_FROM_FILE", raising=False)
    monkeypatch.delenv("ONEAPI_TEST_QUOTED", raising=False)
    monkeypatch.setenv("ONEAPI_TEST_SET", "from the environment")
    read_dotenv(write_dotenv(tmp_path, "# a comment\n\nONEAPI_TEST_FROM_FILE=a#b$c\nexport ONEAPI_TEST_QUOTED='q v'\n"
                                       "ONEAPI_TEST_SET=from the file\n"))
    assert env.str("ONEAPI_TEST_FROM_FILE", "") == "a#b$c"
    assert env.str("ONEAPI_TEST_QUOTED", "") == "q v"
    assert env.str("ONEAPI_TEST_SET", "") == "from the environment"


def test_dotenv_is_optional(tmp_path):
    read_dotenv(tmp_path / ".env")  # no file: nothing to add, nothing to say


def test_a_dotenv_line_it_cannot_read_is_skipped_without_showing_it(monkeypatch, tmp_path, caplog):
    monkeypatch.delenv("ONEAPI_TEST_SECRET", raising=False)
    path = write_dotenv(tmp_path, "ONEAPI_TEST_SECRET = s3cr3t-value\n")
    read_dotenv(path)
    read_dotenv(path)  # the server reads it, then its settings: one warning
    assert "ONEAPI_TEST_SECRET" not in os.environ
    assert caplog.text.count("skipped a line") == 1
    assert "s3cr3t" not in caplog.text


def test_the_server_reads_port_and_host_from_dotenv_under_the_environment(tmp_path):
    """`python -m oneapi_site.serve` with Daphne's entry point swapped for a print of its command line."""
    write_dotenv(tmp_path, "PORT=3456\nACCESS_LOG=true\nHOST=127.0.0.9\n")
    code = ("import sys; from pathlib import Path; from daphne.cli import CommandLineInterface; "
            "from oneapi_site import serve; "
            f"serve.BASE_DIR = Path({str(tmp_path)!r}); "
            "CommandLineInterface.entrypoint = classmethod(lambda cls: print(' '.join(sys.argv))); serve.main()")
    env_vars = {k: v for k, v in os.environ.items() if k not in ("PORT", "ACCESS_LOG")}
    env_vars["HOST"] = "127.0.0.1"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env_vars, capture_output=True, text=True)
    assert done.stdout.split() == ["daphne", "-b", "127.0.0.1", "-p", "3456", "-v", "1",
                                   "oneapi_site.asgi:application"], done.stderr
