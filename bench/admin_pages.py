"""(c) Changelist pages through django.test.Client: ours against stock ModelAdmins on the same rows.

Per changelist: page 1, page 2, one row (its newest, by id) and a filtered page, so the
queries per page can be seen not to grow with the page number or with the rows shown.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings

from recovery.db.audit import ACTION_CANCEL
from recovery.db.models import AuditLog, TradeOrder
from recovery.db.routers import trading_alias

OURS, STOCK = "/admin/recovery/", "/stock-admin/recovery/"
MSG_BAD_PAGE = "GET {url} answered {status}"


@dataclass(frozen=True)
class Page:
    name: str
    ours: str
    stock: str
    timed: bool
    shape: str  # page 1 | page 2 | one row | filtered


def pages() -> tuple[Page, ...]:
    """The pages measured; the one-row pages show the newest NEW order and the newest audit row
    (a NEW order on the page is what makes our changelist run its dry run)."""
    order = TradeOrder.objects.filter(status="NEW").order_by("-id").values_list("id", flat=True).first()
    entry = AuditLog.objects.order_by("-id").values_list("id", flat=True).first()
    return (
        Page("orders page 1", "tradeorder/", "tradeorder/", True, "page 1"),
        Page("orders page 2", "tradeorder/?p=2", "tradeorder/?p=2", False, "page 2"),
        Page("orders one row", f"tradeorder/?id={order}", f"tradeorder/?id={order}", False, "one row"),
        Page(
            "orders status=REJECTED",
            "tradeorder/?status=REJECTED",
            "tradeorder/?status__exact=REJECTED",
            True,
            "filtered",
        ),
        Page("audit page 1", "auditlog/", "auditlog/", True, "page 1"),
        Page("audit page 2", "auditlog/?p=2", "auditlog/?p=2", False, "page 2"),
        Page("audit one row", f"auditlog/?id={entry}", f"auditlog/?id={entry}", False, "one row"),
        Page(
            "audit action=cancel",
            f"auditlog/?action={ACTION_CANCEL}",
            f"auditlog/?action__exact={ACTION_CANCEL}",
            True,
            "filtered",
        ),
    )


def _rows(content: bytes) -> int:
    start = content.find(b'id="result_list"')
    if start == -1:
        return 0
    table = content[start : content.find(b"</table>", start)]
    return max(table.count(b"<tr") - 1, 0)  # minus the header row


def _get(client: Client, url: str) -> tuple[float, int]:
    started = time.perf_counter()
    response = client.get(url)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(MSG_BAD_PAGE.format(url=url, status=response.status_code))
    return elapsed, _rows(response.content)


def _queries(client: Client, url: str) -> list[str]:
    with CaptureQueriesContext(connections[trading_alias()]) as captured:
        _get(client, url)
    return [q["sql"] for q in captured]


def _page_measure(client: Client, page: Page, *, gets: int) -> dict[str, Any]:
    urls = {"ours": OURS + page.ours, "stock": STOCK + page.stock}
    sqls = {side: _queries(client, url) for side, url in urls.items()}  # also the warm-up GET
    times: dict[str, list[float]] = {"ours": [], "stock": []}
    rows = {side: _get(client, url)[1] for side, url in urls.items()}
    for i in range(gets if page.timed else 0):
        for side in ("ours", "stock") if i % 2 == 0 else ("stock", "ours"):
            times[side].append(_get(client, urls[side])[0])
    return {
        "shape": page.shape,
        "urls": urls,
        "rows_shown": rows,
        "queries": {side: len(sql) for side, sql in sqls.items()},
        "sql": {side: [s[:400] for s in sql] for side, sql in sqls.items()},
        "seconds": times,
        "median_seconds": {side: statistics.median(t) if t else None for side, t in times.items()},
    }


def admin_pages_measure(*, gets: int) -> dict[str, Any]:
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    with override_settings(ROOT_URLCONF="bench.urls", ALLOWED_HOSTS=["testserver"]):
        client.force_login(user)
        return {page.name: _page_measure(client, page, gets=gets) for page in pages()}
