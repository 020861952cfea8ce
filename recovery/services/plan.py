"""What a sweep would do: candidates in batches, gates, broker evidence, decisions (reads only).

`limit` bounds the orders a run acts on (cancels or re-places), not the orders it looks
past. Orders a per-order gate skips anyway never hold healthy ones back:

- in SQL, the query leaves out the orders of projects halted today and the orders the
  bridge root's fresh open-orders snapshot lists, however many (counted and a few listed,
  so ops still see them);
- in Python, batches of `limit` candidates are decided oldest first (keyset paging) until
  `limit` orders would be acted on or the candidates run out, so skips that need the
  broker's files (seen by the broker, a submit in flight) are looked past too.

The dry run, the admin's preview and the real sweep all plan through here, so their
numbers agree.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from django.db.models import Q

from recovery import selectors
from recovery.db.models import TradeRun
from recovery.gates.evidence import OrderEvidence
from recovery.services.clock import Clock
from recovery.sweep.config import AutoRecoveryConfig
from recovery.sweep.decisions import (
    TERMINAL_RUN_STATUSES,
    Action,
    Decision,
    GateState,
    OrderSnapshot,
    Reason,
    decide,
    sweep_wide_skip,
)
from recovery.sweep.placement import SenderQueue
from recovery.sweep.results import OrderOutcome

# Skips listed one by one in a run's result; past this they are counted by reason only.
SKIPPED_LISTED_MAX = 500
# Orders left out by the query, listed per reason (the rest counted).
HELD_BACK_LISTED_MAX = 20
# ... and counted up to this many per reason: counting them all would make a run behind a
# huge backlog pay a row lookup per skipped order, the cost the query avoids. Past it, the
# count is a floor and the result says so (`omitted_capped`).
HELD_BACK_COUNT_MAX = 1_000
# Skips a run only counts are still kept, up to this many per run, for the orders' decision
# history (services.history): a guard-halted order past the 20 listed has its entry too.
UNLISTED_KEPT_MAX = 2_000

MSG_HELD_BACK = "left out of this run's candidate query: {why}"


@dataclass
class Plan:
    decided: list[tuple[OrderSnapshot, Decision]] = field(default_factory=list)
    held_back: list[OrderOutcome] = field(default_factory=list)  # listed, skipped by the query
    omitted: Counter[str] = field(default_factory=Counter)  # skipped, counted only
    unlisted: list[OrderOutcome] = field(default_factory=list)  # some of those, for the history
    omitted_capped: set[str] = field(default_factory=set)  # reasons whose count is a floor
    runs: dict[int, tuple[int, str]] = field(default_factory=dict)
    evidence: dict[int, OrderEvidence] = field(default_factory=dict)
    evidence_report: dict[str, Any] = field(default_factory=dict)
    state: GateState | None = None
    report: dict[str, Any] = field(default_factory=dict)
    # Replacements the stale orders past `limit` would get: the breaker weighs the whole
    # backlog, or `--limit 20` five times would do what one run may not.
    replaces_past_limit: int = 0
    replaces_decided: int = 0
    read_at: dt.datetime | None = None  # the sweep's clock when the plan's reads began
    out_of_time: bool = False  # the time budget ran out before the pass was done
    # Rows the backend's loop reads before this sweep's first replacement (rule 10b), once
    # its direct cancels are gone; None when nothing is to be re-placed.
    queue_ahead: int | None = None

    @property
    def would_replace(self) -> int:
        """Replacements the whole backlog would get; once past the cap, a floor (counting stops)."""
        return self.replaces_decided + self.replaces_past_limit


def sweep_plan(
    *,
    config: AutoRecoveryConfig,
    now: dt.datetime,
    limit: int,
    order_ids: list[int] | None,
    clock: Clock | None = None,
    deadline: dt.datetime | None = None,
) -> Plan:
    """Decide up to `limit` actionable candidates (all of `order_ids` when given).

    Past `limit`, replacements are only counted, until they pass the per-sweep cap.
    `clock` (the sweep's; default: `now`, standing still) says when the reads began and
    whether `deadline` is past: then the pass stops, `out_of_time`.
    """
    clock = clock or (lambda: now)
    plan = Plan(read_at=clock())
    sweep = selectors.sweep_gates_get(config=config, now=now, probe=False)
    held = _held_back_filters(sweep) if order_ids is None else []
    exclude = _any(q for _, q in held)
    # With halted runs left out, the (status, run_id, created_at) index of patch 20261130
    # passes over their orders; without it the query still works, reading each of them.
    index = (
        selectors.HALTED_RUNS_INDEX
        if sweep.halted and selectors.trade_orders_index_present(selectors.HALTED_RUNS_INDEX)
        else None
    )
    batch_size = len(order_ids) if order_ids is not None else limit
    after: tuple[dt.datetime, int] | None = None
    acted = listed_skips = 0
    cap = config.max_replacements_per_sweep
    while True:
        rows = selectors.stale_order_list(
            now=now,
            timeout_seconds=config.new_timeout_seconds,
            limit=batch_size,
            order_ids=order_ids,
            after=after,
            exclude=exclude,
            index=index,
        )
        if not rows:
            break
        if not sweep.ib["probed"]:
            sweep = selectors.sweep_gates_probed(sweep)
        snapshots, state = _batch_gather(plan, rows=rows, sweep=sweep, now=now)
        for snapshot in snapshots:
            decision = decide(snapshot, gates=state, settings=config, now=now)
            if decision.cancels and acted >= limit:
                # Past `limit`: decided only to be counted by the breaker, never acted on.
                plan.replaces_past_limit += decision.replaces
                if plan.would_replace > cap:
                    break
                continue
            if decision.cancels:
                acted += 1
            elif order_ids is None and listed_skips >= SKIPPED_LISTED_MAX:
                plan.omitted[str(decision.reason)] += 1
                if len(plan.unlisted) < UNLISTED_KEPT_MAX:
                    plan.unlisted.append(OrderOutcome.of(snapshot.id, snapshot.client_order_id, decision))
                continue
            else:
                listed_skips += 1
            plan.decided.append((snapshot, decision))
            plan.replaces_decided += decision.replaces
        wide = sweep_wide_skip(gates=state, settings=config)
        passed_cap = acted >= limit and plan.would_replace > cap
        if passed_cap or wide is not None or order_ids is not None or len(rows) < batch_size:
            break
        if deadline is not None and clock() > deadline:
            plan.out_of_time = True
            break
        after = (rows[-1].created_at, rows[-1].pk)
    if plan.replaces_decided:
        _sender_queue_weigh(plan)
    plan.state = selectors.gates_state(sweep, evidence=plan.evidence)
    plan.report = selectors.gates_report(sweep, evidence=plan.evidence_report or None)
    plan.report["sender"]["queue_ahead"] = plan.queue_ahead
    if held:
        _held_back_report(plan, held=held, config=config, now=now, index=index)
    return plan


def _sender_queue_weigh(plan: Plan) -> None:
    """Hold the replacements that would starve in the backend's loop queue (rule 10b).

    The loop reads the 200 oldest rows with no run, NEW or REJECTED, before it looks for
    ours. Counted once the sweep's direct cancels are gone, then order by order in the
    order the writer writes: a replacement with too many rows ahead of it is not written,
    and its order stays NEW (`backend_sender_unavailable`) instead of being cancelled.
    """
    leaving = [s.id for s, d in plan.decided if d.cancels and s.run_id is None]
    plan.queue_ahead = selectors.sender_queue_count(leaving=leaving)
    queue = SenderQueue(plan.queue_ahead)
    for index, (snapshot, decision) in enumerate(plan.decided):
        if not decision.replaces:
            continue
        problem = queue.problem()
        if problem is None:
            queue.written(replaced=True)
            continue
        held = replace(decision, action=Action.SKIP, reason=Reason.BACKEND_SENDER_UNAVAILABLE, detail=problem)
        plan.decided[index] = (snapshot, held)
        plan.replaces_decided -= 1
        queue.written(replaced=False, kept=snapshot.run_id is None)


def _batch_gather(
    plan: Plan, *, rows: list[Any], sweep: selectors.SweepGates, now: dt.datetime
) -> tuple[list[OrderSnapshot], GateState]:
    """The batch's snapshots; its runs and broker evidence added to what the plan holds."""
    snapshots, gathered = selectors.orders_with_evidence(rows, runs=plan.runs, sweep=sweep, now=now)
    plan.evidence.update(gathered.orders)
    for key, value in gathered.report.items():
        if isinstance(value, int) and not isinstance(value, bool):
            plan.evidence_report[key] = plan.evidence_report.get(key, 0) + value
        else:
            plan.evidence_report[key] = value
    return snapshots, selectors.gates_state(sweep, evidence=plan.evidence)


def _any(filters: Any) -> Q | None:
    combined = None
    for q in filters:
        combined = q if combined is None else combined | q
    return combined


def _held_back_filters(sweep: selectors.SweepGates) -> list[tuple[Reason, Q]]:
    """Orders that rules 3, 3b and 4 skip whatever else holds, as SQL (rule order kept)."""
    filters: list[tuple[Reason, Q]] = []
    if sweep.halted:
        filters.append((Reason.GUARD_HALTED, _halted_q(sweep.halted)))
    # Rule 3b for run orders: a run that has not ended owns its orders (few runs are running).
    unfinished = list(TradeRun.objects.exclude(status__in=TERMINAL_RUN_STATUSES).values_list("id", flat=True))
    if unfinished:
        filters.append((Reason.OWNED_BY_BACKEND, Q(run_id__in=unfinished)))
    if sweep.open_orders.available and sweep.open_orders.tags:
        filters.append((Reason.OPEN_AT_BROKER, Q(client_order_id__in=sorted(sweep.open_orders.tags))))
    return filters


def _halted_q(halted: frozenset[tuple[int, str]]) -> Q:
    """An order's project and mode come from its run, else from its params (mode 'paper')."""
    runs = TradeRun.objects.filter(project_id__in=sorted({p for p, _ in halted})).values_list(
        "id", "project_id", "mode"
    )
    run_ids = [run_id for run_id, project, mode in runs if (project, mode or "paper") in halted]
    q = Q(run_id__in=run_ids) if run_ids else Q(pk__in=[])
    for project, mode in sorted(halted):
        # Every atom is TRUE or FALSE, never NULL: inside exclude(), a NULL (a missing key,
        # a NULL column) would drop an order that is not halted at all.
        mode_q = Q(params__has_key="mode") & Q(params__mode=mode)
        if mode == "paper":
            mode_q |= ~Q(params__has_key="mode")
        # A run_id whose trade_runs row is gone falls back to params too; those orders are
        # decided one by one (rule 3 still skips them), just not left out here.
        q |= (
            Q(run_id__isnull=True, params__isnull=False)
            & Q(params__has_key="project_id")
            & Q(params__project_id=project)
            & mode_q
        )
    return q


def _held_back_report(
    plan: Plan,
    *,
    held: list[tuple[Reason, Q]],
    config: AutoRecoveryConfig,
    now: dt.datetime,
    index: str | None,
) -> None:
    """Count the orders the query left out, by the reason decide() would give them; list a few."""
    assert plan.state is not None
    # The gateway is probed only when some order is decided; unprobed is not "down" here.
    state = plan.state if plan.state.ib_reachable or plan.decided else replace(plan.state, ib_reachable=True)
    wide = sweep_wide_skip(gates=state, settings=config)
    earlier: Q | None = None
    for reason, q in held:
        orders = selectors.stale_candidates(now=now, timeout_seconds=config.new_timeout_seconds).filter(q)
        if earlier is not None:
            orders = orders.exclude(earlier)
        earlier = q if earlier is None else earlier | q
        count = selectors.stale_order_count(orders, at_most=HELD_BACK_COUNT_MAX, index=index)
        if not count:
            continue
        shown = wide[0] if wide is not None else reason
        if count > HELD_BACK_COUNT_MAX:
            count = HELD_BACK_COUNT_MAX
            plan.omitted_capped.add(str(shown))
        why = MSG_HELD_BACK.format(why=_held_back_why(reason))
        # The first few are listed; the next ones, up to the run's bound, kept for the history.
        kept = HELD_BACK_LISTED_MAX + max(0, UNLISTED_KEPT_MAX - len(plan.unlisted))
        rows = orders.order_by("created_at", "id").values_list("id", "client_order_id", "created_at")
        outcomes = [
            OrderOutcome(
                id=order_id,
                client_order_id=client_order_id,
                decision=Action.SKIP,
                reason=shown,
                age_seconds=round((now - created_at).total_seconds(), 3),
                detail=why,
            )
            for order_id, client_order_id, created_at in rows[: min(count, kept)]
        ]
        plan.held_back.extend(outcomes[:HELD_BACK_LISTED_MAX])
        plan.unlisted.extend(outcomes[HELD_BACK_LISTED_MAX:])
        if count > HELD_BACK_LISTED_MAX:
            plan.omitted[str(shown)] += count - HELD_BACK_LISTED_MAX


def _held_back_why(reason: Reason) -> str:
    if reason is Reason.GUARD_HALTED:
        return "its project/mode is halted today"
    if reason is Reason.OWNED_BY_BACKEND:
        return "its run has not ended: the run may still send it"
    return "the bridge's open_orders.json lists it"
