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

.PHONY: demo admin bench test test-sqlite test-mysql test-at test-backend lint venv venv-mysql clean system-packages

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
# demo --serve first moves the demo's times to now (no sweep runs), so that days after
# make demo its orders, heartbeats and bridge files read as they did then; then it serves
# the admin (runserver, no reloader) with the demo's stand-in IB gateway on loopback. The
# admin reads the demo's bridge folder, and takes its files (written once, not every
# second as the bridge does) as fresh for DEMO_BRIDGE_FRESH_SECONDS.
DEMO_BRIDGE_FRESH_SECONDS ?= 28800
admin: venv
	DEBUG=1 LEAN_BRIDGE_ROOT=var/demo-bridge \
	  BRIDGE_QUOTES_MAX_AGE_SECONDS=$(DEMO_BRIDGE_FRESH_SECONDS) \
	  BRIDGE_OPEN_ORDERS_MAX_AGE_SECONDS=$(DEMO_BRIDGE_FRESH_SECONDS) \
	  $(PY) manage.py demo --serve 127.0.0.1:$(PORT)

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

# The MariaDB suite with the wall clock of every Python process it starts moved to the next
# MOMENT (saturday: 12:00 New York; holiday: 11:00 on the next weekday NYSE holiday), by the
# same offset in each (.ci/clock). PYTEST_ARGS narrows it, e.g. "-m processes".
MOMENT ?= saturday
PYTEST_ARGS ?=
# The database server keeps the real clock, so the sweep's clock gate (rule 1c) would see
# the whole offset as skew and change nothing: the gate's tolerance is widened past the
# offset here (the gate's own tests set their tolerance and move the clock themselves).
test-at: venv-mysql
	@echo "=== tests on MariaDB at a moved clock ($(MOMENT)) ==="
	@offset=$$($(PY) .ci/clock/moment.py $(MOMENT)) && \
	env -u TRADING_DATABASE_URL DATABASE_URL=$(TEST_MYSQL_URL) PYTHONPATH=$(CURDIR)/.ci/clock \
	  TRADEOPS_CLOCK_OFFSET_SECONDS=$$offset AUTO_RECOVER_CLOCK_TOLERANCE_SECONDS=$$((offset + 3600)) \
	  $(PY) -m pytest $(PYTEST_ARGS)

# On demand, not in CI (the backend cannot be fetched there): our replacements against the
# trading backend's own code (recovery/tests/test_backend_integration.py). Needs MariaDB at
# 127.0.0.1:3306 (root, no password; LEANQUANTHUB_MYSQL_URL for another server) and a
# checkout of hellcatjack/LeanQuantHub; its own virtualenv is built once, outside this
# repository, in $(LEANQUANTHUB_BACKEND)/.venv-tradeops (LEANQUANTHUB_BACKEND_VENV elsewhere).
#   make test-backend LEANQUANTHUB_BACKEND=/path/to/LeanQuantHub
test-backend: venv-mysql
	@test -n "$(LEANQUANTHUB_BACKEND)" || { echo "make test-backend LEANQUANTHUB_BACKEND=/path/to/LeanQuantHub"; exit 2; }
	@echo "=== our replacements against the backend in $(LEANQUANTHUB_BACKEND) ==="
	env -u TRADING_DATABASE_URL -u TRADEOPS_CLOCK_OFFSET_SECONDS LEANQUANTHUB_BACKEND=$(abspath $(LEANQUANTHUB_BACKEND)) \
	  $(PY) -m pytest -s -m backend recovery/tests/test_backend_integration.py

# On demand, not in CI: needs MariaDB; full sizes take about ten minutes.
bench: venv-mysql
	$(PY) -m bench.run
	$(PY) -m bench.evidence

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis
