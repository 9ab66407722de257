//! The conformance suite against the in-memory backend.

paycore_store::conformance_tests!(async { std::sync::Arc::new(paycore_store::MemoryStore::new()) });
