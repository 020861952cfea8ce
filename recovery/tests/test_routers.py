"""Trading models go to the trading alias; nothing trading is ever migrated."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from recovery.db import models
from recovery.db.routers import TradingRouter, trading_alias

SPLIT = {"default": {"ENGINE": "django.db.backends.sqlite3"}, "trading": {"ENGINE": "x"}}
SINGLE = {"default": {"ENGINE": "django.db.backends.sqlite3"}}
router = TradingRouter()
# The router only reads the alias names; no connection is made with these settings.
pytestmark = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")


@override_settings(DATABASES=SPLIT)
def test_split_configuration_sends_trading_models_to_trading() -> None:
    assert trading_alias() == "trading"
    assert router.db_for_read(models.TradeOrder) == "trading"
    assert router.db_for_write(models.AuditLog) == "trading"
    assert router.db_for_write(User) is None


@override_settings(DATABASES=SINGLE)
def test_single_database_keeps_everything_on_default() -> None:
    assert trading_alias() == "default"
    assert router.db_for_read(models.TradeSettings) == "default"


@pytest.mark.parametrize("db", ["default", "trading"])
@pytest.mark.parametrize(
    "model_name", ["tradesettings", "tradeorder", "auditlog", "traderun", "tradeguardstate", "ibsettings"]
)
def test_trading_models_are_never_migrated(db: str, model_name: str) -> None:
    assert router.allow_migrate(db, "recovery", model_name=model_name) is False


def test_django_tables_stay_off_the_trading_database() -> None:
    assert router.allow_migrate("trading", "auth", model_name="user") is False
    assert router.allow_migrate("default", "auth", model_name="user") is None


def test_a_database_is_named_by_its_role_and_real_name(settings, tmp_path) -> None:  # noqa: ANN001
    from django.db import connections

    from recovery.db.routers import database_label
    from recovery.tests.scratch import registered_connection

    default = connections["default"].settings_dict
    assert trading_alias() == "default"  # the suite's own configuration: one database
    assert database_label("default") == f"the database ({default['NAME']})"
    trading = {**default, "NAME": str(tmp_path / "trading.sqlite3")}
    with override_settings(DATABASES={**settings.DATABASES, "trading": trading}):
        with registered_connection("trading", trading):
            assert database_label("trading") == f"the trading database ({trading['NAME']})"
            assert database_label("default") == f"Django's database ({default['NAME']})"
