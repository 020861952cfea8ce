"""The models match the reference DDL column for column, as the database reports it."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import connections
from django.utils import timezone

from recovery.db import models
from recovery.db.routers import is_trading_model, trading_alias
from recovery.tests import factories

TRADING_MODELS = [m for m in apps.get_app_config("recovery").get_models() if is_trading_model(m)]

# Introspection names a column's type as a Django field class; these are the same column.
SAME_TYPE = {"AutoField": "IntegerField", "BigAutoField": "BigIntegerField"}


def _normal_type(name: str) -> str:
    return SAME_TYPE.get(name, name)


def _table_columns(table: str) -> dict[str, object]:
    connection = connections[trading_alias()]
    with connection.cursor() as cursor:
        return {c.name: c for c in connection.introspection.get_table_description(cursor, table)}


def _db_default(raw: object) -> object:
    """information_schema's COLUMN_DEFAULT, as a Python value (MariaDB quotes literals)."""
    if raw is None or str(raw).upper() == "NULL":
        return None
    text = str(raw)
    if text.lower().startswith("current_timestamp"):
        return "CURRENT_TIMESTAMP"
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1]
    return text


@pytest.mark.django_db
@pytest.mark.parametrize("model", TRADING_MODELS, ids=lambda m: m._meta.db_table)
def test_model_fields_match_database_columns(model) -> None:
    connection = connections[trading_alias()]
    columns = _table_columns(model._meta.db_table)
    fields = {f.column: f for f in model._meta.concrete_fields}
    assert set(fields) == set(columns), "model and table disagree on the column names"
    for column, info in columns.items():
        field = fields[column]
        db_type = connection.introspection.get_field_type(info.type_code, info)
        expected = field.get_internal_type()
        if connection.vendor == "mysql" and expected == "BooleanField":
            expected = "IntegerField"  # MySQL's BOOL is TINYINT(1); introspection says integer
        assert _normal_type(db_type) == _normal_type(expected), column
        assert bool(info.null_ok) == field.null, f"{column}: null-ness"
        if field.get_internal_type() == "CharField":
            assert (info.internal_size or info.display_size) == field.max_length, f"{column}: length"


@pytest.mark.mysql
@pytest.mark.django_db
@pytest.mark.parametrize("model", TRADING_MODELS, ids=lambda m: m._meta.db_table)
def test_model_defaults_match_database_defaults(model) -> None:
    columns = _table_columns(model._meta.db_table)
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        db_default = _db_default(columns[field.column].default)
        if db_default == "CURRENT_TIMESTAMP":
            assert field.default is timezone.now, f"{field.column}: expected default=timezone.now"
        elif db_default is None:
            assert not field.has_default() or field.default is None, field.column
        else:
            assert field.has_default(), f"{field.column}: the table has DEFAULT {db_default}"
            assert str(field.default) == db_default or float(field.default) == float(db_default), field.column


@pytest.mark.parametrize("model", TRADING_MODELS, ids=lambda m: m._meta.db_table)
def test_trading_models_are_unmanaged(model) -> None:
    assert model._meta.managed is False


@pytest.mark.django_db
def test_every_model_has_a_working_factory_and_readable_str() -> None:
    built = [
        factories.TradeSettingsFactory(auto_recovery={"enabled": True}),
        factories.TradeOrderFactory(client_order_id="abc-1", quantity=12.5),
        factories.AuditLogFactory(action="x.y"),
        factories.TradeRunFactory(project_id=7),
        factories.TradeGuardStateFactory(project_id=7, status="halted"),
        factories.IbSettingsFactory(port=4002),
    ]
    texts = [str(obj) for obj in built]
    assert texts[1] == f"#{built[1].pk} abc-1 BUY 12.5 AAPL [NEW]"
    assert "halted" in texts[4] and "4002" in texts[5]
    for obj in built:
        reloaded = type(obj).objects.get(pk=obj.pk)
        assert reloaded.pk == obj.pk


@pytest.mark.django_db
def test_datetimes_are_stored_as_naive_utc() -> None:
    moment = timezone.now().replace(microsecond=0)
    order = factories.TradeOrderFactory(created_at=moment)
    connection = connections[trading_alias()]
    with connection.cursor() as cursor:
        cursor.execute("SELECT created_at FROM trade_orders WHERE id = %s", [order.pk])
        (raw,) = cursor.fetchone()
    text = raw if isinstance(raw, str) else raw.isoformat(sep=" ")
    assert text.startswith(moment.strftime("%Y-%m-%d %H:%M:%S"))
    assert "+" not in text[10:]


def test_order_permission_for_the_recovery_action_is_declared() -> None:
    assert ("run_auto_recovery", "Can run auto-recovery of stale orders") in (
        models.TradeOrder._meta.permissions
    )
