"""The real-server tests run on the database the suite runs on (SQL_DSN), each gateway on a scratch one."""

from django.db import connection

from tests.e2e.servers import manage, prepare_database


def vendor(env: dict) -> str:
    return manage(env, "shell", "-v", "0", "-c", "from django.db import connection; print(connection.vendor)").strip()


def test_a_gateways_database_is_of_the_kind_the_suite_runs_on(tmp_path):
    with prepare_database(tmp_path) as env:
        assert vendor(env) == connection.vendor
        if connection.vendor != "sqlite":
            # A scratch database of its own, not the suite's.
            assert env["SQL_DSN"].rpartition("/")[2].startswith("oneapi_e2e_")
