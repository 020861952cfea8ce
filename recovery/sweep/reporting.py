"""A sweep result as text for people: the command's table and the demo's."""

from __future__ import annotations

from typing import Any

from recovery.sweep.labels import reason_label
from recovery.sweep.results import OrderOutcome, SweepResult

# Plain words first (what happens and why), then the code to search the log and trail for.
COLUMNS = ("id", "client_order_id", "what happens", "reason", "age", "try", "quote", "dev%", "replacement")


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _row(outcome: OrderOutcome, settings: dict[str, Any]) -> tuple[str, ...]:
    replacement = (
        f"{outcome.replacement_id} {outcome.replacement_client_order_id}" if outcome.replacement_id else "-"
    )
    # The detail (file paths, evidence) goes on its own line at -v 3, not into the table.
    what = reason_label({**outcome.as_dict(), "detail": None}, settings=settings)
    return (
        str(outcome.id),
        outcome.client_order_id,
        what,
        str(outcome.reason),
        f"{outcome.age_seconds:.0f}s" if outcome.age_seconds is not None else "-",
        "-" if outcome.attempt is None or outcome.attempt < 0 else str(outcome.attempt),
        _num(outcome.quote),
        _num(outcome.deviation_pct, 3),
        replacement,
    )


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def _gates_line(gates: dict[str, Any]) -> str:
    ib, market, blackout = gates["ib"], gates["market"], gates["blackout"]
    ib_text = (
        f"IB {'reachable' if ib['reachable'] else 'UNREACHABLE'} ({ib['detail']})"
        if ib["probed"]
        else "IB not probed"
    )
    market_text = (
        f"market open until {market['session_close']}"
        if market["open"]
        else f"market closed (opens {market['next_open']})"
    )
    halted = ", ".join(f"{h['project_id']}/{h['mode']}" for h in gates["halted"]) or "none"
    quotes, opens = gates["quotes"], gates["open_orders"]
    quotes_text = (
        f"{quotes['items']} symbols, {quotes['age_seconds']}s old"
        if quotes["available"]
        else quotes["problem"]
    )
    opens_text = (
        f"{opens['items']} tags, {opens['age_seconds']}s old" if opens["available"] else opens["problem"]
    )
    black = f"IN BLACKOUT {blackout['window']}" if blackout["active"] else "no blackout"
    return (
        f"gates: {ib_text}; {market_text}; {black}; halted: {halted}; "
        f"quotes: {quotes_text}; open orders: {opens_text}; {_evidence_text(gates.get('broker_evidence'))}"
    )


def _evidence_text(evidence: dict[str, Any] | None) -> str:
    if not evidence:
        return "broker evidence: not read"
    if not evidence.get("available"):
        return f"broker evidence: UNAVAILABLE ({evidence.get('problem')})"
    if "folders" not in evidence:
        return f"broker evidence: {evidence['root']} (nothing to read)"
    kib = evidence.get("events_bytes_read", 0) / 1024
    return (
        f"broker evidence: {evidence['folders']} folder(s), {evidence.get('events_files_read', 0)} "
        f"event file(s), {kib:,.0f} KiB read"
    )


def _omitted_line(result: SweepResult) -> str | None:
    if not result.omitted:
        return None
    parts = [
        f"{reason} {count:,}{'+' if reason in result.omitted_capped else ''}"
        for reason, count in sorted(result.omitted.items())
    ]
    return "also skipped, not listed: " + ", ".join(parts)


def sweep_lines(result: SweepResult, *, verbosity: int = 1) -> list[str]:
    """The human report; more with higher verbosity, as Django's -v levels go."""
    counts = "  ".join(f"{k} {v}" for k, v in result.counts().items())
    head = f"sweep {result.sweep_id} at {result.as_dict()['now']} by {result.actor}"
    lines = [head + (" (dry run: nothing written)" if result.dry_run else "")]
    if verbosity >= 2:
        settings = ", ".join(f"{k}={v}" for k, v in result.settings.as_dict().items())
        lines += [f"settings: {settings}", _gates_line(result.gates)]
    for warning in result.settings_warnings:
        lines.append(f"settings warning: {warning}")
    if result.circuit_open:
        lines.append(
            f"CIRCUIT BREAKER OPEN: {result.would_replace} orders would have been re-placed "
            f"(max_replacements_per_sweep={result.settings.max_replacements_per_sweep}); nothing was changed"
        )
    if result.clock_skew:
        lines.append(f"CLOCKS APART: {result.clock_skew}; nothing was changed")
    if result.breaker_changed == "closed":
        lines.append("circuit breaker closed again: recovery goes on")
    if result.out_of_time:
        lines.append(f"OUT OF TIME: {result.out_of_time}")
    if result.orders:
        settings = result.settings.as_dict()
        lines += _table([COLUMNS, *(_row(o, settings) for o in result.orders)])
        if verbosity >= 3:
            lines += [f"  {o.id}: {o.detail}" for o in result.orders if o.detail]
    for alone in result.left_alone:
        lines.append(f"left alone: order {alone.id} {alone.client_order_id or ''} ({alone.why})")
    omitted = _omitted_line(result)
    if omitted:
        lines.append(omitted)
    lines.append(counts)
    return lines
