# Two entry points: `make run` serves on a fresh machine, `make test` passes the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PORT ?= 3000
export PORT

.PHONY: run test install install-test install-mysql migrate seed serve bench lint clean

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

# mysqlclient compiles against the MariaDB/MySQL client headers (CI and the image install them).
install-mysql: $(VENV)/.installed
	$(PIP) install --quiet -r requirements-mysql.txt

migrate: install
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed

serve:
	$(VENV)/bin/daphne -b 0.0.0.0 -p $(PORT) --proxy-headers oneapi_site.asgi:application

run: seed serve

test: install-test
	@if [ -n "$$SQL_DSN" ] && ! $(PY) -c "import MySQLdb" 2>/dev/null && echo "$$SQL_DSN" | grep -qv '^postgres'; then $(MAKE) install-mysql; fi
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

bench: install-test
	$(PY) bench/relay_overhead.py

clean:
	rm -rf $(VENV) staticfiles
