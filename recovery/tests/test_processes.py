"""The commands as cron and a newcomer run them: real processes, exit codes, stderr."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connections

from recovery.db.locks import sweep_lock
from recovery.db.routers import trading_alias
from recovery.db.schema import FIXTURES_DIR, run_sql_script, trading_schema_build
from recovery.tests.scratch import scratch_database

pytestmark = pytest.mark.processes

BASE_DIR = Path(settings.BASE_DIR)


def manage(*args: str, database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE"}}
    environment.update(SECRET_KEY="process-tests", DATABASE_URL=database_url, **env)
    environment.pop("TRADING_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd="/",  # as cron would: no working directory to lean on
        timeout=300,
    )


def url_of(settings_dict: dict[str, Any]) -> str:
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    user, host, port = (
        settings_dict["USER"],
        settings_dict["HOST"] or "127.0.0.1",
        settings_dict["PORT"] or 3306,
    )
    password = f":{settings_dict['PASSWORD']}" if settings_dict["PASSWORD"] else ""
    return f"mysql://{user}{password}@{host}:{port}/{settings_dict['NAME']}"


@pytest.fixture
def unblocked(django_db_setup, django_db_blocker):  # noqa: ANN001, ANN201
    with django_db_blocker.unblock():
        yield


def test_missing_auto_recovery_column_exits_2_naming_the_patch(unblocked) -> None:
    """Any wall clock: the run stops at the schema check, before any time is read."""
    with scratch_database() as connection:
        url = url_of(connection.settings_dict)
        migrated = manage("migrate", "--skip-checks", database_url=url)  # Django's tables, heartbeat included
        assert migrated.returncode == 0, migrated.stderr
        if connection.vendor == "mysql":
            run_sql_script(connection, (FIXTURES_DIR / "trading_schema.mysql.sql").read_text())
        else:
            run_sql_script(connection, (FIXTURES_DIR / "trading_schema.sqlite.sql").read_text())
            run_sql_script(connection, "ALTER TABLE trade_settings DROP COLUMN auto_recovery")
        result = manage("auto_recover", database_url=url)
        with connection.cursor() as cursor:
            cursor.execute("SELECT outcome, message FROM tradeops_sweep_runs")
            heartbeats = cursor.fetchall()
    assert result.returncode == 2, result.stderr
    assert len(heartbeats) == 1 and heartbeats[0][0] == "could_not_run"
    assert "20260203_trade_settings_auto_recovery.sql" in heartbeats[0][1]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "trade_settings.auto_recovery" in lines[0]
    assert "deploy/mysql/patches/20260203_trade_settings_auto_recovery.sql" in lines[0]
    assert "Traceback" not in result.stderr


def test_unreachable_database_exits_2_with_one_line() -> None:
    """Any wall clock: the run stops at the connection."""
    url = (
        "mysql://root@127.0.0.1:1/tradeops"
        if connections[trading_alias()].vendor == "mysql"
        else ("sqlite:////nonexistent-folder/for/sure/db.sqlite3")
    )
    result = manage("auto_recover", database_url=url)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "could not run" in lines[0]
    assert "Traceback" not in result.stderr


def test_lock_held_by_another_run_exits_0_saying_so(unblocked, settings, tmp_path: Path) -> None:  # noqa: ANN001
    """Any wall clock: the database has no orders."""
    settings.AUTO_RECOVER_LOCK_DIR = tmp_path  # the subprocess gets the same folder
    folders = {"AUTO_RECOVER_LOCK_DIR": str(tmp_path), "LEAN_BRIDGE_ROOT": str(tmp_path / "bridge")}
    (tmp_path / "bridge").mkdir()
    with scratch_database() as connection:
        trading_schema_build(using=connection.alias)
        url = url_of(connection.settings_dict)
        with sweep_lock(using=connection.alias):
            held = manage("auto_recover", database_url=url, **folders)
        free = manage("auto_recover", database_url=url, **folders)
    assert held.returncode == 0, held.stderr
    assert "another auto_recover run holds the lock" in held.stdout
    assert free.returncode == 0, free.stderr
    assert "holds the lock" not in free.stdout and "scanned 0" in free.stdout


def test_demo_runs_twice_and_shows_every_rule(tmp_path: Path) -> None:
    """Any wall clock: the demo sweeps at its own clock, 11:00 New York on the last session day
    before the real now.
    """
    if connections[trading_alias()].vendor == "mysql":
        result = manage("demo", database_url=url_of(connections[trading_alias()].settings_dict), DEBUG="1")
        assert result.returncode == 2
        assert "the demo runs only on SQLite" in result.stderr
        return
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    # No demo yet: --restamp says so, and leaves no empty database file behind.
    early = manage("demo", "--restamp", database_url=url, DEBUG="1")
    assert early.returncode == 2 and "run `make demo` first" in early.stderr
    assert not (tmp_path / "demo.sqlite3").exists()
    for attempt in range(2):
        result = manage("demo", database_url=url, DEBUG="1")
        assert result.returncode == 0, result.stderr
        assert "decision-table reasons shown: 22 of 22" in result.stdout
        assert "scanned 25  cancelled 12  replaced 4  skipped 13  failed 0" in result.stdout
        if attempt == 0:  # what an afternoon in the demo admin leaves in Django's tables
            script = "from recovery.tests import factories; factories.SweepRunFactory(actor='admin:demo')"
            admin_run = manage("shell", "-c", script, database_url=url, DEBUG="1")
            assert admin_run.returncode == 0, admin_run.stderr
            with sqlite3.connect(tmp_path / "demo.sqlite3") as demo:
                assert demo.execute("SELECT COUNT(*) FROM tradeops_sweep_runs").fetchone() == (1,)
                demo.execute(
                    "INSERT INTO django_session (session_key, session_data, expire_date) "
                    "VALUES ('k', 'd', '2099-01-01 00:00:00')"
                )
    # make demo starts Django's tables afresh too, and keeps its login.
    with sqlite3.connect(tmp_path / "demo.sqlite3") as demo:
        assert demo.execute("SELECT COUNT(*) FROM tradeops_sweep_runs").fetchone() == (0,)
        assert demo.execute("SELECT COUNT(*) FROM django_session").fetchone() == (0,)
        assert demo.execute("SELECT username, is_superuser FROM auth_user").fetchall() == [("demo", 1)]
    # make admin's first step: the demo's times moved to now, no sweep run.
    before = (tmp_path / "demo-bridge" / "quotes.json").read_text()
    restamp = manage("demo", "--restamp", database_url=url, DEBUG="1")
    assert restamp.returncode == 0, restamp.stderr
    assert restamp.stdout.startswith(("demo moved forward by", "demo already current"))
    assert "scanned" not in restamp.stdout
    if restamp.stdout.startswith("demo moved"):
        assert (tmp_path / "demo-bridge" / "quotes.json").read_text() != before
    _demo_serves_with_a_stand_in_gateway(url=url, demo=tmp_path / "demo.sqlite3")

    assert (tmp_path / "demo-bridge" / "quotes.json").is_file()
    assert (tmp_path / "demo-bridge" / "run_1" / "execution_events.jsonl").is_file()
    # The demo's replacement names its real original (not another order that happens to be id 1).
    with sqlite3.connect(tmp_path / "demo.sqlite3") as demo:
        ids = dict(demo.execute("SELECT client_order_id, id FROM trade_orders"))
        (params,) = demo.execute(
            "SELECT params FROM trade_orders WHERE client_order_id = 'demo-spy-r1'"
        ).fetchone()
    chain = json.loads(params)["auto_recovery"]
    assert (chain["origin_order_id"], chain["root_order_id"]) == (ids["demo-spy"], ids["demo-spy"])


def _demo_serves_with_a_stand_in_gateway(*, url: str, demo: Path) -> None:
    """make admin's command: the admin answers, and ib_settings points at a gateway that answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {
        k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "TRADING_DATABASE_URL"}
    }
    environment.update(SECRET_KEY="process-tests", DATABASE_URL=url, DEBUG="1")
    server = subprocess.Popen(
        [sys.executable, str(BASE_DIR / "manage.py"), "demo", "--serve", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
        cwd="/",
    )
    try:
        lines = [server.stdout.readline(), server.stdout.readline()]  # type: ignore[union-attr]
        assert lines[0].startswith(("demo moved forward by", "demo already current")), lines
        gateway = int(re.findall(r"stand-in IB gateway on 127\.0\.0\.1:(\d+)", lines[1])[0])
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz/recovery", timeout=1)
                break
            except urllib.error.HTTPError:
                break  # an answer (503: no cron run in the demo): the admin serves
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("the demo admin never answered")
        with sqlite3.connect(demo) as database:
            assert database.execute("SELECT host, port FROM ib_settings").fetchall() == [
                ("127.0.0.1", gateway)
            ]
        socket.create_connection(("127.0.0.1", gateway), timeout=2).close()  # the stand-in answers
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stdout.close()  # type: ignore[union-attr]


def test_make_admin_moves_the_demo_to_now_and_reads_the_demos_bridge_folder() -> None:
    """Any wall clock: `make -n` prints the commands and the shell reads settings only."""
    plan = subprocess.run(["make", "-n", "admin"], cwd=BASE_DIR, capture_output=True, text=True, timeout=60)
    assert plan.returncode == 0, plan.stderr
    text = plan.stdout
    assert "manage.py demo --serve 127.0.0.1:" in text  # moves the demo to now, then serves
    (bridge,) = re.findall(r"LEAN_BRIDGE_ROOT=(\S+)", text)
    # The folder the admin reads is the one make demo writes beside the default demo database.
    script = (
        "from django.conf import settings; from recovery.demo import demo_bridge_root; "
        "print(settings.LEAN_BRIDGE_ROOT); print(demo_bridge_root())"
    )
    environment = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "TRADING_DATABASE_URL"}}
    shown = subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), "shell", "-c", script],
        capture_output=True,
        text=True,
        env={
            **environment,
            "DEBUG": "1",
            "LEAN_BRIDGE_ROOT": bridge,
            "DJANGO_SETTINGS_MODULE": "tradeops.settings",
        },
        cwd="/",
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    served, written = shown.stdout.splitlines()[-2:]  # after the shell's "objects imported" line
    assert served == written == str(BASE_DIR / "var" / "demo-bridge")
