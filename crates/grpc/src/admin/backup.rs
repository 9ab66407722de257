//! The point a backup copies the log up to, for `paycore backup`: asked of
//! the running server through the admin socket, or of the log the CLI
//! opened itself, by the same function.

use paycore_store::{ChainHash, EventStore, GENESIS_HASH, Position, StoreError};

/// A durable position of the log and the chain hash that ends there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupPoint {
    /// Events durable: positions `0 .. position`. The store's committed
    /// position only moves when an append group is on disk, so it is always
    /// where an append ends.
    pub position: Position,
    /// Chain hash of `position - 1` ([`GENESIS_HASH`] when empty).
    pub last_hash: ChainHash,
}

/// The store's committed position now, and its last hash.
pub async fn backup_point(store: &dyn EventStore) -> Result<BackupPoint, StoreError> {
    let position = *store.committed().borrow();
    let Some(last) = position.checked_sub(1) else {
        return Ok(BackupPoint {
            position,
            last_hash: GENESIS_HASH,
        });
    };
    let event = store
        .read_all(last, 1)
        .await?
        .into_iter()
        .next()
        .filter(|event| event.position == last)
        .ok_or_else(|| {
            StoreError::Unavailable(format!("the committed event at position {last} cannot be read"))
        })?;
    Ok(BackupPoint {
        position,
        last_hash: event.hash,
    })
}
