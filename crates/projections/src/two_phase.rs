//! Queries of two-phase transfers: the pending ones due to expire, for the
//! server's expiry task (`paycore serve`), read from the transfers model's
//! due list (`models/transfers.rs`).

use std::ops::Bound;

use paycore_domain::{ProjectId, Timestamp, TransferId};

use crate::ReadModels;
use crate::db::ModelError;
use crate::models::{Owner, Transfers, time_key, time_of_key};
use crate::rows::Key;

/// A pending transfer whose hold ends at `expires_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DueTransfer {
    pub project: ProjectId,
    pub transfer: TransferId,
    pub expires_at: Timestamp,
}

impl ReadModels {
    /// Pending transfers expiring at or before `until`, earliest first
    /// (then by ID), at most `limit`.
    pub fn pending_transfers_due(
        &self,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<DueTransfer>, ModelError> {
        let mut due = Vec::new();
        if limit == 0 {
            return Ok(due);
        }
        let view = self.view()?;
        let rows = view.rows::<Transfers>()?;
        // Every transfer expiring at `until` itself: the largest suffix of
        // that time.
        let mut last = time_key(until).to_vec();
        last.extend_from_slice(&[u8::MAX; 16]);
        rows.sorted(
            Key::PendingTransfersDue,
            (Bound::Unbounded, Bound::Included(last.as_slice())),
            false,
            |suffix, owner: Owner<TransferId>| {
                due.push(DueTransfer {
                    project: owner.project,
                    transfer: owner.id,
                    expires_at: expiry_of(suffix)?,
                });
                Ok(due.len() < limit)
            },
        )?;
        Ok(due)
    }

    /// When the earliest pending transfer expires, if any is pending.
    pub fn next_pending_transfer_expiry(&self) -> Result<Option<Timestamp>, ModelError> {
        let view = self.view()?;
        let rows = view.rows::<Transfers>()?;
        let mut next = None;
        rows.sorted(
            Key::PendingTransfersDue,
            (Bound::Unbounded, Bound::Unbounded),
            false,
            |suffix, _: Owner<TransferId>| {
                next = Some(expiry_of(suffix)?);
                Ok(false)
            },
        )?;
        Ok(next)
    }
}

fn expiry_of(suffix: &[u8]) -> Result<Timestamp, ModelError> {
    time_of_key(suffix).ok_or_else(|| ModelError::corrupt("a pending transfer's due row", "no time"))
}
