//! The error of every [`Blobs`](crate::Blobs) backend, and the key rules all
//! of them enforce.

use std::io;

/// Longest key (a resource ID or a hex digest fits with room to spare).
pub const MAX_KEY_LEN: usize = 128;
/// Longest namespace.
pub const MAX_NAMESPACE_LEN: usize = 32;

/// Why a side-storage operation failed.
///
/// Messages name the namespace and key of the entry (resource IDs and
/// digests, never secrets) but never its content.
#[derive(Debug, thiserror::Error)]
pub enum SideStoreError {
    /// The namespace or key breaks the rules of [`check_key`]; nothing was
    /// read or written. The message does not echo the input (it may come
    /// from a client).
    #[error("invalid side-storage {what}: {reason}")]
    InvalidKey {
        /// `"namespace"` or `"key"`.
        what: &'static str,
        reason: &'static str,
    },

    /// The key already holds different content: entries are write-once, and
    /// the first write stays.
    #[error("side-storage entry {namespace}/{key} already holds different content")]
    Conflict { namespace: String, key: String },

    /// A file-system operation failed ([`DirBlobs`](crate::DirBlobs)).
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    /// The storage cannot be reached (database down, timeout, a background
    /// task that died); the operation may be retried later. For a put, the
    /// entry was written whole or not at all.
    #[error("side storage unavailable: {0}")]
    Unavailable(String),

    /// A stored entry does not have the shape it must have (for example a
    /// file whose bytes no longer match its digest).
    #[error("corrupt side-storage entry {namespace}/{key}: {reason}")]
    Corrupt {
        namespace: String,
        key: String,
        reason: String,
    },
}

impl SideStoreError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn conflict(namespace: &str, key: &str) -> Self {
        Self::Conflict {
            namespace: namespace.to_owned(),
            key: key.to_owned(),
        }
    }
}

/// Checks a namespace (1–[`MAX_NAMESPACE_LEN`] characters `a-z`) and a key
/// (1–[`MAX_KEY_LEN`] characters `A-Z a-z 0-9 _ . -`, not starting with
/// `.`). Every backend calls it first, so the rules are the same everywhere
/// and a key is always safe to use as a file name.
pub fn check_key(namespace: &str, key: &str) -> Result<(), SideStoreError> {
    check_namespace(namespace)?;
    let invalid = |reason| Err(SideStoreError::InvalidKey { what: "key", reason });
    if key.is_empty() {
        return invalid("must not be empty");
    }
    if key.len() > MAX_KEY_LEN {
        return invalid("must be at most 128 characters");
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return invalid("may contain only A-Z, a-z, 0-9, '_', '.' and '-'");
    }
    if key.starts_with('.') {
        return invalid("must not start with '.'");
    }
    Ok(())
}

fn check_namespace(namespace: &str) -> Result<(), SideStoreError> {
    let invalid = |reason| {
        Err(SideStoreError::InvalidKey {
            what: "namespace",
            reason,
        })
    };
    if namespace.is_empty() || namespace.len() > MAX_NAMESPACE_LEN {
        return invalid("must have 1 to 32 characters");
    }
    if !namespace.bytes().all(|b| b.is_ascii_lowercase()) {
        return invalid("may contain only a-z");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_keys() {
        for key in ["a", "card_0123", "prj_01J.X-y", &"k".repeat(MAX_KEY_LEN), "a..b"] {
            assert!(check_key("cards", key).is_ok(), "{key}");
        }
    }

    #[test]
    fn bad_keys() {
        let long = "k".repeat(MAX_KEY_LEN + 1);
        for key in [
            "",
            ".",
            "..",
            ".tmp",
            "a/b",
            "../x",
            "a b",
            "é",
            "a\0b",
            long.as_str(),
        ] {
            assert!(
                matches!(
                    check_key("cards", key),
                    Err(SideStoreError::InvalidKey { what: "key", .. })
                ),
                "{key:?}"
            );
        }
    }

    #[test]
    fn bad_namespaces() {
        let long = "n".repeat(MAX_NAMESPACE_LEN + 1);
        for namespace in ["", "Cards", "card1", "ca-rds", "..", long.as_str()] {
            assert!(
                matches!(
                    check_key(namespace, "k"),
                    Err(SideStoreError::InvalidKey {
                        what: "namespace",
                        ..
                    })
                ),
                "{namespace:?}"
            );
        }
    }

    #[test]
    fn messages_do_not_echo_the_input() {
        let Err(e) = check_key("cards", "4242 4242 4242 4242") else {
            panic!("a key with spaces must be refused");
        };
        assert!(!e.to_string().contains("4242"), "{e}");
    }
}
