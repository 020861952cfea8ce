"""A sweep's writes, each on a picture of the broker at most a few seconds old.

The plan (services.plan) decided every order on one read of the broker's files, the halts,
the blackout and the IB probe. A cancel may rest on such a read only while it is fresh
(AUTO_RECOVER_FRESH_SECONDS, 5 s by default), whatever `--limit` is:

- orders are written in the plan's order; before each, if the read its decision rests
  on is older than the bound, the next chunk of orders (CHUNK_MAX at most) is read again
  (rows, run statuses, gates, broker evidence) and decided again at that moment;
- under the row lock, the age of the read is checked once more (services.order): an
  order whose lock came too late is rolled back and read again (PictureStale), at most
  STALE_TRIES times;
- a decision read again never adds replacements the breaker did not weigh: past the
  plan's count, an order that would now be re-placed is held (`circuit_open`);
- past the run's time budget no new order is started: the rest stay NEW for the next run.

Rows and snapshots are read in a transaction of their own, never inside an order's.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import deque
from dataclasses import dataclass

from django.conf import settings as django_settings
from django.db import DatabaseError

from recovery import selectors
from recovery.db.errors import ErrorKind, error_kind, error_text
from recovery.db.transactions import OrderTransactions
from recovery.exceptions import ConnectionLost
from recovery.services.clock import Clock
from recovery.services.order import PictureStale, SweepContext, changed_outcome
from recovery.services.order_write import order_write
from recovery.services.plan import Plan
from recovery.sweep.config import AutoRecoveryConfig
from recovery.sweep.decisions import Action, Decision, GateState, OrderSnapshot, Reason, decide
from recovery.sweep.placement import SenderQueue
from recovery.sweep.results import OrderOutcome, SweepResult

logger = logging.getLogger("recovery.sweep")

CHUNK_MAX = 200  # orders read again at once: bounds the read's cost when the rest go stale
EXPIRED = dt.datetime.min.replace(tzinfo=dt.UTC)  # a picture no order may be written on
STALE_TRIES = 3  # locks that came too late for one order before it is given up this run

MSG_BUDGET_SPENT = (
    "time budget of {seconds:g} s spent: {left} order(s) not started, left NEW for the next run"
)
MSG_READ_TOO_SLOW = (
    "reading the broker's files again took {seconds:.1f} s, longer than the {bound:g} s a read may be "
    "acted on: {left} order(s) not started, left NEW for the next run"
)
MSG_NOT_FRESH = (
    "its row lock came more than {seconds:g} s after the reads its decision rests on, {tries} times: left NEW"
)
MSG_PAST_BREAKER = (
    "read again, it would now be re-placed ({reason}), past the replacements the breaker weighed"
)


@dataclass(frozen=True)
class Picture:
    """One read of the outside world, and the context orders decided on it are written with."""

    read_at: dt.datetime  # the sweep's clock when the read began
    context: SweepContext

    def age(self, now: dt.datetime) -> float:
        return (now - self.read_at).total_seconds()


class FreshWriter:
    """Writes a plan's orders (services.sweep), reading again whenever the picture grows old."""

    def __init__(
        self,
        *,
        plan: Plan,
        config: AutoRecoveryConfig,
        result: SweepResult,
        clock: Clock,
        deadline: dt.datetime | None,
        budget_seconds: float | None,
    ) -> None:
        assert plan.state is not None and plan.read_at is not None
        self.plan, self.config, self.result, self.clock = plan, config, result, clock
        self.deadline, self.budget_seconds = deadline, budget_seconds
        self.fresh_seconds = float(django_settings.AUTO_RECOVER_FRESH_SECONDS)
        self.runs = dict(plan.runs)
        first = self._picture(plan.state, read_at=plan.read_at)
        # Each order's latest snapshot and decision, and the picture they rest on.
        self.current: dict[int, tuple[OrderSnapshot, Decision, Picture]] = {
            s.id: (s, d, first) for s, d in plan.decided if d.cancels
        }
        self.replacements_left = sum(d.replaces for _, d in plan.decided)
        self.outcomes: dict[int, OrderOutcome] = {
            s.id: OrderOutcome.of(s.id, s.client_order_id, d) for s, d in plan.decided if not d.cancels
        }
        self.reads = 0  # reads again after the plan's (reported: their cost per order)
        # The backend's loop queue as the plan counted it, moved by each order written since.
        self.queue = SenderQueue(plan.queue_ahead or 0)

    def _picture(self, state: GateState, *, read_at: dt.datetime) -> Picture:
        context = SweepContext(
            gates=state,
            config=self.config,
            runs=self.runs,
            result=self.result,
            clock=self.clock,
            read_at=read_at,
            fresh_seconds=self.fresh_seconds,
        )
        return Picture(read_at=read_at, context=context)

    def run(self, transactions: OrderTransactions) -> None:
        queue = deque(s.id for s, d in self.plan.decided if d.cancels)
        for outcome in self.outcomes.values():
            _log_outcome(self.result.sweep_id, outcome)
        stale_tries: dict[int, int] = {}
        while queue:
            order_id = queue[0]
            if self.deadline is not None and self.clock() > self.deadline:
                spent = MSG_BUDGET_SPENT.format(seconds=self.budget_seconds or 0, left=len(queue))
                self._stop(len(queue), spent)
                break
            snapshot, decision, picture = self.current[order_id]
            try:
                if picture.age(self.clock()) > self.fresh_seconds:
                    with transactions.order():  # a read of its own, ended at once
                        read_seconds = self._read_again(list(queue)[:CHUNK_MAX], queue)
                    if read_seconds > self.fresh_seconds and queue:
                        # A read that outlasts the bound is stale when it arrives: reading
                        # again would only loop. What is left waits for the next run.
                        slow = MSG_READ_TOO_SLOW.format(
                            seconds=read_seconds, bound=self.fresh_seconds, left=len(queue)
                        )
                        self._stop(len(queue), slow)
                        break
                    continue
                outcome = self._settle(snapshot, decision, picture, transactions)
            except PictureStale:
                stale_tries[order_id] = stale_tries.get(order_id, 0) + 1
                if stale_tries[order_id] < STALE_TRIES:
                    # A picture read at the dawn of time is stale at once: read again first.
                    expired = self._picture(picture.context.gates, read_at=EXPIRED)
                    self.current[order_id] = (snapshot, decision, expired)
                    continue
                outcome = self._skip(
                    snapshot,
                    decision,
                    reason=Reason.WRITE_FAILED,
                    detail=MSG_NOT_FRESH.format(seconds=self.fresh_seconds, tries=STALE_TRIES),
                    now_status="NEW",
                )
            except ConnectionLost as exc:
                # Every later statement would fail too (or hang until its timeout): stop.
                self._connection_lost(queue, error=str(exc))
                break
            except DatabaseError as exc:  # the read again, outside any order's write
                if error_kind(exc) is not ErrorKind.CONNECTION:
                    raise
                self._connection_lost(queue, error=error_text(exc))
                break
            queue.popleft()
            self.outcomes[order_id] = outcome
            _log_outcome(self.result.sweep_id, outcome)
        self.result.orders = [self.outcomes[s.id] for s, _ in self.plan.decided if s.id in self.outcomes]
        self.result.evidence_reads_again = self.reads

    def _settle(
        self, snapshot: OrderSnapshot, decision: Decision, picture: Picture, transactions: OrderTransactions
    ) -> OrderOutcome:
        if not decision.cancels:
            return OrderOutcome.of(snapshot.id, snapshot.client_order_id, decision)
        problem = self.queue.problem() if decision.replaces else None
        if decision.replaces and self.replacements_left <= 0:
            detail = MSG_PAST_BREAKER.format(reason=decision.reason)
            outcome = self._skip(snapshot, decision, reason=Reason.CIRCUIT_OPEN, detail=detail)
        elif problem is not None:
            outcome = self._skip(snapshot, decision, reason=Reason.BACKEND_SENDER_UNAVAILABLE, detail=problem)
        else:
            outcome = order_write(snapshot, decision, context=picture.context, transactions=transactions)
        # Counted once written: an order rolled back for a late lock (PictureStale) and tried
        # again does not take a second replacement of what the breaker weighed.
        self.replacements_left -= outcome.decision is Action.REPLACE
        # The loop's queue: a replacement joins it, and so does a direct order left NEW.
        cancelled = outcome.decision in (Action.CANCEL, Action.REPLACE)
        self.queue.written(
            replaced=outcome.decision is Action.REPLACE, kept=snapshot.run_id is None and not cancelled
        )
        return outcome

    def _read_again(self, order_ids: list[int], queue: deque[int]) -> float:
        """Rows, runs, gates and broker evidence of `order_ids` now; each decided again.

        Returns how long the read took, by the sweep's clock.
        """
        now = read_at = self.clock()
        self.reads += 1
        sweep = selectors.sweep_gates_get(config=self.config, now=now, probe=True)
        rows = selectors.stale_order_list(
            now=now,
            timeout_seconds=self.config.new_timeout_seconds,
            limit=len(order_ids),
            order_ids=order_ids,
        )
        read, gathered = selectors.orders_with_evidence(rows, runs=self.runs, sweep=sweep, now=now)
        snapshots = {s.id: s for s in read}
        picture = self._picture(selectors.gates_state(sweep, evidence=gathered.orders), read_at=read_at)
        for order_id in order_ids:
            old_snapshot, old_decision, _ = self.current[order_id]
            snapshot = snapshots.get(order_id)
            if snapshot is None:  # no longer a stale NEW order: say what it is now
                queue.remove(order_id)
                current = selectors.order_current_get(order_id=order_id)
                self.outcomes[order_id] = changed_outcome(old_snapshot, old_decision, now=current)
                continue
            decision = decide(snapshot, gates=picture.context.gates, settings=self.config, now=now)
            self.current[order_id] = (snapshot, decision, picture)
        return picture.age(self.clock())

    def _skip(
        self, snapshot: OrderSnapshot, decision: Decision, *, reason: Reason, **changes: object
    ) -> OrderOutcome:
        held = decision.reason if reason is Reason.CIRCUIT_OPEN else None
        return OrderOutcome.of(
            snapshot.id,
            snapshot.client_order_id,
            decision,
            decision=Action.SKIP,
            reason=reason,
            held_by_breaker=held,
            **changes,
        )

    def _stop(self, left: int, message: str) -> None:
        """No new order is started: `left` stay NEW for the next run, and the run says why."""
        self.result.left_for_next_run = left
        self.result.out_of_time = message
        logger.warning("sweep=%s %s", self.result.sweep_id, message)

    def _connection_lost(self, queue: deque[int], *, error: str) -> None:
        result = self.result
        result.connection_lost = error
        result.in_flight = queue[0]
        result.not_tried = len(queue) - 1
        logger.error(
            "sweep=%s lost the database connection (%s): %d order(s) recovered before, order %d in flight, "
            "%d not tried and left NEW",
            result.sweep_id,
            error,
            sum(1 for o in self.outcomes.values() if o.decision in (Action.CANCEL, Action.REPLACE)),
            result.in_flight,
            result.not_tried,
        )


def _log_outcome(sweep_id: str, outcome: OrderOutcome) -> None:
    head = f"sweep={sweep_id} order={outcome.id} client_order_id={outcome.client_order_id}"
    if outcome.decision is Action.REPLACE:
        logger.info(
            "%s cancelled and re-placed as order=%s client_order_id=%s",
            head,
            outcome.replacement_id,
            outcome.replacement_client_order_id,
        )
    elif outcome.decision is Action.CANCEL:
        logger.info("%s cancelled without replacement: %s", head, outcome.reason)
    elif outcome.failed:
        logger.error("%s write failed, order left NEW: %s", head, outcome.detail)
    elif outcome.reason is Reason.CHANGED_CONCURRENTLY:
        logger.info("%s left alone: %s", head, outcome.detail)
    else:
        logger.debug("%s skipped: %s", head, outcome.reason)
