"""--metrics-file: Prometheus text format, parsed back with prometheus_client's own parser."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from prometheus_client.parser import text_string_to_metric_families

from recovery.db.models import TradeSettings
from recovery.tests import factories
from recovery.tests.conftest import CLOCK, stale_order

pytestmark = pytest.mark.django_db


def samples(path: Path) -> dict[tuple[str, tuple], float]:
    parsed = text_string_to_metric_families(path.read_text())
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in parsed for s in family.samples}


def run(path: Path, expect: int = 0) -> None:
    args = ["auto_recover", "--metrics-file", str(path)]
    if expect:
        with pytest.raises((CommandError, SystemExit)) as raised:
            call_command(*args, now=CLOCK, stdout=io.StringIO(), stderr=io.StringIO())
        code = raised.value.returncode if isinstance(raised.value, CommandError) else raised.value.code
        assert code == expect
    else:
        call_command(*args, now=CLOCK, stdout=io.StringIO())


def test_metrics_of_a_run_parse_back(trading, tmp_path: Path) -> None:
    old = CLOCK - dt.timedelta(hours=2)
    factories.SweepRunFactory(started_at=old, duration_seconds=1, cancelled=4, replaced=3, skipped=1)
    stale_order()
    stale_order(side="bad")
    trading.open_orders([stale_order().client_order_id])
    path = tmp_path / "textfile" / "tradeops.prom"
    run(path)
    got = samples(path)
    p = "tradeops_auto_recover"
    assert got[(f"{p}_last_run_timestamp_seconds", ())] == CLOCK.timestamp()
    assert got[(f"{p}_last_run_outcome", (("outcome", "ok"),))] == 1
    assert got[(f"{p}_last_run_outcome", (("outcome", "failed"),))] == 0
    assert got[(f"{p}_last_run_orders", (("result", "cancelled"),))] == 2
    assert got[(f"{p}_last_run_orders", (("result", "replaced"),))] == 1
    assert got[(f"{p}_last_run_orders", (("result", "skipped"),))] == 1
    assert got[(f"{p}_last_run_orders_by_reason", (("reason", "open_at_broker"),))] == 1
    assert got[(f"{p}_last_run_orders_by_reason", (("reason", "invalid_order"),))] == 1
    assert got[(f"{p}_last_run_orders_by_reason", (("reason", "price_deviation"),))] == 0
    assert got[(f"{p}_runs_24h", (("outcome", "ok"),))] == 2
    assert got[(f"{p}_orders_24h", (("result", "replaced"),))] == 4
    assert got[(f"{p}_last_success_timestamp_seconds", ())] >= CLOCK.timestamp()
    assert got[(f"{p}_last_run_duration_seconds", ())] >= 0
    assert not list(path.parent.glob("*.tmp*"))  # written atomically: no temp file left


def test_metrics_of_a_failed_run(trading, tmp_path: Path) -> None:
    TradeSettings.objects.update(auto_recovery={"max_replacements_per_sweep": 1})
    stale_order()
    stale_order()
    path = tmp_path / "m.prom"
    run(path, expect=3)
    got = samples(path)
    assert got[("tradeops_auto_recover_last_run_outcome", (("outcome", "breaker_open"),))] == 1
    assert got[("tradeops_auto_recover_last_run_orders_by_reason", (("reason", "circuit_open"),))] == 2
    assert got[("tradeops_auto_recover_last_success_timestamp_seconds", ())] == 0


def test_metrics_file_replaces_the_previous_one(trading, tmp_path: Path) -> None:
    path = tmp_path / "m.prom"
    path.write_text("garbage that is not Prometheus text\n")
    factories.TradeOrderFactory()  # not stale: nothing to do
    run(path)
    assert "garbage" not in path.read_text()
    assert samples(path)[("tradeops_auto_recover_last_run_orders", (("result", "scanned"),))] == 0


P = "tradeops_auto_recover"


def test_a_blocked_run_says_blocked_and_by_which_gate_keeping_the_last_success(
    trading, tmp_path: Path
) -> None:
    import shutil

    path = tmp_path / "tradeops.prom"
    run(path)  # ok: nothing stale
    success = samples(path)[(f"{P}_last_success_timestamp_seconds", ())]
    assert success >= CLOCK.timestamp()
    stale_order()
    shutil.rmtree(trading.root)
    run(path, expect=5)
    got = samples(path)
    assert got[(f"{P}_last_run_outcome", (("outcome", "blocked"),))] == 1
    assert got[(f"{P}_last_run_outcome", (("outcome", "ok"),))] == 0
    assert got[(f"{P}_last_run_blocked", (("gate", "broker_evidence_unavailable"),))] == 1
    assert got[(f"{P}_last_run_blocked", (("gate", "ib_unreachable"),))] == 0
    assert got[(f"{P}_last_success_timestamp_seconds", ())] == success
    assert got[(f"{P}_stale_orders", ())] == 1


def test_the_stale_backlog_is_counted_exactly_past_the_limit(trading, tmp_path: Path) -> None:
    for _ in range(3):
        stale_order()
    stale_order(age=5)  # not stale yet
    path = tmp_path / "m.prom"
    call_command("auto_recover", "--limit", "1", "--metrics-file", str(path), now=CLOCK, stdout=io.StringIO())
    got = samples(path)
    assert got[(f"{P}_last_run_orders", (("result", "cancelled"),))] == 1
    assert got[(f"{P}_stale_orders", ())] == 2


def test_an_over_budget_run_says_what_it_left(trading, tmp_path: Path) -> None:
    for _ in range(2):
        stale_order()
    path = tmp_path / "m.prom"
    with pytest.raises(SystemExit) as raised:
        call_command(
            "auto_recover",
            "--max-seconds",
            "0.000001",
            "--metrics-file",
            str(path),
            now=CLOCK,
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )
    assert raised.value.code == 6
    got = samples(path)
    assert got[(f"{P}_last_run_outcome", (("outcome", "over_budget"),))] == 1
    assert got[(f"{P}_last_run_left_for_next_run", ())] == 2
    assert got[(f"{P}_stale_orders", ())] == 2


def test_the_host_state_file_is_written_every_run_beside_the_metrics(trading, tmp_path: Path) -> None:
    from recovery.db.models import SweepRun
    from recovery.ops.metrics import metrics_state_path

    path = tmp_path / "textfile" / "tradeops.prom"
    state = metrics_state_path(path)
    assert state == tmp_path / "textfile" / "tradeops.state.json"
    state.parent.mkdir()
    state.write_text("{not json")  # a damaged file is ignored and written anew
    run(path)
    kept = json.loads(state.read_text())
    ended = SweepRun.objects.get().ended_at.timestamp()
    assert kept == {
        "blocked_by": None,
        "last_outcome": "ok",
        "last_run": CLOCK.timestamp(),
        "last_success": ended,
    }
    assert not list(state.parent.glob("*.tmp"))


def test_the_kept_last_success_stands_in_when_the_heartbeat_has_none(trading, tmp_path: Path) -> None:
    """This host's kept success (e.g. its heartbeat rows were pruned or never written)."""
    from recovery.ops.metrics import metrics_state_path

    path = tmp_path / "m.prom"
    kept_at = (CLOCK - dt.timedelta(hours=1)).timestamp()
    metrics_state_path(path).write_text(json.dumps({"last_success": kept_at, "last_outcome": "ok"}))
    TradeSettings.objects.update(auto_recovery={"max_replacements_per_sweep": 1})
    stale_order()
    stale_order()
    run(path, expect=3)
    assert samples(path)[(f"{P}_last_success_timestamp_seconds", ())] == kept_at


@pytest.mark.processes
def test_a_lost_database_keeps_the_last_success_in_the_metrics(trading, tmp_path: Path) -> None:
    """One ok run here, then cron's next run finds no database: its metrics still carry the
    last success (the alert on it has data), and say could_not_run. Any wall clock: the
    process stops at the connection, and the success it reports is the one kept at CLOCK."""
    from recovery.tests.test_processes import manage

    path = tmp_path / "tradeops.prom"
    run(path)
    success = samples(path)[(f"{P}_last_success_timestamp_seconds", ())]
    result = manage(
        "auto_recover",
        "-v",
        "0",
        "--metrics-file",
        str(path),
        database_url="sqlite:////nonexistent-folder/for/sure/db.sqlite3",
    )
    assert result.returncode == 2, result.stderr
    got = samples(path)
    assert got[(f"{P}_last_run_outcome", (("outcome", "could_not_run"),))] == 1
    assert got[(f"{P}_last_success_timestamp_seconds", ())] == success
    assert (f"{P}_stale_orders", ()) not in got
