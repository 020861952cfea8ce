"""One process of the proof tests (test_proof_concurrency.py, test_proof_crashes.py).

    python -m recovery.tests.proof_worker sweep --actor proof-1 --limit 1000 --now <iso> ...
    python -m recovery.tests.proof_worker admin --ids 4,5,6 ...
    python -m recovery.tests.proof_worker executor --seed 7 --stop <file> ...

Run with DJANGO_SETTINGS_MODULE=tradeops.settings_test and DATABASE_URL naming the *test*
database. Every role warms up first (Django, its connection, the NYSE calendar), creates
its --ready file, waits for the --go file, does its work and prints one JSON line on
stdout; so processes started one after another begin their work within milliseconds.

- sweep: sweep_run(now=--now or the real clock, actor=--actor, limit=--limit), as a
  second cron host would run it (no named lock: it does not hold across hosts).
- admin: sweep_run_recorded(actor="admin:ops", order_ids=...), as the admin's
  confirmed recovery of selected orders calls it.
- executor: the trading backend's executor until the --stop file appears: picks random
  NEW orders and acknowledges each with a conditional UPDATE in its own commit.

The parent's side of the same protocol (starting, releasing, reading the processes) is
at the bottom of this module.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ADMIN_ACTOR = "admin:ops"
IB_ORDER_ID_BASE = 9_000_000  # the executor's acknowledgements: ib_order_id = base + order id
POLL_SECONDS = 0.001
WAIT_SECONDS = 120  # how long a worker waits for its cue: a safety net, never reached when all is well


# --- the worker ---------------------------------------------------------------------


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"proof_worker: {path} never appeared")
        time.sleep(POLL_SECONDS)


def _warm_up(args: argparse.Namespace, *, now: dt.datetime) -> None:
    """Everything slow that is not the work itself, then the barrier."""
    from django.db import connections

    from recovery.db.routers import trading_alias
    from recovery.gates.market_hours import market_state_get

    connections[trading_alias()].ensure_connection()
    connections["default"].ensure_connection()
    market_state_get(now=now)  # builds the process-wide XNYS calendar (~0.3 s)
    args.ready.touch()
    _wait_for(args.go)


def _sweep(args: argparse.Namespace) -> dict[str, Any]:
    from django.utils import timezone

    from recovery.services import sweep_run

    now = dt.datetime.fromisoformat(args.now) if args.now else None
    written_at = _writes_recorded()
    _warm_up(args, now=now or timezone.now())
    started = time.time()
    result = sweep_run(now=now or timezone.now(), actor=args.actor, limit=args.limit)
    return {
        "role": "sweep",
        "actor": args.actor,
        **_result_facts(result),
        "written_at": written_at,
        "evidence_reads_again": result.evidence_reads_again,
        "started": started,
        "ended": time.time(),
    }


def _writes_recorded() -> dict[int, float]:
    """When (wall clock, after its commit) each order this process cancelled was written."""
    from recovery.services import fresh
    from recovery.sweep.decisions import Action

    written_at: dict[int, float] = {}
    real = fresh.order_write

    def recording(*args: Any, **kwargs: Any) -> Any:
        outcome = real(*args, **kwargs)
        if outcome.decision in (Action.CANCEL, Action.REPLACE):
            written_at[outcome.id] = time.time()
        return outcome

    fresh.order_write = recording
    return written_at


def _admin(args: argparse.Namespace) -> dict[str, Any]:
    from django.utils import timezone

    from recovery.ops.runs import sweep_run_recorded

    ids = [int(i) for i in args.ids.split(",") if i]
    _warm_up(args, now=timezone.now())
    started = time.time()
    report = sweep_run_recorded(
        now=timezone.now(), actor=ADMIN_ACTOR, order_ids=ids, confirmed_replacements=args.confirmed
    )
    facts = _result_facts(report.result) if report.result is not None else {}
    return {
        "role": "admin",
        "actor": ADMIN_ACTOR,
        "outcome": str(report.outcome),
        "message": report.message,
        **facts,
        "started": started,
        "ended": time.time(),
    }


def _result_facts(result: Any) -> dict[str, Any]:
    from recovery.sweep.decisions import Action, Reason

    return {
        **result.counts(),
        "reasons": result.reasons(),
        "circuit_open": result.circuit_open,
        "cancelled_ids": [o.id for o in result.orders if o.decision in (Action.CANCEL, Action.REPLACE)],
        "replacements": [[o.id, o.replacement_id] for o in result.orders if o.decision is Action.REPLACE],
        # Left NEW and untouched: the backend's loop would not have sent their replacements (10b).
        "held_ids": [o.id for o in result.orders if o.reason is Reason.BACKEND_SENDER_UNAVAILABLE],
        "left_alone": len(result.left_alone),
    }


def _executor(args: argparse.Namespace) -> dict[str, Any]:
    from django.db import DatabaseError, connections, transaction
    from django.utils import timezone

    from recovery.db.errors import ErrorKind, error_kind
    from recovery.db.routers import trading_alias

    alias = trading_alias()
    rng = random.Random(args.seed)
    acknowledged: list[tuple[int, float]] = []
    lost = errors = reconnects = 0
    _warm_up(args, now=timezone.now())
    started = time.time()

    def reconnect(error: DatabaseError) -> None:
        # The backend's executor reconnects when its connection drops (a Galera node may
        # close a client's connection under load); three in a row is a real outage.
        nonlocal reconnects
        reconnects += 1
        if reconnects > 3:
            raise error
        connections[alias].close()
        time.sleep(0.2)

    while not args.stop.exists():
        try:
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT id FROM trade_orders WHERE status = 'NEW' AND ib_order_id IS NULL")
                new_ids = [row[0] for row in cursor.fetchall()]
        except DatabaseError as error:
            if error_kind(error) is not ErrorKind.CONNECTION:
                raise
            reconnect(error)
            continue
        for order_id in rng.sample(new_ids, min(len(new_ids), args.batch)):
            # Stamped before the UPDATE is sent, not after its commit: a sweep that found
            # the row locked by this very UPDATE may end while the commit is on its way.
            sent_at = time.time()
            try:
                with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
                    cursor.execute(
                        "UPDATE trade_orders SET ib_order_id = %s, status = 'SUBMITTED' "
                        "WHERE id = %s AND status = 'NEW'",
                        [IB_ORDER_ID_BASE + order_id, order_id],
                    )
                    changed = cursor.rowcount
            except DatabaseError as error:
                if error_kind(error) is not ErrorKind.CONNECTION:
                    errors += 1  # a deadlock or lock wait: the backend would retry later
                    continue
                # The commit may or may not have happened: the row says which.
                reconnect(error)
                with connections[alias].cursor() as cursor:
                    cursor.execute("SELECT ib_order_id FROM trade_orders WHERE id = %s", [order_id])
                    changed = int(cursor.fetchone()[0] == IB_ORDER_ID_BASE + order_id)
            if changed == 1:
                acknowledged.append((order_id, sent_at))
            else:
                lost += 1  # a sweep cancelled it first
            time.sleep(args.pause)
        if not new_ids:
            time.sleep(args.pause)
    return {
        "role": "executor",
        "acknowledged": [order_id for order_id, _ in acknowledged],
        "acknowledged_sent_at": [at for _, at in acknowledged],
        "lost": lost,
        "errors": errors,
        "reconnects": reconnects,
        "started": started,
        "ended": time.time(),
    }


ROLES = {"sweep": _sweep, "admin": _admin, "executor": _executor}


def _arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="proof_worker")
    parser.add_argument("role", choices=sorted(ROLES))
    parser.add_argument("--ready", type=Path, required=True, help="created once warmed up")
    parser.add_argument("--go", type=Path, required=True, help="the work starts when it appears")
    parser.add_argument("--stop", type=Path, help="executor: stop when it appears")
    parser.add_argument("--now", help="sweep: the clock, ISO-8601 with offset (default: real time)")
    parser.add_argument("--actor", default="proof")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--ids", default="", help="admin: the selected order ids, comma separated")
    parser.add_argument("--confirmed", type=int, help="admin: confirmed replacements (breaker)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=5, help="executor: acknowledgements per look")
    parser.add_argument("--pause", type=float, default=0.005, help="executor: seconds between two")
    args = parser.parse_args(argv)
    if args.role == "executor" and args.stop is None:
        parser.error("executor needs --stop")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeops.settings_test")
    import django

    django.setup()
    print(json.dumps(ROLES[args.role](args)), flush=True)
    return 0


# --- the parent's side --------------------------------------------------------------


def database_url() -> str:
    """DATABASE_URL of the test database the parent's trading alias is connected to."""
    from django.db import connections

    from recovery.db.routers import trading_alias

    s = connections[trading_alias()].settings_dict
    password = f":{s['PASSWORD']}" if s["PASSWORD"] else ""
    return f"mysql://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 3306}/{s['NAME']}"


def process_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "TRADING_DATABASE_URL"}}
    env.update(SECRET_KEY="proof-tests", DATABASE_URL=database_url(), RECOVERY_LOG_LEVEL="WARNING", **extra)
    return env


class Process:
    """A child process whose stdout/stderr go to files (no pipe to fill up and block it)."""

    def __init__(self, name: str, command: list[str], *, folder: Path, env: dict[str, str], cwd: str) -> None:
        self.name = name
        self.out, self.err = folder / f"{name}.out", folder / f"{name}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.popen = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=cwd)

    def wait(self, timeout: float = WAIT_SECONDS) -> int:
        return self.popen.wait(timeout)

    def stderr(self) -> str:
        return self.err.read_text()

    def json(self, *, returncodes: tuple[int, ...] = (0,)) -> dict[str, Any]:
        """The process's one JSON line, once it exited with one of `returncodes`."""
        code = self.wait()
        assert code in returncodes, f"{self.name} exited {code}:\n{self.stderr()[-3000:]}"
        lines = [line for line in self.out.read_text().splitlines() if line.strip()]
        assert lines, f"{self.name} printed nothing:\n{self.stderr()[-3000:]}"
        return json.loads(lines[-1])


class Pack:
    """Worker processes released together: each warms up, says ready, waits for go."""

    def __init__(self, folder: Path, **env: str) -> None:
        self.folder = folder
        self.env = process_env(**env)
        self.go, self.stop = folder / "go", folder / "stop"
        self.workers: list[Process] = []

    def start(self, name: str, role: str, *args: str) -> Process:
        from django.conf import settings

        command = [sys.executable, "-m", "recovery.tests.proof_worker", role]
        command += ["--ready", str(self.folder / f"{name}.ready"), "--go", str(self.go), *args]
        if role == "executor":
            command += ["--stop", str(self.stop)]
        worker = Process(name, command, folder=self.folder, env=self.env, cwd=str(settings.BASE_DIR))
        self.workers.append(worker)
        return worker

    def manage(self, name: str, *args: str) -> Process:
        """`manage.py <args>` as cron runs it: its own settings, no working directory."""
        from django.conf import settings

        env = {**self.env, "DJANGO_SETTINGS_MODULE": "tradeops.settings"}
        command = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args]
        return Process(name, command, folder=self.folder, env=env, cwd="/")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        for worker in self.workers:
            while not (self.folder / f"{worker.name}.ready").exists():
                code = worker.popen.poll()
                assert code is None, f"{worker.name} exited {code} before ready:\n{worker.stderr()[-3000:]}"
                assert time.monotonic() < deadline, f"{worker.name} never got ready"
                time.sleep(0.01)

    def release(self) -> None:
        self.go.touch()

    def close(self) -> None:
        """Stop whatever still runs (after a failed assertion): no orphan keeps the database busy."""
        self.stop.touch()
        for worker in self.workers:
            if worker.popen.poll() is None:
                worker.popen.kill()
                worker.popen.wait()


if __name__ == "__main__":
    sys.exit(main())
