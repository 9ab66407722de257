//! paycore engine
