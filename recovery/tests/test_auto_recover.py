"""`manage.py auto_recover` end to end: every row of the decision table, exit codes, output."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import socket
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from recovery.db.audit import ACTION_CANCEL, ACTION_REPLACE, ACTION_SWEEP
from recovery.db.models import AuditLog, IbSettings, TradeOrder, TradeSettings
from recovery.db.routers import trading_alias
from recovery.tests import factories
from recovery.tests.conftest import CLOCK, stale_order

pytestmark = pytest.mark.django_db


def run(*args: str, now: dt.datetime = CLOCK, expect_exit: int = 0) -> dict[str, Any]:
    """Run the command with --json and return the parsed object (and check the exit code)."""
    out = io.StringIO()
    if expect_exit:
        # 1, 2, 4 are a CommandError (a line every run); 3, 5, 6 a quiet exit code.
        with pytest.raises((CommandError, SystemExit)) as raised:
            call_command("auto_recover", "--json", *args, now=now, stdout=out, stderr=io.StringIO())
        code = raised.value.returncode if isinstance(raised.value, CommandError) else raised.value.code
        assert code == expect_exit, raised.value
    else:
        call_command("auto_recover", "--json", *args, now=now, stdout=out)
    return json.loads(out.getvalue())


def text(*args: str, now: dt.datetime = CLOCK) -> str:
    out = io.StringIO()
    call_command("auto_recover", *args, now=now, stdout=out)
    return out.getvalue()


def set_settings(**values: Any) -> None:
    TradeSettings.objects.update(auto_recovery=values)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def outcome(result: dict[str, Any], order: TradeOrder) -> dict[str, Any]:
    return next(o for o in result["orders"] if o["id"] == order.pk)


def table_checksum() -> str:
    rows = [
        list(TradeOrder.objects.order_by("id").values_list()),
        list(AuditLog.objects.order_by("id").values_list()),
        list(TradeSettings.objects.order_by("id").values_list()),
    ]
    return hashlib.sha256(repr(rows).encode()).hexdigest()


# --- the seed's own scenario -----------------------------------------------------------


def test_seed_scenario_one_stale_market_order_is_cancelled_and_replaced(trading) -> None:
    set_settings(new_timeout_seconds=1)
    order = stale_order(age=10, symbol="AAPL", order_type="MKT")
    result = run()
    assert (result["scanned"], result["cancelled"], result["replaced"]) == (1, 1, 1)
    assert (result["skipped"], result["failed"], result["dry_run"]) == (0, 0, False)
    entry = outcome(result, order)
    assert (entry["decision"], entry["reason"]) == ("replace", "replaced")
    order.refresh_from_db()
    assert order.status == "CANCELED"
    replacement = TradeOrder.objects.get(pk=entry["replacement_id"])
    assert (
        replacement.client_order_id == entry["replacement_client_order_id"] == f"{order.client_order_id}-r1"
    )
    assert (replacement.status, replacement.symbol, replacement.side) == ("NEW", "AAPL", order.side)
    assert (replacement.quantity, replacement.order_type, replacement.run_id) == (
        order.quantity,
        "MKT",
        order.run_id,
    )


# --- every row of the decision table ----------------------------------------------------


def test_rule_1_disabled_touches_nothing(trading) -> None:
    set_settings(enabled=False)
    order = stale_order()
    result = run()
    assert (outcome(result, order)["decision"], outcome(result, order)["reason"]) == ("skip", "disabled")
    assert result["skipped"] == 1 and result["cancelled"] == 0
    assert AuditLog.objects.count() == 0


def test_rule_1b_blackout_window_wrapping_midnight(trading) -> None:
    set_settings(blackout_windows=[{"start": "23:45", "end": "00:15"}])
    order = stale_order(age=3600)
    # 00:05 New York on Wednesday 2026-11-25 is 05:05 UTC.
    result = run(now=dt.datetime(2026, 11, 25, 5, 5, tzinfo=dt.UTC))
    assert outcome(result, order)["reason"] == "blackout"
    assert result["gates"]["blackout"]["active"] is True
    assert TradeOrder.objects.get(pk=order.pk).status == "NEW"


def test_rule_2_ib_unreachable(trading) -> None:
    IbSettings.objects.update(api_mode="ib", port=closed_port())
    order = stale_order()
    result = run(expect_exit=5)  # blocked: a sweep-wide gate kept the run from acting
    assert outcome(result, order)["reason"] == "ib_unreachable"
    assert result["gates"]["ib"]["reachable"] is False
    assert (result["outcome"], result["blocked_by"]) == ("blocked", "ib_unreachable")
    assert result["blocked"].startswith("the IB gateway 127.0.0.1:")
    assert TradeOrder.objects.get(pk=order.pk).status == "NEW"


def test_rule_3_guard_halted_for_todays_new_york_date(trading) -> None:
    run_row = factories.TradeRunFactory(project_id=42, mode="live")
    factories.TradeGuardStateFactory(
        project_id=42, mode="live", status="halted", trade_date=dt.date(2026, 11, 24)
    )
    halted = stale_order(run_id=run_row.pk)
    by_params = stale_order(params={"project_id": 42, "mode": "live"})
    other_mode = stale_order(params={"project_id": 42, "mode": "paper"})
    result = run()
    assert outcome(result, halted)["reason"] == "guard_halted"
    assert outcome(result, by_params)["reason"] == "guard_halted"
    assert outcome(result, other_mode)["reason"] == "replaced"


def test_rule_4_open_at_broker(trading) -> None:
    order = stale_order()
    trading.open_orders([order.client_order_id])
    result = run()
    assert outcome(result, order)["reason"] == "open_at_broker"
    assert TradeOrder.objects.get(pk=order.pk).status == "NEW"


def test_rule_4_stale_open_orders_file_proves_nothing(trading) -> None:
    order = stale_order()
    trading.open_orders([order.client_order_id], at=CLOCK - dt.timedelta(seconds=31))
    result = run()
    assert outcome(result, order)["reason"] == "replaced"
    assert result["gates"]["open_orders"]["problem"] == "too_old"


# A direct order's command from the short-lived fallback: not the direct-order loop's (rule 3b).
SHORT_LIVED = "short_lived_fallback"


def test_rule_5_submit_in_flight(trading) -> None:
    requested = (CLOCK - dt.timedelta(seconds=10)).isoformat()
    order = stale_order(
        params={"submit_command": {"pending": True, "requested_at": requested, "source": SHORT_LIVED}}
    )
    old = (CLOCK - dt.timedelta(seconds=150)).isoformat()  # past the backend's 120 s
    expired = stale_order(
        params={"submit_command": {"pending": True, "requested_at": old, "source": SHORT_LIVED}}
    )
    result = run()
    assert outcome(result, order)["reason"] == "submit_in_flight"
    assert outcome(result, expired)["reason"] == "replaced"
    replacement = TradeOrder.objects.get(pk=outcome(result, expired)["replacement_id"])
    assert "submit_command" not in replacement.params


def test_rule_6_invalid_order_is_cancelled_not_replaced(trading) -> None:
    order = stale_order(side="HOLD")
    no_limit = stale_order(order_type="LMT", limit_price=None)
    result = run()
    for bad in (order, no_limit):
        assert (outcome(result, bad)["decision"], outcome(result, bad)["reason"]) == (
            "cancel",
            "invalid_order",
        )
        assert TradeOrder.objects.get(pk=bad.pk).status == "CANCELED"
    assert "HOLD" in outcome(result, order)["detail"]
    assert result["replaced"] == 0


def test_rule_7_retries_exhausted(trading) -> None:
    order = stale_order(
        params={"auto_recovery": {"attempts": 1, "root_order_id": 1, "root_client_order_id": "x"}}
    )
    result = run()
    assert (outcome(result, order)["decision"], outcome(result, order)["reason"]) == (
        "cancel",
        "retries_exhausted",
    )


def test_rule_8_outside_rth_on_thanksgiving_and_after_the_early_close(trading) -> None:
    thanksgiving = dt.datetime(2026, 11, 26, 16, 0, tzinfo=dt.UTC)
    order = stale_order(age=60, clock=thanksgiving)
    result = run(now=thanksgiving)
    assert (outcome(result, order)["decision"], outcome(result, order)["reason"]) == ("cancel", "outside_rth")
    after_early_close = dt.datetime(2026, 11, 27, 18, 30, tzinfo=dt.UTC)  # 13:30 New York
    late = stale_order(age=60, clock=after_early_close)
    assert outcome(run(now=after_early_close), late)["reason"] == "outside_rth"


def test_rule_8_outside_rth_allowed_by_settings(trading) -> None:
    set_settings(allow_replace_outside_rth=True)
    saturday = dt.datetime(2026, 11, 28, 16, 0, tzinfo=dt.UTC)
    order = stale_order(age=60, clock=saturday)
    assert outcome(run(now=saturday), order)["reason"] == "replaced"


def test_rule_9_quote_unavailable_for_limit_orders(trading) -> None:
    trading.quotes({"MSFT": 410.0})
    order = stale_order(symbol="AAPL", order_type="LMT", limit_price=100.0)
    result = run()
    assert (outcome(result, order)["decision"], outcome(result, order)["reason"]) == (
        "cancel",
        "quote_unavailable",
    )


def test_rule_10_price_deviation_and_exactly_at_the_limit(trading) -> None:
    trading.quotes({"AAPL": 101.5, "MSFT": 101.6})
    at_limit = stale_order(symbol="AAPL", order_type="LMT", limit_price=100.0)
    over = stale_order(symbol="MSFT", order_type="PEG_MID", limit_price=100.0)
    result = run()
    assert outcome(result, at_limit)["reason"] == "replaced"
    assert outcome(result, at_limit)["deviation_pct"] == 1.5
    assert (outcome(result, over)["decision"], outcome(result, over)["reason"]) == (
        "cancel",
        "price_deviation",
    )
    assert outcome(result, over)["quote"] == 101.6


def test_rule_11_replaced_keeps_limit_price_and_params(trading) -> None:
    trading.quotes({"aapl ": 100.2})
    order = stale_order(
        symbol="AAPL",
        order_type="LMT",
        limit_price=100.0,
        params={"strategy": "mean_rev", "sync_reason": "x", "open_orders_seen": 3, "direct_retry": 1},
    )
    result = run()
    replacement = TradeOrder.objects.get(pk=outcome(result, order)["replacement_id"])
    assert replacement.limit_price == 100.0
    assert replacement.params["strategy"] == "mean_rev"
    assert not {"sync_reason", "open_orders_seen"} & set(replacement.params)
    # The original's retry state is gone; the backend's loop gets a fresh one, due now.
    assert replacement.params["direct_retry"] == {"pending": True, "reason": "auto_recovery", "count": 0}
    assert replacement.run_id is None
    assert replacement.params["auto_recovery"]["attempts"] == 1
    assert replacement.params["auto_recovery"]["origin_order_id"] == order.pk


def test_circuit_breaker_at_the_limit_and_one_past_it(trading) -> None:
    set_settings(max_replacements_per_sweep=2)
    first = [stale_order() for _ in range(2)]
    at_limit = run()
    assert at_limit["replaced"] == 2 and at_limit["circuit_open"] is False
    more = [stale_order() for _ in range(3)]
    audit_before = AuditLog.objects.count()
    opened = run(expect_exit=3)
    assert opened["circuit_open"] is True and opened["would_replace"] == 3
    assert {o["reason"] for o in opened["orders"]} == {"circuit_open"}
    assert (opened["cancelled"], opened["replaced"]) == (0, 0)
    assert all(TradeOrder.objects.get(pk=o.pk).status == "NEW" for o in more)
    sweep_rows = AuditLog.objects.filter(action=ACTION_SWEEP).order_by("-id")
    assert AuditLog.objects.count() == audit_before + 1
    assert sweep_rows[0].detail["circuit_open"] is True and sweep_rows[0].detail["would_replace"] == 3
    assert len(first) == 2


def test_the_breaker_tells_when_it_opens_and_when_it_closes_not_every_minute(trading, caplog) -> None:
    """Three runs with the breaker open: one error line and one audit row, then nothing;
    once the backlog fits again, the run that closes it writes its row and says so.
    """
    set_settings(max_replacements_per_sweep=2)
    for _ in range(3):
        stale_order()
    logger = logging.getLogger("recovery")
    logger.addHandler(caplog.handler)
    try:
        for minute in range(3):
            opened = run(expect_exit=3, now=CLOCK + dt.timedelta(minutes=minute))
            assert opened["breaker_changed"] == ("opened" if minute == 0 else None)
        breaker_lines = [r for r in caplog.records if "circuit breaker" in r.getMessage()]
        # While it stays open, the exit code, heartbeat and metrics say so: no line a minute.
        assert [r.levelname for r in breaker_lines] == ["ERROR"]
        sweep_rows = AuditLog.objects.filter(action=ACTION_SWEEP)
        assert sweep_rows.count() == 1 and sweep_rows.get().detail["breaker_changed"] == "opened"

        set_settings(max_replacements_per_sweep=5)
        closed = run(now=CLOCK + dt.timedelta(minutes=3))
        assert (closed["replaced"], closed["breaker_changed"]) == (3, "closed")
        assert any("circuit breaker closed" in r.getMessage() for r in caplog.records)
        assert sweep_rows.count() == 2 and sweep_rows.order_by("-id")[0].detail["breaker_changed"] == "closed"
        idle = run(now=CLOCK + dt.timedelta(minutes=3, seconds=10))  # the replacements are 10 s old
        assert (idle["scanned"], idle["breaker_changed"]) == (0, None)
        assert sweep_rows.count() == 2  # an idle run after the change writes nothing
    finally:
        logger.removeHandler(caplog.handler)


# --- writing it down ------------------------------------------------------------------


def test_audit_rows_and_params_of_a_recovered_order(trading) -> None:
    order = stale_order(params={"auto_recovery": {"note": "kept"}, "submit_command": {"pending": False}})
    result = run()
    entry = outcome(result, order)
    cancel = AuditLog.objects.get(action=ACTION_CANCEL)
    replace = AuditLog.objects.get(action=ACTION_REPLACE)
    sweep = AuditLog.objects.get(action=ACTION_SWEEP)
    assert (cancel.actor, cancel.resource_type, cancel.resource_id) == (
        "auto_recover",
        "trade_order",
        order.pk,
    )
    assert (replace.resource_id, replace.detail["origin_order_id"], replace.detail["attempt"]) == (
        entry["replacement_id"],
        order.pk,
        1,
    )
    assert sweep.detail["sweep_id"] == result["sweep_id"] == cancel.detail["sweep_id"]
    assert sweep.detail["orders"][0]["reason"] == "replaced"
    assert sweep.detail["settings"]["new_timeout_seconds"] == 45
    order.refresh_from_db()
    assert order.params["auto_recovery_cancel"] is True
    assert order.params["auto_recovery"]["note"] == "kept"
    assert order.params["auto_recovery"]["last_action"] == "replace"
    assert order.params["auto_recovery"]["last_reason"] == "replaced"
    assert order.params["auto_recovery"]["sweep_id"] == result["sweep_id"]


def test_second_run_right_after_changes_nothing_and_writes_no_audit(trading) -> None:
    for _ in range(3):
        stale_order()
    trading.open_orders([stale_order().client_order_id])
    first = run()
    assert first["cancelled"] == 3
    before = table_checksum()
    second = run()
    assert (second["cancelled"], second["replaced"], second["skipped"]) == (0, 0, 1)
    assert table_checksum() == before


def test_dry_run_writes_nothing_and_says_what_would_happen(trading) -> None:
    for _ in range(2):
        stale_order()
    stale_order(side="bad")
    before = table_checksum()
    result = run("--dry-run")
    assert result["dry_run"] is True
    assert (result["scanned"], result["cancelled"], result["replaced"]) == (3, 3, 2)
    assert table_checksum() == before


def backend_sent(order: TradeOrder) -> None:
    """What the backend's direct-order loop leaves on a replacement it sent that never reached
    the broker: its retry no longer pending (until then the order is the backend's, rule 3b)."""
    params = dict(order.params)
    params["direct_retry"] = {
        **params["direct_retry"],
        "pending": False,
        "count": 1,
        "last_reason": "submitted",
    }
    TradeOrder.objects.filter(pk=order.pk).update(params=params)


def test_a_chain_across_three_sweeps_stops_at_max_auto_retries(trading) -> None:
    set_settings(max_auto_retries=2)
    root = stale_order(client_order_id="chain-root")
    first = run()
    r1 = TradeOrder.objects.get(pk=outcome(first, root)["replacement_id"])
    later = CLOCK + dt.timedelta(minutes=2)
    held = run(now=later)  # not yet picked up by the backend's loop: its, and nothing else goes
    assert (outcome(held, r1)["decision"], outcome(held, r1)["reason"]) == ("skip", "owned_by_backend")
    backend_sent(r1)
    second = run(now=later)
    r2 = TradeOrder.objects.get(pk=outcome(second, r1)["replacement_id"])
    backend_sent(r2)
    third = run(now=later + dt.timedelta(minutes=2))
    assert (r1.client_order_id, r2.client_order_id) == ("chain-root-r1", "chain-root-r2")
    assert r2.params["auto_recovery"]["attempts"] == 2
    assert r2.params["auto_recovery"]["root_order_id"] == root.pk
    assert r2.params["auto_recovery"]["origin_order_id"] == r1.pk
    assert (outcome(third, r2)["decision"], outcome(third, r2)["reason"]) == ("cancel", "retries_exhausted")
    r2.refresh_from_db()
    assert r2.status == "CANCELED"
    assert r2.params["auto_recovery"]["attempts"] == 2  # kept by the cancel
    assert TradeOrder.objects.filter(status="NEW").count() == 0


def test_replacement_client_order_id_is_cut_to_64_characters(trading) -> None:
    long_id = "L" * 64
    order = stale_order(client_order_id=long_id)
    result = run()
    new_id = outcome(result, order)["replacement_client_order_id"]
    assert len(new_id) == 64 and new_id == "L" * 61 + "-r1"


def test_a_replacement_insert_that_clashes_rolls_its_whole_try_back(trading) -> None:
    """The first try's cancel and audit row go with its failed insert (one transaction): what
    remains is only the second try's cancel without a replacement (replacement_id_taken)."""
    order = stale_order(client_order_id="clash")
    holder = factories.TradeOrderFactory(client_order_id="clash-r1", status="FILLED")
    ok = stale_order()
    result = run()
    entry = outcome(result, order)
    assert (entry["decision"], entry["reason"]) == ("cancel", "replacement_id_taken")
    cancels = AuditLog.objects.filter(action=ACTION_CANCEL, resource_id=order.pk)
    assert [c.detail["reason"] for c in cancels] == ["replacement_id_taken"]  # none of the first try
    assert not TradeOrder.objects.filter(client_order_id="clash-r1").exclude(pk=holder.pk).exists()
    assert outcome(result, ok)["reason"] == "replaced"
    assert (result["failed"], result["cancelled"], result["replaced"]) == (0, 2, 1)
    sweep = AuditLog.objects.get(action=ACTION_SWEEP)
    assert outcome(sweep.detail, order)["reason"] == "replacement_id_taken"


# --- bad input --------------------------------------------------------------------------


def test_bad_settings_values_fall_back_and_are_reported(trading) -> None:
    set_settings(new_timeout_seconds=45.5, max_auto_retries=True, enabled="yes", unfilled_timeout_seconds=600)
    order = stale_order()
    result = run()
    warnings = {w["key"]: w for w in result["settings_warnings"]}
    assert set(warnings) == {"new_timeout_seconds", "max_auto_retries", "enabled"}
    assert warnings["new_timeout_seconds"]["value"] == 45.5
    assert result["settings"]["new_timeout_seconds"] == 45 and result["settings"]["enabled"] is True
    assert outcome(result, order)["reason"] == "replaced"
    assert "settings warning: new_timeout_seconds=45.5" in text("--dry-run")


def test_settings_column_that_is_not_an_object_means_defaults(trading) -> None:
    TradeSettings.objects.update(auto_recovery=["not", "an", "object"])
    stale_order()
    result = run("--dry-run")
    assert [w["key"] for w in result["settings_warnings"]] == ["auto_recovery"]
    assert result["settings"]["max_auto_retries"] == 1


def test_no_settings_row_means_defaults(db, bridge) -> None:
    factories.IbSettingsFactory()
    order = stale_order()
    result = run()
    assert outcome(result, order)["reason"] == "replaced"
    assert result["settings_warnings"][0]["reason"].startswith("no trade_settings row")


@pytest.mark.parametrize("content", ['{"items": [{"symbol": "AAPL", "da', "[1, 2]", "", '{"items": {}}'])
def test_corrupt_quotes_file_gives_no_quotes_and_the_sweep_goes_on(trading, content: str) -> None:
    trading.raw("quotes.json", content)
    limit = stale_order(symbol="AAPL", order_type="LMT", limit_price=100.0)
    market = stale_order(symbol="AAPL")
    result = run()
    assert outcome(result, limit)["reason"] == "quote_unavailable"
    assert outcome(result, market)["reason"] == "replaced"
    assert result["gates"]["quotes"]["available"] is False


@pytest.mark.parametrize("limit", ["0", "-3", "abc", "1.5"])
def test_bad_limit_is_refused(trading, limit: str) -> None:
    with pytest.raises(CommandError, match="--limit"):
        call_command("auto_recover", "--limit", limit, now=CLOCK)


def test_limit_caps_the_orders_per_run_oldest_first(trading) -> None:
    orders = [stale_order(age=100 + i) for i in range(5)]
    result = run("--limit", "2")
    assert [o["id"] for o in result["orders"]] == [orders[4].pk, orders[3].pk]


# --- output -----------------------------------------------------------------------------


def test_table_output_and_verbosity_zero(trading) -> None:
    order = stale_order(client_order_id="tbl-1")
    shown = text("--dry-run")
    assert "tbl-1" in shown and "replaced" in shown and "dry run" in shown
    assert "scanned 1  cancelled 1  replaced 1  skipped 0  failed 0" in shown
    assert text("--dry-run", "--verbosity", "0") == ""
    assert "gates: IB reachable" in text("--dry-run", "--verbosity", "2")
    assert order.pk


def test_one_log_line_per_action(trading, caplog) -> None:
    stale_order(client_order_id="log-1")
    stale_order(client_order_id="log-2", side="X")
    logger = logging.getLogger("recovery")  # propagate=False: it writes to stderr itself
    logger.addHandler(caplog.handler)
    try:
        run()
    finally:
        logger.removeHandler(caplog.handler)
    lines = [r.getMessage() for r in caplog.records if r.name == "recovery.sweep"]
    assert any("log-1 cancelled and re-placed" in line for line in lines)
    assert any("log-2 cancelled without replacement: invalid_order" in line for line in lines)


@pytest.mark.parametrize(
    ("moment", "in_blackout"),
    [
        (dt.datetime(2026, 3, 6, 14, 30, tzinfo=dt.UTC), True),  # Friday before the switch: 09:30 EST
        (dt.datetime(2026, 3, 9, 14, 30, tzinfo=dt.UTC), False),  # Monday after: 10:30 EDT
        (dt.datetime(2026, 3, 9, 13, 30, tzinfo=dt.UTC), True),  # Monday after: 09:30 EDT
        (dt.datetime(2026, 11, 2, 14, 30, tzinfo=dt.UTC), True),  # after the November switch: 09:30 EST
    ],
)
def test_blackout_windows_follow_new_york_wall_time_across_dst(
    trading, moment: dt.datetime, in_blackout: bool
) -> None:
    set_settings(blackout_windows=[{"start": "09:25", "end": "09:35"}], allow_replace_outside_rth=True)
    order = stale_order(age=600, clock=moment)
    result = run("--dry-run", now=moment)
    assert result["gates"]["blackout"]["active"] is in_blackout
    assert (outcome(result, order)["reason"] == "blackout") is in_blackout


def test_settings_json_python_cannot_decode_means_defaults(trading) -> None:
    # Valid JSON, storable by raw SQL on both engines, that Python refuses to turn into an int.
    huge = "1" * 5000
    with connections[trading_alias()].cursor() as cursor:
        cursor.execute(f"UPDATE trade_settings SET auto_recovery = '{{\"max_auto_retries\": {huge}}}'")
    order = stale_order()
    result = run()
    assert outcome(result, order)["reason"] == "replaced"
    assert result["settings_warnings"][0]["reason"].startswith("column could not be decoded")


@pytest.mark.mysql  # SQLite's introspection is PRAGMA per table: local, and not what cron pays
def test_an_idle_cron_run_costs_a_few_queries(trading) -> None:
    from django.test.utils import CaptureQueriesContext

    factories.TradeOrderFactory.create_batch(5, status="FILLED", filled_quantity=10)
    with CaptureQueriesContext(connections[trading_alias()]) as queries:
        run()
    statements = [q["sql"] for q in queries]
    # schema check, settings, the server's clock (rule 1c), candidates, lock, the breaker's
    # last state, heartbeat and its pruning: no scan, no count
    assert len(statements) <= 14, statements
    assert not any("COUNT(" in sql.upper() for sql in statements)


def test_every_order_says_in_plain_words_what_happens_in_the_json_and_the_table(trading) -> None:
    stale_order(client_order_id="plain-replaced")
    stale_order(client_order_id="plain-bad", side="HOLD")
    result = run("--dry-run")
    labels = {o["client_order_id"]: o["label"] for o in result["orders"]}
    assert labels == {
        "plain-replaced": "Cancel and re-place: nothing stops it",
        "plain-bad": "Cancel only: the order row is unusable (side 'HOLD' is not BUY or SELL)",
    }
    table = text("--dry-run")
    assert "what happens" in table
    assert any(
        "Cancel only: the order row is unusable" in line and "invalid_order" in line
        for line in table.splitlines()
    )
