"""Throwaway databases beside the test database, for DDL that a test transaction cannot hold."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from recovery.db.routers import trading_alias


@contextmanager
def registered_connection(alias: str, settings_dict: dict) -> Iterator[BaseDatabaseWrapper]:
    """A connection under a temporary alias (introspection looks connections up by alias)."""
    connections.settings[alias] = settings_dict
    try:
        connection = connections[alias]
        yield connection
    finally:
        connections[alias].close()
        del connections[alias]
        del connections.settings[alias]


def scratch_prefix(settings_dict: dict) -> str:
    """Scratch databases are named after the suite's test database (test_<name>), so suites
    run on one server against different databases never meet; the name before the test
    database exists (a run without django_db tests) gets the test_ the test database would."""
    name = settings_dict["NAME"]
    return name if name.startswith("test_") else f"test_{name}"


@contextmanager
def scratch_database() -> Iterator[BaseDatabaseWrapper]:
    """An empty database of the same vendor as the trading alias, dropped afterwards."""
    base = connections[trading_alias()].settings_dict
    if base["ENGINE"].endswith("sqlite3"):
        with tempfile.TemporaryDirectory() as folder:
            settings_dict = {**base, "NAME": str(Path(folder) / "test_scratch.sqlite3")}
            with registered_connection("scratch", settings_dict) as connection:
                yield connection
        return
    name = f"{scratch_prefix(base)}_scratch_{uuid.uuid4().hex[:8]}"
    # No database named: the test database may not exist in a run without django_db tests.
    with registered_connection("scratch_admin", {**base, "NAME": ""}) as admin:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        try:
            with registered_connection("scratch", {**base, "NAME": name}) as connection:
                yield connection
        finally:
            with admin.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
