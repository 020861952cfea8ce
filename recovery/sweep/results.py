"""What a sweep reports: per-order outcomes and its counts (scanned = cancelled + skipped + failed)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields
from typing import Any

from recovery.db.timestamps import iso_utc
from recovery.sweep.config import AutoRecoveryConfig, SettingsWarning
from recovery.sweep.decisions import Action, Decision, NotCandidate, Reason
from recovery.sweep.labels import reason_label


@dataclass(frozen=True)
class OrderOutcome:
    id: int
    client_order_id: str
    decision: Action
    reason: Reason
    age_seconds: float | None = None
    attempt: int | None = None
    quote: float | None = None
    deviation_pct: float | None = None
    detail: str | None = None
    replacement_id: int | None = None
    replacement_client_order_id: str | None = None
    evidence: dict[str, Any] | None = None  # the broker evidence behind a skip
    held_by_breaker: Reason | None = None  # circuit_open: the reason it would have got otherwise
    now_status: str | None = None  # changed_concurrently / write_failed: the status read after

    @classmethod
    def of(cls, order_id: int, client_order_id: str, decided: Decision, /, **changes: Any) -> OrderOutcome:
        """The outcome of `decision`, with `changes` (e.g. a reason the write itself gave)."""
        values: dict[str, Any] = {
            "id": order_id,
            "client_order_id": client_order_id,
            "decision": decided.action,
            "reason": decided.reason,
            "age_seconds": decided.age_seconds,
            "attempt": decided.attempt,
            "quote": decided.quote,
            "deviation_pct": decided.deviation_pct,
            "detail": decided.detail,
            "evidence": dict(decided.evidence) if decided.evidence else None,
        }
        values.update(changes)
        return cls(**values)

    @property
    def failed(self) -> bool:
        return self.reason is Reason.WRITE_FAILED

    def as_dict(self) -> dict[str, Any]:
        # Every field is a scalar: a flat copy, not dataclasses.asdict's recursive deep copy,
        # which cost a tenth of the sweep's CPU per recovered order (twice: its audit row and
        # the sweep's).
        data = {name: getattr(self, name) for name in _OUTCOME_FIELDS}
        data["decision"], data["reason"] = str(self.decision), str(self.reason)
        data["held_by_breaker"] = str(self.held_by_breaker) if self.held_by_breaker else None
        return data


_OUTCOME_FIELDS = tuple(f.name for f in fields(OrderOutcome))


@dataclass(frozen=True)
class LeftAlone:
    """An order named by hand that is not a candidate: never acted on."""

    id: int
    client_order_id: str | None
    why: NotCandidate
    status: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "why": str(self.why),
            "status": self.status,
        }


@dataclass
class SweepResult:
    sweep_id: str
    actor: str
    dry_run: bool
    now: dt.datetime
    settings: AutoRecoveryConfig
    settings_warnings: list[SettingsWarning]
    gates: dict[str, Any]
    orders: list[OrderOutcome] = field(default_factory=list)
    left_alone: list[LeftAlone] = field(default_factory=list)
    would_replace: int = 0
    replaced_last_hour: int = 0  # replacements every sweep wrote in the 60 minutes before this one
    circuit_open: bool = False
    breaker_overridden: bool = False
    audit_id: int | None = None  # the sweep's audit_logs row, when one was written
    # Skipped orders counted but not listed in `orders` (by reason): past the listing bound,
    # or left out by the candidate query because a gate skips them anyway (sweep_plan).
    omitted: dict[str, int] = field(default_factory=dict)
    omitted_capped: list[str] = field(default_factory=list)  # reasons with more than `omitted` says
    # Some of the orders `omitted` counts, kept for the decision history only (not reported).
    unlisted: list[OrderOutcome] = field(default_factory=list, repr=False)
    connection_lost: str | None = None  # the error that stopped the sweep mid-way
    in_flight: int | None = None  # the order whose write the lost connection cut short
    not_tried: int = 0  # orders due a write after it, never tried
    clock_skew: str | None = None  # why the clocks disagree, when that stopped the run (rule 1c)
    # The sweep-wide gate that kept the run from acting (rules 1c, 2, 2b: its reason code)
    # and why, in words; None when none did (blackout and `enabled: false` are ops' choice).
    blocked_by: str | None = None
    blocked: str | None = None
    breaker_changed: str | None = None  # "opened" / "closed": this run changed the breaker's state
    out_of_time: str | None = None  # the time budget ran out: what was left, and why
    left_for_next_run: int = 0  # orders due a write that this run did not start (time budget)
    evidence_reads_again: int = 0  # reads of the broker's files after the plan's, to stay fresh

    @property
    def scanned(self) -> int:
        return len(self.orders) + sum(self.omitted.values())

    @property
    def cancelled(self) -> int:
        return sum(1 for o in self.orders if o.decision in (Action.CANCEL, Action.REPLACE))

    @property
    def replaced(self) -> int:
        return sum(1 for o in self.orders if o.decision is Action.REPLACE)

    @property
    def failed(self) -> int:
        return sum(1 for o in self.orders if o.failed)

    @property
    def skipped(self) -> int:
        listed = sum(1 for o in self.orders if o.decision is Action.SKIP and not o.failed)
        return listed + sum(self.omitted.values())

    def counts(self) -> dict[str, int]:
        return {
            "scanned": self.scanned,
            "cancelled": self.cancelled,
            "replaced": self.replaced,
            "skipped": self.skipped,
            "failed": self.failed,
        }

    def reasons(self) -> dict[str, int]:
        tally: dict[str, int] = {}
        for outcome in self.orders:
            tally[str(outcome.reason)] = tally.get(str(outcome.reason), 0) + 1
        for reason, count in self.omitted.items():
            tally[reason] = tally.get(reason, 0) + count
        return dict(sorted(tally.items()))

    def as_dict(self) -> dict[str, Any]:
        settings = self.settings.as_dict()
        return {
            "sweep_id": self.sweep_id,
            "actor": self.actor,
            "dry_run": self.dry_run,
            "now": iso_utc(self.now),
            **self.counts(),
            "reasons": self.reasons(),
            "circuit_open": self.circuit_open,
            "would_replace": self.would_replace,
            "replaced_last_hour": self.replaced_last_hour,
            "breaker_overridden": self.breaker_overridden,
            "settings": settings,
            "settings_warnings": [w.as_dict() for w in self.settings_warnings],
            "gates": self.gates,
            "orders": [_labelled(o.as_dict(), settings) for o in self.orders],
            "omitted": dict(sorted(self.omitted.items())),
            "omitted_capped": sorted(self.omitted_capped),
            "left_alone": [a.as_dict() for a in self.left_alone],
            "connection_lost": self.connection_lost,
            "in_flight": self.in_flight,
            "not_tried": self.not_tried,
            "clock_skew": self.clock_skew,
            "blocked_by": self.blocked_by,
            "blocked": self.blocked,
            "breaker_changed": self.breaker_changed,
            "out_of_time": self.out_of_time,
            "left_for_next_run": self.left_for_next_run,
            "evidence_reads_again": self.evidence_reads_again,
        }


def _labelled(order: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """An order's entry with its plain-words label ("Cancel only: retries used up (1 of 1)")."""
    order["label"] = reason_label(order, settings=settings)
    return order
