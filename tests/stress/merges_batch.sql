-- One pgbench transaction: a batch merged into both tables (see merges_schema.sql).
SELECT merge_batch();
