"""Keep overlapping runs of the command apart: GET_LOCK on MySQL, a file lock on SQLite.

Only a convenience: GET_LOCK is not shared across the nodes of a Galera or
group-replication cluster, so correctness rests on the row-level guarantees of the
sweep, never on this lock (docs/design.md, "Several hosts").
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connections

from recovery.exceptions import SweepLockHeld

LOCK_NAME = "tradeops.auto_recover"


@contextmanager
def sweep_lock(*, using: str) -> Iterator[None]:
    """Hold the sweep's named lock for the block; SweepLockHeld when another run has it."""
    connection = connections[using]
    if connection.vendor == "mysql":
        with _mysql_lock(using):
            yield
    else:
        with _file_lock(connection.settings_dict["NAME"]):
            yield


@contextmanager
def _mysql_lock(using: str) -> Iterator[None]:
    from django_mysql.exceptions import TimeoutError as LockTimeout
    from django_mysql.locks import Lock

    lock = Lock(LOCK_NAME, acquire_timeout=0, using=using)
    try:
        lock.acquire()
    except LockTimeout:
        raise SweepLockHeld(lock.name) from None
    try:
        yield
    finally:
        lock.release()


@contextmanager
def _file_lock(database_name: object) -> Iterator[None]:
    # One lock file per database, so two demo databases do not block each other.
    digest = hashlib.sha256(str(database_name).encode()).hexdigest()[:12]
    folder = Path(settings.AUTO_RECOVER_LOCK_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"auto_recover-{digest}.lock"
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SweepLockHeld(str(path)) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
