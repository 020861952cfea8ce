"""Proof, part 4: the README's GRANTs are all the two accounts need, and no more.

The statements are read from README.md ("Running it in production", its two sql
blocks), so this proves exactly what the README tells the DBA. A scratch trading
database (reference DDL + deploy/mysql/patches) is created as root; the trading account
gets only the README's grants on it, and Django's account and its database are created
by the README's second block. Then `migrate`, the command, the admin's recovery path,
`manage.py check` and the housekeeping commands run as real processes with
DATABASE_URL on Django's account and TRADING_DATABASE_URL on the trading account; the
trading account is shown to be unable to change the schema or delete orders, and
Django's account to have nothing on the trading database.
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
from recovery.db.routers import TRADING_TABLES, trading_alias
from recovery.db.schema import sql_statements, trading_schema_build
from recovery.tests.gateway import gateway_port
from recovery.tests.scratch import registered_connection

pytestmark = [pytest.mark.mysql, pytest.mark.processes]

BASE_DIR = Path(settings.BASE_DIR)
README_SECTION = "## Running it in production"
README_DATABASE = "trading"
README_ACCOUNT = "'tradeops'@"
README_DJANGO_DATABASE = "tradeops"
README_DJANGO_ACCOUNT = "'tradeops_django'@"
README_PASSWORD = "'…'"
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


def for_scratch_django(statement: str, *, database: str, user: str, password: str) -> str:
    scratch = statement.replace(README_DJANGO_ACCOUNT, f"'{user}'@").replace(README_PASSWORD, f"'{password}'")
    scratch = re.sub(rf"\bDATABASE {README_DJANGO_DATABASE}\b", f"DATABASE `{database}`", scratch)
    scratch = re.sub(rf"\bON {README_DJANGO_DATABASE}\.\*", f"ON `{database}`.*", scratch)
    assert "tradeops" not in scratch.replace(database, "").replace(user, ""), scratch
    return scratch


def for_scratch(statement: str, *, database: str, user: str, password: str) -> str:
    """The README's statement with the scratch database, account and password put in."""
    scratch = re.sub(rf"\b{README_DATABASE}\.", f"`{database}`.", statement)
    scratch = scratch.replace(README_ACCOUNT, f"'{user}'@").replace(README_PASSWORD, f"'{password}'")
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
    host: str
    port: int
    grants: list[str]  # as run, after substitution
    bridge: Path

    def url(self, name: str, *, limited: bool) -> str:
        who = f"{self.user}:{self.password}" if limited else root_credentials(self.trading.settings_dict)
        return f"mysql://{who}@{self.host}:{self.port}/{name}"

    def django_url(self) -> str:
        return f"mysql://{self.django_user}:{self.django_password}@{self.host}:{self.port}/{self.django_name}"

    def env(self) -> dict[str, str]:
        environment = {
            k: v
            for k, v in os.environ.items()
            if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "TRADING_DATABASE_URL"}
        }
        environment.update(
            DJANGO_SETTINGS_MODULE="tradeops.settings",
            SECRET_KEY="least-privilege-tests",
            DATABASE_URL=self.django_url(),
            TRADING_DATABASE_URL=self.url(self.trading_name, limited=True),
            LEAN_BRIDGE_ROOT=str(self.bridge),
            AUTO_RECOVER_LOCK_DIR=str(self.bridge),
            DJANGO_SUPERUSER_PASSWORD="least-privilege-superuser",
        )
        return environment

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            capture_output=True,
            text=True,
            env=self.env(),
            cwd=BASE_DIR,
            timeout=300,
        )

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(str(BASE_DIR / "manage.py"), *args)

    def root_rows(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.trading.cursor() as cursor:
            cursor.execute(sql, params)  # None, not []: SHOW GRANTS FOR '…'@'%' has a bare %
            return list(cursor.fetchall())


def root_credentials(settings_dict: dict[str, Any]) -> str:
    password = settings_dict["PASSWORD"]
    return f"{settings_dict['USER']}:{password}" if password else settings_dict["USER"]


@pytest.fixture(scope="module")
def deployment(django_db_blocker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:  # noqa: ANN001
    """The README's deployment on scratch databases; everything dropped afterwards."""
    token = secrets.token_hex(4)
    trading_name, django_name = f"test_tradeops_lp_{token}", f"test_tradeops_lpdj_{token}"
    user, password = f"test_lp_{token}", secrets.token_hex(16)
    django_user, django_password = f"test_lpdj_{token}", secrets.token_hex(16)
    base = connections[trading_alias()].settings_dict
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
                django_grants = [
                    for_scratch_django(s, database=django_name, user=django_user, password=django_password)
                    for s in readme_django_statements()
                ]
                with admin.cursor() as cursor:
                    for statement in grants + django_grants:
                        cursor.execute(statement)
                deployment = Deployment(
                    trading=trading,
                    trading_name=trading_name,
                    django_name=django_name,
                    user=user,
                    password=password,
                    django_user=django_user,
                    django_password=django_password,
                    host=base["HOST"] or "127.0.0.1",
                    port=int(base["PORT"] or 3306),
                    grants=grants,
                    bridge=tmp_path_factory.mktemp("lp-bridge"),
                )
                trading_rows_seed(deployment)
                # Django's own tables, as the README says: migrate on DATABASE_URL (Django's
                # account and its grants), with TRADING_DATABASE_URL on the limited account.
                migrated = deployment.manage("migrate", "--noinput", "--verbosity", "0")
                assert migrated.returncode == 0, migrated.stderr
                yield deployment
        finally:
            with admin.cursor() as cursor:
                for account in (user, django_user):
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


def test_manage_check_passes_as_the_limited_account(deployment: Deployment) -> None:
    """Any wall clock: `check` reads no time."""
    result = deployment.manage("check")

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


# --- (d) what the account must not be able to do ---------------------------------------------------

FORBIDDEN = [
    *(f"ALTER TABLE `{table}` ADD COLUMN lp_probe INT NULL" for table in sorted(TRADING_TABLES)),
    *(f"DROP TABLE `{table}`" for table in sorted(TRADING_TABLES)),
    *(f"TRUNCATE TABLE `{table}`" for table in sorted(TRADING_TABLES)),
    "CREATE INDEX lp_probe ON trade_orders (symbol)",
    "DROP INDEX idx_trade_orders_status_created_at ON trade_orders",
    "CREATE TABLE lp_probe (id INT)",
    "DELETE FROM trade_orders",
    "DELETE FROM audit_logs",
    "UPDATE audit_logs SET actor = 'forged'",
    "INSERT INTO trade_settings (execution_data_source) VALUES ('ib')",
    "UPDATE ib_settings SET api_mode = 'mock'",
    "UPDATE trade_guard_state SET status = 'active'",
]


def test_the_limited_account_cannot_change_the_schema_or_delete_orders(deployment: Deployment) -> None:
    """Any wall clock: only statements are refused."""
    schema_before = schema_snapshot(deployment)
    orders_before = deployment.root_rows("SELECT COUNT(*) FROM trade_orders")
    allowed = statements_allowed(
        deployment,
        user=deployment.user,
        password=deployment.password,
        database=deployment.trading_name,
        statements=FORBIDDEN,
    )
    assert allowed == [], f"the README's grants allow: {allowed}"
    assert schema_snapshot(deployment) == schema_before
    assert deployment.root_rows("SELECT COUNT(*) FROM trade_orders") == orders_before


def statements_allowed(
    deployment: Deployment, *, user: str, password: str, database: str, statements: Iterable[str]
) -> list[str]:
    """Run each statement as `user`; those the server did not refuse with access denied."""
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
    allowed = []
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                try:
                    cursor.execute(statement)
                except MySQLdb.OperationalError as exc:
                    assert exc.args[0] in ACCESS_DENIED, (statement, exc.args)
                else:
                    allowed.append(statement)
    finally:
        connection.close()
    return allowed


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
    again = deployment.manage("migrate", "--noinput")

    for done in (superuser, roles, token, unlock, again):
        assert done.returncode == 0, done.stderr
    assert f"{name} is in Recovery operators" in roles.stdout
    assert token.stdout.startswith("Generated token ")
    assert "No migrations to apply" in again.stdout


def test_djangos_account_has_nothing_on_the_trading_database(deployment: Deployment) -> None:
    """Any wall clock: only statements are refused."""
    allowed = statements_allowed(
        deployment,
        user=deployment.django_user,
        password=deployment.django_password,
        database=deployment.django_name,
        statements=(
            f"SELECT COUNT(*) FROM `{deployment.trading_name}`.trade_orders",
            f"UPDATE `{deployment.trading_name}`.trade_settings SET auto_recovery = NULL",
            f"CREATE DATABASE `{deployment.django_name}_other`",
        ),
    )
    assert allowed == []
    shown = deployment.root_rows(f"SHOW GRANTS FOR '{deployment.django_user}'@'%'")
    assert not any("ALL PRIVILEGES" in row[0] or "GRANT OPTION" in row[0] for row in shown), shown
