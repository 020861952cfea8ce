"""The summary: one row per metric, ours beside its baseline from the same run."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.idle import INDEX
from bench.recovery_run import READ_AGAIN, SENDER_QUEUE_KIND, SENDER_WAITING_KIND

COLUMNS = ("metric", "ours", "baseline", "ratio", "target", "result")
AUDIT_SPEEDUP = 10.0
MAX_IDLE_QUERIES = 20  # "under 20"
MAX_STATEMENTS_PER_ORDER = 6
MIN_SHARE_OF_BOUND = 0.6  # the sweep's orders/s as a share of the raw-driver bound's
MAX_ROUND_TRIPS_PER_ORDER = 5.0


@dataclass(frozen=True)
class Row:
    metric: str
    ours: str
    baseline: str
    ratio: str
    target: str
    passed: bool | None  # None: reported beside its baseline, no target

    @property
    def result(self) -> str:
        return {True: "PASS", False: "FAIL", None: "info"}[self.passed]


def speed(*, ours: float, baseline: float) -> tuple[float, str]:
    """How many times faster ours is (below 1: slower), and the words for it."""
    factor = baseline / ours if ours > 0 else float("inf")
    return factor, (f"{factor:.1f}x faster" if factor >= 1 else f"{1 / factor:.2f}x slower")


def fewer(*, ours: float, baseline: float) -> str:
    if ours == 0:
        return "same" if baseline == 0 else f"0 vs {baseline:,.0f}"
    factor = baseline / ours
    if 0.98 <= factor <= 1.02:
        return "same"
    return f"{factor:,.1f}x fewer" if factor >= 1 else f"{1 / factor:.2f}x more"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def _idle_rows(idle: dict[str, Any], *, sweeps: int) -> list[Row]:
    plan, base = idle["plan"], idle["baseline_plan"]
    _, words = speed(ours=idle["median_seconds"], baseline=idle["baseline_median_seconds"])
    timing = idle["query_timing"]
    _, query_words = speed(ours=timing["median_seconds"], baseline=timing["baseline_median_seconds"])
    range_scan = plan["access_type"] == "range" and plan["key"] == INDEX
    ignored = ", ".join(idle["ignored_indexes"])
    return [
        Row(
            "(a) idle sweep: queries",
            str(idle["queries"]),
            f"{idle['baseline_queries']} (indexes ignored)",
            fewer(ours=idle["queries"], baseline=idle["baseline_queries"]),
            f"< {MAX_IDLE_QUERIES}",
            idle["queries"] < MAX_IDLE_QUERIES,
        ),
        Row(
            "(a) idle sweep: queries, cron path (auto_recover: + schema check, lock, heartbeat)",
            f"{idle['cron_path_queries']} ({' + '.join(str(n) for n in idle['cron_path_parts'].values())})",
            "-",
            "-",
            f"< {MAX_IDLE_QUERIES}",
            idle["cron_path_queries"] < MAX_IDLE_QUERIES,
        ),
        Row(
            f"(a) idle sweep: wall time, median of {sweeps}",
            ms(idle["median_seconds"]),
            f"{ms(idle['baseline_median_seconds'])} (indexes ignored)",
            words,
            "-",
            None,
        ),
        Row(
            "(a) candidate query: access (ANALYZE FORMAT=JSON)",
            f"{plan['access_type']} on {plan['key']}",
            f"{base['access_type']} (IGNORE INDEX {ignored})",
            "-",
            "range scan; baseline ALL",
            # A baseline that still finds an index compares two index reads, not the scan.
            range_scan and base["access_type"] == "ALL",
        ),
        Row(
            "(a) candidate query: rows examined (r_rows)",
            f"{plan['r_rows']:,.0f}",
            f"{base['r_rows']:,.0f}",
            fewer(ours=plan["r_rows"], baseline=base["r_rows"]),
            "-",
            None,
        ),
        Row(
            "(a) candidate query: InnoDB pages accessed",
            f"{plan['pages_accessed']:,}",
            f"{base['pages_accessed']:,}",
            fewer(ours=plan["pages_accessed"], baseline=base["pages_accessed"]),
            "-",
            None,
        ),
        Row(
            "(a) candidate query: handler row reads",
            f"{plan['handler_reads_total']:,}",
            f"{base['handler_reads_total']:,}",
            fewer(ours=plan["handler_reads_total"], baseline=base["handler_reads_total"]),
            "-",
            None,
        ),
        Row(
            f"(a) candidate query: time, median of {sweeps}",
            ms(timing["median_seconds"]),
            ms(timing["baseline_median_seconds"]),
            query_words,
            "-",
            None,
        ),
    ]


def _recovery_rows(recovery: dict[str, Any], *, repeats: int) -> list[Row]:
    ours, base, counted = recovery["ours"], recovery["baseline"], recovery["counted_run"]
    stale = recovery["stale"]
    recovered = counted["counts"]["replaced"] or 1
    apart = counted["per_sweep_statements"] + counted["read_again_statements"]
    per_order = (counted["statements"] - apart) / recovered
    per_order_sql = [
        n
        for k, n in counted["statement_kinds"].items()
        if k[0].islower() and not k.startswith(("per sweep", READ_AGAIN))
    ]
    sql_per_order = sum(per_order_sql) / recovered  # COMMIT is upper case
    share = ours["orders_per_second"] / base["orders_per_second"]
    server, base_server = ours["server_per_order"], base["server_per_order"]
    base_statements = recovery["baseline_statements_per_order"]
    trips = recovery["round_trips"]
    return [
        Row(
            f"(b) recover {stale} stale MKT orders: orders/s, median of {repeats}",
            f"{ours['orders_per_second']:,.0f}/s",
            f"{base['orders_per_second']:,.0f}/s (raw MySQLdb)",
            f"{share:.2f}x the bound",
            f">= {MIN_SHARE_OF_BOUND:g}x the bound",
            share >= MIN_SHARE_OF_BOUND,
        ),
        _time_split_row(recovery, repeats=repeats),
        Row(
            "(b) statements per recovered order (CaptureQueries: SQL + COMMIT)",
            f"{per_order:.2f}",
            f"{base_statements:.2f} (SQL + COMMIT)",
            fewer(ours=per_order, baseline=base_statements),
            f"<= {MAX_STATEMENTS_PER_ORDER}",
            per_order <= MAX_STATEMENTS_PER_ORDER,
        ),
        Row(
            "(b) SQL statements per recovered order (no BEGIN/COMMIT)",
            f"{sql_per_order:.2f}",
            f"{base_statements - 1:.2f}",  # raw_baseline commits once per order
            fewer(ours=sql_per_order, baseline=base_statements - 1),
            "-",
            None,
        ),
        Row(
            "(b) statements per recovered order, per-sweep ones and reads again included",
            f"{counted['statements'] / recovered:.3f} ({counted['per_sweep_statements']} per sweep, "
            f"{counted['read_again_statements']} in reads again)",
            "-",
            "-",
            "-",
            None,
        ),
        *_reads_again_rows(recovery),
        *_sender_rows(recovery),
        Row(
            "(b) client CPU per recovered order (process_time, median)",
            f"{ours['client_cpu_ms_per_order']:.2f} ms",
            f"{base['client_cpu_ms_per_order']:.2f} ms",
            fewer(ours=ours["client_cpu_ms_per_order"], baseline=base["client_cpu_ms_per_order"]),
            "-",
            None,
        ),
        Row(
            "(b) server round trips per order (Questions / recovered, incl. COMMIT, SET autocommit)",
            f"{server['Questions']:.2f}",
            f"{base_server['Questions']:.2f}",
            fewer(ours=server["Questions"], baseline=base_server["Questions"]),
            "-",
            None,
        ),
        Row(
            "(b) server round trips per recovered order, per-sweep ones apart (two batch sizes)",
            f"{trips['ours']['per_order']:.2f} (+ {trips['ours']['per_sweep']:.0f} per sweep)",
            f"{trips['baseline']['per_order']:.2f} (+ {trips['baseline']['per_sweep']:.0f} per sweep)",
            fewer(ours=trips["ours"]["per_order"], baseline=trips["baseline"]["per_order"]),
            f"<= {MAX_ROUND_TRIPS_PER_ORDER:g}",
            trips["ours"]["per_order"] <= MAX_ROUND_TRIPS_PER_ORDER + 0.005,  # 2 decimals shown
        ),
        Row(
            "(b) commits per recovered order (Com_commit)",
            f"{server['Com_commit']:.2f}",
            f"{base_server['Com_commit']:.2f}",
            fewer(ours=server["Com_commit"], baseline=base_server["Com_commit"]),
            "-",
            None,
        ),
    ]


def _time_split_row(recovery: dict[str, Any], *, repeats: int) -> Row:
    """The run's time as a cost per recovered order and one per sweep (two batch sizes): a
    sweep now re-places at most ~150 orders (rule 10b), so its per-sweep cost weighs on its
    rate about seven times more than over the 1,000-order batches the bench ran before."""
    ours, base = recovery["time_split"]["ours"], recovery["time_split"]["baseline"]
    return Row(
        f"(b) wall time per recovered order, per-sweep time apart (batches of {recovery['stale']} "
        f"and {recovery['small_batch']}, medians of {repeats})",
        f"{ours['per_order'] * 1000:.2f} ms (+ {ours['per_sweep'] * 1000:.1f} ms per sweep)",
        f"{base['per_order'] * 1000:.2f} ms (+ {base['per_sweep'] * 1000:.1f} ms per sweep)",
        f"{base['per_order'] / ours['per_order']:.2f}x the bound per order",
        "-",
        None,
    )


def _reads_again_rows(recovery: dict[str, Any]) -> list[Row]:
    """The writer's reads again (services.fresh): how many the timed runs made, and what one
    costs, seen in the counted run whose freshness bound the run outlasts."""
    counted, short, stale = recovery["counted_run"], recovery["short_bound_run"], recovery["stale"]
    reads = recovery["ours"]["evidence_reads_again"]
    short_reads = short["evidence_reads_again"]
    each = short["read_again_statements"] / short_reads if short_reads else 0.0
    return [
        Row(
            f"(b) reads again per run (bound {counted['fresh_seconds']:g} s), timed runs: "
            "statements per recovered order",
            f"{', '.join(map(str, reads))}: {statistics.median(reads) * each / stale:.3f}",
            "0 (reads once)",
            "-",
            "-",
            None,
        ),
        Row(
            f"(b) counted run, bound {short['fresh_seconds']:g} s: reads again x statements each "
            "= per recovered order",
            f"{short_reads} x {each:.1f} = {short['read_again_statements'] / stale:.3f}",
            f"{counted['evidence_reads_again']} reads again (bound {counted['fresh_seconds']:g} s)",
            "-",
            "-",
            None,
        ),
        Row(
            f"(b) counted run, bound {short['fresh_seconds']:g} s: orders re-placed (reasons)",
            f"{short['counts']['replaced']} of {stale} ({_reasons_text(short['reasons'])})",
            f"{counted['counts']['replaced']} of {stale} (bound {counted['fresh_seconds']:g} s)",
            "-",
            "all: reading again holds none",
            short["counts"]["replaced"] == stale,
        ),
    ]


def _sender_rows(recovery: dict[str, Any]) -> list[Row]:
    """Rule 10b in (b): what the sender check costs a sweep, that the baseline writes the same
    replacement, and the stand-in for the backend's loop that empties its queue between runs."""
    counted, short = recovery["counted_run"], recovery["short_bound_run"]
    checks = counted["sender_check_statements"]
    per_read = short["sender_check_read_again_statements"] / max(short["evidence_reads_again"], 1)
    sent = recovery["backend_loop_stand_in_sent"]
    written = recovery["replacement_params"]
    params = written["params"]
    return [
        Row(
            "(b) sender check (rule 10b): extra statements per sweep (ib_settings row read with the "
            "gates already)",
            f"{sum(checks.values())} (a replacement still waiting {checks[SENDER_WAITING_KIND]}, the "
            f"loop's queue count {checks[SENDER_QUEUE_KIND]}); + {per_read:g} per read again",
            "0 (no gates)",
            "-",
            "-",
            None,
        ),
        Row(
            "(b) the replacement each side writes (first order of a batch, same run)",
            f"{written['status']}, run_id {written['run_id']}, direct_retry "
            f"{json_text(params.get('direct_retry'))}, mode "
            f"{params.get('mode')}, project_id {params.get('project_id')}, origin_run_id "
            f"{params.get('auto_recovery', {}).get('origin_run_id')}",
            "the same params (ids, times, sweep id aside)",
            "-",
            "-",
            None,
        ),
        Row(
            "(b) before each run: a stand-in for the backend's direct-order loop sends the last "
            "run's replacements (SUBMITTED, direct_retry.pending false)",
            f"{len(sent)} times, {sum(sent):,} rows ({sent_text(sent)}); the loop's queue empty "
            "before every batch",
            "-",
            "-",
            "-",
            None,
        ),
    ]


def sent_text(sent: list[int]) -> str:
    """`140 x 31, 10 x 30, 0 x 1`: how many rows the stand-in sent, how many times."""
    counts = Counter(sent)
    return ", ".join(f"{rows:,} x {times}" for rows, times in sorted(counts.items(), reverse=True))


def json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _reasons_text(reasons: dict[str, int]) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in sorted(reasons.items()))


def _cluster_rows(cluster: dict[str, Any]) -> list[Row]:
    if "skipped" in cluster:
        return [
            Row("(d) recovery on a 3-node Galera cluster", "not measured", cluster["skipped"], "-", "-", None)
        ]
    single, one = cluster["single_orders_per_second"], cluster["cluster_orders_per_second"]
    three = cluster["cluster_three_nodes"]
    counts = " + ".join(str(c["cancelled"]) for c in three["counts"])
    changed = sum(r.get("changed_concurrently", 0) for r in three["reasons"])
    return [
        Row(
            f"(d) recover {cluster['orders']} stale MKT orders, one auto_recover: orders/s, "
            f"median of {cluster['repeats']}",
            f"{one:,.0f}/s (Galera node)",
            f"{single:,.0f}/s (single server)",
            f"{one / single:.2f}x the single server",
            "-",
            None,
        ),
        Row(
            "(d) three auto_recover at once, one per Galera node: together",
            f"{three['orders_per_second']:,.0f}/s; exit codes {','.join(map(str, three['exit_codes']))}; "
            f"cancelled {counts} = {sum(c['cancelled'] for c in three['counts'])}; failed "
            f"{sum(c['failed'] for c in three['counts'])}; changed_concurrently {changed}; "
            f"left NEW {three['left_new']}",
            "-",
            "-",
            "exits 0, no failure, nothing left",
            three["exit_codes"] == [0, 0, 0]
            and sum(c["failed"] for c in three["counts"]) == 0
            and three["left_new"] == 0,
        ),
    ]


def _admin_rows(admin: dict[str, Any], *, gets: int) -> list[Row]:
    rows = []
    for name, page in admin.items():
        median = page["median_seconds"]
        if median["ours"] is None:
            continue
        factor, words = speed(ours=median["ours"], baseline=median["stock"])
        audit = name.startswith("audit")
        rows.append(
            Row(
                f"(c) admin {name}: time, median of {gets} GETs",
                ms(median["ours"]),
                f"{ms(median['stock'])} (stock)",
                words,
                f">= {AUDIT_SPEEDUP:g}x faster" if audit else "-",
                factor >= AUDIT_SPEEDUP if audit else None,
            )
        )
    for changelist in ("orders", "audit"):
        pages = {p["shape"]: p for n, p in admin.items() if n.startswith(changelist)}
        ours = {shape: p["queries"]["ours"] for shape, p in pages.items()}
        rows_shown = [str(p["rows_shown"]["ours"]) for p in pages.values()]
        rows.append(
            Row(
                f"(c) admin {changelist}: queries per page ({' / '.join(pages)}; rows shown)",
                " / ".join(map(str, ours.values())) + f" ({' / '.join(rows_shown)} rows)",
                " / ".join(str(p["queries"]["stock"]) for p in pages.values()) + " (stock)",
                "-",
                "p1 = p2 = one row; filtered <= p1",
                queries_flat(ours, one_row_shown=pages["one row"]["rows_shown"]["ours"]),
            )
        )
    return rows


def queries_flat(queries: dict[str, int], *, one_row_shown: int) -> bool:
    """Queries per page grow neither with the page number (page 2 = page 1) nor with the rows
    shown (one row = a full page 1). A filtered page may need fewer: on ours, a page without a
    NEW order skips the one dry run that says what the sweep would do with them."""
    return (
        one_row_shown == 1
        and queries["page 1"] == queries["page 2"] == queries["one row"]
        and queries["filtered"] <= queries["page 1"]
    )


def rows_build(measured: dict[str, Any], *, sweeps: int, repeats: int, gets: int) -> list[Row]:
    return [
        *_idle_rows(measured["idle"], sweeps=sweeps),
        *_recovery_rows(measured["recovery"], repeats=repeats),
        *_admin_rows(measured["admin"], gets=gets),
        *(_cluster_rows(measured["cluster"]) if "cluster" in measured else []),
    ]


def header_text(facts: dict[str, Any]) -> str:
    rows = facts["rows_before"]
    return "\n".join(
        [
            "",
            f"tradeops benchmark, {facts['date']} on {facts['hostname']} ({facts['cpu_model']}, "
            f"{facts['cpu_count']} CPUs), MariaDB {facts['mariadb_version']} (buffer pool "
            f"{facts['innodb_buffer_pool_size_mib']} MiB, innodb_flush_log_at_trx_commit="
            f"{facts['innodb_flush_log_at_trx_commit']})",
            f"rows: trade_orders {rows['trade_orders']:,}, audit_logs {rows['audit_logs']:,}, "
            f"trade_runs {rows['trade_runs']:,}",
            f"code: {facts['git_commit']} ({facts['git_changed_files']} files changed); load average "
            f"at start {facts['load_average_start']}, at end {facts['load_average_end']}",
            "",
        ]
    )


def table_text(rows: list[Row]) -> str:
    cells = [COLUMNS] + [(r.metric, r.ours, r.baseline, r.ratio, r.target, r.result) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def report_write(path: Path, *, rows: list[Row], facts: dict[str, Any], details: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        **facts,
        "summary": [{**asdict(row), "result": row.result} for row in rows],
        "all_targets_met": all(row.passed is not False for row in rows),
        "details": details,
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
