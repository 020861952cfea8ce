"""Test harness: the trading tables come from the reference DDL, never from the models."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from recovery.db.routers import trading_alias
from recovery.db.schema import is_scratch_database, trading_schema_build, trading_tables_empty
from recovery.tests import factories

MYSQL_ONLY = "needs a real MySQL/MariaDB server; run with DATABASE_URL=mysql://root@127.0.0.1:3306/tradeops"


def is_mysql() -> bool:
    return connections[trading_alias()].vendor == "mysql"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if is_mysql():
        return
    skip = pytest.mark.skip(reason=MYSQL_ONLY)
    for item in items:
        if "mysql" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> str:
    connection = connections[trading_alias()]
    return f"tradeops: trading tables on {connection.vendor} (alias {trading_alias()!r})"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):  # noqa: ANN001, ANN201
    # DDL cannot run inside a test's transaction on either engine: build the unmanaged
    # tables once per session, from fixtures/ (MySQL: reference DDL + deploy patches).
    # Only when a test database was set up (a run with no django_db test creates none,
    # and the guard in recovery.db.schema would refuse the real database anyway).
    with django_db_blocker.unblock():
        if is_scratch_database(connections[trading_alias()]):
            trading_schema_build(using=trading_alias())


@pytest.fixture
def committed_db(transactional_db: None) -> Iterator[None]:
    """A transactional test whose trading rows are emptied before and after.

    Django's flush leaves unmanaged tables alone, so they are emptied here.
    """
    trading_tables_empty(using=trading_alias())
    yield
    trading_tables_empty(using=trading_alias())


# --- sweep fixtures ------------------------------------------------------------------

# Tuesday 2026-11-24, 11:00 New York: a normal NYSE session day, mid-session.
CLOCK = dt.datetime(2026, 11, 24, 16, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock() -> dt.datetime:
    return CLOCK


class Bridge:
    """Writes quotes.json / open_orders.json into the LEAN_BRIDGE_ROOT of the test."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _write(self, name: str, items: list[dict[str, Any]], at: dt.datetime, **extra: Any) -> None:
        payload = {"items": items, "stale": False, "updated_at": at.isoformat().replace("+00:00", "Z")}
        payload.update(extra)
        (self.root / name).write_text(json.dumps(payload))

    def quotes(self, prices: dict[str, float], *, at: dt.datetime = CLOCK, **extra: Any) -> None:
        items = [{"symbol": s, "data": {"last": p}} for s, p in prices.items()]
        self._write("quotes.json", items, at, **extra)

    def open_orders(self, tags: list[str], *, at: dt.datetime = CLOCK, **extra: Any) -> None:
        self._write("open_orders.json", [{"tag": t} for t in tags], at, **extra)

    def raw(self, name: str, text: str) -> None:
        (self.root / name).write_text(text)

    def folder(self, name: str) -> Path:
        """A folder beside the root's files: a run's output folder, direct_<id>, ..."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def events(self, events: list[dict[str, Any]], *, folder: Path | None = None, tail: str = "") -> Path:
        """Append execution events (one JSON object a line), as the Lean processes do."""
        path = (folder or self.root) / "execution_events.jsonl"
        with path.open("a") as handle:
            handle.writelines(json.dumps(e) + "\n" for e in events)
            handle.write(tail)
        return path

    def command_result(self, command_id: str, status: str, *, folder: Path | None = None) -> Path:
        results = (folder or self.root) / "command_results"
        results.mkdir(exist_ok=True)
        path = results / f"{command_id}.json"
        path.write_text(json.dumps({"command_id": command_id, "status": status}))
        return path


@pytest.fixture
def bridge(settings, tmp_path: Path) -> Bridge:  # noqa: ANN001
    root = tmp_path / "bridge"
    root.mkdir()
    settings.LEAN_BRIDGE_ROOT = root
    settings.AUTO_RECOVER_LOCK_DIR = tmp_path / "locks"
    return Bridge(root)


@pytest.fixture
def trading(db: None, bridge: Bridge) -> Bridge:
    """A settings row with defaults, IB in mock mode, an empty bridge folder."""
    factories.TradeSettingsFactory(auto_recovery={})
    factories.IbSettingsFactory()
    return bridge


def stale_order(*, age: float = 120, clock: dt.datetime = CLOCK, **fields: Any):  # noqa: ANN201
    """A NEW order created `age` seconds before `clock`."""
    created = clock - dt.timedelta(seconds=age)
    fields.setdefault("updated_at", created)
    return factories.TradeOrderFactory(created_at=created, **fields)


@pytest.fixture
def sweep_log() -> Iterator[list[str]]:
    """The lines the sweep's logger writes (it does not propagate to pytest's capture)."""
    lines: list[str] = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("recovery.sweep")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)
