"""Placing the replacement: the row the backend's direct-order loop sends, rules 7c and 10b.

The contract part (what every replacement must look like to the backend's loop) is read
from docs/design.md, "Placing the replacement", and checked on each replacement a real
sweep writes: a direct original, an ended run's original and a chain's second replacement.
The backend's own code runs against them in test_backend_integration.py, when a checkout
of it is at hand.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from recovery.db.models import IbSettings, TradeOrder, TradeSettings
from recovery.gates.evidence import order_tags
from recovery.gates.sender import HEALTH_FILENAME
from recovery.tests import factories
from recovery.tests.conftest import CLOCK, stale_order
from recovery.tests.gateway import gateway_port
from recovery.tests.test_auto_recover import backend_sent, outcome, run, set_settings

pytestmark = pytest.mark.django_db

# Keys of the original that must not reach its replacement (docs/design.md, "Writing it down").
STRIPPED = {
    "submit_command",
    "auto_recovery_cancel",
    "sync_reason",
    "broker_order_tag",
    "event_tag",
    "event_source",
    "positions_baseline",
}
STRIPPED_PREFIXES = ("open_orders_", "event_")
# What the backend's loop selects before it looks at a row: no run, NEW or REJECTED, oldest first.
LOOP_READS = 200

ORIGINAL_STATE = {
    "broker_order_tag": "{client}",
    "event_tag": "{client}",
    "event_source": "lean_command",
    "event_status": "SUBMITTED",
    "event_time": "2026-11-24T14:58:00Z",
    "positions_baseline": {"symbol": "AAPL", "quantity": 0, "refreshed_at": "2026-11-24T14:58:00Z"},
    "sync_reason": "missing_from_open_orders",
    "open_orders_missing_count": 2,
    "strategy": "momentum",
}


def original_params(client: str, **more: Any) -> dict[str, Any]:
    return {**json.loads(json.dumps(ORIGINAL_STATE).replace("{client}", client)), **more}


def loop_would_select(replacement: TradeOrder, *, ib_mode: str) -> list[str]:
    """What in `replacement` keeps the backend's direct-order loop from sending it now.

    docs/design.md, "Placing the replacement": run_id NULL, NEW or REJECTED, among the 200
    oldest such rows, params.direct_retry.pending true (its truthiness) and due (no
    next_retry_at, or one in the past), params.mode (default paper) = ib_settings' mode.
    """
    problems = []
    if replacement.run_id is not None:
        problems.append(f"run_id {replacement.run_id}")
    if replacement.status not in ("NEW", "REJECTED"):
        problems.append(f"status {replacement.status}")
    head = TradeOrder.objects.filter(run_id__isnull=True, status__in=("NEW", "REJECTED")).order_by(
        "created_at"
    )[:LOOP_READS]
    if replacement.pk not in {o.pk for o in head}:
        problems.append("not among the loop's 200 oldest rows")
    params = replacement.params if isinstance(replacement.params, dict) else {}
    retry = params.get("direct_retry") if isinstance(params.get("direct_retry"), dict) else {}
    if not bool(retry.get("pending")):
        problems.append("direct_retry not pending")
    if retry.get("next_retry_at"):
        problems.append("direct_retry not due at once")
    if str(params.get("mode") or "paper").strip().lower() != ib_mode:
        problems.append(f"mode {params.get('mode')!r}")
    return problems


def carried_over(replacement: TradeOrder) -> set[str]:
    return {k for k in replacement.params if k in STRIPPED or k.startswith(STRIPPED_PREFIXES)}


def test_every_replacement_is_one_row_the_backends_loop_sends_and_carries_nothing_of_the_original(
    trading,  # noqa: ANN001
) -> None:
    set_settings(replace_run_orders=True, max_auto_retries=2)
    direct = stale_order(
        client_order_id="c-direct", params=original_params("c-direct", mode="paper", project_id=3)
    )
    run_row = factories.TradeRunFactory(
        project_id=5,
        mode="paper",
        status="done",
        params={"allow_outside_rth": True, "adaptive_priority": "Low"},
    )
    of_run = stale_order(client_order_id="c-run", run_id=run_row.pk, params=original_params("c-run"))
    chained = stale_order(client_order_id="c-chain", params=original_params("c-chain"))
    first = run()
    assert first["replaced"] == 3, first["orders"]
    made = {
        o.pk: TradeOrder.objects.get(pk=outcome(first, o)["replacement_id"])
        for o in (direct, of_run, chained)
    }
    for replacement in made.values():
        assert loop_would_select(replacement, ib_mode="paper") == [], replacement.client_order_id

    # The chain's second replacement: the backend sent the first ones, the broker never saw them.
    for replacement in made.values():
        backend_sent(replacement)
    later = CLOCK + dt.timedelta(minutes=2)
    second = run(now=later)
    second_made = TradeOrder.objects.get(pk=outcome(second, made[chained.pk])["replacement_id"])
    assert second_made.client_order_id == "c-chain-r2"
    assert loop_would_select(second_made, ib_mode="paper") == []

    for replacement in [*made.values(), second_made]:  # each as it was written
        assert carried_over(replacement) == set(), replacement.client_order_id
        # Read by its own tags only: nothing of the original's can be matched to it.
        chain = replacement.params["auto_recovery"]
        tags = order_tags(
            order_id=replacement.pk, client_order_id=replacement.client_order_id, params=replacement.params
        )
        assert (
            chain["origin_client_order_id"] not in tags and f"direct:{chain['origin_order_id']}" not in tags
        )
        assert chain["root_client_order_id"] not in tags
    assert second_made.params["direct_retry"] == {"pending": True, "reason": "auto_recovery", "count": 0}
    # Mode and project of the original, from its run when it has one; the run kept by id.
    assert (made[direct.pk].params["mode"], made[direct.pk].params["project_id"]) == ("paper", 3)
    run_made = made[of_run.pk].params
    assert (run_made["mode"], run_made["project_id"], run_made["auto_recovery"]["origin_run_id"]) == (
        "paper",
        5,
        run_row.pk,
    )
    assert (run_made["allow_outside_rth"], run_made["adaptive_priority"]) == (True, "Low")
    assert "origin_run_id" not in made[direct.pk].params["auto_recovery"]
    assert second_made.params["auto_recovery"]["root_client_order_id"] == "c-chain"
    assert second_made.params["strategy"] == "momentum"  # the rest of the order's params stay


def test_the_sweep_leaves_its_replacement_to_the_backend_while_the_loop_holds_it(trading) -> None:  # noqa: ANN001
    order = stale_order(client_order_id="held")
    first = run()
    replacement = TradeOrder.objects.get(pk=outcome(first, order)["replacement_id"])
    later = run(now=CLOCK + dt.timedelta(minutes=5))
    entry = outcome(later, replacement)
    assert (entry["decision"], entry["reason"]) == ("skip", "owned_by_backend")
    assert "direct-order loop" in entry["detail"]
    assert TradeOrder.objects.get(pk=replacement.pk).status == "NEW"


# --- rule 10b, on the database and the bridge folder --------------------------------------


def sender_held(result: dict[str, Any], order: TradeOrder) -> str:
    entry = outcome(result, order)
    assert (entry["decision"], entry["reason"]) == ("skip", "backend_sender_unavailable"), entry
    assert TradeOrder.objects.get(pk=order.pk).status == "NEW"
    return entry["detail"]


def test_10b_api_mode_mock_cancels_nothing_it_would_re_place(trading) -> None:  # noqa: ANN001
    IbSettings.objects.update(api_mode="mock")
    order = stale_order()
    bad = stale_order(side="HOLD")
    result = run()
    assert "api_mode is 'mock'" in sender_held(result, order)
    assert (outcome(result, bad)["decision"], outcome(result, bad)["reason"]) == ("cancel", "invalid_order")
    assert result["replaced"] == 0 and TradeOrder.objects.count() == 2


@pytest.mark.parametrize(
    "state", ["gateway_restarting", "bridge_degraded", "gateway_degraded", "GATEWAY_HOT "]
)
def test_10b_a_gateway_health_file_that_blocks_trading_holds_re_placing(trading, state: str) -> None:  # noqa: ANN001
    (trading.root / HEALTH_FILENAME).write_text(json.dumps({"state": state, "failure_count": 3}))
    order = stale_order()
    assert state.strip().lower() in sender_held(run(), order)


@pytest.mark.parametrize(
    ("content", "held"),
    [
        (None, False),  # no file: the backend reads its defaults and trades
        (json.dumps({"state": "healthy"}), False),
        (json.dumps({"state": "unknown"}), False),
        (json.dumps({}), False),
        ('{"state": "gateway_rest', True),  # torn mid-write: it may be a restart, so wait
        (json.dumps(["gateway_restarting"]), True),
        ("\xff\xfe", True),
    ],
)
def test_10b_the_gateway_health_file_as_the_backend_reads_it_and_a_torn_one_held(
    trading,  # noqa: ANN001
    content: str | None,
    held: bool,
) -> None:
    if content is not None:
        (trading.root / HEALTH_FILENAME).write_bytes(content.encode("latin-1"))
    order = stale_order()
    result = run()
    if held:
        assert "could not be read" in sender_held(result, order)
    else:
        assert outcome(result, order)["reason"] == "replaced"


def test_10b_an_order_of_another_mode_than_the_backend_sends_stays_new(trading) -> None:  # noqa: ANN001
    IbSettings.objects.update(mode="live")
    paper = stale_order(params={"mode": "paper"})
    live = stale_order(params={"mode": "LIVE"})
    result = run()
    assert "ib_settings is 'live'" in sender_held(result, paper)
    assert outcome(result, live)["reason"] == "replaced"


def test_10b_no_ib_settings_row_means_the_backends_mode_is_unknown(trading, settings) -> None:  # noqa: ANN001
    settings.IB_HOST, settings.IB_PORT = "127.0.0.1", gateway_port()  # the sweep's own fallback answers
    IbSettings.objects.all().delete()
    order = stale_order()
    assert "ib_settings has no row" in sender_held(run(), order)


@pytest.mark.parametrize(("waited", "held"), [(59, False), (61, True), (3600, True)])
def test_10b_an_earlier_replacement_still_waiting_60_s_holds_the_next(
    trading,  # noqa: ANN001
    waited: int,
    held: bool,
) -> None:
    first = stale_order(client_order_id="first")
    made = TradeOrder.objects.get(pk=outcome(run(), first)["replacement_id"])
    order = stale_order(client_order_id="next", clock=CLOCK + dt.timedelta(seconds=waited))
    result = run(now=CLOCK + dt.timedelta(seconds=waited))
    if not held:
        assert outcome(result, order)["reason"] == "replaced"
        return
    assert f"replacement {made.pk} has waited" in sender_held(result, order)
    # Once the loop has picked it up, the next one goes.
    backend_sent(made)
    assert outcome(run(now=CLOCK + dt.timedelta(seconds=waited)), order)["reason"] == "replaced"


def test_10b_the_loops_queue_holds_what_would_starve_behind_150_rows(trading) -> None:  # noqa: ANN001
    set_settings(max_replacements_per_sweep=1000, max_replacements_per_hour=10000)
    # Young direct rows (not candidates) and REJECTED rows, which never leave the loop's set:
    # with the two stale direct orders, 149 rows in the loop's set.
    young = CLOCK - dt.timedelta(seconds=5)
    for i in range(144):
        factories.TradeOrderFactory(client_order_id=f"young-{i}", created_at=young, updated_at=young)
    for i in range(3):
        factories.TradeOrderFactory(client_order_id=f"rejected-{i}", status="REJECTED")
    first = stale_order(client_order_id="q-first")  # 148 ahead; one out, one in
    second = stale_order(client_order_id="q-second")
    run_order = stale_order(client_order_id="q-run", run_id=factories.TradeRunFactory().pk)  # 149 ahead
    set_settings(max_replacements_per_sweep=1000, max_replacements_per_hour=10000, replace_run_orders=True)
    result = run()
    assert outcome(result, first)["reason"] == "replaced"
    assert outcome(result, second)["reason"] == "replaced"
    # A run order's replacement adds a row without taking one out: 150 ahead of the next, and
    # a new order's replacement would stand behind them.
    assert outcome(result, run_order)["reason"] == "replaced"
    later = stale_order(client_order_id="q-later")
    held = run()
    assert "150 rows with no run are NEW or REJECTED ahead" in sender_held(held, later)


def test_10b_a_dry_run_says_what_the_queue_would_hold(trading) -> None:  # noqa: ANN001
    young = CLOCK - dt.timedelta(seconds=5)
    for i in range(151):
        factories.TradeOrderFactory(client_order_id=f"young-{i}", created_at=young, updated_at=young)
    order = stale_order()
    result = run("--dry-run")
    assert outcome(result, order)["reason"] == "backend_sender_unavailable"
    assert TradeOrder.objects.get(pk=order.pk).status == "NEW"


# --- rule 7c, on the database ------------------------------------------------------------


def test_7c_run_orders_are_only_cancelled_unless_asked_and_their_resume_is_done(trading) -> None:  # noqa: ANN001
    plain = factories.TradeRunFactory(status="done")  # no decision snapshot: never resumed
    resumable = factories.TradeRunFactory(status="partial", decision_snapshot_id=44)
    used_up = factories.TradeRunFactory(
        status="partial", decision_snapshot_id=44, params={"auto_resume": {"skipped": "attempt_limit"}}
    )
    orders = {run.pk: stale_order(run_id=run.pk) for run in (plain, resumable, used_up)}
    result = run("--dry-run")
    assert {outcome(result, o)["reason"] for o in orders.values()} == {"run_order_not_replaced"}
    set_settings(replace_run_orders=True)
    result = run()
    reasons = {run_id: outcome(result, o)["reason"] for run_id, o in orders.items()}
    assert reasons == {plain.pk: "replaced", resumable.pk: "run_order_not_replaced", used_up.pk: "replaced"}
    assert "partial resume is on (attempt 1 of 1)" in outcome(result, orders[resumable.pk])["detail"]
    assert TradeOrder.objects.get(pk=orders[resumable.pk].pk).status == "CANCELED"
    TradeSettings.objects.update(auto_recovery={})
