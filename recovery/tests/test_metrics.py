"""--metrics-file: Prometheus text format, parsed back with prometheus_client's own parser."""

from __future__ import annotations

import datetime as dt
import io
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
        with pytest.raises(CommandError):
            call_command(*args, now=CLOCK, stdout=io.StringIO())
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
    assert got[("tradeops_auto_recover_last_run_outcome", (("outcome", "circuit_open"),))] == 1
    assert got[("tradeops_auto_recover_last_run_orders_by_reason", (("reason", "circuit_open"),))] == 2
    assert got[("tradeops_auto_recover_last_success_timestamp_seconds", ())] == 0


def test_metrics_file_replaces_the_previous_one(trading, tmp_path: Path) -> None:
    path = tmp_path / "m.prom"
    path.write_text("garbage that is not Prometheus text\n")
    factories.TradeOrderFactory()  # not stale: nothing to do
    run(path)
    assert "garbage" not in path.read_text()
    assert samples(path)[("tradeops_auto_recover_last_run_orders", (("result", "scanned"),))] == 0
