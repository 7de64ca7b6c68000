# Two entry points: `make run` serves on a fresh machine, `make test` passes the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: run test lint requirements requirements-upgrade install install-test install-otel install-browser messages mysql-headers install-mysql db-driver migrate seed import-oneapi serve conformance bench bench-quick bench-litellm-install clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt $(VENV)/bin/activate
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-test: requirements-test.txt requirements.txt $(VENV)/.installed
	$(PIP) install --quiet -r requirements-test.txt
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# Browser tests drive Debian's Chromium; gettext checks the translation catalogues. Both come from apt.
install-browser:
	@if ! command -v chromium >/dev/null || ! command -v msgfmt >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium gettext >/dev/null; fi

# After adding or changing a user-facing string: put its Chinese in locale/fragments/*.po, then rebuild the catalogue.
messages: install-browser
	./locale/build.sh

# mysqlclient compiles against the MariaDB/MySQL client headers, found through pkg-config; both come from apt
# when missing (as root, like install-browser), as in .ci/run.
mysql-headers:
	@if ! pkg-config --exists mysqlclient 2>/dev/null && ! pkg-config --exists libmariadb 2>/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-libmysqlclient-dev pkg-config >/dev/null; fi

# OpenTelemetry's SDK and OTLP exporter, for traces (OTEL_EXPORTER_OTLP_ENDPOINT; oneapi_site/tracing.py).
install-otel: $(VENV)/.installed
	$(PIP) install --quiet -r requirements-otel.txt

install-mysql: $(VENV)/.installed mysql-headers
	$(PIP) install --quiet -r requirements-mysql.txt

# The MySQL driver, installed when SQL_DSN names MySQL/MariaDB (not empty, not postgres://) and it is missing.
db-driver: install
	@if [ -n "$$SQL_DSN" ] && ! $(PY) -c "import MySQLdb" 2>/dev/null && echo "$$SQL_DSN" | grep -qv '^postgres'; then $(MAKE) install-mysql; fi

migrate: install db-driver
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed

# one-api's (or new-api's) database into this one: `make import-oneapi SOURCE='user:pass@tcp(host:3306)/one-api'`
# (or a postgres:// URL, or the SQLite file); ARGS='--dry-run --logs' passes options. A MySQL SOURCE needs the
# driver, installed as for SQL_DSN.
import-oneapi: migrate
	@if [ -z "$(SOURCE)" ]; then echo "SOURCE is required: make import-oneapi SOURCE=..."; exit 2; fi
	@if echo '$(SOURCE)' | grep -qE '@(tcp|unix)?\(|^mysql://' && ! $(PY) -c "import MySQLdb" 2>/dev/null; then \
		$(MAKE) install-mysql; fi
	$(PY) manage.py import_oneapi '$(SOURCE)' $(ARGS)

# Daphne with uvloop on 0.0.0.0:$(PORT); ACCESS_LOG=true adds a line per request.
serve:
	$(PY) -m oneapi_site.serve

run: seed serve

# The pinned requirements*.txt, compiled from the short requirements*.in by pip-tools (its options are in
# pyproject.toml): `make requirements` after editing a .in keeps every other pin; `make requirements-upgrade`
# takes the newest releases the .in files allow. mysqlclient's metadata needs its headers to be read.
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make requirements" $(VENV)/bin/pip-compile --quiet $(COMPILE_ARGS)

requirements: install-test mysql-headers
	$(PIP_COMPILE) -o requirements.txt requirements.in
	$(PIP_COMPILE) -o requirements-test.txt requirements-test.in
	$(PIP_COMPILE) -o requirements-mysql.txt requirements-mysql.in
	$(PIP_COMPILE) -o requirements-otel.txt requirements-otel.in

requirements-upgrade:
	$(MAKE) requirements COMPILE_ARGS=--upgrade

# The rules pyproject.toml selects, over the whole tree; `make test` (and so CI) runs it first.
lint: install-test
	$(VENV)/bin/ruff check .

test: install-test lint install-browser db-driver
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

# The conformance matrix (client protocol x channel x feature) as the README shows it, from the test's own
# table (plain Python: no install needed).
conformance:
	@$(PYTHON) -m tests.relay.conformance_table

# Gateway vs direct vs LiteLLM proxy against a local mock; about 3 minutes. BENCH_ARGS=--skip-litellm etc.
bench: install
	$(PY) bench/relay_overhead.py $(BENCH_ARGS)

bench-quick: install
	$(PY) bench/relay_overhead.py --quick $(BENCH_ARGS)

# The bench installs LiteLLM on first use; this does it ahead of time (a few minutes, cached in bench/.venv-litellm).
bench-litellm-install: install
	$(PY) -c "import sys; sys.path.insert(0, 'bench'); import relay_overhead as r; sys.exit(r.litellm_ready(install=True) is None)"

clean:
	rm -rf $(VENV) staticfiles .ruff_cache
