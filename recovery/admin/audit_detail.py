"""How an audit row reads: a one-line summary naming both ends, and the detail page's parts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from recovery.admin.fate import decision_rows
from recovery.admin.history import history_link, sweep_history_url
from recovery.db.audit import ACTION_CANCEL, ACTION_REPLACE, ACTION_SETTINGS_UPDATE, ACTION_SWEEP
from recovery.db.models import AuditLog
from recovery.sweep.labels import reason_label

SUMMARY_LENGTH = 160
DECISION_COLUMNS = ("order", "what happened, and why", "replacement", "age")


def order_link(order_id: Any, client_order_id: Any = None) -> SafeString | str:
    if type(order_id) is not int:
        return "-"
    url = reverse("admin:recovery_tradeorder_change", args=[order_id])
    if client_order_id:
        return format_html('<a href="{}">#{} {}</a>', url, order_id, client_order_id)
    return format_html('<a href="{}">#{}</a>', url, order_id)


def audit_row_link(audit_id: int | None, label: str) -> SafeString | str:
    if audit_id is None:
        return "-"
    return format_html(
        '<a href="{}">{}</a>', reverse("admin:recovery_auditlog_change", args=[audit_id]), label
    )


def _short(value: Any, limit: int | None) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def settings_changes(detail: Mapping[str, Any], *, limit: int | None = 40) -> list[tuple[str, str, str]]:
    """(key, before, after) of a settings update row, as JSON text; each value cut at `limit`
    characters for the one-line summary, whole (None) for the entry's own table."""
    before = detail.get("before") if isinstance(detail.get("before"), dict) else {}
    after = detail.get("after") if isinstance(detail.get("after"), dict) else {}
    keys = detail.get("changed_keys") or sorted(set(before) | set(after))
    return [
        (
            key,
            _short(before[key], limit) if key in before else "(absent)",
            _short(after[key], limit) if key in after else "(absent)",
        )
        for key in keys
    ]


def _changes_summary(changes: list[tuple[str, str, str]]) -> str:
    """ "a: 1 → 2; b: true → false; and 3 more keys": whole changes, never one cut in its key."""
    shown: list[str] = []
    for key, old, new in changes:
        item = f"{key}: {old} → {new}"
        if shown and len("; ".join([*shown, item])) > SUMMARY_LENGTH:
            break
        shown.append(item)
    if not shown:
        return "no change"
    hidden = len(changes) - len(shown)
    return "; ".join(shown) + (f"; and {hidden} more key{'s' if hidden != 1 else ''}" if hidden else "")


def audit_summary(entry: AuditLog) -> SafeString | str:
    """One line for the changelist; ids are links."""
    detail = entry.detail
    if not isinstance(detail, dict):
        return str(detail)[:SUMMARY_LENGTH] if detail is not None else ""
    if entry.action == ACTION_SWEEP:
        counts = ", ".join(
            f"{k} {detail.get(k)}" for k in ("scanned", "cancelled", "replaced", "skipped", "failed")
        )
        return ("CIRCUIT BREAKER OPEN: " if detail.get("circuit_open") else "") + counts
    if entry.action == ACTION_REPLACE:
        return format_html(
            "{} replaces {} (attempt {})",
            order_link(entry.resource_id, detail.get("client_order_id")),
            order_link(detail.get("origin_order_id"), detail.get("origin_client_order_id")),
            detail.get("attempt"),
        )
    if entry.action == ACTION_CANCEL:
        label = reason_label(detail, settings={})
        cancelled = order_link(detail.get("id"), detail.get("client_order_id"))
        if detail.get("replacement_id"):
            replacement = order_link(detail.get("replacement_id"), detail.get("replacement_client_order_id"))
            return format_html("{} cancelled, replaced by {}", cancelled, replacement)
        return format_html("{} cancelled — {}", cancelled, label)
    if entry.action == ACTION_SETTINGS_UPDATE:
        return _changes_summary(settings_changes(detail))
    return json.dumps(detail, default=str)[:SUMMARY_LENGTH]


def _sweep_row_id(entry: AuditLog, sweep_id: Any) -> int | None:
    """The sweep's own row: written after its order rows, so the first later one with its id."""
    if not isinstance(sweep_id, str) or not sweep_id:
        return None
    found = (
        AuditLog.objects.filter(action=ACTION_SWEEP, pk__gt=entry.pk, detail__sweep_id=sweep_id)
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )
    return found


def _cancel_row_id(origin_id: Any, sweep_id: Any) -> int | None:
    if type(origin_id) is not int:
        return None
    rows = AuditLog.objects.filter(
        action=ACTION_CANCEL, resource_type="trade_order", resource_id=origin_id
    ).values_list("pk", "detail__sweep_id")
    return next((pk for pk, sid in rows if sid == sweep_id), None)


def audit_links(entry: AuditLog) -> SafeString | str:
    """Every id a row names, as links: the orders at both ends, the root, the sweep's row."""
    detail = entry.detail if isinstance(entry.detail, dict) else {}
    items: list[tuple[str, SafeString | str]] = []
    if entry.action == ACTION_CANCEL:
        items.append(("cancelled order", order_link(detail.get("id"), detail.get("client_order_id"))))
        items.append(("its decision history", history_link(detail.get("id"), "every sweep's decision on it")))
        if detail.get("replacement_id"):
            replacement = order_link(detail.get("replacement_id"), detail.get("replacement_client_order_id"))
            items.append(("its replacement", replacement))
    elif entry.action == ACTION_REPLACE:
        items.append(("replacement", order_link(entry.resource_id, detail.get("client_order_id"))))
        origin = order_link(detail.get("origin_order_id"), detail.get("origin_client_order_id"))
        items.append(("replaces (origin)", origin))
        items.append(
            (
                "the origin's decision history",
                history_link(detail.get("origin_order_id"), "every sweep's decision on it"),
            )
        )
        items.append(
            ("root of the chain", order_link(detail.get("root_order_id"), detail.get("root_client_order_id")))
        )
        cancel = _cancel_row_id(detail.get("origin_order_id"), detail.get("sweep_id"))
        items.append(("the origin's cancel", audit_row_link(cancel, f"audit entry #{cancel}")))
    if entry.action in (ACTION_CANCEL, ACTION_REPLACE):
        sweep = _sweep_row_id(entry, detail.get("sweep_id"))
        items.append(
            (
                "sweep",
                audit_row_link(sweep, f"audit entry #{sweep} (sweep {str(detail.get('sweep_id'))[:8]})"),
            )
        )
    if not items:
        return "-"
    rows = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", items)
    return format_html('<table class="audit-links">{}</table>', rows)


def _detail_beyond_label(row: dict[str, Any]) -> SafeString | str:
    """The outcome's detail under its label, when the label does not already say it (a
    replacement's label names the quote; its detail may say what happened to an earlier try)."""
    detail = row.get("detail")
    if not isinstance(detail, str) or not detail or detail in row["fate"].label:
        return ""
    return format_html('<br><small class="outcome-detail">{}</small>', detail)


def sweep_decisions(entry: AuditLog) -> SafeString | str:
    """A sweep row's decisions as the preview shows them (labels first, codes beside)."""
    detail = entry.detail if isinstance(entry.detail, dict) else {}
    if entry.action != ACTION_SWEEP:
        return "-"
    rows = decision_rows(detail)
    omitted = _omitted_html(detail)
    if not rows:
        return omitted or "-"
    body = format_html_join(
        "",
        '<tr><td data-label="order">{}<br><small>{}</small></td>'
        '<td class="fate-cell" data-label="what happened">{} <code class="reason-code">{}</code>{}</td>'
        '<td data-label="replacement">{}</td><td data-label="age">{}</td></tr>',
        (
            (
                order_link(r.get("id"), r.get("client_order_id")),
                history_link(r.get("id"), "history"),
                format_html('<span class="fate fate-{}">{}</span>', r["fate"].action, r["fate"].label),
                r["fate"].code,
                _detail_beyond_label(r),
                order_link(r.get("replacement_id"), r.get("replacement_client_order_id")),
                r["age"],
            )
            for r in rows
        ),
    )
    head = format_html_join("", "<th>{}</th>", ((h,) for h in DECISION_COLUMNS))
    return format_html(
        '{}<div class="table-scroll"><table class="sweep-decisions decision-cards">'
        "<thead><tr>{}</tr></thead><tbody>{}</tbody></table></div>",
        omitted,
        head,
        body,
    )


def _omitted_html(detail: Mapping[str, Any]) -> SafeString | str:
    """A bounded sweep row lists the orders that matter most; the rest are in the history."""
    omitted, total, sweep_id = (
        detail.get("orders_omitted"),
        detail.get("orders_total"),
        detail.get("sweep_id"),
    )
    if type(omitted) is not int or omitted <= 0 or not isinstance(sweep_id, str) or not sweep_id:
        return ""
    return format_html(
        '<p class="orders-omitted">{} of {} orders are listed here (failures and cancels first); '
        '<a href="{}">every order this sweep decided on</a> is in the decision history.</p>',
        int(total or 0) - omitted,
        total,
        sweep_history_url(sweep_id),
    )


def settings_diff(entry: AuditLog) -> SafeString | str:
    if entry.action != ACTION_SETTINGS_UPDATE or not isinstance(entry.detail, dict):
        return "-"
    rows = format_html_join(
        "",
        '<tr><th>{}</th><td data-label="before">{}</td><td data-label="after">{}</td></tr>',
        settings_changes(entry.detail, limit=None),
    )
    return format_html(
        '<div class="table-scroll"><table class="settings-diff decision-cards"><thead><tr><th>key</th>'
        "<th>before</th><th>after</th></tr></thead><tbody>{}</tbody></table></div>",
        rows,
    )


def detail_folded(entry: AuditLog) -> SafeString:
    text = json.dumps(entry.detail, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    return format_html(
        '<details class="folded raw-json"><summary>Raw JSON ({} lines)</summary>'
        '<pre class="audit-detail">{}</pre></details>',
        text.count("\n") + 1,
        text,
    )
