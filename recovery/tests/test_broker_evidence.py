"""End to end: an order the broker's own files show is never cancelled or re-placed.

The in-process tests sweep at conftest.CLOCK (a Tuesday in regular hours); the one that
starts `manage.py` says in its docstring why its outcome holds at any wall-clock hour.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections, transaction
from django.utils import timezone

from recovery.db.audit import ACTION_CANCEL, ACTION_SWEEP
from recovery.db.models import AuditLog, TradeOrder, TradeSettings
from recovery.db.routers import trading_alias
from recovery.services import sweep_run
from recovery.services.order import MSG_EVIDENCE_CHANGED, SweepContext, order_recover
from recovery.services.plan import sweep_plan
from recovery.sweep.config import AutoRecoveryConfig
from recovery.sweep.results import SweepResult
from recovery.tests import factories
from recovery.tests.conftest import CLOCK, stale_order
from recovery.tests.evidence_cases import CLOSED, RECOVERED, SEEN, evidence_cases_build
from recovery.tests.test_processes import manage, url_of

pytestmark = [pytest.mark.django_db, pytest.mark.processes]


def run_command(now: dt.datetime = CLOCK, *args: str) -> dict[str, Any]:
    out = io.StringIO()
    call_command("auto_recover", "--json", *args, now=now, stdout=out)
    return json.loads(out.getvalue())


def by_client(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["client_order_id"]: o for o in result["orders"]}


def test_the_eight_kinds_of_evidence_keep_their_orders_the_others_recover_or_close(trading) -> None:
    TradeSettings.objects.update(auto_recovery={"replace_run_orders": True})  # some are run orders
    orders = evidence_cases_build(root=trading.root, now=CLOCK)
    result = run_command()
    outcomes = by_client(result)
    for name, reason in SEEN.items():
        entry = outcomes[f"ev-{name}"]
        assert (name, entry["decision"], entry["reason"]) == (name, "skip", reason)
        assert TradeOrder.objects.get(pk=orders[name].pk).status == "NEW"
    for name in RECOVERED:
        entry = outcomes[f"ev-{name}"]
        assert (name, entry["decision"]) == (name, "replace")
    for name in CLOSED:
        entry = outcomes[f"ev-{name}"]
        assert (name, entry["decision"], entry["reason"]) == (name, "cancel", "closed_at_broker")
    assert entry["evidence"]["closed"]["status"] == "CANCELED"
    assert (result["scanned"], result["cancelled"], result["replaced"], result["skipped"]) == (11, 3, 2, 8)
    # The evidence is named: file, tag, status, time.
    filled = outcomes["ev-run_filled"]
    assert filled["detail"] == (
        f"FILLED event, filled 10 for tag 'ev-run_filled' at 2026-11-24T15:58:05Z "
        f"in {trading.root / 'run_1' / 'execution_events.jsonl'}"
    )
    assert filled["evidence"]["seen"]["filled"] == 10
    assert outcomes["ev-broker_tag_listed"]["evidence"]["open"]["tag"] == "bt-777"
    # A rejected submit lets the order go, and its entry says why.
    rejected = trading.root / "command_results" / "submit_order_command_rejected.json"
    assert outcomes["ev-command_rejected"]["detail"] == (
        f"its submit failed: submit command result 'not_connected' in {rejected}"
    )
    submitted = outcomes["ev-command_submitted"]["evidence"]["seen"]
    assert submitted == {
        "kind": "command_result",
        "path": str(trading.root / "command_results" / "submit_order_command_submitted.json"),
        "status": "submitted",
    }
    # Audit rows only for the three recovered originals; a second run changes nothing.
    cancelled = set(AuditLog.objects.filter(action=ACTION_CANCEL).values_list("resource_id", flat=True))
    assert cancelled == {orders[n].pk for n in RECOVERED + CLOSED}
    rows = AuditLog.objects.count()
    again = run_command()
    assert (again["cancelled"], AuditLog.objects.count()) == (0, rows)


def test_the_sweep_audit_row_carries_the_evidence_of_each_skip(trading) -> None:
    evidence_cases_build(root=trading.root, now=CLOCK)
    run_command()
    row = AuditLog.objects.get(action=ACTION_SWEEP)
    detail = {o["client_order_id"]: o for o in row.detail["orders"]}
    assert detail["ev-root_submitted"]["evidence"]["seen"]["status"] == "SUBMITTED"


def test_a_missing_bridge_root_changes_nothing_and_says_so(trading, caplog) -> None:  # noqa: ANN001
    order = stale_order()
    shutil.rmtree(trading.root)
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit) as raised:  # blocked: exit 5, never "ok"
        call_command("auto_recover", "--json", now=CLOCK, stdout=out, stderr=err)
    assert raised.value.code == 5
    assert f"the bridge root {trading.root} does not exist" in err.getvalue()
    result = json.loads(out.getvalue())
    assert (result["outcome"], result["blocked_by"]) == ("blocked", "broker_evidence_unavailable")
    entry = by_client(result)[order.client_order_id]
    assert (entry["decision"], entry["reason"]) == ("skip", "broker_evidence_unavailable")
    assert entry["detail"] == f"the bridge root {trading.root} does not exist on this host"
    assert result["gates"]["broker_evidence"]["available"] is False
    assert TradeOrder.objects.get(pk=order.pk).status == "NEW"


def test_a_run_folder_missing_here_leaves_only_that_runs_orders(trading) -> None:
    TradeSettings.objects.update(auto_recovery={"replace_run_orders": True})
    gone = factories.TradeRunFactory(params={"lean_execution": {"output_dir": "/data/backend/run_9"}})
    here = factories.TradeRunFactory(params={"lean_execution": {"output_dir": str(trading.folder("run_10"))}})
    stuck = stale_order(run_id=gone.pk)
    fine = stale_order(run_id=here.pk)
    outcomes = by_client(run_command())
    assert outcomes[stuck.client_order_id]["reason"] == "broker_evidence_unavailable"
    assert "/data/backend/run_9 does not exist on this host" in outcomes[stuck.client_order_id]["detail"]
    assert outcomes[fine.client_order_id]["reason"] == "replaced"


def test_the_path_map_lets_the_sweep_find_the_backends_folders(trading, settings) -> None:  # noqa: ANN001
    settings.BRIDGE_PATH_MAP = (("/data/share/stock/data/lean_bridge", str(trading.root)),)
    orders = evidence_cases_build(
        root=trading.root, now=CLOCK, backend_prefix="/data/share/stock/data/lean_bridge"
    )
    outcomes = by_client(run_command())
    assert outcomes["ev-run_filled"]["reason"] == "seen_by_broker"
    assert TradeOrder.objects.get(pk=orders["run_filled"].pk).status == "NEW"


@pytest.mark.parametrize(
    "write",
    [
        lambda root: (root / "execution_events.jsonl").write_text('{"tag": "ord-x", "status": "Fil'),
        lambda root: (root / "open_orders.json").write_text("{broken"),
        lambda root: (root / "execution_events.jsonl").mkdir(),
    ],
    ids=["line being written", "snapshot not json", "events file is a folder"],
)
def test_evidence_that_cannot_be_read_leaves_the_order_alone(trading, write) -> None:  # noqa: ANN001
    order = stale_order(client_order_id="ord-x")
    write(trading.root)
    entry = by_client(run_command())["ord-x"]
    assert (entry["decision"], entry["reason"]) == ("skip", "broker_evidence_unreadable")
    assert TradeOrder.objects.get(pk=order.pk).status == "NEW"


def test_a_dry_run_shows_the_same_decisions(trading) -> None:
    evidence_cases_build(root=trading.root, now=CLOCK)
    dry = sweep_run(now=CLOCK, actor="test", dry_run=True)
    assert {o.client_order_id: str(o.reason) for o in dry.orders if o.decision.value == "skip"} == {
        f"ev-{n}": r for n, r in SEEN.items()
    }


def test_tags_changed_after_the_evidence_was_read_stop_the_write(trading) -> None:
    """The re-check under the row lock uses the sweep's evidence; new tags make it stale."""
    order = stale_order(client_order_id="ord-t")
    config = AutoRecoveryConfig()
    plan = sweep_plan(config=config, now=CLOCK, limit=10, order_ids=None)
    snapshot, decision = plan.decided[0]
    assert decision.replaces
    # Between the plan and the write, the backend gives the order a broker tag.
    TradeOrder.objects.filter(pk=order.pk).update(params={"broker_order_tag": "late-tag"})
    result = SweepResult("s", "test", False, CLOCK, config, [], {})
    context = SweepContext(
        gates=plan.state, config=config, runs=plan.runs, result=result, clock=lambda: CLOCK
    )
    with transaction.atomic(using=trading_alias()):
        outcome = order_recover(snapshot, decision, context=context)
    assert (str(outcome.reason), outcome.detail) == ("changed_concurrently", MSG_EVIDENCE_CHANGED)
    assert TradeOrder.objects.get(pk=order.pk).status == "NEW"


@pytest.mark.mysql
def test_the_eight_cases_through_manage_py_on_mariadb(committed_db, tmp_path: Path) -> None:
    """As cron runs it: a real process, the backend's layout on disk, at any wall-clock hour.

    The process reads the real clock, so the settings say what its outcome would otherwise
    take from the time of day: re-placing outside regular hours is allowed.
    """
    factories.TradeSettingsFactory(
        auto_recovery={
            "allow_replace_outside_rth": True,
            "replace_same_trading_day_only": False,
            "replace_run_orders": True,
        }
    )
    factories.IbSettingsFactory()
    root = tmp_path / "lean_bridge"
    root.mkdir()
    orders = evidence_cases_build(root=root, now=timezone.now())
    url = url_of(connections[trading_alias()].settings_dict)
    done = manage(
        "auto_recover",
        "--json",
        database_url=url,
        LEAN_BRIDGE_ROOT=str(root),
        AUTO_RECOVER_LOCK_DIR=str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    outcomes = by_client(result)
    assert {n: outcomes[f"ev-{n}"]["reason"] for n in SEEN} == SEEN
    assert {n: outcomes[f"ev-{n}"]["decision"] for n in RECOVERED} == dict.fromkeys(RECOVERED, "replace")
    assert {n: outcomes[f"ev-{n}"]["reason"] for n in CLOSED} == dict.fromkeys(CLOSED, "closed_at_broker")
    statuses = dict(
        TradeOrder.objects.filter(pk__in=[o.pk for o in orders.values()]).values_list(
            "client_order_id", "status"
        )
    )
    assert {n for n in orders if statuses[f"ev-{n}"] == "NEW"} == set(SEEN)
    assert {n for n in orders if statuses[f"ev-{n}"] == "CANCELED"} == set(RECOVERED + CLOSED)
    replacements = TradeOrder.objects.filter(client_order_id__in=[f"ev-{n}-r1" for n in RECOVERED + CLOSED])
    assert set(replacements.values_list("client_order_id", flat=True)) == {f"ev-{n}-r1" for n in RECOVERED}


def test_an_order_the_backend_would_book_filled_from_positions_stays_new(trading) -> None:  # noqa: ANN001
    """Its position moved the order's way since the baseline the backend took before sending."""
    baseline = {"refreshed_at": "2026-11-24T15:57:00Z", "items": [{"symbol": "AAPL", "quantity": 100}]}
    order = stale_order(
        client_order_id="pos-buy", side="BUY", symbol="AAPL", params={"positions_baseline": baseline}
    )
    payload = {
        "items": [{"symbol": "AAPL", "quantity": 110}],
        "stale": False,
        "refreshed_at": "2026-11-24T15:59:50Z",
    }
    (trading.root / "positions.json").write_text(json.dumps(payload))
    entry = by_client(run_command())["pos-buy"]
    assert (entry["decision"], entry["reason"]) == ("skip", "seen_by_broker")
    assert entry["evidence"]["seen"]["kind"] == "position"
    assert TradeOrder.objects.get(pk=order.pk).status == "NEW"
