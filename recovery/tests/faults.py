"""Faults injected into the test database's trading_orders writes (MariaDB, tests only).

A BEFORE UPDATE trigger on trade_orders raises an error, or sleeps, when the order being
updated has an entry in `test_faults`. That table is MyISAM on purpose: its countdown
survives the rollback the error causes, so "fail twice, then let it through" works.
Used by test_order_write.py and test_connection_loss.py; the trigger is dropped after.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections

from recovery.db.routers import trading_alias
from recovery.db.schema import ensure_scratch_database

TRIGGER = """
CREATE TRIGGER test_fault_before_update BEFORE UPDATE ON trade_orders FOR EACH ROW
BEGIN
  DECLARE left_over INT DEFAULT (SELECT remaining FROM test_faults WHERE order_id = OLD.id);
  DECLARE code INT DEFAULT (SELECT errno FROM test_faults WHERE order_id = OLD.id);
  DECLARE pause DOUBLE DEFAULT (SELECT sleep_seconds FROM test_faults WHERE order_id = OLD.id);
  IF left_over > 0 THEN
    UPDATE test_faults SET remaining = remaining - 1 WHERE order_id = OLD.id;
    IF pause > 0 THEN
      DO SLEEP(pause);
    END IF;
    IF code = 1213 THEN
      SIGNAL SQLSTATE '40001' SET MESSAGE_TEXT = 'injected deadlock', MYSQL_ERRNO = 1213;
    ELSEIF code = 1205 THEN
      SIGNAL SQLSTATE 'HY000' SET MESSAGE_TEXT = 'injected lock wait timeout', MYSQL_ERRNO = 1205;
    ELSEIF code > 0 THEN
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'injected failure', MYSQL_ERRNO = 1644;
    END IF;
  END IF;
END
"""


class Faults:
    def add(self, order_id: int, *, times: int, errno: int = 1213, sleep_seconds: float = 0) -> None:
        with connections[trading_alias()].cursor() as cursor:
            cursor.execute(
                "REPLACE INTO test_faults (order_id, remaining, errno, sleep_seconds)"
                " VALUES (%s, %s, %s, %s)",
                [order_id, times, errno, sleep_seconds],
            )

    def remaining(self, order_id: int) -> int:
        with connections[trading_alias()].cursor() as cursor:
            cursor.execute("SELECT remaining FROM test_faults WHERE order_id = %s", [order_id])
            return cursor.fetchone()[0]


@contextmanager
def faults_installed() -> Iterator[Faults]:
    connection = connections[trading_alias()]
    ensure_scratch_database(connection)
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER IF EXISTS test_fault_before_update")
        cursor.execute("DROP TABLE IF EXISTS test_faults")
        cursor.execute(
            "CREATE TABLE test_faults (order_id INT PRIMARY KEY, remaining INT NOT NULL, errno INT NOT NULL,"
            " sleep_seconds DOUBLE NOT NULL DEFAULT 0) ENGINE=MyISAM"
        )
        cursor.execute(TRIGGER)
    try:
        yield Faults()
    finally:
        with connections[trading_alias()].cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS test_fault_before_update")
            cursor.execute("DROP TABLE IF EXISTS test_faults")
