"""The sweep's summary row kept on disk when the database went away, written by the next run."""

from __future__ import annotations

import datetime as dt

from recovery.db.audit import ACTION_SWEEP, RESOURCE_SWEEP, AuditEntry
from recovery.db.audit_spool import audit_spool_flush, audit_spool_put, spool_dir
from recovery.db.models import AuditLog
from recovery.tests.conftest import CLOCK


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


def test_an_unreadable_file_is_left_in_place_and_the_others_written(trading) -> None:  # noqa: ANN001
    audit_spool_put(entry("good"), now=CLOCK)
    (spool_dir() / "00000000-broken.json").write_text("{not json")
    assert audit_spool_flush() == 1
    assert [p.name for p in spool_dir().glob("*.json")] == ["00000000-broken.json"]
    assert AuditLog.objects.get(action=ACTION_SWEEP).detail["sweep_id"] == "good"


def test_nothing_kept_nothing_written(trading) -> None:  # noqa: ANN001
    assert not spool_dir().exists()
    assert audit_spool_flush() == 0
