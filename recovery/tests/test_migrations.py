"""The app's migration records the trading models but emits no DDL for their tables."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connections
from django.db.migrations.loader import MigrationLoader

from recovery.db.routers import TRADING_TABLES, trading_alias


def _recovery_migrations() -> list[str]:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return sorted(name for app, name in loader.disk_migrations if app == "recovery")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("migration", _recovery_migrations())
def test_sqlmigrate_emits_no_ddl_for_trading_tables(migration: str) -> None:
    out = io.StringIO()
    call_command("sqlmigrate", "recovery", migration, database=trading_alias(), stdout=out)
    statements = [line for line in out.getvalue().splitlines() if line.strip() and not line.startswith("--")]
    statements = [s for s in statements if s.strip().upper() not in {"BEGIN;", "COMMIT;"}]
    for statement in statements:
        lowered = statement.lower()
        assert not any(table in lowered for table in TRADING_TABLES), statement


@pytest.mark.django_db(transaction=True)
def test_initial_migration_creates_the_trading_models_unmanaged() -> None:
    out = io.StringIO()
    call_command("sqlmigrate", "recovery", "0001", database=trading_alias(), stdout=out)
    text = out.getvalue()
    assert "Create model TradeOrder" in text
    assert text.count("(no-op)") == 6


@pytest.mark.django_db(transaction=True)
def test_no_model_change_is_missing_a_migration() -> None:
    out = io.StringIO()
    call_command("makemigrations", "recovery", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_migrate_leaves_the_trading_tables_alone() -> None:
    connection = connections[trading_alias()]
    with connection.cursor() as cursor:
        before = {t: len(connection.introspection.get_table_description(cursor, t)) for t in TRADING_TABLES}
    call_command("migrate", "recovery", "zero", database=trading_alias(), verbosity=0)
    call_command("migrate", "recovery", database=trading_alias(), verbosity=0)
    with connection.cursor() as cursor:
        tables = set(connection.introspection.table_names(cursor))
        after = {t: len(connection.introspection.get_table_description(cursor, t)) for t in TRADING_TABLES}
    assert TRADING_TABLES <= tables
    assert before == after


@pytest.mark.django_db(transaction=True)
def test_0005_converts_the_old_outcomes_and_back() -> None:
    """circuit_open -> breaker_open, clock_skew -> blocked by the clock; back again. Runs the
    old code recorded ok (IB or bridge root down, over budget) cannot be told apart: they stay ok."""
    from django.db.migrations.executor import MigrationExecutor
    from django.utils import timezone

    connection = connections["default"]
    old, new = [("recovery", "0004_sweep_run_clock_skew")], [("recovery", "0005_sweep_run_outcomes")]
    executor = MigrationExecutor(connection)
    executor.migrate(old)
    OldRun = executor.loader.project_state(old).apps.get_model("recovery", "SweepRun")
    now = timezone.now()
    common = {"started_at": now, "ended_at": now, "duration_seconds": 0, "actor": "auto_recover", "host": "h"}
    for outcome in ("ok", "circuit_open", "clock_skew", "failed", "lock_held"):
        OldRun.objects.create(outcome=outcome, **common)
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(new)
        NewRun = executor.loader.project_state(new).apps.get_model("recovery", "SweepRun")
        assert list(NewRun.objects.order_by("id").values_list("outcome", "blocked_by")) == [
            ("ok", ""),
            ("breaker_open", ""),
            ("blocked", "clock_skew"),
            ("failed", ""),
            ("lock_held", ""),
        ]
        NewRun.objects.create(outcome="blocked", blocked_by="broker_evidence_unavailable", **common)
        NewRun.objects.create(outcome="over_budget", **common)
        executor = MigrationExecutor(connection)
        executor.migrate(old)
        OldRun = executor.loader.project_state(old).apps.get_model("recovery", "SweepRun")
        assert list(OldRun.objects.order_by("id").values_list("outcome", flat=True)) == [
            "ok",
            "circuit_open",
            "clock_skew",
            "failed",
            "lock_held",
            "ok",
            "ok",
        ]
    finally:
        OldRun.objects.all().delete()
        MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


@pytest.mark.django_db
def test_a_row_from_the_previous_release_gets_no_gate() -> None:
    """During an upgrade a host still on the previous code inserts heartbeats without blocked_by."""
    from django.utils import timezone

    from recovery.db.models import SweepRun

    now = timezone.now().replace(tzinfo=None)
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "INSERT INTO tradeops_sweep_runs (started_at, ended_at, duration_seconds, actor, host, sweep_id,"
            " outcome, scanned, cancelled, replaced, skipped, failed, reasons, message)"
            " VALUES (%s, %s, 0, 'auto_recover', 'old', '', 'ok', 0, 0, 0, 0, 0, '{}', '')",
            [now, now],
        )
    assert SweepRun.objects.get(host="old").blocked_by == ""
