#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing

//! The transfers model's due list: pending transfers by the time they
//! expire, earliest first, leaving the list when they end however they
//! end, and read back from the model store after a restart.

use std::sync::Arc;

use paycore_domain::transfer::{PendingTerms, TransferCommand};
use paycore_domain::{Command, CommandEnvelope, Currency, Meta, Money, Timestamp, TransactionId, TransferId};
use paycore_projections::{DueTransfer, ModelStorage, ReadModels};
use paycore_store::{EventStore, MemoryStore, Position};
use uuid::Uuid;

#[path = "../src/test_support.rs"]
mod test_support;

use test_support::{Ledger, ledger};

/// The time the test ledger's commands run at.
const NOW: i64 = 1_700_000_000_000_000;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_micros(NOW + seconds * 1_000_000)
}

fn tx() -> TransactionId {
    TransactionId::from_uuid(Uuid::now_v7())
}

/// Runs `command` at `now` (the ledger's own commands run at [`NOW`]).
async fn execute_at(ledger: &mut Ledger, now: Timestamp, command: Command) -> Position {
    let envelope = CommandEnvelope {
        project_id: ledger.project,
        now,
        idempotency: None,
        command,
    };
    ledger.last = ledger.engine.execute(envelope).await.unwrap().position;
    ledger.last
}

/// Creates a transfer of 10 from `a` to `b`, pending until `expires_at`
/// (a plain one without).
async fn create(ledger: &mut Ledger, expires_at: Option<Timestamp>) -> TransferId {
    let id = TransferId::from_uuid(Uuid::now_v7());
    let command = TransferCommand::CreateTransfer {
        id,
        source_account_id: ledger.a,
        destination_account_id: ledger.b,
        value: Money::new(10, Currency::EUR),
        meta: Meta::default(),
        source_transaction_id: tx(),
        destination_transaction_id: tx(),
        pending: expires_at.map(|expires_at| PendingTerms { expires_at }),
    };
    ledger.execute(command.into()).await;
    id
}

fn due(ledger: &Ledger, transfer: TransferId, expires_at: Timestamp) -> DueTransfer {
    DueTransfer {
        project: ledger.project,
        transfer,
        expires_at,
    }
}

#[tokio::test]
async fn pending_transfers_are_due_earliest_first_until_they_end() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let read = ReadModels::start(store.clone(), ModelStorage::in_memory())
        .await
        .unwrap();
    let mut ledger = ledger(store, 0).await;
    let late = create(&mut ledger, Some(at(30))).await;
    let early = create(&mut ledger, Some(at(10))).await;
    let middle = create(&mut ledger, Some(at(20))).await;
    // A plain transfer is never due.
    create(&mut ledger, None).await;
    let at_middle_too = create(&mut ledger, Some(at(20))).await;
    ledger.execute(meta_update(late).into()).await;
    read.wait_for(ledger.last).await;

    // Earliest first; two at one time by ID; up to `until` inclusive.
    let (first, second) = if middle < at_middle_too {
        (middle, at_middle_too)
    } else {
        (at_middle_too, middle)
    };
    assert_eq!(
        read.pending_transfers_due(at(20), 10).unwrap(),
        [
            due(&ledger, early, at(10)),
            due(&ledger, first, at(20)),
            due(&ledger, second, at(20)),
        ]
    );
    assert_eq!(
        read.pending_transfers_due(at(100), 2).unwrap(),
        [due(&ledger, early, at(10)), due(&ledger, first, at(20))]
    );
    assert!(read.pending_transfers_due(at(9), 10).unwrap().is_empty());
    assert!(read.pending_transfers_due(at(100), 0).unwrap().is_empty());
    assert_eq!(read.next_pending_transfer_expiry().unwrap(), Some(at(10)));

    // Posted, voided, expired: each leaves the list.
    let post = TransferCommand::PostPendingTransfer {
        id: early,
        value: None,
        source_transaction_id: tx(),
        destination_transaction_id: tx(),
    };
    ledger.execute(post.into()).await;
    ledger
        .execute(TransferCommand::VoidPendingTransfer { id: first }.into())
        .await;
    let expire = TransferCommand::ExpirePendingTransfer { id: second };
    execute_at(&mut ledger, at(20), expire.into()).await;
    read.wait_for(ledger.last).await;
    assert_eq!(
        read.pending_transfers_due(at(100), 10).unwrap(),
        [due(&ledger, late, at(30))]
    );
    assert_eq!(read.next_pending_transfer_expiry().unwrap(), Some(at(30)));

    execute_at(
        &mut ledger,
        at(31),
        TransferCommand::ExpirePendingTransfer { id: late }.into(),
    )
    .await;
    read.wait_for(ledger.last).await;
    assert!(read.pending_transfers_due(at(100), 10).unwrap().is_empty());
    assert_eq!(read.next_pending_transfer_expiry().unwrap(), None);
}

/// A change that leaves a pending transfer pending (its due row stays).
fn meta_update(id: TransferId) -> TransferCommand {
    TransferCommand::UpdateTransfer {
        id,
        meta: Meta::default(),
    }
}

#[tokio::test]
async fn the_due_list_is_read_from_the_model_store_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("projections");
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let read = ReadModels::start(store.clone(), ModelStorage::at(path.clone()))
        .await
        .unwrap();
    let mut ledger = ledger(store.clone(), 0).await;
    let kept = create(&mut ledger, Some(at(5))).await;
    let ended = create(&mut ledger, Some(at(1))).await;
    ledger
        .execute(TransferCommand::VoidPendingTransfer { id: ended }.into())
        .await;
    read.wait_for(ledger.last).await;
    read.close().await.unwrap();

    let restarted = ReadModels::start(store, ModelStorage::at(path)).await.unwrap();
    // Opened, not replayed: the rows are the store's.
    assert_eq!(restarted.checkpoint(), ledger.last + 1);
    assert_eq!(
        restarted.pending_transfers_due(at(60), 10).unwrap(),
        [due(&ledger, kept, at(5))]
    );
    assert_eq!(restarted.next_pending_transfer_expiry().unwrap(), Some(at(5)));
    restarted.close().await.unwrap();
}
