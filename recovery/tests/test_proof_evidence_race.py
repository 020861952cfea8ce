"""Proof: four sweep processes and the executor while the broker's evidence files appear.

The Lean processes write their files whenever the broker answers, not when a sweep is
ready: here a writer adds Submitted events (root file, new direct_<id> folders) and rewrites
the root open-orders snapshot before and during the race. A sweep reads the evidence once,
when it starts; so an order whose evidence was on disk before a sweep started is never
cancelled by it, and nothing else about the race changes (one replacement at most, an
acknowledged order never cancelled, the audit trail agreeing).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from recovery.db.audit import ACTION_CANCEL, ACTION_REPLACE
from recovery.db.models import AuditLog, TradeOrder
from recovery.db.timestamps import iso_utc
from recovery.tests.proof_worker import Pack
from recovery.tests.test_proof_concurrency import overlap_assert, recovery_configured, stale_orders_create

pytestmark = [pytest.mark.mysql, pytest.mark.processes]

SEED = 20261130
ORDERS = 600
EVIDENCED_BEFORE = 80
EVIDENCED_DURING = 160


class EvidenceWriter(threading.Thread):
    """Writes Submitted evidence for orders, recording when each write was complete."""

    def __init__(self, root: Path, orders: list[TradeOrder], *, clock_iso: str, pause: float) -> None:
        super().__init__(daemon=True)
        self.root, self.orders, self.clock_iso, self.pause = root, orders, clock_iso, pause
        self.written: dict[int, float] = {}
        self.listed: list[str] = []

    def write(self, index: int, order: TradeOrder) -> None:
        kind = index % 3
        line = {"tag": order.client_order_id, "status": "Submitted", "filled": 0, "time": self.clock_iso}
        if kind == 0:
            with (self.root / "execution_events.jsonl").open("a") as handle:
                handle.write(json.dumps(line) + "\n")
        elif kind == 1:
            folder = self.root / f"direct_{order.pk}"
            folder.mkdir(exist_ok=True)
            line["tag"] = f"direct:{order.pk}"
            (folder / "execution_events.jsonl").write_text(json.dumps(line) + "\n")
        else:
            self.listed.append(order.client_order_id)
            snapshot = {
                "items": [{"tag": t} for t in self.listed],
                "stale": False,
                "refreshed_at": self.clock_iso,
            }
            temporary = self.root / "open_orders.json.tmp"
            temporary.write_text(json.dumps(snapshot))
            os.replace(temporary, self.root / "open_orders.json")  # as the bridge writes it: atomically
        self.written[order.pk] = time.time()

    def run(self) -> None:
        for index, order in enumerate(self.orders, start=EVIDENCED_BEFORE):
            self.write(index, order)
            time.sleep(self.pause)


def test_four_sweeps_and_the_executor_while_evidence_appears(
    committed_db,  # noqa: ANN001
    bridge,  # noqa: ANN001
    clock,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    """Any wall clock: the sweeps are given `--now`, and the settings allow re-placing outside
    regular hours.
    """
    recovery_configured()
    originals = stale_orders_create(ORDERS, clock=clock)
    rows = list(TradeOrder.objects.filter(pk__in=originals).order_by("pk"))
    chosen = random.Random(SEED).sample(rows, EVIDENCED_BEFORE + EVIDENCED_DURING)
    before, during = chosen[:EVIDENCED_BEFORE], chosen[EVIDENCED_BEFORE:]
    writer = EvidenceWriter(bridge.root, during, clock_iso=iso_utc(clock), pause=0.002)
    for index, order in enumerate(before):
        writer.write(index, order)
    on_disk_before = dict(writer.written)

    pack = Pack(tmp_path, LEAN_BRIDGE_ROOT=str(bridge.root))
    try:
        executor = pack.start("executor", "executor", "--seed", str(SEED), "--pause", "0.02")
        sweeps = [
            pack.start(f"sweep-{n}", "sweep", "--actor", f"proof-sweep-{n}", "--limit", "1000", "--now",
                       clock.isoformat())
            for n in range(1, 5)
        ]  # fmt: skip
        pack.wait_ready()
        pack.release()
        writer.start()
        reports = [sweep.json() for sweep in sweeps]
        writer.join()
        pack.stop.touch()
        acknowledged = set(executor.json()["acknowledged"])
    finally:
        pack.close()
    overlap_assert(reports)

    orders = {o.pk: o for o in TradeOrder.objects.all()}
    cancelled = {i for i in originals if orders[i].status == "CANCELED"}
    # Evidence on disk before the race: never cancelled, by anyone.
    assert {o.pk for o in before} & cancelled == set()
    # Evidence that appeared during the race: only a sweep that started before it was
    # complete on disk may have cancelled the order.
    cancelled_by: dict[int, dict] = {i: r for r in reports for i in r["cancelled_ids"]}
    late_reads = [
        i
        for i, report in cancelled_by.items()
        if i in writer.written and writer.written[i] < report["started"]
    ]
    assert late_reads == [], "a sweep cancelled an order whose evidence was on disk when it started"
    # The usual guarantees hold too.
    assert cancelled & acknowledged == set()
    replacements: defaultdict[int, list[int]] = defaultdict(list)
    for order in orders.values():
        origin = (order.params.get("auto_recovery") or {}).get("origin_order_id")
        if origin is not None:
            replacements[origin].append(order.pk)
    assert set(replacements) == cancelled
    assert [o for o, new in replacements.items() if len(new) != 1] == []
    assert Counter(
        AuditLog.objects.filter(action=ACTION_CANCEL).values_list("resource_id", flat=True)
    ) == Counter(cancelled)
    assert AuditLog.objects.filter(action=ACTION_REPLACE).count() == len(cancelled)
    for report in reports:
        assert report["failed"] == 0 and not report["circuit_open"], report["reasons"]
        assert set(report["reasons"]) <= {
            "replaced",
            "changed_concurrently",
            "seen_by_broker",
            "open_at_broker",
        }, report["reasons"]
    assert sum(r["cancelled"] for r in reports) == len(cancelled)
    skipped_for_evidence = sum(r["reasons"].get("seen_by_broker", 0) + r["reasons"].get("open_at_broker", 0)
                               for r in reports)  # fmt: skip
    print(
        f"\nevidence race (seed {SEED}): {len(on_disk_before)} orders evidenced before, "
        f"{len(writer.written) - len(on_disk_before)} during; cancelled {len(cancelled)}, "
        f"acknowledged {len(acknowledged)}, skips for evidence across the 4 runs {skipped_for_evidence}, "
        f"split {[r['cancelled'] for r in reports]}"
    )
    assert skipped_for_evidence > 0, "no sweep met the evidence: the race did not test it"
