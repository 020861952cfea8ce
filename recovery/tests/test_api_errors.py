"""Every error of the API is JSON, with a status the README's table lists.

A body over the limit (413), a body that is not JSON (415), an id past trade_orders.id's
INT range (400), a path or method the API does not have (404, 405), an unexpected
exception (500), and a database that cannot be reached (503): Django's own, which the
token check reads before any view runs, or the trading one. A database that is down is a
connection to a place where no server answers (a closed port on MariaDB, a folder that
does not exist on SQLite), swapped in for the one alias and put back afterwards.
"""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.db import connections
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from recovery.api.parsers import MAX_BODY_BYTES, MSG_TOO_LARGE
from recovery.api.serializers import MAX_ORDER_ID
from recovery.db.models import SweepRun, TradeOrder
from recovery.db.routers import TRADING_ALIAS
from recovery.tests import factories

SWEEP = "/api/recovery/sweep"
SETTINGS = "/api/recovery/settings"
OPERATOR_PERMS = ("view_tradeorder", "view_tradesettings", "run_auto_recovery")
README = Path(django_settings.BASE_DIR) / "README.md"


def readme_statuses() -> set[int]:
    """The statuses of the README's API table (`| 401 / 403 | …` lists two)."""
    section = README.read_text().split("## HTTP API", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| ([0-9][0-9 /]*) \|", section, flags=re.M)
    return {int(code) for row in rows for code in row.split("/")}


def assert_json_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert status in readme_statuses(), f"{status} is not in the README's status table"
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    return json.loads(response.content)


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def operator(django_user_model, **client_options: Any) -> APIClient:  # noqa: ANN001
    user = django_user_model.objects.create_user(username="ops", password="pw")
    user.user_permissions.set(Permission.objects.filter(codename__in=OPERATOR_PERMS))
    client = APIClient(**client_options)
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def ops(db, django_user_model, bridge) -> APIClient:  # noqa: ANN001
    factories.TradeSettingsFactory(auto_recovery={})
    factories.IbSettingsFactory()
    return operator(django_user_model)


def untouched(order: TradeOrder) -> bool:
    return TradeOrder.objects.get(pk=order.pk).status == "NEW" and not SweepRun.objects.exists()


def test_the_readme_table_is_read() -> None:
    """Guards the parsing above: the table's first and last rows are found."""
    assert {200, 400, 401, 403, 503} <= readme_statuses()


# --- the body ------------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_and_changes_nothing(ops: APIClient) -> None:
    order = factories.TradeOrderFactory()
    body = '{"dry_run": false}'.ljust(MAX_BODY_BYTES + 1)

    response = ops.post(SWEEP, body, content_type="application/json")

    assert assert_json_error(response, 413) == {"detail": MSG_TOO_LARGE.format(limit=MAX_BODY_BYTES)}
    assert untouched(order)


def test_a_body_at_the_limit_is_read(ops: APIClient) -> None:
    body = '{"dry_run": true}'.ljust(MAX_BODY_BYTES)

    response = ops.post(SWEEP, body, content_type="application/json")

    assert response.status_code == 200 and response.json()["dry_run"] is True


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_body_that_is_not_json_is_415(ops: APIClient, content_type: str) -> None:
    order = factories.TradeOrderFactory()

    response = ops.post(SWEEP, "dry_run=false", content_type=content_type)

    assert content_type in assert_json_error(response, 415)["detail"]
    assert untouched(order)


def test_json_that_does_not_parse_is_400(ops: APIClient) -> None:
    response = ops.post(SWEEP, '{"dry_run": tru', content_type="application/json")
    assert "JSON parse error" in assert_json_error(response, 400)["detail"]


# --- ids in trade_orders.id's range --------------------------------------------------------------


@pytest.mark.parametrize("order_id", [MAX_ORDER_ID + 1, 99999999999999999999])
def test_an_id_past_the_int_column_is_400_and_changes_nothing(ops: APIClient, order_id: int) -> None:
    order = factories.TradeOrderFactory()

    response = ops.post(SWEEP, {"order_ids": [order.pk, order_id]}, format="json")

    body = assert_json_error(response, 400)
    assert f"less than or equal to {MAX_ORDER_ID}" in json.dumps(body["order_ids"])
    assert untouched(order)


def test_the_largest_int_id_is_taken(ops: APIClient) -> None:
    response = ops.post(SWEEP, {"order_ids": [MAX_ORDER_ID], "dry_run": True}, format="json")

    assert response.status_code == 200
    assert response.json()["scanned"] == 0


# --- what the API does not have ------------------------------------------------------------------


def test_an_unknown_path_is_404_json(ops: APIClient) -> None:
    assert assert_json_error(ops.get("/api/recovery/nothing-here"), 404) == {"detail": "Not Found"}


def test_a_method_the_view_does_not_take_is_405(ops: APIClient) -> None:
    order = factories.TradeOrderFactory()
    assert "GET" in assert_json_error(ops.get(SWEEP), 405)["detail"]
    assert "DELETE" in assert_json_error(ops.delete(SWEEP), 405)["detail"]
    assert untouched(order)


def test_an_answer_only_in_html_is_406(ops: APIClient) -> None:
    response = ops.get(SETTINGS, HTTP_ACCEPT="text/html")
    assert "Could not satisfy" in assert_json_error(response, 406)["detail"]


def test_an_unexpected_exception_is_500_json_and_logged_with_its_traceback(
    db,
    django_user_model,
    bridge,
    monkeypatch,  # noqa: ANN001
) -> None:
    factories.TradeSettingsFactory(auto_recovery={})
    client = operator(django_user_model, raise_request_exception=False)

    def broken(preview: object, **_: object) -> None:
        raise RuntimeError("a bug in the settings view")

    monkeypatch.setattr("recovery.api.views.settings_body", broken)
    # django.request does not propagate (its own stderr handler): listen on it directly.
    records: list[logging.LogRecord] = []
    listener = logging.Handler(level=logging.ERROR)
    listener.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("django.request").addHandler(listener)
    try:
        response = client.get(SETTINGS)
    finally:
        logging.getLogger("django.request").removeHandler(listener)

    assert assert_json_error(response, 500) == {"detail": "Internal Server Error"}
    (record,) = records
    assert record.exc_info and "a bug in the settings view" in str(record.exc_info[1])


# --- a database that cannot be reached -----------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unreachable(settings_dict: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """The same database settings, pointed where no server answers."""
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return {**settings_dict, "NAME": str(tmp_path / "no-such-folder" / "down.sqlite3")}
    return {**settings_dict, "HOST": "127.0.0.1", "PORT": closed_port()}


@contextmanager
def django_database_down(tmp_path: Path) -> Iterator[str]:
    """Django's alias on a connection that cannot connect; its NAME for the messages."""
    original = connections["default"]
    down = original.__class__(unreachable(original.settings_dict, tmp_path), "default")
    connections["default"] = down
    try:
        yield down.settings_dict["NAME"]
    finally:
        down.close()
        connections["default"] = original


@contextmanager
def trading_alias_at(settings, settings_dict: dict[str, Any]) -> Iterator[None]:  # noqa: ANN001
    """A trading alias beside Django's, as production has it, for the length of the block.

    Made after the test's database setup, and kept out of the connection handler's list,
    so Django's test isolation lets it connect (or fail to) like any alias made on the fly.
    """
    before = settings.DATABASES
    settings.DATABASES = {**before, TRADING_ALIAS: settings_dict}
    connections[TRADING_ALIAS] = connections["default"].__class__(settings_dict, TRADING_ALIAS)
    try:
        yield
    finally:
        connections[TRADING_ALIAS].close()
        del connections[TRADING_ALIAS]
        settings.DATABASES = before


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
@pytest.mark.parametrize("auth", ["token", "session"])
def test_djangos_database_down_is_503_json_naming_it(
    ops: APIClient,
    django_user_model,
    settings,
    tmp_path,
    auth,  # noqa: ANN001
) -> None:
    order = factories.TradeOrderFactory()
    if auth == "session":
        ops = APIClient()
        ops.force_login(django_user_model.objects.get(username="ops"))
    # The requests stop at the login check, before any trading table is read.
    trading = dict(connections["default"].settings_dict)

    with trading_alias_at(settings, trading), django_database_down(tmp_path) as name:
        responses = [ops.post(SWEEP, {}, format="json"), ops.get(SETTINGS)]

    for response in responses:
        body = assert_json_error(response, 503)
        assert body["could_not_run"] is True
        assert f"Django's database ({name}) cannot be reached" in body["message"], body["message"]
        assert "'default'" not in body["message"]
    assert untouched(order)


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
@pytest.mark.parametrize(
    ("method", "body"),
    [("post", {}), ("post", {"dry_run": True}), ("get", None)],
    ids=["sweep", "dry", "read"],
)
def test_the_trading_database_down_is_503_json_naming_it(
    ops: APIClient,
    settings,
    tmp_path,
    method: str,
    body: object,  # noqa: ANN001
) -> None:
    down = unreachable(dict(connections["default"].settings_dict), tmp_path)
    name = down["NAME"]
    with trading_alias_at(settings, down):
        path = SWEEP if method == "post" else SETTINGS
        response = getattr(ops, method)(path, body, format="json")

    answer = assert_json_error(response, 503)
    assert answer["could_not_run"] is True
    assert f"the trading database ({name})" in answer["message"], answer["message"]
    assert "database 'trading'" not in answer["message"]
    if body == {}:  # a real sweep leaves its heartbeat in Django's database, which is up
        beat = SweepRun.objects.get()
        assert (beat.outcome, beat.actor) == ("could_not_run", "api:ops")
        assert f"the trading database ({name})" in beat.message


def test_the_openapi_schema_lists_the_error_statuses(ops: APIClient) -> None:
    schema = json.loads(ops.get("/api/schema").content)
    for path, method in (("/api/recovery/sweep", "post"), ("/api/recovery/settings", "get")):
        listed = {int(code) for code in schema["paths"][path][method]["responses"]}
        assert {404, 405, 406, 413, 415, 500, 503} <= listed <= readme_statuses(), (path, listed)
