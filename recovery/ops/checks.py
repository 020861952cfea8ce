"""Checks of how the web process is served: a sweep started by a request ends before its worker is killed.

A request's sweep stops starting orders at RECOVERY_API_MAX_SECONDS; after that it still
finishes the order in flight and writes its heartbeat, audit row and history, each bounded
by the database timeouts. All of it must end inside the web server's worker timeout
(WEB_WORKER_TIMEOUT_SECONDS, which deploy/gunicorn.conf.py hands to gunicorn): a killed
worker answers an HTML 500, says nothing of what it left and writes no heartbeat.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

MSG_BUDGET = (
    "RECOVERY_API_MAX_SECONDS ({budget:g}) plus {closing:g} s to finish the order in flight and "
    "write the run down is not under WEB_WORKER_TIMEOUT_SECONDS ({timeout:g}): a big backlog "
    "would get the worker killed mid-sweep"
)
HINT_BUDGET = "lower RECOVERY_API_MAX_SECONDS or raise WEB_WORKER_TIMEOUT_SECONDS (gunicorn's --timeout)"
MSG_UNBOUNDED = (
    "DATABASE_READ_TIMEOUT_SECONDS or DATABASE_WRITE_TIMEOUT_SECONDS is 0 (no timeout): a sweep "
    "started by a request can outlive WEB_WORKER_TIMEOUT_SECONDS on a hung database server"
)
HINT_UNBOUNDED = "set both database timeouts (the defaults are 15 s)"
# Finishing after the budget: the order in flight (one write) and the closing writes
# (heartbeat, summary row, history: another); the client library tries a timed-out read
# or write three times before it gives up.
CLOSING_WRITES = 2
TRIES = 3


def closing_seconds() -> float | None:
    """The longest a request's sweep may run past its budget; None when nothing bounds it."""
    timeouts = (settings.DATABASE_READ_TIMEOUT_SECONDS, settings.DATABASE_WRITE_TIMEOUT_SECONDS)
    if min(timeouts) <= 0:
        return None
    return float(CLOSING_WRITES * TRIES * max(timeouts))


@checks.register("tradeops")
def request_budget_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    budget, timeout = float(settings.RECOVERY_API_MAX_SECONDS), float(settings.WEB_WORKER_TIMEOUT_SECONDS)
    closing = closing_seconds()
    if closing is None:
        return [checks.Warning(MSG_UNBOUNDED, hint=HINT_UNBOUNDED, id="recovery.W010")]
    if budget > 0 and budget + closing < timeout:
        return []
    message = MSG_BUDGET.format(budget=budget, closing=closing, timeout=timeout)
    return [checks.Error(message, hint=HINT_BUDGET, id="recovery.E010")]
