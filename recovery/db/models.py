"""The trading backend's tables, mapped column for column (managed = False).

The backend owns these tables: this app never creates, alters or drops them
(routers.TradingRouter refuses to migrate them even if ``managed`` were flipped).
Defaults mirror the DDL in fixtures/trading_schema.mysql.sql; datetimes are naive UTC
in the database and aware UTC in Python (USE_TZ).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from recovery.db.audit import ACTION_TITLES


class TradeSettings(models.Model):
    id = models.AutoField(primary_key=True)
    risk_defaults = models.JSONField(null=True, blank=True)
    execution_data_source = models.CharField(max_length=16, default="ib")
    # Added by deploy/mysql/patches/20260203_trade_settings_auto_recovery.sql.
    auto_recovery = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(null=True, default=timezone.now)
    updated_at = models.DateTimeField(null=True, default=timezone.now)

    class Meta:
        managed = False
        db_table = "trade_settings"
        verbose_name = "trade settings"
        verbose_name_plural = "trade settings"

    def __str__(self) -> str:
        return f"Trade settings #{self.pk}"


class TradeOrder(models.Model):
    id = models.AutoField(primary_key=True)
    run_id = models.IntegerField(null=True, blank=True)
    client_order_id = models.CharField(max_length=64, unique=True)
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=8)
    quantity = models.FloatField()
    order_type = models.CharField(max_length=16, default="MKT")
    limit_price = models.FloatField(null=True, blank=True)
    status = models.CharField(max_length=32, default="NEW")
    filled_quantity = models.FloatField(default=0)
    avg_fill_price = models.FloatField(null=True, blank=True)
    ib_order_id = models.BigIntegerField(null=True, blank=True)
    ib_perm_id = models.BigIntegerField(null=True, blank=True)
    last_status_ts = models.DateTimeField(null=True, blank=True)
    rejected_reason = models.TextField(null=True, blank=True)
    params = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        managed = False
        db_table = "trade_orders"
        verbose_name = "trade order"
        permissions = [("run_auto_recovery", "Can run auto-recovery of stale orders")]

    def __str__(self) -> str:
        quantity = f"{self.quantity:g}" if isinstance(self.quantity, float | int) else self.quantity
        return f"#{self.pk} {self.client_order_id} {self.side} {quantity} {self.symbol} [{self.status}]"


class AuditLog(models.Model):
    id = models.AutoField(primary_key=True)
    actor = models.CharField(max_length=64, default="system")
    action = models.CharField(max_length=64)
    resource_type = models.CharField(max_length=64)
    resource_id = models.IntegerField(null=True, blank=True)
    detail = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        managed = False
        db_table = "audit_logs"
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"

    def __str__(self) -> str:
        """ "Sweep by cron, 2026-12-07 14:05:30 UTC", "Cancel of order #27 by admin:ops, ..." """
        title = ACTION_TITLES.get(self.action)
        if title is None or ("{id}" in title and self.resource_id is None):
            resource = self.resource_type + (f" #{self.resource_id}" if self.resource_id is not None else "")
            title = f"{self.action} ({resource})"
        when = f", {self.created_at:%Y-%m-%d %H:%M:%S} UTC" if self.created_at else ""
        return f"{title.format(id=self.resource_id)} by {self.actor}{when}"


class TradeRun(models.Model):
    """Read only: the backend's strategy runs (project and mode of an order)."""

    id = models.AutoField(primary_key=True)
    project_id = models.IntegerField()
    decision_snapshot_id = models.IntegerField(null=True, blank=True)
    mode = models.CharField(max_length=16, default="paper")
    status = models.CharField(max_length=32, default="queued")
    params = models.JSONField(null=True, blank=True)
    message = models.TextField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        managed = False
        db_table = "trade_runs"
        verbose_name = "trade run"

    def __str__(self) -> str:
        return f"Run #{self.pk} project {self.project_id} ({self.mode}, {self.status})"


class TradeGuardState(models.Model):
    """Read only: the backend's risk guard, one row per project, trade date and mode."""

    id = models.AutoField(primary_key=True)
    project_id = models.IntegerField()
    trade_date = models.DateField()
    mode = models.CharField(max_length=16, default="paper")
    status = models.CharField(max_length=16, default="active")
    halt_reason = models.JSONField(null=True, blank=True)
    risk_triggers = models.IntegerField(default=0)
    order_failures = models.IntegerField(default=0)
    market_data_errors = models.IntegerField(default=0)
    day_start_equity = models.FloatField(null=True, blank=True)
    equity_peak = models.FloatField(null=True, blank=True)
    last_equity = models.FloatField(null=True, blank=True)
    last_valuation_ts = models.DateTimeField(null=True, blank=True)
    valuation_source = models.CharField(max_length=32, null=True, blank=True)
    cooldown_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        managed = False
        db_table = "trade_guard_state"
        verbose_name = "trade guard state"
        unique_together = [("project_id", "trade_date", "mode")]

    def __str__(self) -> str:
        return f"Guard project {self.project_id} {self.trade_date} {self.mode}: {self.status}"


class IbSettings(models.Model):
    """Read only: the IB gateway connection; the row with the lowest id is in force."""

    id = models.AutoField(primary_key=True)
    host = models.CharField(max_length=128, default="127.0.0.1")
    port = models.IntegerField(default=7497)
    workstation_type = models.CharField(max_length=16, default="tws")
    client_id = models.IntegerField(default=1)
    account_id = models.CharField(max_length=64, null=True, blank=True)
    mode = models.CharField(max_length=16, default="paper")
    market_data_type = models.CharField(max_length=16, default="realtime")
    api_mode = models.CharField(max_length=16, default="ib")
    use_regulatory_snapshot = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        managed = False
        db_table = "ib_settings"
        verbose_name = "IB settings"
        verbose_name_plural = "IB settings"

    def __str__(self) -> str:
        return f"IB {self.host}:{self.port} ({self.api_mode})"


class SweepRun(models.Model):
    """Heartbeat: one row per run of the sweep (command or admin), in this app's own database.

    Managed (unlike the trading tables): migrate creates it on DATABASE_URL.
    """

    class Outcome(models.TextChoices):
        """How a run ended; the label is the one place its words live (status page, health)."""

        OK = "ok", "ok"
        BLOCKED = "blocked", "blocked: a sweep-wide gate kept it from acting"
        BREAKER_OPEN = "breaker_open", "circuit breaker open: nothing changed"
        OVER_BUDGET = "over_budget", "over its time budget: orders left for the next run"
        FAILED = "failed", "failed: an order could not be written"
        CONNECTION_LOST = "connection_lost", "lost the database mid-sweep"
        COULD_NOT_RUN = "could_not_run", "could not run"
        LOCK_HELD = "lock_held", "another run held the lock"

    started_at = models.DateTimeField(db_index=True)
    ended_at = models.DateTimeField()
    duration_seconds = models.FloatField()
    actor = models.CharField(max_length=64)
    host = models.CharField(max_length=255)
    sweep_id = models.CharField(max_length=32, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    scanned = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    replaced = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    reasons = models.JSONField(default=dict, blank=True)
    message = models.TextField(blank=True)
    # blocked: the gate that kept the run from acting (a reason code: clock_skew,
    # ib_unreachable, broker_evidence_unavailable), so a change of gate is told. A default
    # in the database too: a host still on the previous release writes rows without it.
    blocked_by = models.CharField(max_length=32, blank=True, default="", db_default="")

    class Meta:
        db_table = "tradeops_sweep_runs"
        verbose_name = "sweep run"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.started_at:%Y-%m-%d %H:%M:%S} {self.actor}@{self.host}: {self.outcome}"


class OrderDecision(models.Model):
    """One order's decision history: each distinct (decision, reason) the sweeps gave it.

    In this app's own database (DATABASE_URL), like SweepRun: audit_logs is the backend's
    and records only what changed an order, so an order the sweeps skip (halted, in
    flight, seen by the broker) would leave no trace there. One row per distinct pair,
    with when and by which sweep it was first and last given, and how many sweeps gave it
    (db/history.py writes it; a run prunes rows past RECOVERY_HISTORY_RETENTION_DAYS).
    """

    order_id = models.IntegerField()
    client_order_id = models.CharField(max_length=64)
    decision = models.CharField(max_length=16)  # replace | cancel | skip
    reason = models.CharField(max_length=32)  # a sweep.decisions.Reason code
    detail = models.CharField(max_length=500, blank=True)  # the latest sweep's, cut
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()
    first_sweep_id = models.CharField(max_length=32)
    last_sweep_id = models.CharField(max_length=32)
    first_audit_id = models.IntegerField(null=True, blank=True)  # the sweep's audit_logs row, if any
    last_audit_id = models.IntegerField(null=True, blank=True)
    replacement_id = models.IntegerField(null=True, blank=True)
    times = models.PositiveIntegerField(default=1)  # sweeps that gave this pair
    last_actor = models.CharField(max_length=64)

    class Meta:
        db_table = "tradeops_order_decisions"
        verbose_name = "order decision"
        ordering = ["-last_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["order_id", "decision", "reason"], name="uq_order_decision_pair"),
        ]
        indexes = [
            # The order's page: its rows, newest first.
            models.Index(fields=["order_id", "last_at"], name="ix_order_decision_order"),
            # The pruning, oldest first.
            models.Index(fields=["last_at"], name="ix_order_decision_last_at"),
            # A sweep's orders (the admin's result page, the sweep's audit row).
            models.Index(fields=["last_sweep_id"], name="ix_order_decision_sweep"),
        ]

    def __str__(self) -> str:
        return f"order {self.order_id}: {self.decision} ({self.reason}) ×{self.times}"
