-- paycore, migration 2: side storage (paycore-sidestore's PgBlobs).
-- `{schema}` is replaced by the (validated) schema name before running.
--
-- Data kept beside the event log, never in it: sealed (encrypted) card
-- numbers (namespace 'cards') and uploaded file contents (namespace 'files',
-- keyed by their SHA-256). An entry is written once (INSERT ... ON CONFLICT
-- DO NOTHING) and may be deleted (a forgotten card); it is never updated.
CREATE TABLE {schema}.side_blobs (
    namespace   text        NOT NULL,
    key         text        NOT NULL,
    content     bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, key)
);
