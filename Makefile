# tradeops — the two Quick start commands and their parts.
#   make demo   set up, build the SQLite demo database, run the demo sweep
#   make test   set up, run the suite on SQLite, then on MariaDB
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
# The MariaDB the suite uses; Django creates and drops test_<name> on it.
TEST_MYSQL_URL ?= mysql://root@127.0.0.1:3306/tradeops
# make admin PORT=8001
PORT ?= 8000

.PHONY: demo admin bench test test-sqlite test-mysql lint venv venv-mysql clean system-packages

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements-dev.txt
	touch $@

$(VENV)/.installed-mysql: $(VENV)/.installed requirements-mysql.txt
	$(PIP) install -r requirements-mysql.txt
	touch $@

venv: $(VENV)/.installed
venv-mysql: $(VENV)/.installed-mysql

demo: venv
	DEBUG=1 $(PY) manage.py demo

# The admin on the demo database (after make demo): http://127.0.0.1:$(PORT)/admin/
admin: venv
	DEBUG=1 $(PY) manage.py runserver 127.0.0.1:$(PORT)

# What mysqlclient builds with and the suite's tools (chromium, the MariaDB client):
# installed with apt when missing and run as root; otherwise it prints the command.
system-packages:
	bash .ci/system-packages python mysqlclient tests cluster

test: system-packages
	$(MAKE) test-sqlite test-mysql

test-sqlite: venv
	@echo "=== tests on SQLite ==="
	env -u DATABASE_URL -u TRADING_DATABASE_URL $(PY) -m pytest

test-mysql: venv-mysql
	@echo "=== tests on MariaDB ($(TEST_MYSQL_URL)) ==="
	env -u TRADING_DATABASE_URL DATABASE_URL=$(TEST_MYSQL_URL) $(PY) -m pytest

# On demand, not in CI: needs MariaDB; full sizes take about ten minutes.
bench: venv-mysql
	$(PY) -m bench.run
	$(PY) -m bench.evidence

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis
