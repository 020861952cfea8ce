"""What an order is now, in one line, after another writer got to it first."""

from __future__ import annotations

from types import SimpleNamespace

from recovery.db.conflicts import MSG_GONE, order_now_text


def row(**fields):  # noqa: ANN003, ANN201
    base = {"pk": 1, "client_order_id": "A", "status": "NEW", "params": {}, "ib_order_id": None,
            "ib_perm_id": None, "filled_quantity": 0.0}  # fmt: skip
    return SimpleNamespace(**{**base, **fields})


SWEPT = {"auto_recovery_cancel": True, "auto_recovery": {"sweep_id": "s9", "last_action": "replace"}}


def test_cancelled_by_another_sweep_with_its_replacement() -> None:
    text = order_now_text(
        row(status="CANCELED", params=SWEPT), replacement=row(pk=42, client_order_id="A-r1")
    )
    assert text == "cancelled by another sweep (sweep s9), replacement 42 A-r1"


def test_cancelled_by_another_sweep_whose_replacement_is_not_visible() -> None:
    assert order_now_text(row(status="CANCELED", params=SWEPT)) == (
        "cancelled by another sweep (sweep s9), its replacement not visible yet"
    )


def test_cancelled_by_another_sweep_without_replacement_gives_its_reason() -> None:
    params = {
        "auto_recovery_cancel": True,
        "auto_recovery": {"last_action": "cancel", "last_reason": "outside_rth"},
    }
    assert order_now_text(row(status="CANCELED", params=params)) == (
        "cancelled by another sweep, not re-placed (outside_rth)"
    )


def test_acknowledged_filled_or_cancelled_elsewhere() -> None:
    assert order_now_text(row(status="SUBMITTED", ib_order_id=5)) == (
        "now SUBMITTED, acknowledged by the broker (ib_order_id 5, ib_perm_id None)"
    )
    assert order_now_text(row(status="NEW", filled_quantity=2.5)) == "now NEW, filled 2.5"
    assert order_now_text(row(status="CANCELED", params="not json")) == "now CANCELED"


def test_a_missing_order() -> None:
    assert order_now_text(None) == MSG_GONE
