"""The sweep's summary row kept on disk when the database went away, written by the next run."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db import connections

from recovery.db.audit import ACTION_SWEEP, RESOURCE_SWEEP, SWEEP_DETAIL_MAX_BYTES, AuditEntry
from recovery.db.audit_spool import REFUSED_FOLDER, audit_spool_flush, audit_spool_put, spool_dir
from recovery.db.models import AuditLog
from recovery.db.routers import trading_alias
from recovery.ops.runs import sweep_run_recorded
from recovery.tests.conftest import CLOCK


def log_text(lines: list[str]) -> str:
    return "\n".join(lines)


def entry(sweep_id: str) -> AuditEntry:
    return AuditEntry(
        "auto_recover", ACTION_SWEEP, RESOURCE_SWEEP, None, {"sweep_id": sweep_id, "cancelled": 2}
    )


def test_kept_rows_are_written_oldest_first_with_their_own_time_then_removed(trading) -> None:  # noqa: ANN001
    later = CLOCK + dt.timedelta(minutes=1)
    audit_spool_put(entry("b"), now=later)
    audit_spool_put(entry("a"), now=CLOCK)
    assert len(list(spool_dir().glob("*.json"))) == 2

    assert audit_spool_flush() == 2

    rows = list(AuditLog.objects.filter(action=ACTION_SWEEP).order_by("id"))
    assert [(r.detail["sweep_id"], r.created_at, r.actor) for r in rows] == [
        ("a", CLOCK, "auto_recover"),
        ("b", later, "auto_recover"),
    ]
    assert list(spool_dir().glob("*.json")) == []
    assert audit_spool_flush() == 0


def test_an_unreadable_file_is_moved_aside_and_the_others_written(trading, sweep_log) -> None:  # noqa: ANN001
    audit_spool_put(entry("good"), now=CLOCK)
    (spool_dir() / "00000000-broken.json").write_text("{not json")
    assert audit_spool_flush() == 1
    assert list(spool_dir().glob("*.json")) == []
    assert [p.name for p in (spool_dir() / REFUSED_FOLDER).glob("*.json")] == ["00000000-broken.json"]
    assert AuditLog.objects.get(action=ACTION_SWEEP).detail["sweep_id"] == "good"
    assert "kept audit row 00000000-broken.json moved aside, unreadable" in log_text(sweep_log)
    assert audit_spool_flush() == 0  # the next run is not told again


def refused_entry() -> AuditEntry:
    """A row every engine refuses, and not for a lost connection: resource_type is NOT NULL."""
    return AuditEntry("auto_recover", ACTION_SWEEP, None, None, {"sweep_id": "refused"})  # type: ignore[arg-type]


def test_a_row_the_database_refuses_is_moved_aside_and_the_rows_after_it_written(trading, sweep_log) -> None:  # noqa: ANN001
    audit_spool_put(refused_entry(), now=CLOCK)
    audit_spool_put(entry("after"), now=CLOCK + dt.timedelta(seconds=1))

    assert audit_spool_flush() == 1

    assert [r.detail["sweep_id"] for r in AuditLog.objects.filter(action=ACTION_SWEEP)] == ["after"]
    refused = list((spool_dir() / REFUSED_FOLDER).glob("*.json"))
    assert [p.name.endswith("-refused.json") for p in refused] == [True]
    assert list(spool_dir().glob("*.json")) == []
    assert f"kept audit row {refused[0].name} moved aside, refused by the database" in log_text(sweep_log)


@pytest.mark.mysql
def test_a_value_the_server_rejects_in_strict_mode_is_moved_aside(trading) -> None:  # noqa: ANN001
    too_long = AuditEntry("auto_recover", ACTION_SWEEP, "x" * 65, None, {"sweep_id": "long"})
    audit_spool_put(too_long, now=CLOCK)
    audit_spool_put(entry("after"), now=CLOCK + dt.timedelta(seconds=1))
    assert audit_spool_flush() == 1
    assert len(list((spool_dir() / REFUSED_FOLDER).glob("*.json"))) == 1


def test_a_spool_it_cannot_move_a_row_out_of_still_goes_on(trading, sweep_log) -> None:  # noqa: ANN001
    audit_spool_put(refused_entry(), now=CLOCK)
    audit_spool_put(entry("after"), now=CLOCK + dt.timedelta(seconds=1))
    (spool_dir() / REFUSED_FOLDER).write_text("a file where the folder should be")

    assert audit_spool_flush() == 1

    assert AuditLog.objects.get(action=ACTION_SWEEP).detail["sweep_id"] == "after"
    assert "could not be moved aside" in log_text(sweep_log)


def test_a_spool_path_that_is_not_a_folder_is_nothing_kept(trading) -> None:  # noqa: ANN001
    spool_dir().parent.mkdir(parents=True)
    spool_dir().write_text("not a folder")
    assert audit_spool_flush() == 0
    assert audit_spool_put(entry("x"), now=CLOCK) is None  # and keeping one fails quietly


def test_an_oversized_kept_sweep_row_is_cut_to_its_bound_before_it_is_written(trading) -> None:  # noqa: ANN001
    orders = [
        {
            "id": i,
            "client_order_id": f"c{i}",
            "decision": "skip",
            "reason": "guard_halted",
            "detail": "x" * 3000,
        }
        for i in range(5000)
    ]
    orders[4321] = {"id": 4321, "client_order_id": "c4321", "decision": "cancel", "reason": "outside_rth"}
    detail = {"sweep_id": "big", "scanned": 5000, "cancelled": 1, "skipped": 4999, "orders": orders}
    assert len(json.dumps(detail)) > 15_000_000  # past many servers' max_allowed_packet
    audit_spool_put(AuditEntry("auto_recover", ACTION_SWEEP, RESOURCE_SWEEP, None, detail), now=CLOCK)

    assert audit_spool_flush() == 1

    written = AuditLog.objects.get(action=ACTION_SWEEP).detail
    assert len(json.dumps(written).encode()) <= SWEEP_DETAIL_MAX_BYTES
    assert (written["scanned"], written["cancelled"], written["skipped"]) == (5000, 1, 4999)
    assert written["orders_total"] == 5000
    assert written["orders_omitted"] == 5000 - len(written["orders"])
    assert written["orders"][0]["id"] == 4321  # what was cancelled comes first


def test_a_refused_kept_row_never_stops_a_run(trading) -> None:  # noqa: ANN001
    audit_spool_put(refused_entry(), now=CLOCK)
    report = sweep_run_recorded(now=CLOCK, actor="auto_recover")
    assert report.outcome == "ok"
    assert report.heartbeat is not None
    assert len(list((spool_dir() / REFUSED_FOLDER).glob("*.json"))) == 1


def test_nothing_kept_nothing_written(trading) -> None:  # noqa: ANN001
    assert not spool_dir().exists()
    assert audit_spool_flush() == 0


@pytest.mark.mysql
def test_a_lost_connection_stops_the_flush_and_keeps_the_rows(committed_db, bridge, sweep_log) -> None:  # noqa: ANN001
    from recovery.tests.test_connection_loss import side_connection

    audit_spool_put(entry("a"), now=CLOCK)
    audit_spool_put(entry("b"), now=CLOCK + dt.timedelta(seconds=1))
    connection = connections[trading_alias()]
    with connection.cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID()")
        (session,) = cursor.fetchone()
    side = side_connection()
    with side.cursor() as cursor:
        cursor.execute(f"KILL CONNECTION {int(session)}")
    side.close()
    try:
        assert audit_spool_flush() == 0  # no exception: the run goes on and finds out itself
    finally:
        connection.close()
    assert len(list(spool_dir().glob("*.json"))) == 2
    assert not (spool_dir() / REFUSED_FOLDER).exists()
    assert "kept audit rows not written yet" in log_text(sweep_log)
    assert audit_spool_flush() == 2  # a connection again: both written, in order
    assert [r.detail["sweep_id"] for r in AuditLog.objects.filter(action=ACTION_SWEEP).order_by("id")] == [
        "a",
        "b",
    ]
