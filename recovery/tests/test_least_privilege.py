"""Proof, part 4: the README's GRANTs are all the three accounts need, and no more.

The statements are read from README.md ("Running it in production", its two sql
blocks), so this proves exactly what the README tells the DBA. A scratch trading
database (reference DDL + deploy/mysql/patches) is created as root; the trading account
gets only the README's grants on it, and Django's two accounts (run time, migration) and
their database are created by the README's second block. Then `migrate` (on the
migration account, MIGRATE_DATABASE_URL), the command, the admin's recovery path,
`manage.py check` and the housekeeping commands run as real processes with DATABASE_URL
on Django's run-time account and TRADING_DATABASE_URL on the trading account.

What each account is refused is tried statement by statement and written down
(`statements.txt` in the test's tmp folder, and printed with -s). TRADING_WRITES below is
what the code writes to the trading tables, to the column: the grants must be exactly
it, and every INSERT and UPDATE the sweep and the settings save send must stay within
it, so a new write the grants do not allow fails here, not in production.

TLS: the suite's server has TLS off. Every account is created as the README says, with
REQUIRE SSL, shown to be refused a plain connection, then set to REQUIRE NONE for the
loopback runs that follow.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from recovery.db.audit import ACTION_CANCEL, ACTION_REPLACE, ACTION_SETTINGS_UPDATE, ACTION_SWEEP, admin_actor
from recovery.db.models import TradeSettings
from recovery.db.routers import TRADING_TABLES, trading_alias
from recovery.db.schema import sql_statements, trading_schema_build
from recovery.ops.runs import Outcome, sweep_run_recorded
from recovery.services.order import CANCEL_SQL, REPLACEMENT_SQL
from recovery.services.settings import auto_recovery_settings_update
from recovery.tests.conftest import CLOCK, stale_order
from recovery.tests.gateway import gateway_port
from recovery.tests.scratch import registered_connection, scratch_prefix

pytestmark = [pytest.mark.mysql, pytest.mark.processes]

BASE_DIR = Path(settings.BASE_DIR)
README_SECTION = "## Running it in production"
README_DATABASE = "trading"
README_ACCOUNT = "'tradeops'@"
README_DJANGO_DATABASE = "tradeops"
README_DJANGO_ACCOUNT = "'tradeops_django'@"
README_MIGRATE_ACCOUNT = "'tradeops_migrate'@"
README_PASSWORD = "'…'"
ACCESS_REFUSED = 1045  # ER_ACCESS_DENIED_ERROR: what an account that requires TLS gets without it
# ER_TABLEACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR, ER_COLUMNACCESS_DENIED_ERROR
ACCESS_DENIED = {1142, 1044, 1143}
ADMIN_ACTOR = admin_actor("ops")

# The admin's recovery of selected orders, as its confirm POST runs it (admin/orders.py):
# a dry-run preview, then sweep_run_recorded with the admin actor and the order ids.
ADMIN_RECOVERY = """
import json, sys
import django
django.setup()
from django.utils import timezone
from recovery.ops.runs import sweep_run_recorded
from recovery.services import sweep_run
actor, ids = sys.argv[1], json.loads(sys.argv[2])
preview = sweep_run(now=timezone.now(), actor=actor, dry_run=True, order_ids=ids)
report = sweep_run_recorded(now=timezone.now(), actor=actor, order_ids=ids, confirmed_replacements=None)
print(json.dumps({
    "preview": preview.as_dict(),
    "outcome": str(report.outcome),
    "message": report.message,
    "result": report.result.as_dict() if report.result else None,
}))
"""

# The admin's settings page save (services.settings): lock the row, update it, audit it.
ADMIN_SETTINGS_SAVE = """
import json, sys
import django
django.setup()
from django.utils import timezone
from recovery.db.models import TradeSettings
from recovery.services.settings import auto_recovery_settings_update
row = TradeSettings.objects.order_by("-id").first()
after = auto_recovery_settings_update(
    row=row, values=json.loads(sys.argv[2]), actor=sys.argv[1], now=timezone.now()
)
print(json.dumps(after))
"""


def readme_sql_blocks() -> list[str]:
    text = (BASE_DIR / "README.md").read_text()
    assert README_SECTION in text, f"README.md has no {README_SECTION!r} section"
    section = text.split(README_SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sql\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2, f"expected two sql blocks in {README_SECTION!r}, found {len(blocks)}"
    return blocks


def readme_grant_statements() -> list[str]:
    """The trading account's sql block of the README's production section, statement by statement."""
    (block,) = [b for b in readme_sql_blocks() if README_ACCOUNT in b]
    return sql_statements(block)


def readme_django_statements() -> list[str]:
    """Django's account and database, as the README's second sql block creates them."""
    (block,) = [b for b in readme_sql_blocks() if README_DJANGO_ACCOUNT in b]
    return sql_statements(block)


def account_host_as_any(statement: str, readme_account: str, user: str) -> str:
    """The README's account at its app hosts' addresses, as `user` from anywhere (loopback here)."""
    return re.sub(rf"{re.escape(readme_account)}'[^']*'", f"'{user}'@'%'", statement)


def for_scratch_django(statement: str, *, database: str, accounts: dict[str, tuple[str, str]]) -> str:
    """The README's statement with the scratch database, accounts and passwords put in.

    `accounts`: README account -> (scratch user, its password).
    """
    scratch = statement
    for readme_account, (user, password) in accounts.items():
        if readme_account in scratch:
            scratch = account_host_as_any(scratch, readme_account, user).replace(
                README_PASSWORD, f"'{password}'"
            )
    scratch = re.sub(rf"\bDATABASE {README_DJANGO_DATABASE}\b", f"DATABASE `{database}`", scratch)
    scratch = re.sub(rf"\bON {README_DJANGO_DATABASE}\.\*", f"ON `{database}`.*", scratch)
    leftover = scratch.replace(database, "")
    for user, _ in accounts.values():
        leftover = leftover.replace(user, "")
    assert "tradeops" not in leftover, scratch
    return scratch


def for_scratch(statement: str, *, database: str, user: str, password: str) -> str:
    """The README's statement with the scratch database, account and password put in."""
    scratch = re.sub(rf"\b{README_DATABASE}\.", f"`{database}`.", statement)
    scratch = account_host_as_any(scratch, README_ACCOUNT, user).replace(README_PASSWORD, f"'{password}'")
    assert README_ACCOUNT not in scratch and f" {README_DATABASE}." not in scratch, scratch
    return scratch


@dataclass(frozen=True)
class Deployment:
    trading: BaseDatabaseWrapper  # root on the scratch trading database
    trading_name: str
    django_name: str
    user: str
    password: str
    django_user: str
    django_password: str
    migrate_user: str
    migrate_password: str
    host: str
    port: int
    grants: list[str]  # as run, after substitution
    bridge: Path
    plain_connections: dict[str, int | None]  # account -> the error a connection without TLS got
    log: Path  # statements.txt: each statement tried as an account, and whether it was refused

    def url(self, name: str, *, limited: bool) -> str:
        who = f"{self.user}:{self.password}" if limited else root_credentials(self.trading.settings_dict)
        return f"mysql://{who}@{self.host}:{self.port}/{name}"

    def django_url(self, *, migrate: bool = False) -> str:
        who = (
            f"{self.migrate_user}:{self.migrate_password}"
            if migrate
            else f"{self.django_user}:{self.django_password}"
        )
        return f"mysql://{who}@{self.host}:{self.port}/{self.django_name}"

    def env(self, **extra: str) -> dict[str, str]:
        environment = {
            k: v
            for k, v in os.environ.items()
            if k
            not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "TRADING_DATABASE_URL", "MIGRATE_DATABASE_URL"}
        }
        environment.update(
            DJANGO_SETTINGS_MODULE="tradeops.settings",
            SECRET_KEY="least-privilege-tests",
            DATABASE_URL=self.django_url(),
            TRADING_DATABASE_URL=self.url(self.trading_name, limited=True),
            LEAN_BRIDGE_ROOT=str(self.bridge),
            AUTO_RECOVER_LOCK_DIR=str(self.bridge),
            DJANGO_SUPERUSER_PASSWORD="least-privilege-superuser",
            **extra,
        )
        return environment

    def run(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            capture_output=True,
            text=True,
            env=self.env(**extra_env),
            cwd=BASE_DIR,
            timeout=300,
        )

    def manage(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return self.run(str(BASE_DIR / "manage.py"), *args, **extra_env)

    def migrate(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`manage.py migrate` as the README runs it: MIGRATE_DATABASE_URL on the migration account."""
        return self.manage("migrate", *args, MIGRATE_DATABASE_URL=self.django_url(migrate=True))

    def root_rows(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.trading.cursor() as cursor:
            cursor.execute(sql, params)  # None, not []: SHOW GRANTS FOR '…'@'%' has a bare %
            return list(cursor.fetchall())


def root_credentials(settings_dict: dict[str, Any]) -> str:
    password = settings_dict["PASSWORD"]
    return f"{settings_dict['USER']}:{password}" if password else settings_dict["USER"]


def plain_connection_error(*, host: str, port: int, user: str, password: str) -> int | None:
    """The error number a connection without TLS gets as `user`; None if it got in."""
    import MySQLdb  # the MySQL driver: not installed for the SQLite-only run

    try:
        MySQLdb.connect(host=host, port=port, user=user, password=password, ssl_mode="DISABLED").close()
    except MySQLdb.OperationalError as exc:
        return exc.args[0]
    return None


@pytest.fixture(scope="module")
def deployment(django_db_blocker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:  # noqa: ANN001
    """The README's deployment on scratch databases (named as scratch.py names them);
    everything dropped afterwards."""
    token = secrets.token_hex(4)
    base = connections[trading_alias()].settings_dict
    prefix = scratch_prefix(base)
    trading_name, django_name = f"{prefix}_lp_{token}", f"{prefix}_lpdj_{token}"
    user, password = f"test_lp_{token}", secrets.token_hex(16)
    django_user, django_password = f"test_lpdj_{token}", secrets.token_hex(16)
    migrate_user, migrate_password = f"test_lpmig_{token}", secrets.token_hex(16)
    host, port = base["HOST"] or "127.0.0.1", int(base["PORT"] or 3306)
    accounts = {user: password, django_user: django_password, migrate_user: migrate_password}
    with django_db_blocker.unblock(), registered_connection("lp_admin", {**base, "NAME": ""}) as admin:
        try:
            with admin.cursor() as cursor:
                cursor.execute(
                    f"CREATE DATABASE `{trading_name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
            with registered_connection("lp_trading", {**base, "NAME": trading_name}) as trading:
                trading_schema_build(using="lp_trading")
                grants = [
                    for_scratch(s, database=trading_name, user=user, password=password)
                    for s in readme_grant_statements()
                ]
                django_accounts = {
                    README_DJANGO_ACCOUNT: (django_user, django_password),
                    README_MIGRATE_ACCOUNT: (migrate_user, migrate_password),
                }
                django_grants = [
                    for_scratch_django(s, database=django_name, accounts=django_accounts)
                    for s in readme_django_statements()
                ]
                with admin.cursor() as cursor:
                    for statement in grants + django_grants:
                        cursor.execute(statement)
                # The README's REQUIRE SSL, at work: the suite's server has no TLS, so a plain
                # connection is all there is to try; then lifted for the loopback runs below.
                plain = {
                    account: plain_connection_error(host=host, port=port, user=account, password=secret)
                    for account, secret in accounts.items()
                }
                with admin.cursor() as cursor:
                    for account in accounts:
                        cursor.execute(f"ALTER USER '{account}'@'%' REQUIRE NONE")
                deployment = Deployment(
                    trading=trading,
                    trading_name=trading_name,
                    django_name=django_name,
                    user=user,
                    password=password,
                    django_user=django_user,
                    django_password=django_password,
                    migrate_user=migrate_user,
                    migrate_password=migrate_password,
                    host=host,
                    port=port,
                    grants=grants,
                    bridge=tmp_path_factory.mktemp("lp-bridge"),
                    plain_connections=plain,
                    log=tmp_path_factory.mktemp("lp-statements") / "statements.txt",
                )
                trading_rows_seed(deployment)
                # Django's own tables, as the README says: migrate with MIGRATE_DATABASE_URL
                # (the migration account), with TRADING_DATABASE_URL on the limited account.
                migrated = deployment.migrate("--noinput", "--verbosity", "0")
                assert migrated.returncode == 0, migrated.stderr
                yield deployment
        finally:
            with admin.cursor() as cursor:
                for account in accounts:
                    cursor.execute(f"DROP USER IF EXISTS '{account}'@'%'")
                for name in (trading_name, django_name):
                    cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


def trading_rows_seed(deployment: Deployment) -> None:
    """As root, what the backend would have written: settings, IB at a gateway that answers."""
    settings_json = json.dumps(
        {
            "allow_replace_outside_rth": True,
            "replace_same_trading_day_only": False,
            "unfilled_timeout_seconds": 600,
        }
    )
    with deployment.trading.cursor() as cursor:
        cursor.execute(
            "INSERT INTO trade_settings (risk_defaults, execution_data_source, auto_recovery)"
            " VALUES (%s, 'ib', %s)",
            ['{"max_position_pct": 0.1}', settings_json],
        )
        cursor.execute(
            "INSERT INTO ib_settings (host, port, api_mode) VALUES ('127.0.0.1', %s, 'ib')", [gateway_port()]
        )


def orders_insert(deployment: Deployment, prefix: str, rows: list[tuple[str, str, str]]) -> list[int]:
    """(side, order_type, status) rows, ten minutes old, as root; their ids."""
    created = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)).replace(tzinfo=None, microsecond=0)
    ids = []
    with deployment.trading.cursor() as cursor:
        for index, (side, order_type, status) in enumerate(rows):
            cursor.execute(
                "INSERT INTO trade_orders (client_order_id, symbol, side, quantity, order_type, status,"
                " ib_order_id, params, created_at, updated_at)"
                " VALUES (%s, 'AAPL', %s, 10, %s, %s, %s, '{}', %s, %s)",
                [
                    f"{prefix}-{index}",
                    side,
                    order_type,
                    status,
                    777 if status != "NEW" else None,
                    created,
                    created,
                ],
            )
            ids.append(cursor.lastrowid)
    return ids


def recovery_assert(deployment: Deployment, outcomes: dict[int, dict[str, Any]], *, actor: str) -> None:
    """Every `replace` outcome left a CANCELED original, one NEW replacement and its audit rows."""
    for order_id, outcome in outcomes.items():
        ((status,),) = deployment.root_rows("SELECT status FROM trade_orders WHERE id = %s", [order_id])
        assert status == ("CANCELED" if outcome["decision"] in ("cancel", "replace") else "NEW"), outcome
        cancel_rows = deployment.root_rows(
            "SELECT actor FROM audit_logs WHERE action = %s AND resource_id = %s", [ACTION_CANCEL, order_id]
        )
        assert cancel_rows == ([(actor,)] if outcome["decision"] != "skip" else []), outcome
        if outcome["decision"] == "replace":
            ((new_status, client_id),) = deployment.root_rows(
                "SELECT status, client_order_id FROM trade_orders WHERE id = %s", [outcome["replacement_id"]]
            )
            assert (new_status, client_id) == ("NEW", outcome["replacement_client_order_id"])
            replace_rows = deployment.root_rows(
                "SELECT actor FROM audit_logs WHERE action = %s AND resource_id = %s",
                [ACTION_REPLACE, outcome["replacement_id"]],
            )
            assert replace_rows == [(actor,)]


# --- (a) cron: manage.py auto_recover ----------------------------------------------------------


def test_auto_recover_cancels_replaces_and_audits_as_the_limited_account(deployment: Deployment) -> None:
    """Any wall clock: the settings allow re-placing outside regular hours, the orders are ten
    minutes old by this process's clock.
    """
    ids = orders_insert(
        deployment,
        f"lp-cron-{secrets.token_hex(3)}",
        [
            ("BUY", "MKT", "NEW"),
            ("SELL", "ADAPTIVE_LMT", "NEW"),
            ("HOLD", "MKT", "NEW"),
            ("BUY", "MKT", "SUBMITTED"),
        ],
    )
    result = deployment.manage("auto_recover", "--json")

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    outcomes = {o["id"]: o for o in report["orders"] if o["id"] in ids}
    assert {i: (o["decision"], o["reason"]) for i, o in outcomes.items()} == {
        ids[0]: ("replace", "replaced"),
        ids[1]: ("replace", "replaced"),
        ids[2]: ("cancel", "invalid_order"),
    }
    assert report["failed"] == 0 and report["settings_warnings"] == []
    recovery_assert(deployment, outcomes, actor="auto_recover")
    assert deployment.root_rows("SELECT status FROM trade_orders WHERE id = %s", [ids[3]]) == [("SUBMITTED",)]
    sweeps = deployment.root_rows(
        "SELECT actor FROM audit_logs WHERE action = %s AND JSON_VALUE(detail, '$.sweep_id') = %s",
        [ACTION_SWEEP, report["sweep_id"]],
    )
    assert sweeps == [("auto_recover",)]
    # The heartbeat went to Django's own database (DATABASE_URL), not to the trading one.
    with registered_connection(
        "lp_django", {**deployment.trading.settings_dict, "NAME": deployment.django_name}
    ) as django_db:
        with django_db.cursor() as cursor:
            cursor.execute(
                "SELECT outcome, actor FROM tradeops_sweep_runs WHERE sweep_id = %s", [report["sweep_id"]]
            )
            assert cursor.fetchall() == (("ok", "auto_recover"),)


# --- (b) the admin: recovery of selected orders, and the settings page ---------------------------


def test_admin_recovery_of_selected_orders_works_as_the_limited_account(deployment: Deployment) -> None:
    """Any wall clock: the settings allow re-placing outside regular hours, the orders are ten
    minutes old by this process's clock.
    """
    ids = orders_insert(
        deployment, f"lp-admin-{secrets.token_hex(3)}", [("BUY", "MKT", "NEW"), ("SELL", "MKT", "NEW")]
    )
    result = deployment.run("-c", ADMIN_RECOVERY, ADMIN_ACTOR, json.dumps(ids))

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["outcome"] == "ok", report["message"]
    assert report["preview"]["would_replace"] == 2
    outcomes = {o["id"]: o for o in report["result"]["orders"]}
    assert set(outcomes) == set(ids)
    assert all(o["decision"] == "replace" for o in outcomes.values()), outcomes
    recovery_assert(deployment, outcomes, actor=ADMIN_ACTOR)


def test_admin_settings_save_works_as_the_limited_account(deployment: Deployment) -> None:
    """Any wall clock: saving the settings reads no market time."""
    result = deployment.run(
        "-c", ADMIN_SETTINGS_SAVE, ADMIN_ACTOR, json.dumps({"max_replacements_per_sweep": 25})
    )

    assert result.returncode == 0, result.stderr
    stored = json.loads(result.stdout)
    assert stored["max_replacements_per_sweep"] == 25
    assert stored["unfilled_timeout_seconds"] == 600  # the backend's own key stays
    audit = deployment.root_rows("SELECT actor FROM audit_logs WHERE action = %s", [ACTION_SETTINGS_UPDATE])
    assert audit == [(ADMIN_ACTOR,)]


# --- (c) manage.py check -------------------------------------------------------------------------


def test_manage_check_passes_as_the_limited_account(deployment: Deployment, tmp_path: Path) -> None:
    """Any wall clock: `check` reads no time. As the README's step 6: collectstatic, then check
    (with DEBUG off, uncollected static files are a warning of their own, recovery.W004)."""
    static = str(tmp_path / "static")
    collected = deployment.manage("collectstatic", "--noinput", "--verbosity", "0", STATIC_ROOT=static)
    assert collected.returncode == 0, collected.stderr
    result = deployment.manage("check", STATIC_ROOT=static)

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


# --- (d) what the trading account may write, to the column ------------------------------------------

# Every write of the code to the trading tables (services/order.py: the conditional cancel
# and the replacement; db/audit.py: audit rows; services/settings.py: the settings save).
# The README's grants must be exactly these, and the statements the code sends must stay
# within them (test_every_write_the_code_sends_is_within_the_list).
TRADING_WRITES = {
    ("INSERT", "trade_orders"): {
        "run_id", "client_order_id", "symbol", "side", "quantity", "order_type", "limit_price",
        "status", "filled_quantity", "params", "created_at", "updated_at",
    },
    ("UPDATE", "trade_orders"): {"status", "params", "updated_at"},
    ("INSERT", "audit_logs"): {"actor", "action", "resource_type", "resource_id", "detail", "created_at"},
    ("UPDATE", "trade_settings"): {"auto_recovery", "updated_at"},
}  # fmt: skip

# Refused to the trading account: DDL, DELETE, and every column the code does not write.
TRADING_REFUSED = [
    *(f"ALTER TABLE `{table}` ADD COLUMN lp_probe INT NULL" for table in sorted(TRADING_TABLES)),
    *(f"DROP TABLE `{table}`" for table in sorted(TRADING_TABLES)),
    *(f"TRUNCATE TABLE `{table}`" for table in sorted(TRADING_TABLES)),
    "CREATE INDEX lp_probe ON trade_orders (symbol)",
    "DROP INDEX idx_trade_orders_status_created_at ON trade_orders",
    "CREATE TABLE lp_probe (id INT)",
    "DELETE FROM trade_orders",
    "DELETE FROM audit_logs",
    "UPDATE trade_orders SET filled_quantity = 10",
    "UPDATE trade_orders SET avg_fill_price = 1.5",
    "UPDATE trade_orders SET ib_order_id = 4242",
    "UPDATE trade_orders SET ib_perm_id = 4242",
    "UPDATE trade_orders SET symbol = 'XXX'",
    "UPDATE trade_orders SET side = 'SELL'",
    "UPDATE trade_orders SET quantity = 1000",
    "UPDATE trade_orders SET limit_price = 1",
    "UPDATE trade_orders SET run_id = NULL",
    "UPDATE trade_orders SET client_order_id = CONCAT(client_order_id, '-x')",
    "UPDATE trade_orders SET rejected_reason = 'x', last_status_ts = NULL",
    "UPDATE trade_orders SET created_at = '2020-01-01'",
    "INSERT INTO trade_orders (client_order_id, symbol, side, quantity, status, ib_order_id)"
    " VALUES ('lp-filled', 'AAPL', 'BUY', 1, 'FILLED', 4242)",
    "INSERT INTO trade_orders (client_order_id, symbol, side, quantity, status, avg_fill_price)"
    " VALUES ('lp-filled', 'AAPL', 'BUY', 1, 'FILLED', 1.5)",
    "UPDATE trade_settings SET execution_data_source = 'mock'",
    "UPDATE trade_settings SET risk_defaults = NULL",
    "INSERT INTO trade_settings (execution_data_source) VALUES ('ib')",
    "UPDATE audit_logs SET actor = 'forged'",
    "UPDATE audit_logs SET detail = NULL",
    "INSERT INTO audit_logs (id, actor, action, resource_type) VALUES (999999, 'backend', 'x', 'x')",
    "UPDATE ib_settings SET api_mode = 'mock'",
    "UPDATE trade_guard_state SET status = 'active'",
    "UPDATE trade_runs SET status = 'done'",
    "INSERT INTO trade_runs (project_id) VALUES (1)",
]
FORGED_ACTION = "lp.forged_by_the_trading_account"
# Allowed, and tried too: the columns the code writes, whatever the value (`WHERE id = 0`
# matches no row). The last is the forged backend audit row the grants cannot stop.
TRADING_ALLOWED = [
    "UPDATE trade_orders SET status = 'FILLED', params = NULL, updated_at = NOW() WHERE id = 0",
    "UPDATE trade_settings SET auto_recovery = NULL, updated_at = NOW() WHERE id = 0",
    "INSERT INTO audit_logs (actor, action, resource_type, resource_id, detail, created_at)"
    f" VALUES ('backend', '{FORGED_ACTION}', 'trade_order', NULL, NULL, UTC_TIMESTAMP())",
]


@dataclass(frozen=True)
class Tried:
    account: str
    statement: str
    error: int | None  # the server's error number; None: it ran

    def line(self) -> str:
        verdict = "ran" if self.error is None else f"REFUSED ({self.error})"
        return f"{self.account}\t{verdict}\t{self.statement}"


def statements_try(
    deployment: Deployment,
    *,
    account: str,
    user: str,
    password: str,
    database: str,
    statements: Iterable[str],
) -> list[Tried]:
    """Run each statement as `user`, write down whether the server refused it (access denied).

    The record goes to statements.txt in the module's tmp folder and to stdout (pytest -s).
    """
    import MySQLdb  # the MySQL driver: not installed for the SQLite-only run

    connection = MySQLdb.connect(
        host=deployment.host,
        port=deployment.port,
        user=user,
        password=password,
        database=database,
        charset="utf8mb4",
        autocommit=True,
    )
    tried = []
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                try:
                    cursor.execute(statement)
                except MySQLdb.OperationalError as exc:
                    assert exc.args[0] in ACCESS_DENIED, (statement, exc.args)
                    tried.append(Tried(account, statement, exc.args[0]))
                else:
                    tried.append(Tried(account, statement, None))
    finally:
        connection.close()
    with deployment.log.open("a") as log:
        log.writelines(t.line() + "\n" for t in tried)
    print("\n".join(t.line() for t in tried))  # noqa: T201 -- the record the issue's closing note lists
    return tried


def test_the_trading_account_writes_only_the_columns_the_code_writes(deployment: Deployment) -> None:
    """Any wall clock: only statements are tried."""
    schema_before = schema_snapshot(deployment)
    orders_before = deployment.root_rows("SELECT COUNT(*), SUM(filled_quantity) FROM trade_orders")
    settings_before = deployment.root_rows("SELECT execution_data_source, risk_defaults FROM trade_settings")
    who = {"user": deployment.user, "password": deployment.password, "database": deployment.trading_name}

    refused = statements_try(deployment, account="trading", statements=TRADING_REFUSED, **who)
    allowed = statements_try(deployment, account="trading", statements=TRADING_ALLOWED, **who)

    assert [t.statement for t in refused if t.error is None] == [], "the README's grants allow these"
    assert [t.statement for t in allowed if t.error is not None] == [], "the README's grants refuse these"
    assert schema_snapshot(deployment) == schema_before
    assert deployment.root_rows("SELECT COUNT(*), SUM(filled_quantity) FROM trade_orders") == orders_before
    assert (
        deployment.root_rows("SELECT execution_data_source, risk_defaults FROM trade_settings")
        == settings_before
    )
    # What column grants cannot stop: a row in the backend's name (removed again, as root).
    forged = deployment.root_rows("SELECT actor FROM audit_logs WHERE action = %s", [FORGED_ACTION])
    assert forged == [("backend",)]
    deployment.root_rows("DELETE FROM audit_logs WHERE action = %s", [FORGED_ACTION])
    assert len(deployment.log.read_text().splitlines()) >= len(TRADING_REFUSED) + len(TRADING_ALLOWED)


def test_the_grants_are_exactly_the_writes_the_code_makes(deployment: Deployment) -> None:
    """The server's view of the README's grants: SELECT on every trading table, and the
    INSERT and UPDATE columns of TRADING_WRITES, nothing else. Any wall clock: no time read.
    """
    grantee = f"'{deployment.user}'@'%'"
    tables = deployment.root_rows(
        "SELECT TABLE_NAME, PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES"
        " WHERE GRANTEE = %s AND TABLE_SCHEMA = %s",
        [grantee, deployment.trading_name],
    )
    assert set(tables) == {(table, "SELECT") for table in TRADING_TABLES}
    columns: dict[tuple[str, str], set[str]] = {}
    for table, column, privilege in deployment.root_rows(
        "SELECT TABLE_NAME, COLUMN_NAME, PRIVILEGE_TYPE FROM information_schema.COLUMN_PRIVILEGES"
        " WHERE GRANTEE = %s AND TABLE_SCHEMA = %s",
        [grantee, deployment.trading_name],
    ):
        columns.setdefault((privilege, table), set()).add(column)
    assert columns == TRADING_WRITES
    assert (
        deployment.root_rows(
            "SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = %s", [grantee]
        )
        == []
    )


def test_every_account_requires_tls(deployment: Deployment) -> None:
    """The README creates every account with REQUIRE SSL: a plain connection is refused
    (tried in the fixture, before the loopback runs lift it). Any wall clock: no time read.
    """
    for statement in readme_grant_statements() + readme_django_statements():
        if statement.upper().startswith("CREATE USER"):
            assert statement.rstrip().upper().endswith("REQUIRE SSL"), statement
    assert deployment.plain_connections == {
        deployment.user: ACCESS_REFUSED,
        deployment.django_user: ACCESS_REFUSED,
        deployment.migrate_user: ACCESS_REFUSED,
    }
    with deployment.log.open("a") as log:
        log.writelines(
            f"{account}\tREFUSED ({error})\t(a connection without TLS)\n"
            for account, error in deployment.plain_connections.items()
        )


def schema_snapshot(deployment: Deployment) -> list[tuple[Any, ...]]:
    return deployment.root_rows(
        "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, ORDINAL_POSITION",
        [deployment.trading_name],
    ) + deployment.root_rows(
        "SELECT TABLE_NAME, INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS"
        " WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
        [deployment.trading_name],
    )


def test_the_grants_run_are_the_readmes(deployment: Deployment) -> None:
    """Guards the parsing above: one CREATE USER and a GRANT per table the README names.

    Any wall clock: no process reads the time.
    """
    statements = readme_grant_statements()
    assert statements[0].upper().startswith("CREATE USER")
    granted = {m for s in statements for m in re.findall(rf"\b{README_DATABASE}\.(\w+)", s)}
    assert granted == set(TRADING_TABLES)
    assert len(deployment.grants) == len(statements)
    shown = deployment.root_rows(f"SHOW GRANTS FOR '{deployment.user}'@'%'")
    assert not any("ALL PRIVILEGES" in row[0] or "DELETE" in row[0] for row in shown), shown


# --- (e) Django's own account: migrate ran in the fixture; what expires can be deleted ----------------


def django_rows(deployment: Deployment, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """As root, on Django's database."""
    with registered_connection(
        "lp_django_root", {**deployment.trading.settings_dict, "NAME": deployment.django_name}
    ) as connection:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())


def test_djangos_account_prunes_heartbeats_and_expired_sessions(deployment: Deployment) -> None:
    """Any wall clock: the rows to prune are 60 days old by this process's clock, the others
    new.
    """
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=60)).replace(tzinfo=None)
    django_rows(
        deployment,
        "INSERT INTO tradeops_sweep_runs (started_at, ended_at, duration_seconds, actor, host, sweep_id,"
        " outcome, scanned, cancelled, replaced, skipped, failed, reasons, message)"
        " VALUES (%s, %s, 0, 'auto_recover', 'old-host', 'old', 'ok', 0, 0, 0, 0, 0, '{}', '')",
        [old, old],
    )
    django_rows(
        deployment,
        "INSERT INTO django_session (session_key, session_data, expire_date) VALUES ('lpexpired', 'x', %s)",
        [old],
    )

    swept = deployment.manage("auto_recover", "--verbosity", "0")
    cleared = deployment.manage("clearsessions")

    assert swept.returncode == 0, swept.stderr
    assert cleared.returncode == 0, cleared.stderr
    assert django_rows(deployment, "SELECT COUNT(*) FROM tradeops_sweep_runs WHERE host = 'old-host'") == [
        (0,)
    ]
    assert django_rows(deployment, "SELECT COUNT(*) FROM django_session WHERE session_key = 'lpexpired'") == [
        (0,)
    ]


def test_djangos_account_runs_the_users_roles_tokens_and_unlock_commands(deployment: Deployment) -> None:
    """Any wall clock: these commands read no time."""
    name = f"lp-ops-{secrets.token_hex(3)}"
    superuser = deployment.run(
        str(BASE_DIR / "manage.py"),
        "createsuperuser",
        "--noinput",
        "--username",
        f"{name}-admin",
        "--email",
        "ops@example.com",
    )
    roles = deployment.manage("recovery_roles", "--operator", name)
    token = deployment.manage("drf_create_token", name)
    unlock = deployment.manage("axes_reset_username", name)
    again = deployment.migrate("--noinput")

    for done in (superuser, roles, token, unlock, again):
        assert done.returncode == 0, done.stderr
    assert f"{name} is in Recovery operators" in roles.stdout
    assert token.stdout.startswith("Generated token ")
    assert "No migrations to apply" in again.stdout


def test_djangos_account_has_nothing_on_the_trading_database_and_no_ddl(deployment: Deployment) -> None:
    """The run-time account (DATABASE_URL) reads and writes rows of Django's database and
    nothing else: no DDL there (migrate has its own account), nothing on the trading one.

    Any wall clock: only statements are tried.
    """
    trading, django = deployment.trading_name, deployment.django_name
    tables_before = django_rows(deployment, "SHOW TABLES")
    refused = statements_try(
        deployment,
        account="django",
        user=deployment.django_user,
        password=deployment.django_password,
        database=django,
        statements=(
            f"SELECT COUNT(*) FROM `{trading}`.trade_orders",
            f"UPDATE `{trading}`.trade_settings SET auto_recovery = NULL",
            f"INSERT INTO `{trading}`.audit_logs (actor, action, resource_type) VALUES ('backend', 'x', 'x')",
            f"CREATE DATABASE `{django}_other`",
            "CREATE TABLE lp_probe (id INT)",
            "ALTER TABLE django_session ADD COLUMN lp_probe INT NULL",
            "CREATE INDEX lp_probe ON django_session (expire_date)",
            "DROP TABLE django_session",
            "TRUNCATE TABLE django_session",
            "DROP TABLE django_migrations",
        ),
    )
    allowed = statements_try(
        deployment,
        account="django",
        user=deployment.django_user,
        password=deployment.django_password,
        database=django,
        statements=("DELETE FROM django_session WHERE session_key = 'lp-none'",),
    )
    assert [t.statement for t in refused if t.error is None] == []
    assert [t.statement for t in allowed if t.error is not None] == []
    assert django_rows(deployment, "SHOW TABLES") == tables_before
    shown = deployment.root_rows(f"SHOW GRANTS FOR '{deployment.django_user}'@'%'")
    assert not any("ALL PRIVILEGES" in row[0] or "GRANT OPTION" in row[0] for row in shown), shown
    assert not any(ddl in row[0] for row in shown for ddl in ("CREATE", "ALTER", "DROP", "INDEX")), shown


def test_migrate_without_the_migration_account_cannot_change_the_schema(deployment: Deployment) -> None:
    """`manage.py migrate` on DATABASE_URL's account alone: a migration to apply fails on the
    first DDL (here: one migration marked unapplied again, as root), and with the migration
    account it applies. Any wall clock: migrate reads no time.
    """
    (name,) = django_rows(
        deployment,
        "SELECT name FROM django_migrations WHERE app = 'sessions' ORDER BY id DESC LIMIT 1",
    )[0]
    django_rows(deployment, "DROP TABLE django_session")
    django_rows(deployment, "DELETE FROM django_migrations WHERE app = 'sessions'")

    plain = deployment.manage("migrate", "sessions", "--noinput")
    as_migration_account = deployment.migrate("sessions", "--noinput")

    assert plain.returncode != 0 and "CREATE command denied" in plain.stderr, plain.stderr[-2000:]
    assert as_migration_account.returncode == 0, as_migration_account.stderr
    assert django_rows(
        deployment, "SELECT name FROM django_migrations WHERE app = 'sessions' AND name = %s", [name]
    )
    assert django_rows(deployment, "SHOW TABLES LIKE 'django_session'") == [("django_session",)]


# --- (f) what the code sends: every write to a trading table within TRADING_WRITES -------------------

WRITE_VERBS = {"INSERT", "UPDATE", "DELETE", "REPLACE", "TRUNCATE", "ALTER", "CREATE", "DROP", "RENAME"}
INSERT_SQL = re.compile(r"^\s*INSERT\s+INTO\s+[`\"]?(\w+)[`\"]?\s*\(([^)]*)\)", re.I | re.S)
UPDATE_SQL = re.compile(r"^\s*UPDATE\s+[`\"]?(\w+)[`\"]?\s+SET\s+(.*?)\s+WHERE\s", re.I | re.S)
SET_COLUMN = re.compile(r"(?:^|,)\s*[`\"]?(\w+)[`\"]?\s*=")


def trading_write(sql: str) -> tuple[str, str, set[str]] | None:
    """(verb, table, columns) of a statement that writes a trading table; None for the rest."""
    verb = sql.lstrip().split(None, 1)[0].upper()
    if verb not in WRITE_VERBS:
        return None
    for pattern in (INSERT_SQL, UPDATE_SQL):
        found = pattern.match(sql)
        if found:
            table, columns = found.group(1), found.group(2)
            if table not in TRADING_TABLES:
                return None
            names = SET_COLUMN.findall(columns) if verb == "UPDATE" else re.findall(r"\w+", columns)
            return verb, table, set(names)
    touched = [t for t in TRADING_TABLES if re.search(rf"[`\"\s.]{t}[`\"\s(]", f" {sql} ")]
    return (verb, ",".join(sorted(touched)), {"*"}) if touched else None


def test_the_write_parser_reads_the_shapes_the_code_uses() -> None:
    """Guards the parser below: the code's own SQL, the ORM's, and writes outside the list.

    Any wall clock: no time read.
    """
    assert trading_write(CANCEL_SQL) == ("UPDATE", "trade_orders", {"status", "params", "updated_at"})
    assert trading_write(REPLACEMENT_SQL) == (
        "INSERT",
        "trade_orders",
        TRADING_WRITES[("INSERT", "trade_orders")],
    )
    orm = (
        "UPDATE `trade_settings` SET `auto_recovery` = %s, `updated_at` = %s WHERE `trade_settings`.`id` = %s"
    )
    assert trading_write(orm) == ("UPDATE", "trade_settings", {"auto_recovery", "updated_at"})
    assert trading_write('UPDATE "trade_orders" SET "filled_quantity" = %s WHERE "id" = %s')[2] == {
        "filled_quantity"
    }
    assert trading_write("DELETE FROM `audit_logs` WHERE id = %s") == ("DELETE", "audit_logs", {"*"})
    assert trading_write("INSERT INTO `tradeops_sweep_runs` (`actor`) VALUES (%s)") is None
    assert trading_write("SELECT `status` FROM `trade_orders` FOR UPDATE") is None


def test_every_write_the_code_sends_is_within_the_list(trading, settings) -> None:  # noqa: ANN001
    """A breaker that opens (its audit row), a settings save, then a sweep that cancels,
    re-places and writes its summary row, as cron runs it (lock, heartbeat, spool): every
    INSERT and UPDATE they send to a trading table names only columns of TRADING_WRITES,
    and each write of the list is seen (the list is not larger than the code).

    The sweep decides at CLOCK (a Tuesday mid-session); the database's clock is compared
    with this process's own (rule 1c), not with CLOCK.
    """
    TradeSettings.objects.update(auto_recovery={"max_replacements_per_sweep": 1})
    for index in range(2):
        stale_order(client_order_id=f"lp-writes-{index}")
    stale_order(client_order_id="lp-writes-bad", side="HOLD")
    sent: list[str] = []

    def record(execute, sql, params, many, context):  # noqa: ANN001, ANN202
        sent.append(sql)
        return execute(sql, params, many, context)

    with connections[trading_alias()].execute_wrapper(record):
        breaker = sweep_run_recorded(now=CLOCK, actor="auto_recover", exclusive=True, check_schema=True)
        auto_recovery_settings_update(
            row=TradeSettings.objects.get(),
            values={"max_replacements_per_sweep": 20},
            actor=admin_actor("ops"),
            now=CLOCK,
        )
        swept = sweep_run_recorded(now=CLOCK, actor="auto_recover", exclusive=True, check_schema=True)

    assert breaker.outcome is Outcome.BREAKER_OPEN
    assert swept.outcome is Outcome.OK and (swept.result.cancelled, swept.result.replaced) == (3, 2)
    writes = [w for w in map(trading_write, sent) if w is not None]
    outside = [(verb, table, columns) for verb, table, columns in writes
               if not columns <= TRADING_WRITES.get((verb, table), set())]  # fmt: skip
    assert outside == [], "the code writes what the README's grants do not allow"
    seen: dict[tuple[str, str], set[str]] = {}
    for verb, table, columns in writes:
        seen.setdefault((verb, table), set()).update(columns)
    assert seen == TRADING_WRITES, "TRADING_WRITES (and the grants) allow what the code never writes"
