mod common;

paycore_store::conformance_tests!(common::fresh_store());
