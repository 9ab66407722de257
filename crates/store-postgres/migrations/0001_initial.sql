-- paycore event store, migration 1: the log, the stream heads, the log head.
-- `{schema}` is replaced by the (validated) schema name before running.

-- Every event ever appended, in global order. Never updated or deleted.
CREATE TABLE {schema}.events (
    position            bigint  NOT NULL PRIMARY KEY CHECK (position >= 0),
    stream              text    NOT NULL,
    version             bigint  NOT NULL CHECK (version >= 0),
    event_type          text    NOT NULL,
    -- A u16 in the API: integer, because smallint stops at 32767.
    schema_version      integer NOT NULL CHECK (schema_version BETWEEN 0 AND 65535),
    recorded_at_micros  bigint  NOT NULL,
    -- The hash chain's canonical metadata encoding (paycore_store::chain).
    metadata            bytea   NOT NULL,
    payload             bytea   NOT NULL,
    -- SHA-256(previous event's hash || canonical(this event)).
    hash                bytea   NOT NULL CHECK (octet_length(hash) = 32),
    CONSTRAINT events_stream_version_key UNIQUE (stream, version)
);

-- The last version (and its position) of every stream: expectations are
-- checked against this table, not by scanning events.
CREATE TABLE {schema}.stream_heads (
    stream    text   NOT NULL PRIMARY KEY,
    version   bigint NOT NULL CHECK (version >= 0),
    position  bigint NOT NULL CHECK (position >= 0)
);

-- Exactly one row. Every append locks it (SELECT ... FOR UPDATE) first: that
-- lock serializes appends, so positions become visible in commit order.
CREATE TABLE {schema}.log_head (
    singleton                boolean NOT NULL PRIMARY KEY DEFAULT true CHECK (singleton),
    next_position            bigint  NOT NULL CHECK (next_position >= 0),
    last_hash                bytea   NOT NULL CHECK (octet_length(last_hash) = 32),
    last_recorded_at_micros  bigint  NOT NULL
);

INSERT INTO {schema}.log_head (singleton, next_position, last_hash, last_recorded_at_micros)
VALUES (true, 0, decode(repeat('00', 32), 'hex'), 0);

-- Defence in depth for "the log is append-only" (the hash chain is the proof).
CREATE FUNCTION {schema}.refuse_event_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'paycore events are append-only: % on %.events refused', TG_OP, TG_TABLE_SCHEMA;
END
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON {schema}.events
    FOR EACH ROW EXECUTE FUNCTION {schema}.refuse_event_change();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON {schema}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_event_change();
