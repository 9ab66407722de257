//! paycore projections
