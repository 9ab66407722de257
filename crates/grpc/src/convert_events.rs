//! The event subscription conversion under its former path (the fuzz
//! targets use it); it lives beside its service, in
//! `services/events/convert.rs`.

pub use crate::services::events::convert::*;
