"""Our replacements against the trading backend's own code: does it send each one, once?

Runs only when LEANQUANTHUB_BACKEND names a checkout of the backend (hellcatjack/LeanQuantHub);
skipped otherwise, saying why (CI cannot fetch it): `make test-backend LEANQUANTHUB_BACKEND=…`.

One scenario on a scratch MariaDB database (test_tradeops_backend_int17) and a scratch
bridge folder, in four steps:

1. the world: our reference DDL and patches, Django's tables (`migrate`), the backend's
   other tables and columns (its own models, backend_driver.py `schema`); ib_settings in
   'ib' mode on a loopback listener (our sweep's TCP probe); a bridge folder whose leader
   is ready (heartbeat and snapshots fresh) so the backend sends through commands/ and
   starts no Lean process; stale NEW direct orders (no submit command), an order of a
   finished run, a chain's first replacement (attempt 1 of 2), and a control: a direct
   order whose leader submit command is pending and expired, which our sweep leaves to the
   backend (rule 3b) and which the backend re-sends through its short-lived executor (the
   driver refuses every process start and reports it);
2. our `manage.py auto_recover --json`, a real process, as cron runs it;
3. the backend's direct-order loop, twice: `retry_pending_direct_orders(session,
   mode='paper', limit=200)` in its own virtualenv (backend_driver.py `send`);
4. a `submitted` result for each command it wrote, the originals' tags listed in a fresh
   `open_orders.json`, a Filled event for an original's tag in `execution_events.jsonl`,
   then its reconcilers (`reconcile`): nothing of an original may land on a replacement.

The clock: nothing here depends on the wall clock's hour or day. Ages are written by the
database's own clock (UTC_TIMESTAMP() - n seconds) and read against this host's, which is
the same machine; the settings allow re-placing outside regular hours
(allow_replace_outside_rth) and on another New York day (replace_same_trading_day_only
off); the backend's loop times its retries and command expiry relative to now. Under CI's
moved clock (TRADEOPS_CLOCK_OFFSET_SECONDS) it is skipped: the backend's virtualenv would
run at the real clock.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from recovery.tests import backend_harness as harness
from recovery.tests.test_processes import manage

pytestmark = [pytest.mark.processes, pytest.mark.backend]

SKIP = harness.skip_reason()
if SKIP:
    pytestmark.append(pytest.mark.skip(reason=SKIP))

SETTINGS = {
    "enabled": True,
    "new_timeout_seconds": 30,
    "max_auto_retries": 2,
    "max_price_deviation_pct": 5,
    "allow_replace_outside_rth": True,
    "replace_same_trading_day_only": False,
    "max_replacements_per_sweep": 50,
    "max_replacements_per_hour": 1000,
    "blackout_windows": [],
    "replace_run_orders": True,
    "auto_resume_partial_remaining": False,
    # One of the backend's own keys, kept by every write of ours.
    "unfilled_timeout_seconds": 600,
}
QUOTES = {"AAPL": 100.0, "MSFT": 401.0, "QQQ": 500.0, "IWM": 200.0, "SPY": 600.0}
POSITIONS = {"AAPL": 0.0, "MSFT": 50.0}
PROJECT = 7
RUN_PROJECT = 8
# What a replacement must not carry over from its original (issue 17, point 7).
FORBIDDEN_KEYS = {
    "broker_order_tag",
    "event_tag",
    "event_source",
    "positions_baseline",
    "submit_command",
    "sync_reason",
    "auto_recovery_cancel",
}
FORBIDDEN_PREFIXES = ("event_", "open_orders_")
DIRECT_RETRY = {"pending": True, "reason": "auto_recovery", "count": 0}

DIRECT_MKT = "int17-direct-mkt"
DIRECT_LMT = "int17-direct-lmt"
RUN_ORDER = "int17-run-order"
CHAIN_ROOT = "int17-chain"
CHAIN_R1 = "int17-chain-r1"
CONTROL = "int17-ctl-leader"
RECOVERED = (DIRECT_MKT, DIRECT_LMT, RUN_ORDER, CHAIN_R1)


@dataclass
class World:
    """Everything the scenario did and saw, for the tests below and the report."""

    folder: Path
    bridge: Path
    database: harness.Database
    backend: harness.Backend | None = None
    ids: dict[str, int] = field(default_factory=dict)
    run_id: int | None = None
    schema: dict[str, Any] = field(default_factory=dict)
    check: dict[str, Any] = field(default_factory=dict)
    sweep: dict[str, Any] = field(default_factory=dict)
    sweep_code: int | None = None
    sweep_stderr: str = ""
    as_written: dict[str, dict[str, Any]] = field(default_factory=dict)  # rows right after our sweep
    send: dict[str, Any] = field(default_factory=dict)
    commands_before: set[str] = field(default_factory=set)
    commands: dict[str, dict[str, Any]] = field(default_factory=dict)  # written by the backend
    after_send: dict[str, dict[str, Any]] = field(default_factory=dict)
    results_written: list[str] = field(default_factory=list)
    reconcile: dict[str, Any] = field(default_factory=dict)
    after_reconcile: dict[str, dict[str, Any]] = field(default_factory=dict)
    fills: list[dict[str, Any]] = field(default_factory=list)

    def replacements(self) -> dict[str, str]:
        """original client id -> replacement client id, as our sweep reported them."""
        return {
            o["client_order_id"]: o["replacement_client_order_id"]
            for o in self.sweep.get("orders", [])
            if o.get("decision") == "replace" and o.get("replacement_client_order_id")
        }

    def report(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "ids": self.ids,
            "run_id": self.run_id,
            "check": self.check,
            "schema": self.schema,
            "sweep_exit_code": self.sweep_code,
            "sweep_decisions": {
                o["client_order_id"]: [o["decision"], o["reason"], o.get("replacement_client_order_id")]
                for o in self.sweep.get("orders", [])
            },
            "replacements_as_written": {
                r: self.as_written.get(r, {}).get("params") for r in self.replacements().values()
            },
            "send": self.send,
            "commands": self.commands,
            "results_written": self.results_written,
            "reconcile": self.reconcile,
            "status_after_send": {k: v["status"] for k, v in self.after_send.items()},
            "status_after_reconcile": {k: v["status"] for k, v in self.after_reconcile.items()},
            "fills": self.fills,
        }


def _ago(seconds: int) -> str:
    return harness.iso_z(harness.now_utc() - dt.timedelta(seconds=seconds))


def _order(db: harness.Database, client: str, *, age: int, params: dict[str, Any], **fields: Any) -> int:
    row = {
        "run_id": None,
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": 10,
        "order_type": "MKT",
        "limit_price": None,
        "status": "NEW",
        **fields,
    }
    return db.execute(
        "INSERT INTO trade_orders (run_id, client_order_id, symbol, side, quantity, order_type, limit_price,"
        " status, filled_quantity, params, created_at, updated_at) VALUES"
        " (%s, %s, %s, %s, %s, %s, %s, %s, 0, %s, UTC_TIMESTAMP() - INTERVAL %s SECOND,"
        " UTC_TIMESTAMP() - INTERVAL %s SECOND)",
        (
            row["run_id"], client, row["symbol"], row["side"], row["quantity"], row["order_type"],
            row["limit_price"], row["status"], json.dumps(params), age, age,
        ),
    )  # fmt: skip


def scenario_create(world: World, *, ib_port: int) -> None:
    db, bridge = world.database, world.bridge
    db.execute(
        "INSERT INTO trade_settings (risk_defaults, execution_data_source, auto_recovery)"
        " VALUES ('{}', 'ib', %s)",
        (json.dumps(SETTINGS),),
    )
    db.execute(
        "INSERT INTO ib_settings (host, port, mode, api_mode) VALUES ('127.0.0.1', %s, 'paper', 'ib')",
        (ib_port,),
    )
    run_folder = bridge / "run_int17"
    run_folder.mkdir()
    run_params = {
        "lean_execution": {"output_dir": str(run_folder)},
        "allow_outside_rth": True,
        "adaptive_priority": "Urgent",
    }
    world.run_id = db.execute(
        "INSERT INTO trade_runs (project_id, decision_snapshot_id, mode, status, params, created_at,"
        " ended_at) VALUES (%s, 11, 'paper', 'done', %s, UTC_TIMESTAMP() - INTERVAL 900 SECOND,"
        " UTC_TIMESTAMP() - INTERVAL 600 SECOND)",
        (RUN_PROJECT, json.dumps(run_params)),
    )
    direct = {"source": "direct", "mode": "paper", "project_id": PROJECT}
    ids = world.ids
    # A direct order the backend wrote and never sent (no submit command), with keys that
    # tie evidence to it: none of them may ride along into its replacement.
    ids[DIRECT_MKT] = _order(
        db,
        DIRECT_MKT,
        age=300,
        params={
            **direct,
            "broker_order_tag": DIRECT_MKT,
            "event_tag": DIRECT_MKT,
            "event_source": "lean_open_orders",
            "event_time": _ago(290),
            "open_orders_missing_since": _ago(290),
            "positions_baseline": {"refreshed_at": _ago(300), "items": [{"symbol": "AAPL", "quantity": 0.0}]},
            "note": "kept",
        },
    )
    ids[DIRECT_LMT] = _order(
        db,
        DIRECT_LMT,
        age=280,
        symbol="MSFT",
        side="SELL",
        quantity=5,
        order_type="LMT",
        limit_price=400.0,
        params={**direct, "broker_order_tag": DIRECT_LMT, "event_tag": DIRECT_LMT},
    )
    # An order of a finished run: re-placed as a direct order (replace_run_orders, no partial resume).
    ids[RUN_ORDER] = _order(
        db, RUN_ORDER, age=260, run_id=world.run_id, symbol="QQQ", quantity=3, params={"strategy": "int17"}
    )
    # A chain: its root cancelled by an earlier sweep, its first replacement stale now, written
    # as an earlier version of the sweep wrote it (the root's tags copied along).
    ids[CHAIN_ROOT] = _order(
        db,
        CHAIN_ROOT,
        age=900,
        status="CANCELED",
        symbol="IWM",
        quantity=4,
        params={
            **direct,
            "broker_order_tag": CHAIN_ROOT,
            "event_tag": CHAIN_ROOT,
            "auto_recovery_cancel": True,
            "auto_recovery": {"last_action": "cancel", "last_reason": "replaced", "sweep_id": "earlier"},
        },
    )
    chain = {
        "attempts": 1,
        "origin_order_id": ids[CHAIN_ROOT],
        "origin_client_order_id": CHAIN_ROOT,
        "root_order_id": ids[CHAIN_ROOT],
        "root_client_order_id": CHAIN_ROOT,
        "triggered_at": _ago(240),
        "sweep_id": "earlier",
    }
    ids[CHAIN_R1] = _order(
        db,
        CHAIN_R1,
        age=240,
        symbol="IWM",
        quantity=4,
        params={**direct, "broker_order_tag": CHAIN_ROOT, "event_tag": CHAIN_ROOT, "auto_recovery": chain},
    )
    # The control: its leader submit command pending and expired. Ours leaves it (rule 3b);
    # the backend's loop re-sends it itself through its short-lived executor.
    commands = bridge / "commands"
    commands.mkdir()
    ids[CONTROL] = _order(db, CONTROL, age=700, symbol="SPY", quantity=1, params={})
    command_id = f"submit_order_{ids[CONTROL]}_1000"
    command = {
        "command_id": command_id,
        "type": "submit_order",
        "symbol": "SPY",
        "quantity": 1.0,
        "tag": CONTROL,
        "order_type": "MKT",
        "order_id": ids[CONTROL],
        "requested_at": _ago(600),
        "expires_at": _ago(480),
    }
    path = commands / f"{command_id}.json"
    path.write_text(json.dumps(command))
    old = time.time() - 600  # older than the loop's 300 s look-back: not a stuck command
    os.utime(path, (old, old))
    control_params = {
        **direct,
        "broker_order_tag": CONTROL,
        "event_tag": CONTROL,
        "event_source": "lean_command",
        "submit_command": {
            "pending": True,
            "command_id": command_id,
            "command_path": str(path),
            "requested_at": command["requested_at"],
            "expires_at": command["expires_at"],
            "source": "leader_command",
        },
    }
    db.execute(
        "UPDATE trade_orders SET params = %s WHERE id = %s", (json.dumps(control_params), ids[CONTROL])
    )


def _results_write(world: World) -> None:
    """The bridge's answer to every command the backend wrote: submitted (no broker ids, so
    its IB backfill has nothing to ask the gateway)."""
    results = world.bridge / "command_results"
    results.mkdir(exist_ok=True)
    for command in world.commands.values():
        command_id = command["command_id"]
        payload = {"command_id": command_id, "status": "submitted", "processed_at": _ago(0)}
        (results / f"{command_id}.json").write_text(json.dumps(payload))
        world.results_written.append(command_id)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("int17")
    data_root = folder / "data"
    bridge = data_root / "lean_bridge"  # the backend's resolve_bridge_root(): <DATA_ROOT>/lean_bridge
    bridge.mkdir(parents=True)
    (folder / "artifacts").mkdir()
    database = harness.Database()
    world = World(folder=folder, bridge=bridge, database=database)
    python = harness.venv_python()
    backend = harness.Backend(
        python=python, database=database, data_root=data_root, artifact_root=folder / "artifacts"
    )
    world.backend = backend
    database.create()
    try:
        migrated = manage("migrate", "--no-input", database_url=database.url())
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        schema = backend.call("schema")
        assert schema["returncode"] == 0, schema
        world.schema = schema["result"]
        with harness.loopback_listener() as port:
            scenario_create(world, ib_port=port)
            harness.bridge_fresh(bridge, quotes=QUOTES, positions=POSITIONS)
            check = backend.call("check")
            assert check["returncode"] == 0, check
            world.check = check["result"]
            done = manage(
                "auto_recover",
                "--json",
                database_url=database.url(),
                LEAN_BRIDGE_ROOT=str(bridge),
                AUTO_RECOVER_LOCK_DIR=str(folder / "locks"),
                RECOVERY_LOG_LEVEL="WARNING",
            )
        world.sweep_code, world.sweep_stderr = done.returncode, done.stderr
        world.sweep = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
        world.as_written = database.orders()
        world.commands_before = set(harness.command_files(bridge))
        harness.bridge_fresh(bridge, quotes=QUOTES, positions=POSITIONS)
        world.send = backend.call("send")
        written = harness.command_files(bridge)
        world.commands = {n: body for n, body in written.items() if n not in world.commands_before}
        world.after_send = database.orders()
        _results_write(world)
        originals_tags = [DIRECT_MKT, DIRECT_LMT, CHAIN_ROOT, RUN_ORDER]
        harness.bridge_fresh(bridge, quotes=QUOTES, positions=POSITIONS, open_tags=originals_tags)
        event = {"tag": DIRECT_MKT, "status": "Filled", "filled": 10, "fill_price": 100.0, "time": _ago(0)}
        (bridge / "execution_events.jsonl").write_text(json.dumps(event) + "\n")
        world.reconcile = backend.call("reconcile")
        world.after_reconcile = database.orders()
        world.fills = database.rows("SELECT order_id, fill_quantity, fill_price, exec_id FROM trade_fills")
        yield world
    finally:
        report = folder / "int17-report.json"
        report.write_text(json.dumps(world.report(), indent=2, default=str))
        print(f"\nintegration report: {report}")
        if not os.environ.get("LEANQUANTHUB_KEEP_DATABASE"):
            database.drop()


# --- the tests -------------------------------------------------------------------------


def test_our_sweep_replaces_the_stale_orders_and_leaves_the_control_to_the_backend(world: World) -> None:
    assert world.sweep_code == 0, world.sweep_stderr[-3000:]
    decisions = {o["client_order_id"]: (o["decision"], o["reason"]) for o in world.sweep["orders"]}
    assert {c: decisions.get(c) for c in RECOVERED} == dict.fromkeys(RECOVERED, ("replace", "replaced"))
    assert decisions[CONTROL] == ("skip", "owned_by_backend")
    assert set(world.replacements()) == set(RECOVERED)
    assert world.replacements()[CHAIN_R1] == f"{CHAIN_ROOT}-r2"
    for original in RECOVERED:
        assert world.as_written[original]["status"] == "CANCELED"


def test_a_replacement_is_written_as_the_backends_direct_order_loop_sends_it(world: World) -> None:
    """Issue 17, point 7: no run, retry pending and due now, mode and project, nothing that ties
    the original's broker evidence to it."""
    problems = {}
    for original, client in world.replacements().items():
        row = world.as_written[client]
        params = row["params"]
        found = []
        if row["run_id"] is not None:
            found.append(f"run_id {row['run_id']}")
        if params.get("direct_retry") != DIRECT_RETRY:
            found.append(f"direct_retry {params.get('direct_retry')!r}")
        carried = sorted(k for k in params if k in FORBIDDEN_KEYS or k.startswith(FORBIDDEN_PREFIXES))
        if carried:
            found.append(f"carries {carried}")
        expected_project = RUN_PROJECT if original == RUN_ORDER else PROJECT
        if (params.get("mode"), params.get("project_id")) != ("paper", expected_project):
            found.append(f"mode/project {params.get('mode')!r}/{params.get('project_id')!r}")
        if original == RUN_ORDER:
            chain = params.get("auto_recovery") or {}
            run_keys = (
                chain.get("origin_run_id"),
                params.get("allow_outside_rth"),
                params.get("adaptive_priority"),
            )
            if run_keys != (world.run_id, True, "Urgent"):
                found.append(f"origin_run_id/allow_outside_rth/adaptive_priority {run_keys!r}")
        if found:
            problems[client] = found
    assert problems == {}
    chain = world.as_written[f"{CHAIN_ROOT}-r2"]["params"]["auto_recovery"]
    assert (chain["attempts"], chain["root_order_id"], chain["origin_order_id"]) == (
        2,
        world.ids[CHAIN_ROOT],
        world.ids[CHAIN_R1],
    )
    assert world.as_written[world.replacements()[DIRECT_MKT]]["params"]["note"] == "kept"


def test_the_backend_sends_each_replacement_once_and_no_original(world: World) -> None:
    """Two passes of its loop: one submit_order command per replacement, none for an original."""
    send = world.send
    assert send["returncode"] == 0, send.get("traceback") or send
    ids_by_client = {c: r["id"] for c, r in world.after_send.items()}
    replacement_ids = {ids_by_client[c]: c for c in world.replacements().values()}
    per_order: dict[Any, list[str]] = {}
    for name, command in world.commands.items():
        per_order.setdefault(command.get("order_id"), []).append(name)
    assert {replacement_ids.get(i, i): len(n) for i, n in per_order.items()} == dict.fromkeys(
        replacement_ids.values(), 1
    ), f"commands written: {sorted(world.commands)}"
    originals = {world.ids[c] for c in (*RECOVERED, CHAIN_ROOT, CONTROL)}
    assert originals & set(per_order) == set()
    second = send["result"]["retry_pending_direct_orders"][1]
    assert second["submitted"] == 0, second


def test_each_command_carries_its_replacements_own_tag_and_the_replacement_records_it(world: World) -> None:
    by_id = {r["id"]: r for r in world.after_send.values()}
    assert world.commands, "the backend wrote no submit_order command"
    for command in world.commands.values():
        order = by_id[command["order_id"]]
        params = order["params"]
        assert command["tag"] == order["client_order_id"]
        assert command["symbol"] == order["symbol"]
        signed = order["quantity"] if order["side"] == "BUY" else -order["quantity"]
        assert (command["quantity"], command["order_type"]) == (signed, order["order_type"])
        assert command.get("limit_price") == order["limit_price"]
        submit = params["submit_command"]
        assert (submit["command_id"], submit["pending"], submit["source"]) == (
            command["command_id"],
            True,
            "leader_command",
        )
        assert params["broker_order_tag"] == params["event_tag"] == order["client_order_id"]
        assert order["status"] == "NEW"
    run_replacement = world.after_send[world.replacements()[RUN_ORDER]]
    run_command = next(c for c in world.commands.values() if c["order_id"] == run_replacement["id"])
    assert (run_command["outside_rth"], run_command.get("adaptive_priority")) == (True, "Urgent")
    # Its own positions baseline, taken when it was sent, not the original's.
    mkt = world.after_send[world.replacements()[DIRECT_MKT]]["params"]
    original_baseline = world.as_written[DIRECT_MKT]["params"]["positions_baseline"]
    assert mkt["positions_baseline"]["refreshed_at"] != original_baseline["refreshed_at"]


def test_no_process_is_started_and_only_the_control_goes_the_short_lived_way(world: World) -> None:
    """The driver refuses every process start and signal; only the control's re-send may try one."""
    blocked = [b for call in world.backend.calls for b in call.get("blocked", [])]
    assert [b for b in blocked if b["kind"] != "process"] == []
    control_config = f"direct_order_{world.ids[CONTROL]}_config.json"
    assert [b["argv"] for b in blocked if not any(control_config in a for a in b["argv"])] == []
    control = world.after_send[CONTROL]
    assert control["status"] == "NEW"


def test_submit_results_mark_each_replacement_submitted_and_no_original(world: World) -> None:
    reconcile = world.reconcile
    assert reconcile["returncode"] == 0, reconcile.get("traceback") or reconcile
    results = reconcile["result"]["reconcile_direct_submit_command_results"]
    assert results["submitted"] == len(world.replacements()), results
    for client in world.replacements().values():
        row = world.after_reconcile[client]
        assert (row["status"], row["params"]["submit_command"]["status"]) == ("SUBMITTED", "submitted")
    # CANCELED; or REJECTED, were its own old submit command answered with a failure (issue 17,
    # point 7); or, for the one whose Filled event the bridge reported, FILLED by that event.
    ends = {o: world.after_reconcile[o]["status"] for o in (*RECOVERED, CHAIN_ROOT)}
    allowed = {o: {"CANCELED", "REJECTED"} | ({"FILLED"} if o == DIRECT_MKT else set()) for o in ends}
    assert {o: s for o, s in ends.items() if s not in allowed[o]} == {}


def test_the_originals_tags_at_the_broker_land_on_no_replacement(world: World) -> None:
    """open_orders.json lists the originals' tags and an original's Filled event arrives: the
    backend's open-orders sync and event ingest must pin neither on a replacement."""
    originals_tags = {DIRECT_MKT, DIRECT_LMT, CHAIN_ROOT, RUN_ORDER}
    replacement_rows = {c: world.after_reconcile[c] for c in world.replacements().values()}
    wrong: dict[str, list[str]] = {}
    for client, row in replacement_rows.items():
        params, found = row["params"], []
        tags = {params.get("event_tag"), params.get("broker_order_tag")} & originals_tags
        if tags:
            found.append(f"carries the original's tag {sorted(tags)}")
        if str(params.get("sync_reason", "")).startswith("present_in_open_orders"):
            found.append(f"{row['status']} by the open-orders sync ({params['sync_reason']})")
        if row["filled_quantity"]:
            found.append(f"filled {row['filled_quantity']}")
        if found:
            wrong[client] = found
    replacement_ids = {r["id"]: c for c, r in replacement_rows.items()}
    for fill in world.fills:
        if fill["order_id"] in replacement_ids:
            wrong.setdefault(replacement_ids[fill["order_id"]], []).append(f"fill {fill['exec_id']}")
    assert wrong == {}
    # The original's own fill is booked on the original, if anywhere.
    assert {f["order_id"] for f in world.fills} <= {world.ids[DIRECT_MKT]}
