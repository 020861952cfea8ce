"""The commands as cron and a newcomer run them: real processes, exit codes, stderr."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
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
    with scratch_database() as connection:
        trading_schema_build(using=connection.alias)
        url = url_of(connection.settings_dict)
        with sweep_lock(using=connection.alias):
            held = manage("auto_recover", database_url=url, AUTO_RECOVER_LOCK_DIR=str(tmp_path))
        free = manage("auto_recover", database_url=url, AUTO_RECOVER_LOCK_DIR=str(tmp_path))
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
    for _ in range(2):
        result = manage("demo", database_url=url, DEBUG="1")
        assert result.returncode == 0, result.stderr
        assert "decision-table reasons shown: 22 of 22" in result.stdout
        assert "scanned 25  cancelled 12  replaced 4  skipped 13  failed 0" in result.stdout
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
