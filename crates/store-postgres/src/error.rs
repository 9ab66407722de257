//! Mapping PostgreSQL client errors to [`StoreError`].

use paycore_store::StoreError;
use tokio_postgres::error::SqlState;

/// A readable description: the server's message, SQLSTATE and detail for a
/// database error, the whole source chain otherwise.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str("; ");
            text.push_str(detail);
        }
        return text;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// Whether the connection the error came from can no longer be trusted:
/// closed, an I/O failure, a client-side failure, or a server error that ends
/// the session. Such connections are discarded, never returned to the pool.
pub fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        None => true,
        Some(code) => {
            code.code().starts_with("08")
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::TOO_MANY_CONNECTIONS
        }
    }
}

/// Whether `e` is the unique violation of (stream, version).
pub(crate) fn is_version_conflict(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some("events_stream_version_key")
    })
}

pub(crate) fn unavailable(context: &str, e: &tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(format!("{context}: {}", describe(e)))
}
