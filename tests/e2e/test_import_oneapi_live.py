"""The import as an operator runs it: `manage.py import_oneapi` on the command line into a freshly seeded gateway,
then the real server with the site's own password hashers, the openai SDK with the imported key, and sign-in."""

import importlib.util
import subprocess
import sys

import httpx
import openai
import pytest

from tests.accounts.oneapi_source import OneAPIData, build_sqlite
from tests.accounts.test_import_oneapi import UNSERVED
from tests.e2e.servers import ROOT, prepare_database, running_gateway


def manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def imported(tmp_path_factory, upstream_server):
    tmp = tmp_path_factory.mktemp("import")
    data = OneAPIData(upstream_url=upstream_server.url, unserved_type=UNSERVED, logs=30)
    source = build_sqlite(tmp / "one-api.db", data)
    with prepare_database(tmp) as env:
        done = manage(env, "import_oneapi", source, "--logs")
        assert done.returncode == 0, done.stderr
        with running_gateway(tmp, env) as server:
            yield type("Imported", (), {"server": server, "data": data, "report": done.stdout,
                                        "progress": done.stderr, "env": env})


def test_the_command_prints_its_report_and_the_progress(imported):
    assert "users: 3 read, 2 new, 1 changed" in imported.report  # the seeded root became the source's
    assert "logs: 30 read, 30 new" in imported.report
    assert "logs: 30 of 30 (100%)" in imported.progress


def test_the_imported_key_answers_through_the_sdk(imported, upstream_server):
    upstream_server.reset()
    sdk = openai.OpenAI(base_url=imported.server.url + "/v1", api_key=f"sk-{imported.data.alice_key}",
                        max_retries=0)
    answer = sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content == "Hello from the mock upstream."
    assert upstream_server.requests[-1].headers["Authorization"] == "Bearer sk-upstream-imported"


def test_the_imported_root_password_signs_in_with_the_site_s_hashers(imported):
    for _ in range(2):  # the first sign-in re-hashes it; the second checks the new hash
        with httpx.Client(base_url=imported.server.url, timeout=30) as client:
            answer = client.post("/api/user/login", json={"username": "root",
                                                          "password": imported.data.root_password}).json()
            assert answer["success"] is True, answer
            assert client.get("/api/user/self").json()["data"]["role"] == 100
    with httpx.Client(base_url=imported.server.url, timeout=30) as client:
        refused = client.post("/api/user/login", json={"username": "root", "password": "123456"}).json()
        assert refused["success"] is False


@pytest.mark.parametrize("source, line", [
    ("/no/such/one-api.db", "CommandError: /no/such/one-api.db is no SQLite file"),
    ("root:@tcp(127.0.0.1:1)/one-api", "CommandError: cannot read mysql database 'one-api' at 127.0.0.1:1"
     if importlib.util.find_spec("MySQLdb") else "CommandError: reading a MySQL/MariaDB source needs the mysqlclient"),
])
def test_a_source_that_cannot_be_read_is_one_line_on_stderr(imported, source, line):
    done = manage(imported.env, "import_oneapi", source, "--dry-run")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().startswith(line) and len(done.stderr.strip().splitlines()) == 1, done.stderr
