-- paycore, migration 3: snapshots of aggregate state (PgSnapshots).
-- `{schema}` is replaced by the (validated) schema name before running.
--
-- A cache beside the log, never part of it: one row per stream, the state
-- as of the event at `version`, whose chain hash is `event_hash` (a loader
-- uses the row only if that event in `events` still has that hash). The
-- engine chooses `format` (its state encoding and fold) and `state`. A save
-- is an upsert that replaces a row only with a newer (format, version), so
-- a snapshot never moves backwards. Deleting rows (or the whole table's
-- contents) is always safe: those streams are folded from the start again.
CREATE TABLE {schema}.aggregate_snapshots (
    stream      text        NOT NULL PRIMARY KEY,
    version     bigint      NOT NULL CHECK (version >= 0),
    event_hash  bytea       NOT NULL CHECK (octet_length(event_hash) = 32),
    -- A u32: bigint holds every value.
    format      bigint      NOT NULL CHECK (format BETWEEN 0 AND 4294967295),
    state       bytea       NOT NULL,
    saved_at    timestamptz NOT NULL DEFAULT now()
);
