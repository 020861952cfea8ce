-- Patch:    20260203_trade_settings_auto_recovery
-- Change:   adds trade_settings.auto_recovery JSON NULL AFTER execution_data_source,
--           the per-deployment settings of the stale-order auto-recovery (tradeops).
-- Impact:   one metadata change on a table of a handful of rows; existing rows get
--           NULL, which tradeops reads as "all defaults". No code of the backend reads
--           or writes the column unless it chooses to. Safe to run twice: the second
--           run changes nothing (MariaDB 10.11 and MySQL 8.0 alike; MySQL 8.0 has no
--           ADD COLUMN IF NOT EXISTS, so the check is done through information_schema).
--           Recorded in schema_migrations when that table exists.
-- Rollback: ALTER TABLE trade_settings DROP COLUMN auto_recovery;
--           DELETE FROM schema_migrations WHERE version = '20260203_trade_settings_auto_recovery';
--           (tradeops then refuses to run: manage.py check reports the missing column.)
-- Apply:    mysql <database> < deploy/mysql/patches/20260203_trade_settings_auto_recovery.sql

SET @tradeops_patch_version := '20260203_trade_settings_auto_recovery';
SET @tradeops_patch_description := 'trade_settings.auto_recovery JSON NULL for tradeops auto-recovery';

SET @tradeops_column_exists := (
  SELECT COUNT(*) FROM information_schema.COLUMNS
  WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'trade_settings' AND COLUMN_NAME = 'auto_recovery'
);
SET @tradeops_ddl := IF(
  @tradeops_column_exists = 0,
  'ALTER TABLE trade_settings ADD COLUMN auto_recovery JSON NULL AFTER execution_data_source',
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
