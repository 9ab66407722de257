//! `transfers`: every transfer between accounts, and the pending ones by
//! the time they expire.
//!
//! - One list per project, in creation order, each row the transfer's
//!   state (the domain's own fold), status included.
//! - The due list: a sorted row per pending transfer under
//!   [`Key::PendingTransfersDue`], keyed by `expires_at` then the
//!   transfer's ID, so the server's expiry task reads the transfers due at
//!   any time from the front, without scanning. The row is put when a
//!   pending transfer is created and taken out when it is posted, voided or
//!   expired.

use paycore_domain::aggregate::Transfer;
use paycore_domain::events::{PendingTransferCreated, TransferCreated};
use paycore_domain::{Aggregate, Event, ProjectId, Timestamp, TransferId};

use super::{Applied, Owner, Projection, evolve, time_key, unreachable_state};
use crate::db::ModelError;
use crate::rows::{Key, RowsMut};

pub(crate) struct Transfers;

impl Projection for Transfers {
    const NAME: &'static str = "transfers";
    /// 5: rows hold the transfer's `status` (two-phase transfers).
    /// 6: the due list of pending transfers by `expires_at`.
    const VERSION: u32 = 7;
    /// 7: new IDs stored as runs (`id_runs.rs`); rows of 6 read as they are.
    const CONTINUES: Option<u32> = Some(6);
    const DESCRIPTION: &'static str = "transfers between accounts, pending ones by expiry";

    fn apply(rows: &mut RowsMut<'_>, applied: &Applied<'_>) -> Result<(), ModelError> {
        let event = applied.event;
        match event {
            Event::TransferCreated(TransferCreated { project_id, id, .. })
            | Event::PendingTransferCreated(PendingTransferCreated { project_id, id, .. }) => {
                if let Some(Aggregate::Transfer(transfer)) = evolve(None, event) {
                    let created = rows.insert(Key::Transfers(*project_id), Key::Transfer(*id), &transfer)?;
                    // A log repeating a creation leaves the first one's row.
                    if created.is_some() {
                        mark_due(rows, *project_id, *id, None, transfer.pending_until())?;
                    }
                }
            }
            // A pending transfer's ending changes its status.
            Event::TransferMetaUpdated(_)
            | Event::PendingTransferPosted(_)
            | Event::PendingTransferVoided(_)
            | Event::PendingTransferExpired(_) => {
                if let Ok(id) = applied.stream_id.parse::<TransferId>() {
                    change(rows, id, event)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Folds `event` into transfer `id`'s row, and moves its due row if its
/// pending status changed.
fn change(rows: &mut RowsMut<'_>, id: TransferId, event: &Event) -> Result<(), ModelError> {
    let mut pending = None;
    rows.update(Key::Transfer(id), |transfer: Transfer| {
        let (project, was) = (transfer.project_id, transfer.pending_until());
        let transfer = match Aggregate::Transfer(transfer).evolve(event) {
            Aggregate::Transfer(transfer) => transfer,
            _ => unreachable_state(),
        };
        pending = Some((project, was, transfer.pending_until()));
        transfer
    })?;
    match pending {
        Some((project, was, is)) => mark_due(rows, project, id, was, is),
        None => Ok(()),
    }
}

/// Moves transfer `id`'s due row from `was` (pending until then before the
/// event) to `is` (after it); `None` is not pending.
fn mark_due(
    rows: &mut RowsMut<'_>,
    project: ProjectId,
    id: TransferId,
    was: Option<Timestamp>,
    is: Option<Timestamp>,
) -> Result<(), ModelError> {
    if was == is {
        return Ok(());
    }
    if let Some(at) = was {
        rows.remove_sorted(Key::PendingTransfersDue, &due_suffix(at, id));
    }
    if let Some(at) = is {
        rows.put_sorted(
            Key::PendingTransfersDue,
            &due_suffix(at, id),
            &Owner { project, id },
        )?;
    }
    Ok(())
}

/// A due row's key suffix: the expiry (so rows sort by it), then the ID
/// (so transfers expiring at one time each have their own row).
fn due_suffix(expires_at: Timestamp, id: TransferId) -> Vec<u8> {
    let mut suffix = time_key(expires_at).to_vec();
    suffix.extend_from_slice(id.uuid().as_bytes());
    suffix
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use paycore_domain::transfer::{PendingTerms, TransferCommand, TransferStatus};
    use paycore_domain::{Currency, Meta, Money, Timestamp, TransactionId, TransferId};
    use paycore_store::{EventStore, MemoryStore};
    use uuid::Uuid;

    use crate::test_support::{FUNDING, ledger};
    use crate::{ModelStorage, ReadModels};

    fn eur(amount: i64) -> Money {
        Money::new(amount, Currency::EUR)
    }

    fn tx() -> TransactionId {
        TransactionId::from_uuid(Uuid::now_v7())
    }

    /// A pending transfer shows its status and the accounts their pending
    /// totals, through a partial post.
    #[tokio::test]
    async fn pending_transfers_show_their_status_and_the_holds() {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let read = ReadModels::start(store.clone(), ModelStorage::in_memory())
            .await
            .unwrap();
        let mut ledger = ledger(store, 0).await;
        let id = TransferId::from_uuid(Uuid::now_v7());
        let expires_at = Timestamp::from_micros(1_700_000_000_000_000 + 3_600_000_000);
        let create = TransferCommand::CreateTransfer {
            id,
            source_account_id: ledger.a,
            destination_account_id: ledger.b,
            value: eur(300),
            meta: Meta::default(),
            source_transaction_id: tx(),
            destination_transaction_id: tx(),
            pending: Some(PendingTerms { expires_at }),
        };
        let last = ledger.execute(create.into()).await;
        read.wait_for(last).await;
        let transfer = read.transfer(ledger.project, id).unwrap().unwrap();
        assert_eq!(transfer.status, TransferStatus::Pending { expires_at });
        let a = read.account(ledger.project, ledger.a).unwrap().unwrap();
        assert_eq!(
            (a.balance, a.pending_debits, a.available()),
            (eur(FUNDING), eur(300), eur(FUNDING - 300))
        );
        let b = read.account(ledger.project, ledger.b).unwrap().unwrap();
        assert_eq!((b.balance, b.pending_credits), (eur(0), eur(300)));

        let post = TransferCommand::PostPendingTransfer {
            id,
            value: Some(eur(120)),
            source_transaction_id: tx(),
            destination_transaction_id: tx(),
        };
        let last = ledger.execute(post.into()).await;
        read.wait_for(last).await;
        let transfer = read.transfer(ledger.project, id).unwrap().unwrap();
        assert!(matches!(transfer.status, TransferStatus::Posted { value, .. } if value == eur(120)));
        let a = read.account(ledger.project, ledger.a).unwrap().unwrap();
        assert_eq!((a.balance, a.pending_debits), (eur(FUNDING - 120), eur(0)));
        let b = read.account(ledger.project, ledger.b).unwrap().unwrap();
        assert_eq!((b.balance, b.pending_credits), (eur(120), eur(0)));
    }
}
