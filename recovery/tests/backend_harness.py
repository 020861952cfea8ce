"""The trading backend's own code beside ours: its virtualenv, a scratch database, a bridge folder.

For test_backend_integration.py only, and only when LEANQUANTHUB_BACKEND names a checkout
of the backend (hellcatjack/LeanQuantHub). Nothing of the backend is copied here:
backend_driver.py imports its modules by name, at run time, in a virtualenv of its own
(built from the checkout's backend/requirements*.txt, outside this repository, cached).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from recovery.db.schema import FIXTURES_DIR, patch_files, sql_statements
from recovery.demo import LoopbackGateway

ENV_CHECKOUT = "LEANQUANTHUB_BACKEND"
ENV_VENV = "LEANQUANTHUB_BACKEND_VENV"  # default: <checkout>/.venv-tradeops
ENV_MYSQL = "LEANQUANTHUB_MYSQL_URL"  # the server only; the database is ours
DEFAULT_MYSQL = "mysql://root@127.0.0.1:3306"
DATABASE = "test_tradeops_backend_int17"  # test_*: our DDL guard; *_int17: the driver's guard
DRIVER = Path(__file__).with_name("backend_driver.py")
MODULE_FILES = ("app/services/trade_direct_order.py", "app/services/trade_execution_events_watchdog.py")
# What importing the two modules under test needs (the rest of the backend's requirements,
# pandas and the calendars, is for other parts of it); versions come from its requirements.
NEEDED = ("fastapi", "sqlalchemy", "pymysql", "pydantic-settings")
VENV_STAMP = ".tradeops-stamp.json"
INSTALL_SECONDS = 1200
DRIVER_SECONDS = 300


def skip_reason() -> str | None:
    """Why the integration test cannot run here, or None."""
    checkout = os.environ.get(ENV_CHECKOUT, "").strip()
    if not checkout:
        return (
            f"{ENV_CHECKOUT} is not set: the integration test against the trading backend's own code "
            f"needs a checkout of hellcatjack/LeanQuantHub (make test-backend {ENV_CHECKOUT}=/path)"
        )
    missing = [f for f in MODULE_FILES if not (Path(checkout) / "backend" / f).is_file()]
    if missing:
        return f"{ENV_CHECKOUT}={checkout} is not a checkout of the backend: no backend/{missing[0]}"
    if os.environ.get("TRADEOPS_CLOCK_OFFSET_SECONDS", "").strip():
        return (
            "TRADEOPS_CLOCK_OFFSET_SECONDS is set: the backend's virtualenv has no time-machine, so it "
            "would run at the real clock while our processes run at the moved one"
        )
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        return "needs the MySQL driver mysqlclient in this virtualenv (make venv-mysql)"
    return None


def checkout() -> Path:
    return Path(os.environ[ENV_CHECKOUT]).resolve()


# --- the backend's virtualenv ----------------------------------------------------------


def _requirement_name(line: str) -> str:
    return re.split(r"[<>=!~\[;@ ]", line, maxsplit=1)[0].strip().lower().replace("_", "-")


def requirements_lines(backend: Path, *, names: Iterable[str] | None) -> list[str]:
    """The lines of backend/requirements*.txt for `names` (all of them when None)."""
    lines: list[str] = []
    for path in sorted((backend / "backend").glob("requirements*.txt")):
        for raw in path.read_text(encoding="utf-8-sig").splitlines():
            line = raw.strip()
            if line and not line.startswith(("#", "-")):
                lines.append(line)
    if names is None:
        return lines
    wanted = set(names)
    picked = [line for line in lines if _requirement_name(line) in wanted]
    found = {_requirement_name(line) for line in picked}
    return picked + sorted(wanted - found)  # a name its files lack: the newest release


def venv_path() -> Path:
    configured = os.environ.get(ENV_VENV, "").strip()
    return Path(configured) if configured else checkout() / ".venv-tradeops"


def venv_python(*, full: bool = False) -> Path:
    """The backend's virtualenv, built once per set of requirements and reused."""
    venv = venv_path()
    python = venv / "bin" / "python"
    lines = requirements_lines(checkout(), names=None if full else NEEDED)
    stamp = {"python": sys.version.split()[0], "requirements": lines}
    stamp_path = venv / VENV_STAMP
    if python.exists() and stamp_path.exists() and json.loads(stamp_path.read_text()) == stamp:
        return python
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", "--clear", str(venv)], what="creating the backend's virtualenv")
    _run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *lines],
        what=f"installing {' '.join(lines)} into {venv}",
    )
    stamp_path.write_text(json.dumps(stamp))
    return python


def _run(argv: list[str], *, what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_SECONDS)
    if done.returncode != 0:
        output = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        raise RuntimeError(f"{what} failed ({done.returncode}):\n{output}")


# --- the scratch database ---------------------------------------------------------------


class Database:
    """The scratch database on the MariaDB server, for both sides."""

    def __init__(self, name: str = DATABASE) -> None:
        server = urlsplit(os.environ.get(ENV_MYSQL, "").strip() or DEFAULT_MYSQL)
        self.name = name
        self.host = server.hostname or "127.0.0.1"
        self.port = server.port or 3306
        self.user = server.username or "root"
        self.password = server.password or ""

    def url(self) -> str:
        secret = f":{self.password}" if self.password else ""
        return f"mysql://{self.user}{secret}@{self.host}:{self.port}/{self.name}"

    def backend_env(self) -> dict[str, str]:
        """app/core/config.py's names (pydantic-settings, case-insensitive; env beats .env)."""
        return {
            "DB_USER": self.user,
            "DB_PASSWORD": self.password,
            "DB_HOST": self.host,
            "DB_PORT": str(self.port),
            "DB_NAME": self.name,
            "DB_POOL_SIZE": "2",
        }

    def connect(self, *, database: bool = True) -> Any:  # noqa: ANN401
        import MySQLdb

        return MySQLdb.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=self.name if database else "",
            autocommit=True,
            charset="utf8mb4",
        )

    def create(self) -> None:
        """Dropped and created again, then the trading tables: reference DDL and patches."""
        server = self.connect(database=False)
        with server.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{self.name}`")
            cursor.execute(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        server.close()
        connection = self.connect()
        scripts = [FIXTURES_DIR / "trading_schema.mysql.sql", *patch_files()]
        with connection.cursor() as cursor:
            for script in scripts:
                for statement in sql_statements(script.read_text()):
                    cursor.execute(statement)
        connection.close()

    def drop(self) -> None:
        server = self.connect(database=False)
        with server.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{self.name}`")
        server.close()

    def execute(self, sql: str, params: tuple | list = ()) -> int:
        connection = self.connect()
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            last = cursor.lastrowid
        connection.close()
        return last

    def rows(self, sql: str, params: tuple | list = ()) -> list[dict[str, Any]]:
        connection = self.connect()
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            names = [d[0] for d in cursor.description]
            found = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        connection.close()
        for row in found:
            for key in ("params", "raw_payload", "detail"):
                if isinstance(row.get(key), str | bytes):
                    row[key] = json.loads(row[key])
        return found

    def orders(self) -> dict[str, dict[str, Any]]:
        """Every trade_orders row by client_order_id."""
        return {r["client_order_id"]: r for r in self.rows("SELECT * FROM trade_orders ORDER BY id")}


# --- the bridge folder ------------------------------------------------------------------


def iso_z(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def bridge_fresh(
    root: Path,
    *,
    quotes: dict[str, float],
    positions: dict[str, float],
    open_tags: Iterable[str] = (),
) -> None:
    """The leader bridge as the backend sees it ready: its heartbeat and snapshots all fresh.

    lean_bridge_status.json (read_bridge_status: a heartbeat within its timeout, status ok)
    lets its direct-order loop send through the leader (commands/) rather than start a Lean
    process; account summary, positions, quotes and open orders fresh keep its bridge
    refresh (lean_bridge_watchdog.refresh_bridge) from trying to restart the leader.
    """
    now = iso_z(now_utc())
    envelope = {"stale": False, "refreshed_at": now, "updated_at": now, "source": "tradeops_int17"}
    files = {
        "lean_bridge_status.json": {"status": "ok", "last_heartbeat": now, "updated_at": now},
        "account_summary.json": {**envelope, "items": {"NetLiquidation": 100000.0}},
        "positions.json": {**envelope, "items": [{"symbol": s, "quantity": q} for s, q in positions.items()]},
        "quotes.json": {**envelope, "items": [{"symbol": s, "data": {"last": p}} for s, p in quotes.items()]},
        "open_orders.json": {**envelope, "items": [{"tag": t, "status": "Submitted"} for t in open_tags]},
    }
    for name, payload in files.items():
        (root / name).write_text(json.dumps(payload))


def command_files(root: Path) -> dict[str, dict[str, Any]]:
    """commands/submit_order_*.json by file name, with their contents."""
    folder = root / "commands"
    if not folder.is_dir():
        return {}
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("submit_order_*.json"))}


# --- the gateway the sweep probes -------------------------------------------------------


@contextmanager
def loopback_listener() -> Iterator[int]:
    """A TCP listener on 127.0.0.1 (our sweep's IB probe connects to it); yields its port."""
    with LoopbackGateway() as gateway:
        yield gateway.port


# --- the driver -------------------------------------------------------------------------


class Backend:
    """backend_driver.py in the backend's virtualenv, configured for the scratch world."""

    def __init__(self, *, python: Path, database: Database, data_root: Path, artifact_root: Path) -> None:
        self.python = python
        self.database = database
        self.data_root = data_root
        self.artifact_root = artifact_root
        self.calls: list[dict[str, Any]] = []

    def env(self) -> dict[str, str]:
        keep = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ"}
        env = {k: v for k, v in os.environ.items() if k in keep}
        env.update(self.database.backend_env())
        env.update(
            DATA_ROOT=str(self.data_root),
            ARTIFACT_ROOT=str(self.artifact_root),
            # Were any launch path reached despite the driver's guard: a program that is not there.
            DOTNET_PATH="/nonexistent/tradeops-int17/dotnet",
            LEAN_LAUNCHER_DLL="/nonexistent/tradeops-int17/QuantConnect.Lean.Launcher.dll",
            LEAN_LAUNCHER_PATH="/nonexistent/tradeops-int17/Launcher",
            PYTHONPATH=str(checkout() / "backend"),
            PYTHONDONTWRITEBYTECODE="1",
        )
        return env

    def call(self, command: str) -> dict[str, Any]:
        out = self.artifact_root.parent / f"driver-{command}-{len(self.calls)}.json"
        done = subprocess.run(
            [str(self.python), str(DRIVER), command, str(out)],
            cwd=checkout() / "backend",
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=DRIVER_SECONDS,
        )
        result = json.loads(out.read_text()) if out.exists() else {"error": "no output"}
        result["returncode"] = done.returncode
        result["stderr_tail"] = done.stderr[-4000:]
        self.calls.append(result)
        return result
