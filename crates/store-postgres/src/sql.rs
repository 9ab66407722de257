//! Every statement the store runs, with the schema spliced in (schema names
//! are validated to `[a-z_][a-z0-9_]*`, so no quoting is needed).

/// The columns of an event row, in the order [`crate::store`] decodes them.
const EVENT_COLUMNS: &str = "position, stream, version, event_type, schema_version, recorded_at_micros, metadata, payload, hash, last_in_commit";

#[derive(Debug)]
pub(crate) struct Sql {
    /// The NOTIFY channel of this schema.
    pub channel: String,
    pub lock_head: String,
    pub stream_heads: String,
    pub insert_events: String,
    pub upsert_heads: String,
    pub update_head_and_notify: String,
    pub head_position: String,
    pub read_forward: String,
    pub read_backward: String,
    pub read_all: String,
    pub stream_version: String,
}

impl Sql {
    pub(crate) fn new(schema: &str) -> Self {
        let channel = channel(schema);
        Self {
            // The append lock. clock_timestamp() is read after the lock is
            // granted, and recorded_at is max(last, now) anyway.
            lock_head: format!(
                "SELECT next_position, last_hash, last_recorded_at_micros, \
                 (extract(epoch FROM clock_timestamp()) * 1000000)::bigint \
                 FROM {schema}.log_head FOR UPDATE"
            ),
            stream_heads: format!(
                "SELECT stream, version FROM {schema}.stream_heads WHERE stream = ANY($1::text[])"
            ),
            insert_events: format!(
                "INSERT INTO {schema}.events ({EVENT_COLUMNS}) \
                 SELECT u.position, u.stream, u.version, u.event_type, u.schema_version, $6::bigint, \
                        u.metadata, u.payload, u.hash, u.last_in_commit \
                 FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::integer[], \
                             $7::bytea[], $8::bytea[], $9::bytea[], $10::boolean[]) \
                      AS u(position, stream, version, event_type, schema_version, metadata, payload, hash, \
                           last_in_commit)"
            ),
            upsert_heads: format!(
                "INSERT INTO {schema}.stream_heads (stream, version, position) \
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[]) \
                 ON CONFLICT (stream) DO UPDATE SET version = EXCLUDED.version, position = EXCLUDED.position"
            ),
            update_head_and_notify: format!(
                "WITH head AS (\
                   UPDATE {schema}.log_head \
                   SET next_position = $1, last_hash = $2, last_recorded_at_micros = $3 \
                   RETURNING next_position) \
                 SELECT pg_notify('{channel}', next_position::text) FROM head"
            ),
            head_position: format!("SELECT next_position FROM {schema}.log_head"),
            read_forward: format!(
                "SELECT {EVENT_COLUMNS} FROM {schema}.events \
                 WHERE stream = $1 AND version >= $2 ORDER BY version LIMIT $3"
            ),
            read_backward: format!(
                "SELECT {EVENT_COLUMNS} FROM {schema}.events \
                 WHERE stream = $1 AND version <= $2 ORDER BY version DESC LIMIT $3"
            ),
            read_all: format!(
                "SELECT {EVENT_COLUMNS} FROM {schema}.events \
                 WHERE position >= $1 ORDER BY position LIMIT $2"
            ),
            stream_version: format!("SELECT version FROM {schema}.stream_heads WHERE stream = $1"),
            channel,
        }
    }
}

/// The NOTIFY channel of a schema: `<schema>_events` (≤ 55 bytes, within
/// PostgreSQL's 63-byte identifier limit).
pub(crate) fn channel(schema: &str) -> String {
    format!("{schema}_events")
}
