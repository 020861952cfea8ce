"""Placing a replacement where the backend will send it (pure).

The trading backend sends nothing just because a NEW row exists. Its direct-order loop
(every ~2 s, from its leader watchdog) takes the 200 oldest rows with no run and status
NEW or REJECTED, and sends those whose `params.direct_retry.pending` is true and due, in
ib_settings' mode. A replacement is therefore written as such a row (no run, retry pending
and due at once), and only when that loop will take it (rule 10b): its retry path skips
the checks the backend's new-order path makes, so they are made here first.

A run order is re-placed only when `replace_run_orders` is on and the run's partial
resume (a child run for what a partly filled run left) is off or used up (rule 7c):
otherwise the backend would send the remainder itself and the position would double.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from recovery.sweep.config import AutoRecoveryConfig, resume_parse

# The loop reads this many rows before it looks at direct_retry; a replacement must stand
# well inside them (REJECTED rows never leave that set), so fewer than this may be ahead.
LOOP_READS = 200
QUEUE_AHEAD_MAX = 150
# An earlier replacement still not picked up this long after it was written: the loop is
# not running, and another replacement would only wait beside it.
WAITING_SECONDS = 60
SENDER_API_MODE = "ib"
# What the loop needs to send a row at once: pending, due now (no next_retry_at), no tries yet.
DIRECT_RETRY = {"pending": True, "reason": "auto_recovery", "count": 0}

MSG_NOT_READ = "the backend's sender was not checked"
MSG_API_MODE = "ib_settings.api_mode is {api_mode!r}, not 'ib': the backend's sender does not send"
MSG_MODE = "the order is {order_mode!r}, ib_settings is {ib_mode!r}: the backend sends {ib_mode!r} orders"
MSG_QUEUE = (
    "{ahead} rows with no run are NEW or REJECTED ahead of its replacement; the backend's loop "
    "reads the oldest {reads}, so a replacement must have fewer than {limit} ahead"
)


@dataclass(frozen=True)
class SenderState:
    """What decides whether the backend's direct-order loop would send a replacement now.

    `blocked`: why the backend would refuse trades now (its gateway health file,
    gates.sender; no ib_settings row to say its mode), or None.
    `waiting`: an earlier replacement still not picked up WAITING_SECONDS after it was
    written, in words, or None. The loop's queue is weighed order by order (SenderQueue).
    """

    api_mode: str
    mode: str
    blocked: str | None = None
    waiting: str | None = None

    def sweep_problem(self) -> str | None:
        """Why no replacement may be written this sweep, whatever the order; None if one may."""
        if self.api_mode.strip().lower() != SENDER_API_MODE:
            return MSG_API_MODE.format(api_mode=self.api_mode)
        if self.blocked is not None:
            return self.blocked
        return self.waiting

    def order_problem(self, *, order_mode: str) -> str | None:
        """Why the loop would not send this order's replacement; None when it would."""
        problem = self.sweep_problem()
        if problem is not None:
            return problem
        ib_mode = self.mode.strip().lower() or "paper"
        if (order_mode or "paper").strip().lower() != ib_mode:
            return MSG_MODE.format(order_mode=order_mode, ib_mode=ib_mode)
        return None


class SenderQueue:
    """Rows the backend's loop reads before a replacement this sweep writes, as it goes.

    It starts from the rows that stay once the sweep is done: no run, NEW or REJECTED,
    less the direct orders the sweep means to cancel (while it runs they still stand there
    for a few seconds, but a replacement is judged by the queue the loop will keep reading).
    Each replacement written joins it at the end, and so does a direct order the sweep
    meant to cancel and did not.
    """

    def __init__(self, ahead: int) -> None:
        self.ahead = ahead

    def problem(self) -> str | None:
        """Why a replacement written now would starve behind the rows ahead of it; None if not."""
        if self.ahead >= QUEUE_AHEAD_MAX:
            return MSG_QUEUE.format(ahead=self.ahead, reads=LOOP_READS, limit=QUEUE_AHEAD_MAX)
        return None

    def written(self, *, replaced: bool, kept: bool = False) -> None:
        """One order done: `replaced` wrote a replacement, `kept` left a direct order NEW
        that the sweep meant to cancel."""
        self.ahead += replaced + kept


@dataclass(frozen=True)
class RunPlacement:
    """What the sweep reads of an order's run to decide rule 7c and to place its replacement."""

    decision_snapshot_id: int | None = None
    auto_resume: Mapping[str, Any] | None = None  # params.auto_resume: what its resume did
    auto_resume_attempt: Any = None  # params.auto_resume_attempt: which resume this run is
    auto_recovery: Mapping[str, Any] | None = None  # params.auto_recovery: the run's own resume keys
    allow_outside_rth: Any = None
    adaptive_priority: Any = None


def partial_resume_pending(run: RunPlacement, *, config: AutoRecoveryConfig) -> str | None:
    """Why the backend's partial resume may still send what this run left; None when it will not.

    As the backend's trade executor decides: the settings' auto_resume_partial_* keys
    overridden by the run's own params.auto_recovery; no resume without a decision
    snapshot; one child per attempt, and none past the maximum.
    """
    merged = {
        "auto_resume_partial_remaining": config.auto_resume_partial_remaining,
        "auto_resume_partial_max_attempts": config.auto_resume_partial_max_attempts,
    }
    if isinstance(run.auto_recovery, Mapping):
        merged.update(run.auto_recovery)
    policy = resume_parse(merged)
    if not policy["auto_resume_partial_remaining"] or run.decision_snapshot_id is None:
        return None
    meta = run.auto_resume if isinstance(run.auto_resume, Mapping) else {}
    child = meta.get("child_run_id")
    if child:
        return f"the backend's partial resume started child run {child} for what this run left"
    if meta.get("skipped") == "attempt_limit":
        return None
    try:
        attempt = int(run.auto_resume_attempt or 0) + 1
    except (TypeError, ValueError, OverflowError):
        attempt = 1
    maximum = policy["auto_resume_partial_max_attempts"]
    if attempt > maximum:
        return None
    return (
        f"the backend's partial resume is on (attempt {attempt} of {maximum}): "
        "it may start a child run for what this run left"
    )


def placement_params(
    *,
    mode: str,
    project_id: int | None,
    run_id: int | None,
    run: RunPlacement | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(params keys, auto_recovery keys) that hand a replacement to the backend's direct-order loop."""
    params: dict[str, Any] = {"direct_retry": dict(DIRECT_RETRY), "mode": mode or "paper"}
    if project_id is not None:
        params["project_id"] = project_id
    chain: dict[str, Any] = {}
    if run_id is not None:
        chain["origin_run_id"] = run_id
        if run is not None:
            # How the run would have sent it: the backend's run dispatch reads these from the run.
            if run.allow_outside_rth is not None:
                params["allow_outside_rth"] = run.allow_outside_rth
            if run.adaptive_priority is not None:
                params["adaptive_priority"] = run.adaptive_priority
    return params, chain
