"""The demo: a SQLite database with one order per row of the decision table, and sweeps over it.

Runs only on SQLite (the embedded default); it drops and rebuilds the trading tables,
so it is safe to run twice and must never touch a real trading database.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.db import connections, transaction
from django.test.utils import override_settings

from recovery.db.models import IbSettings, TradeGuardState, TradeOrder, TradeRun, TradeSettings
from recovery.db.routers import trading_alias
from recovery.db.schema import FIXTURES_DIR, trading_schema_build
from recovery.db.timestamps import iso_utc
from recovery.exceptions import UnsafeSchemaOperation
from recovery.gates.guard import NEW_YORK, trade_date_for
from recovery.gates.market_hours import market_state_get
from recovery.selectors import events_stores_clear
from recovery.services import sweep_run
from recovery.sweep.decisions import Reason
from recovery.sweep.results import SweepResult

DEMO_DIR = FIXTURES_DIR / "demo"
DEMO_ACTOR = "demo"
# Not shown by the demo: the two that need a second writer racing the sweep, and the clock
# gate, which compares a database *server's* clock with this host's (SQLite has none; the
# MariaDB tests show it: test_fresh_picture.py).
TABLE_REASONS = frozenset(Reason) - {Reason.CHANGED_CONCURRENTLY, Reason.WRITE_FAILED, Reason.CLOCK_SKEW}
MSG_NOT_SQLITE = "the demo runs only on SQLite (database {alias!r} is {vendor}); unset DATABASE_URL"


@dataclass(frozen=True)
class DemoRun:
    title: str
    result: SweepResult


def demo_clock(*, now: dt.datetime) -> dt.datetime:
    """11:00 New York on the latest NYSE session day whose 11:00 has passed."""
    day = now.astimezone(NEW_YORK).date()
    for _ in range(15):
        moment = dt.datetime.combine(day, dt.time(11, 0), tzinfo=NEW_YORK)
        if moment <= now and market_state_get(now=moment).is_open:
            return moment.astimezone(dt.UTC)
        day -= dt.timedelta(days=1)
    raise RuntimeError("no NYSE session in the last 15 days")  # the calendar says otherwise


def demo_bridge_root() -> Path:
    """The demo's bridge folder, beside the demo database (never the real LEAN_BRIDGE_ROOT)."""
    return Path(connections[trading_alias()].settings_dict["NAME"]).parent / "demo-bridge"


def demo_database_assert() -> None:
    """The demo's writes are for a SQLite database only: never a real trading database."""
    for alias in {"default", trading_alias()}:
        vendor = connections[alias].vendor
        if vendor != "sqlite":
            raise UnsafeSchemaOperation(MSG_NOT_SQLITE.format(alias=alias, vendor=vendor))


def demo_present() -> bool:
    """Whether `make demo` built this database: its trading tables hold the scenario's orders."""
    connection = connections[trading_alias()]
    if not Path(connection.settings_dict["NAME"]).is_file():
        return False  # (asking SQLite would create an empty file)
    if "trade_orders" not in connection.introspection.table_names():
        return False
    return TradeOrder.objects.filter(client_order_id__startswith="demo-").exists()


def demo_database_build() -> None:
    demo_database_assert()
    Path(connections[trading_alias()].settings_dict["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    trading_schema_build(using=trading_alias(), demo=True)
    call_command("migrate", verbosity=0)
    # Django's own tables too (heartbeats, sessions, logins, tokens, the admin's log): an admin
    # run of an earlier demo would otherwise report orders cancelled that are NEW again here.
    # The demo login is made again afterwards (demo_user_ensure).
    call_command("flush", interactive=False, verbosity=0, database="default")


def demo_data_load(*, clock: dt.datetime, bridge_root: Path) -> int:
    """Insert the scenario and write the bridge files stamped with `clock`; the order count."""
    scenario = json.loads((DEMO_DIR / "scenario.json").read_text())
    if bridge_root.exists():
        shutil.rmtree(bridge_root)  # the evidence files of an earlier demo would mislead this one
    events_stores_clear()  # and so would this host's ledgers of them
    bridge_root.mkdir(parents=True)
    TradeSettings.objects.create(**scenario["settings"], created_at=clock, updated_at=clock)
    IbSettings.objects.create(**scenario["ib_settings"])
    for run in scenario["runs"]:
        params = json.loads(json.dumps(run.pop("params", None)).replace("{bridge}", str(bridge_root)))
        TradeRun.objects.create(**run, params=params, created_at=clock, updated_at=clock)
    for guard in scenario["guard"]:
        TradeGuardState.objects.create(**guard, trade_date=trade_date_for(clock))
    ids: dict[str, int] = {}
    for spec in scenario["orders"]:
        ids[spec["client_order_id"]] = TradeOrder.objects.create(**_order_fields(spec, clock=clock)).pk
    _chains_link(ids)
    stamp = iso_utc(clock)
    for name, key in (("quotes.json", "updated_at"), ("open_orders.json", "refreshed_at")):
        payload = json.loads((DEMO_DIR / "bridge" / name).read_text())
        payload[key] = stamp
        (bridge_root / name).write_text(json.dumps(payload, indent=2))
    for name, spec in scenario["evidence"].items():
        # "{order:<client_order_id>}" stands for that order's id (direct_<id>/, direct:<id>).
        filled = json.loads(_ids_fill(json.dumps(spec), ids=ids))
        _evidence_write(bridge_root / _ids_fill(name, ids=ids), filled, clock=clock)
    return len(scenario["orders"])


def _ids_fill(text: str, *, ids: dict[str, int]) -> str:
    for client_order_id, order_id in ids.items():
        text = text.replace(f"{{order:{client_order_id}}}", str(order_id))
    return text


def _chains_link(ids: dict[str, int]) -> None:
    """Fill the chain ids of replacements from the client ids the scenario names."""
    for order in TradeOrder.objects.filter(client_order_id__in=list(ids)):
        recovery = (order.params or {}).get("auto_recovery")
        if not isinstance(recovery, dict) or "origin_client_order_id" not in recovery:
            continue
        recovery["origin_order_id"] = ids[recovery["origin_client_order_id"]]
        recovery["root_order_id"] = ids[recovery["root_client_order_id"]]
        order.save(update_fields=["params"])


def _evidence_write(path: Path, spec: dict[str, Any], *, clock: dt.datetime) -> None:
    """A file as the Lean processes write it: JSON lines (times from ages), or one JSON object."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if "json" in spec:
        path.write_text(json.dumps(spec["json"], indent=2))
        return
    lines = []
    for event in spec["lines"]:
        event = dict(event)
        event["time"] = iso_utc(clock - dt.timedelta(seconds=event.pop("age")))
        lines.append(json.dumps(event) + "\n")
    path.write_text("".join(lines) + spec.get("tail", ""))


def _order_fields(spec: dict[str, Any], *, clock: dt.datetime) -> dict[str, Any]:
    fields = {k: v for k, v in spec.items() if k not in {"age", "shows"}}
    created = clock - dt.timedelta(seconds=spec["age"])
    params = fields.pop("params", {})
    command = params.get("submit_command")
    if isinstance(command, dict):
        for key in ("requested_at", "expires_at"):
            if f"{key}_age" in command:
                command[key] = iso_utc(clock - dt.timedelta(seconds=command.pop(f"{key}_age")))
    return {**fields, "params": params, "created_at": created, "updated_at": created}


@contextmanager
def _rolled_back() -> Iterator[None]:
    """Change the demo database for one dry run, then undo the change."""
    with transaction.atomic(using=trading_alias()):
        yield
        transaction.set_rollback(True, using=trading_alias())


def _settings_change(**changes: Any) -> None:
    row = TradeSettings.objects.order_by("-id").first()
    row.auto_recovery = {**row.auto_recovery, **changes}
    row.save(update_fields=["auto_recovery"])


def _ib_down() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    IbSettings.objects.update(api_mode="ib", port=port)


def _at_new_york(clock: dt.datetime, hour: int, minute: int) -> dt.datetime:
    day = clock.astimezone(NEW_YORK).date()
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=NEW_YORK).astimezone(dt.UTC)


class LoopbackGateway:
    """A loopback listener standing in for the IB gateway: it accepts a connection and closes it.

    The sweep re-places only with api_mode 'ib' and a gateway that answers its TCP probe
    (rules 2 and 10b); the demo has none, so ib_settings points here while its sweeps run.
    The tests use the same stand-in (recovery.tests.gateway).
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._listener.settimeout(0.1)
        self._stop = threading.Event()
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="loopback-gateway", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
        self._listener.close()

    def __enter__(self) -> LoopbackGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def demo_gateway_stand_in() -> Iterator[int]:
    """ib_settings at a LoopbackGateway until the demo's sweeps (or its admin) are done."""
    with LoopbackGateway() as gateway:
        IbSettings.objects.update(port=gateway.port)
        yield gateway.port


def demo_sweeps_run(*, clock: dt.datetime, bridge_root: Path) -> list[DemoRun]:
    """What-if dry runs for the rules that hold for a whole sweep, then the real sweep twice."""
    what_ifs: list[tuple[str, Callable[[], None], dt.datetime]] = [
        ("what if auto_recovery.enabled were false", lambda: _settings_change(enabled=False), clock),
        ("what if it were 23:50 New York (blackout 23:45-00:15)", lambda: None, _at_new_york(clock, 23, 50)),
        ("what if the IB gateway were down", _ib_down, clock),
        ("what if it were 16:30 New York (after the close)", lambda: None, _at_new_york(clock, 16, 30)),
        (
            "what if max_replacements_per_sweep were 2",
            lambda: _settings_change(max_replacements_per_sweep=2),
            clock,
        ),
    ]
    runs = []
    with override_settings(LEAN_BRIDGE_ROOT=bridge_root), demo_gateway_stand_in():
        for title, change, when in what_ifs:
            with _rolled_back():
                change()
                runs.append(
                    DemoRun(f"{title} (dry run)", sweep_run(now=when, actor=DEMO_ACTOR, dry_run=True))
                )
        for title in ("the sweep, for real", "the same sweep again: it changes nothing"):
            runs.append(DemoRun(title, sweep_run(now=clock, actor=DEMO_ACTOR)))
    return runs


DEMO_USER, DEMO_PASSWORD = "demo", "demo"


def demo_user_ensure() -> None:
    """A superuser for the local demo admin (the demo runs on SQLite only)."""
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(
        username=DEMO_USER, defaults={"is_staff": True, "is_superuser": True}
    )
    user.set_password(DEMO_PASSWORD)
    user.save()


def reasons_shown(runs: list[DemoRun]) -> set[str]:
    return {str(o.reason) for run in runs for o in run.result.orders}
