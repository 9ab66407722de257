-- paycore, migration 6: rebuilds of the read-model tables, online.
-- `{schema}` is replaced by the (validated) schema name before running.
--
-- A rebuild writes a projection again from the log into tables of its own
-- beside the served ones (`rebuild_<table>`, with the same columns and
-- indexes) while the served tables keep following the log; once the
-- rebuild reaches the served checkpoint, the writer replaces the served
-- tables with them in one transaction (renamed into place), so a reader
-- sees the old rows or the new ones, never a table filling up. One row per
-- projection being rebuilt; the row goes at the swap. A rebuild survives
-- the writer: the next one continues from `next_position`.
CREATE TABLE {schema}.read_model_rebuilds (
    projection    text        NOT NULL PRIMARY KEY,
    -- The version being written (the served rows may be of an older one).
    version       integer     NOT NULL,
    -- Events below this position are in the `rebuild_` tables.
    next_position bigint      NOT NULL,
    -- The server that last moved `next_position`; NULL until one starts.
    writer        text,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
