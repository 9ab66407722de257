//! Open banking connections (`proto/paycore/v1/aggregation.proto`): today
//! the conversion their events are delivered with; the service comes with
//! the connections' gRPC API.

pub mod convert;
