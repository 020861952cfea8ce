"""The HTTP API: the same services and JSON as the command, a status per outcome, auth, limits."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.core.management import call_command
from django.db import connections
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from recovery.api.serializers import MSG_CONFIRM_NEEDS_IDS, MSG_NOT_BOOL
from recovery.db.audit import ACTION_CANCEL, ACTION_SWEEP
from recovery.db.locks import LOCK_NAME, sweep_lock
from recovery.db.models import AuditLog, SweepRun, TradeOrder, TradeSettings
from recovery.db.routers import trading_alias
from recovery.db.schema import run_sql_script, trading_schema_build
from recovery.tests import factories

SWEEP = "/api/recovery/sweep"
SETTINGS = "/api/recovery/settings"
SCHEMA = "/api/schema"
OPERATOR_PERMS = ("view_tradeorder", "view_tradesettings", "run_auto_recovery")


def stale(**fields):  # noqa: ANN001, ANN201
    created = timezone.now() - dt.timedelta(minutes=10)
    return factories.TradeOrderFactory(created_at=created, updated_at=created, **fields)


def token_client(django_user_model, username: str, *codenames: str, **client_options) -> APIClient:  # noqa: ANN001
    user = django_user_model.objects.create_user(username=username, password="pw")
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = APIClient(**client_options)
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def trading_rows(bridge) -> None:  # noqa: ANN001
    # allow_replace_outside_rth: the API uses the real clock, whatever the hour of the test.
    factories.TradeSettingsFactory(
        auto_recovery={"allow_replace_outside_rth": True, "replace_same_trading_day_only": False}
    )
    factories.IbSettingsFactory()


@pytest.fixture
def ops(db, django_user_model, trading_rows) -> APIClient:  # noqa: ANN001
    return token_client(django_user_model, "ops", *OPERATOR_PERMS)


@pytest.fixture
def viewer(db, django_user_model, trading_rows) -> APIClient:  # noqa: ANN001
    return token_client(django_user_model, "viewer", "view_tradeorder", "view_tradesettings")


def post(client: APIClient, body: object):  # noqa: ANN201
    return client.post(SWEEP, body, format="json")


def statuses(*orders: TradeOrder) -> list[str]:
    return [TradeOrder.objects.get(pk=o.pk).status for o in orders]


# --- the sweep ---------------------------------------------------------------------------


def test_a_sweep_recovers_and_records_the_api_actor(ops: APIClient) -> None:
    first, second = stale(client_order_id="api-1"), stale(client_order_id="api-2", side="HOLD")

    response = post(ops, {})

    assert response.status_code == 200
    body = response.json()
    assert (body["scanned"], body["cancelled"], body["replaced"], body["failed"]) == (2, 2, 1, 0)
    assert body["actor"] == "api:ops" and body["dry_run"] is False
    decisions = {o["id"]: (o["decision"], o["reason"]) for o in body["orders"]}
    assert decisions == {first.pk: ("replace", "replaced"), second.pk: ("cancel", "invalid_order")}
    assert statuses(first, second) == ["CANCELED", "CANCELED"]
    cancels = AuditLog.objects.filter(action=ACTION_CANCEL).values_list("actor", flat=True)
    assert sorted(cancels) == ["api:ops", "api:ops"]
    assert AuditLog.objects.get(action=ACTION_SWEEP).actor == "api:ops"
    beat = SweepRun.objects.get()
    assert (beat.actor, beat.outcome, beat.sweep_id, beat.replaced) == ("api:ops", "ok", body["sweep_id"], 1)

    again = post(ops, {})
    assert again.status_code == 200 and again.json()["scanned"] == 0  # nothing left to do


def test_the_json_is_the_commands(ops: APIClient) -> None:
    stale(client_order_id="same-1")
    stale(client_order_id="same-2", order_type="LMT", limit_price=100.0)  # no quote: cancel only
    out = io.StringIO()
    call_command("auto_recover", "--dry-run", "--json", stdout=out)
    command = json.loads(out.getvalue())

    api = post(ops, {"dry_run": True}).json()

    assert set(api) == set(command) | {"stale_now"}  # the API adds the exact backlog
    per_order = lambda report: [(o["id"], o["decision"], o["reason"]) for o in report["orders"]]  # noqa: E731
    assert per_order(api) == per_order(command)
    for key in ("scanned", "cancelled", "replaced", "skipped", "failed", "settings", "settings_warnings"):
        assert api[key] == command[key], key


def test_a_dry_run_writes_nothing(ops: APIClient) -> None:
    order = stale()
    response = post(ops, {"dry_run": True, "limit": 5})
    assert response.status_code == 200
    body = response.json()
    assert body["dry_run"] is True and body["replaced"] == 1
    assert statuses(order) == ["NEW"]
    assert not AuditLog.objects.exists() and not SweepRun.objects.exists()


def test_stale_now_is_the_exact_backlog_past_a_runs_limit(ops: APIClient, viewer: APIClient) -> None:
    created = timezone.now() - dt.timedelta(minutes=10)
    TradeOrder.objects.bulk_create(
        [
            # side HOLD: cancel only (rule 6), so the breaker stays shut
            TradeOrder(client_order_id=f"b-{i}", symbol="X", side="HOLD", quantity=1, created_at=created)
            for i in range(230)
        ]
    )
    dry = post(ops, {"dry_run": True}).json()
    assert (dry["stale_now"], dry["scanned"]) == (230, 200)
    assert viewer.get(SETTINGS).json()["stale_now"] == 230

    run = post(ops, {"limit": 150})
    assert run.status_code == 200
    assert (run.json()["cancelled"], run.json()["stale_now"]) == (150, 80)  # what the run left


def test_order_ids_recover_only_those(ops: APIClient) -> None:
    chosen, other = stale(), stale()
    acknowledged = stale(status="SUBMITTED", ib_order_id=42)

    response = post(ops, {"order_ids": [chosen.pk, acknowledged.pk, 999999]})

    assert response.status_code == 200
    body = response.json()
    assert [o["id"] for o in body["orders"]] == [chosen.pk]
    assert {a["id"]: a["why"] for a in body["left_alone"]}.keys() == {acknowledged.pk, 999999}
    assert statuses(chosen, other, acknowledged) == ["CANCELED", "NEW", "SUBMITTED"]


# --- a status per outcome ---------------------------------------------------------------------


def test_a_sweep_blocked_by_a_missing_bridge_root_is_503_never_200(
    ops: APIClient, settings, tmp_path
) -> None:  # noqa: ANN001
    order = stale()
    settings.LEAN_BRIDGE_ROOT = tmp_path / "not-mounted"
    response = post(ops, {})
    assert response.status_code == 503
    body = response.json()
    assert (
        body["blocked_by"] == "broker_evidence_unavailable"
        and "not-mounted does not exist" in body["blocked"]
    )
    assert statuses(order) == ["NEW"]
    beat = SweepRun.objects.get()
    assert (beat.outcome, beat.blocked_by) == ("blocked", "broker_evidence_unavailable")


def test_an_open_breaker_is_409_and_changes_nothing(ops: APIClient) -> None:
    TradeSettings.objects.update(
        auto_recovery={
            "allow_replace_outside_rth": True,
            "replace_same_trading_day_only": False,
            "max_replacements_per_sweep": 1,
        }
    )
    orders = [stale(), stale()]

    response = post(ops, {})

    assert response.status_code == 409
    body = response.json()
    assert body["circuit_open"] is True and body["would_replace"] == 2 and body["cancelled"] == 0
    assert statuses(*orders) == ["NEW", "NEW"]
    assert SweepRun.objects.get().outcome == "breaker_open"

    # As in the admin: selected orders may pass it, with the exact count confirmed.
    wrong = post(ops, {"order_ids": [o.pk for o in orders], "confirmed_replacements": 3})
    assert wrong.status_code == 409 and statuses(*orders) == ["NEW", "NEW"]
    passed = post(ops, {"order_ids": [o.pk for o in orders], "confirmed_replacements": 2})
    assert passed.status_code == 200 and passed.json()["breaker_overridden"] is True
    assert statuses(*orders) == ["CANCELED", "CANCELED"]


@contextmanager
def lock_held_elsewhere() -> Iterator[None]:
    """The sweep's named lock, held as another run would hold it: another session, another file handle."""
    connection = connections[trading_alias()]
    if connection.vendor != "mysql":
        with sweep_lock(using=trading_alias()):  # flock: a second handle conflicts, even in-process
            yield
        return
    import MySQLdb
    from django_mysql.locks import Lock

    params = connection.get_connection_params()
    other = MySQLdb.connect(**{k: v for k, v in params.items() if k != "init_command"})
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, 0)", [Lock.make_name(trading_alias(), LOCK_NAME)])
            assert cursor.fetchone() == (1,)
        yield
    finally:
        other.close()


@pytest.mark.django_db(transaction=True)
def test_a_held_lock_is_423_and_does_nothing(committed_db, django_user_model, trading_rows) -> None:  # noqa: ANN001
    client = token_client(django_user_model, "ops", *OPERATOR_PERMS)
    order = stale()
    with lock_held_elsewhere():
        held = post(client, {})
    assert held.status_code == 423
    assert held.json()["lock_held"] is True and "holds the lock" in held.json()["message"]
    assert statuses(order) == ["NEW"]
    assert SweepRun.objects.get().outcome == "lock_held"
    assert post(client, {}).status_code == 200 and statuses(order) == ["CANCELED"]


@pytest.mark.django_db(transaction=True)
def test_a_schema_without_the_patch_is_503(committed_db, django_user_model, bridge) -> None:  # noqa: ANN001
    client = token_client(django_user_model, "ops", *OPERATOR_PERMS)
    connection = connections[trading_alias()]
    run_sql_script(connection, "ALTER TABLE trade_settings DROP COLUMN auto_recovery")
    try:
        real = post(client, {})
        dry = post(client, {"dry_run": True})
        read = client.get(SETTINGS)
    finally:
        trading_schema_build(using=trading_alias())  # the test database's tables, as the session built them
    for response in (real, dry, read):
        assert response.status_code == 503
        body = response.json()
        assert body["could_not_run"] is True and "20260203_trade_settings_auto_recovery" in body["message"]
    assert SweepRun.objects.get().outcome == "could_not_run"


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"dry_run": "false"}, "dry_run", MSG_NOT_BOOL),
        ({"dry_run": 0}, "dry_run", MSG_NOT_BOOL),
        ({"dryrun": True}, "non_field_errors", "unknown field(s): dryrun"),
        ({"limit": 0}, "limit", "greater than or equal to 1"),
        ({"limit": 5.0}, "limit", "whole JSON number"),
        ({"limit": True}, "limit", "whole JSON number"),
        ({"order_ids": []}, "order_ids", "at least 1"),
        ({"order_ids": "1,2"}, "order_ids", "list"),
        ({"order_ids": [1, "2"]}, "order_ids", "whole JSON number"),
        ({"order_ids": list(range(1, 502))}, "order_ids", "no more than 500"),
        ({"confirmed_replacements": 2}, "confirmed_replacements", MSG_CONFIRM_NEEDS_IDS),
        ([1, 2], "non_field_errors", "Invalid data"),
    ],
)
def test_bad_input_is_400_and_changes_nothing(ops: APIClient, body: object, field: str, message: str) -> None:
    order = stale()
    response = post(ops, body)
    assert response.status_code == 400
    assert message in json.dumps(response.json()[field])
    assert statuses(order) == ["NEW"] and not SweepRun.objects.exists()


def test_not_json_is_415(ops: APIClient) -> None:
    order = stale()
    response = ops.post(SWEEP, {"dry_run": "true"})  # a form, not JSON
    assert response.status_code == 415
    assert statuses(order) == ["NEW"]


# --- who may -------------------------------------------------------------------------------


def test_no_credentials_is_401_and_a_wrong_token_too(db, trading_rows) -> None:  # noqa: ANN001
    order = stale()
    assert post(APIClient(), {}).status_code == 401
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert post(forged, {}).status_code == 401
    assert APIClient().get(SETTINGS).status_code == 401
    assert statuses(order) == ["NEW"]


def test_without_run_auto_recovery_it_is_403(viewer: APIClient) -> None:
    order = stale()
    response = post(viewer, {})
    assert response.status_code == 403
    assert "permission to run auto-recovery" in response.json()["detail"]
    assert statuses(order) == ["NEW"]
    assert viewer.get(SETTINGS).status_code == 200  # reading is the viewers' right


def test_sessions_need_csrf_tokens_do_not(db, django_user_model, trading_rows) -> None:  # noqa: ANN001
    order = stale()
    user = django_user_model.objects.create_user(username="browser", password="pw")
    user.user_permissions.set(Permission.objects.filter(codename__in=OPERATOR_PERMS))
    session = APIClient(enforce_csrf_checks=True)
    session.force_login(user)
    refused = post(session, {})
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert statuses(order) == ["NEW"]

    scripted = token_client(django_user_model, "script", *OPERATOR_PERMS, enforce_csrf_checks=True)
    assert post(scripted, {}).status_code == 200
    assert statuses(order) == ["CANCELED"]


def test_requests_are_rate_limited_per_user(ops: APIClient, viewer: APIClient, settings) -> None:  # noqa: ANN001
    settings.RECOVERY_API_SWEEP_RATE = "2/min"
    codes = [post(ops, {"dry_run": True}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    limited = post(ops, {"dry_run": True})
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert post(viewer, {"dry_run": True}).status_code == 403  # another user: counted apart, then refused


# --- settings and gates, schema -----------------------------------------------------------------


def test_settings_fill_in_defaults_and_report_bad_keys(viewer: APIClient) -> None:
    TradeSettings.objects.update(auto_recovery={"new_timeout_seconds": 90, "max_auto_retries": "two"})
    stale()

    response = viewer.get(SETTINGS)

    assert response.status_code == 200
    body = response.json()
    assert body["settings"]["new_timeout_seconds"] == 90
    assert body["settings"]["max_auto_retries"] == 1  # the default stands in for the bad value
    assert body["settings"]["max_replacements_per_sweep"] == 20  # absent: the default
    assert [w["key"] for w in body["settings_warnings"]] == ["max_auto_retries"]
    assert {"ib", "market", "blackout", "halted", "quotes", "open_orders"} <= set(body["gates"])
    assert body["gates"]["ib"]["reachable"] is True  # api_mode mock, probed: there is a candidate
    assert body["would"]["scanned"] == 1 and body["circuit_open"] is False
    assert TradeOrder.objects.get().status == "NEW"  # a read


def test_the_openapi_schema_describes_the_sweep(viewer: APIClient) -> None:
    response = viewer.get(SCHEMA)
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    sweep = schema["paths"]["/api/recovery/sweep"]["post"]
    reference = sweep["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    request = schema["components"]["schemas"][reference.rsplit("/", 1)[1]]
    assert set(request["properties"]) == {"dry_run", "limit", "order_ids", "confirmed_replacements"}
    assert request["properties"]["dry_run"]["type"] == "boolean"
    assert {"200", "400", "409", "423", "503"} <= set(sweep["responses"])
    assert "get" in schema["paths"]["/api/recovery/settings"]
