//! Accounts at other banks and their transactions
//! (`proto/paycore/v1/aggregation.proto`): today the conversion their events
//! are delivered with; the service comes with the accounts' gRPC API.

pub mod convert;
