"""(f) The pages ops open during an incident, at size: .venv/bin/python -m bench.ops_pages.

Builds test_tradeops_bench (or the test_* database of DATABASE_URL) with --orders historical
orders, --audit audit rows and --stale stale NEW orders, then times, through
django.test.Client and at the bench's clock (a Tuesday session), the orders list, the stale
filter and its page 11, a preview of 100 selected orders, the status page, an order's page
and its decision history. Each page is timed beside the stock admin's orders page 1 on the
same rows, in the same run (the ratio column); the counts the pages print are checked
against COUNT(*) of the same rows, so a page that is fast because it stopped counting fails.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STOCK_PAGE_1 = "/stock-admin/recovery/tradeorder/"
MSG_BAD_PAGE = "{method} {url} answered {status}"
MSG_COUNT = "{page}: the page says {shown:,} but COUNT(*) is {counted:,}"
PREVIEW_ORDERS = 100


@dataclass(frozen=True)
class Page:
    name: str
    url: str
    post: dict[str, Any] | None = None
    count_text: str | None = None  # a regex whose group 1 is the count the page prints


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ops_pages", description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000, help="historical trade_orders rows")
    parser.add_argument("--audit", type=int, default=1_000_000, help="audit_logs rows")
    parser.add_argument("--stale", type=int, default=3_000, help="stale NEW orders")
    parser.add_argument("--gets", type=int, default=5, help="timed requests per page, alternating with stock")
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    args = parser.parse_args(argv)
    if min(args.orders, args.audit, args.gets) < 1 or args.stale < PREVIEW_ORDERS:
        parser.error(f"sizes must be positive and --stale at least {PREVIEW_ORDERS}")
    return args


def _pages(*, stale_ids: list[int], order_id: int) -> list[Page]:
    from django.urls import reverse

    from recovery.admin.history import history_url

    orders = reverse("admin:recovery_tradeorder_changelist")
    pages = [
        Page("orders list, page 1", orders),
        Page("stale filter, page 1", f"{orders}?stale=yes", count_text=r"([\d,]+) results?"),
        Page("stale filter, page 11", f"{orders}?stale=yes&p=10"),
        Page(
            f"preview of {PREVIEW_ORDERS} selected orders",
            orders,
            post={"action": "recover_selected", "_selected_action": [str(i) for i in stale_ids]},
        ),
        Page("status page", reverse("recovery_status")),
        Page("an order's page", reverse("admin:recovery_tradeorder_change", args=[order_id])),
    ]
    pages.append(Page("an order's decision history", history_url(order_id)))
    return pages


def _request(client: Any, page: Page, url: str | None = None) -> tuple[float, bytes]:
    url = url or page.url
    started = time.perf_counter()
    response = client.post(url, page.post) if page.post else client.get(url)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        method = "POST" if page.post else "GET"
        raise RuntimeError(MSG_BAD_PAGE.format(method=method, url=url, status=response.status_code))
    return elapsed, response.content


def _count_check(page: Page, content: bytes, counted: int) -> int | None:
    if page.count_text is None:
        return None
    found = re.search(page.count_text.encode(), content)
    shown = int(found.group(1).replace(b",", b"")) if found else -1
    if shown != counted:
        raise RuntimeError(MSG_COUNT.format(page=page.name, shown=shown, counted=counted))
    return shown


def measure(*, gets: int, stale_prefix: str) -> list[dict[str, Any]]:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.test.utils import override_settings
    from django.utils import timezone

    from recovery import selectors
    from recovery.db.models import TradeOrder

    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    stale = TradeOrder.objects.filter(client_order_id__startswith=stale_prefix).order_by("id")
    stale_ids = list(stale.values_list("id", flat=True)[:PREVIEW_ORDERS])
    timeout = selectors.settings_in_force_get().config.new_timeout_seconds
    counted = selectors.stale_candidates(now=timezone.now(), timeout_seconds=timeout).count()
    rows = []
    client = Client()
    with override_settings(ROOT_URLCONF="bench.urls", ALLOWED_HOSTS=["testserver"]):
        client.force_login(user)
        stock = Page("stock orders page 1", STOCK_PAGE_1)
        for page in _pages(stale_ids=stale_ids, order_id=stale_ids[0]):
            _, content = _request(client, page)  # the warm-up request
            shown = _count_check(page, content, counted)
            times: dict[str, list[float]] = {"page": [], "stock": []}
            for i in range(gets):
                for side in ("page", "stock") if i % 2 == 0 else ("stock", "page"):
                    times[side].append(_request(client, page if side == "page" else stock)[0])
            ours, base = statistics.median(times["page"]), statistics.median(times["stock"])
            rows.append({
                "page": page.name,
                "url": page.url,
                "median_seconds": round(ours, 4),
                "stock_page_1_seconds": round(base, 4),
                "ratio_to_stock_page_1": round(ours / base, 2),
                "count_shown": shown,
            })  # fmt: skip
    return rows


def table_text(rows: list[dict[str, Any]], *, stale: int) -> str:
    lines = [f"{'page':<40} {'median s':>9} {'stock p1 s':>10} {'ratio':>6}"]
    for row in rows:
        lines.append(
            f"{row['page']:<40} {row['median_seconds']:>9.4f} "
            f"{row['stock_page_1_seconds']:>10.4f} {row['ratio_to_stock_page_1']:>6.2f}"
        )
    lines.append(f"(stale candidates by COUNT(*): {stale:,}; the stale filter's count matched it)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    from bench.run import CLOCK, Progress, _django_setup

    _django_setup()
    import time_machine
    from django.test.utils import override_settings

    from bench import data, database
    from recovery.tests.gateway import gateway_port

    progress = Progress()
    progress.step("create the bench database", database.bench_database_create)
    try:
        biggest = max(args.orders, min(args.audit, data.AUDIT_CHUNK), args.stale, data.PROJECTS * 2)
        progress.step(f"numbers table 1..{biggest:,}", lambda: data.numbers_build(upto=biggest))
        runs = progress.step("trade_runs", lambda: data.runs_insert(orders=args.orders, clock=CLOCK))
        progress.step(f"{args.orders:,} orders", lambda: data.history_insert(orders=args.orders, clock=CLOCK))
        progress.step("recent orders", lambda: data.recent_insert(runs=runs, clock=CLOCK))
        prefix = progress.step(
            f"{args.stale:,} stale orders",
            lambda: data.stale_batch_insert(label="ops", count=args.stale, runs=runs, clock=CLOCK),
        )
        progress.step(
            f"{args.audit:,} audit rows",
            lambda: data.audit_insert(total=args.audit, orders=args.orders, clock=CLOCK),
        )
        progress.step("settings", lambda: data.settings_insert(clock=CLOCK, gateway_port=gateway_port()))
        progress.step("ANALYZE TABLE", data.tables_analyze)
        progress.step("wait for InnoDB to flush the load", database.server_quiesce)
        with (
            tempfile.TemporaryDirectory() as bridge,
            tempfile.TemporaryDirectory() as host,
            override_settings(LEAN_BRIDGE_ROOT=Path(bridge), AUTO_RECOVER_LOCK_DIR=Path(host)),
            time_machine.travel(CLOCK, tick=True),
        ):
            data.bridge_write(root=Path(bridge), clock=CLOCK)
            rows = progress.step("(f) ops pages", lambda: measure(gets=args.gets, stale_prefix=prefix))
        print(f"\n{args.orders:,} orders, {args.audit:,} audit rows, {os.cpu_count()} cores")
        print(table_text(rows, stale=args.stale))
        return 0
    finally:
        if not args.keep:
            database.bench_database_drop()


if __name__ == "__main__":
    sys.exit(main())
