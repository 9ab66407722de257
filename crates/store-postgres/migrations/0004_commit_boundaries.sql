-- paycore, migration 4: where each append ends.
-- `{schema}` is replaced by the (validated) schema name before running.
--
-- The events of one append are one atomic change (a transfer's debit and
-- credit), and readers of `$all` that must never show half of one (the
-- read models) stop their batches after an event that ends its append.
-- Rows written before this migration are each marked as an end: for them
-- the boundaries are unknown, and readers behave as before (batches may
-- end inside those old appends, as they could when they were written).
-- Adding a column with a constant default rewrites nothing.
ALTER TABLE {schema}.events
    ADD COLUMN last_in_commit boolean NOT NULL DEFAULT true;
