//! Open banking imports (`proto/paycore/v1/aggregation.proto`): today the
//! conversion their events are delivered with; the service comes with the
//! imports' gRPC API.

pub mod convert;
