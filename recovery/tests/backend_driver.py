"""Calls the trading backend's own functions for test_backend_integration.py.

A plain script, run by the backend's Python in the backend's own virtualenv (never by
pytest, never with Django): `python backend_driver.py COMMAND OUT_JSON`, with the working
directory at the backend's `backend/` folder and its configuration in the environment
(DB_*, DATA_ROOT, ARTIFACT_ROOT: app/core/config.py reads them). Nothing of the backend is
copied here: its modules are imported by name at run time, from the checkout named by
LEANQUANTHUB_BACKEND.

Commands:
  check      import the modules under test; report the configuration they resolved
  schema     add the backend's tables our reference DDL lacks (its own models' create_all)
             and the columns its models have that our reference tables lack (reported)
  send       the backend's direct-order loop, twice: retry_pending_direct_orders(session,
             mode='paper', limit=200)
  reconcile  reconcile_direct_submit_command_results, reconcile_active_direct_orders (its
             open-orders sync among them), ingest_active_trade_order_events

No process may be started and no signal sent from here: subprocess.Popen and os.kill are
replaced before the backend is imported; each attempt is refused (as a missing program
would be) and reported under `blocked`.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import traceback
from typing import Any

BLOCKED: list[dict[str, Any]] = []
_REAL_KILL = os.kill


class _NoProcess:
    """Stands in for subprocess.Popen (subprocess.run and friends call it): never starts anything."""

    def __new__(cls, args: Any, *rest: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        argv = [str(a) for a in args] if isinstance(args, list | tuple) else [str(args)]
        BLOCKED.append({"kind": "process", "argv": argv, "stack": _caller()})
        raise FileNotFoundError(errno.ENOENT, "process start refused by the tradeops test", argv[0])


def _no_signal(pid: int, sig: int) -> None:
    if sig == 0:  # "is it alive?": harmless
        return _REAL_KILL(pid, sig)
    BLOCKED.append({"kind": "signal", "pid": pid, "signal": int(sig), "stack": _caller()})
    raise PermissionError(errno.EPERM, "signal refused by the tradeops integration test")


def _caller() -> list[str]:
    frames = traceback.extract_stack()[:-2]
    ours = [f for f in frames if "/app/" in f.filename]
    return [f"{f.filename.rsplit('/backend/', 1)[-1]}:{f.name}:{f.lineno}" for f in ours]


subprocess.Popen = _NoProcess  # type: ignore[misc]
os.kill = _no_signal


def _guard_configuration() -> dict[str, Any]:
    from app.core.config import settings

    if not str(settings.db_name).endswith("_int17") or settings.db_host not in {"127.0.0.1", "localhost"}:
        raise SystemExit(f"refusing to run against database {settings.db_name!r} on {settings.db_host!r}")
    from app.services.lean_bridge_paths import resolve_bridge_root

    return {
        "db": f"{settings.db_user}@{settings.db_host}:{settings.db_port}/{settings.db_name}",
        "data_root": settings.data_root,
        "artifact_root": settings.artifact_root,
        "bridge_root": str(resolve_bridge_root()),
        "dotnet_path": settings.dotnet_path,
    }


def _session() -> Any:  # noqa: ANN401
    from app.db import SessionLocal

    return SessionLocal()


def check() -> dict[str, Any]:
    import app.services.trade_direct_order as direct
    import app.services.trade_execution_events_watchdog as watchdog

    config = _guard_configuration()
    from pathlib import Path

    root = Path(config["bridge_root"])
    config["bridge_ready_for_submit"] = direct._is_bridge_ready_for_submit(root)
    config["modules"] = [direct.__file__, watchdog.__file__]
    return config


def schema() -> dict[str, Any]:
    from app.db import engine
    from app.models import Base
    from sqlalchemy import inspect, text

    _guard_configuration()
    inspector = inspect(engine)
    before = set(inspector.get_table_names())
    missing_columns: dict[str, list[str]] = {}
    with engine.begin() as connection:
        for table in Base.metadata.sorted_tables:
            if table.name not in before:
                continue
            have = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in have:
                    continue
                kind = column.type.compile(dialect=engine.dialect)
                connection.execute(text(f"ALTER TABLE `{table.name}` ADD COLUMN `{column.name}` {kind} NULL"))
                missing_columns.setdefault(table.name, []).append(f"{column.name} {kind}")
    Base.metadata.create_all(engine)
    after = set(inspect(engine).get_table_names())
    return {"tables_added": sorted(after - before), "columns_added": missing_columns}


def send() -> dict[str, Any]:
    from app.services.trade_direct_order import retry_pending_direct_orders

    _guard_configuration()
    passes = []
    for _ in range(2):
        session = _session()
        try:
            passes.append(retry_pending_direct_orders(session, mode="paper", limit=200))
        finally:
            session.close()
    return {"retry_pending_direct_orders": passes}


def reconcile() -> dict[str, Any]:
    from app.services.trade_direct_order import reconcile_direct_submit_command_results
    from app.services.trade_execution_events_watchdog import (
        ingest_active_trade_order_events,
        reconcile_active_direct_orders,
    )

    _guard_configuration()
    out: dict[str, Any] = {}
    for name, call in (
        ("reconcile_direct_submit_command_results", lambda s: reconcile_direct_submit_command_results(s)),
        ("reconcile_active_direct_orders", lambda s: reconcile_active_direct_orders(s, mode="paper")),
        ("ingest_active_trade_order_events", lambda s: ingest_active_trade_order_events(s)),
    ):
        session = _session()
        try:
            out[name] = call(session)
            session.commit()
        finally:
            session.close()
    return out


COMMANDS = {"check": check, "schema": schema, "send": send, "reconcile": reconcile}


def main() -> int:
    command, out_path = sys.argv[1], sys.argv[2]
    sys.path.insert(0, os.getcwd())  # the backend's backend/ folder: `app` is imported from there
    result: dict[str, Any] = {"command": command}
    code = 0
    try:
        result["result"] = COMMANDS[command]()
    except BaseException as exc:  # noqa: BLE001 - reported to the test, whatever it is
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()
        code = 1
    result["blocked"] = BLOCKED
    with open(out_path, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2, default=str)
    return code


if __name__ == "__main__":
    sys.exit(main())
