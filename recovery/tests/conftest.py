"""Test harness: the trading tables come from the reference DDL, never from the models."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connections

from recovery.routers import trading_alias
from recovery.schema import trading_schema_build, trading_tables_empty

MYSQL_ONLY = (
    "needs a real MySQL/MariaDB server; run with DATABASE_URL=mysql://root@127.0.0.1:3306/tradeops"
)


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
    with django_db_blocker.unblock():
        trading_schema_build(using=trading_alias())


@pytest.fixture
def committed_db(transactional_db: None) -> Iterator[None]:
    """A transactional test whose trading rows are emptied before and after.

    Django's flush leaves unmanaged tables alone, so they are emptied here.
    """
    trading_tables_empty(using=trading_alias())
    yield
    trading_tables_empty(using=trading_alias())
