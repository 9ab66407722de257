//! Two-phase transfers: a pending transfer holds its value (the source's
//! available balance drops, its posted balance does not; the destination
//! gets a pending credit), then is posted (all or part, once), voided or
//! expires, each releasing the holds in full.

use paycore_domain::events::*;
use paycore_domain::kernel::error::Refusal;
use paycore_domain::transfer::{PendingTerms, TransferCommand, TransferStatus};
use paycore_domain::*;

use crate::common::ledger::*;
use crate::common::*;

const LATER: Timestamp = Timestamp::from_micros(T0.micros() + HOUR * 1_000_000);

fn pending(id: TransferId, from: AccountId, to: AccountId, value: Money) -> Command {
    pending_until(id, from, to, value, LATER)
}

fn pending_until(
    id: TransferId,
    from: AccountId,
    to: AccountId,
    value: Money,
    expires_at: Timestamp,
) -> Command {
    TransferCommand::CreateTransfer {
        id,
        source_account_id: from,
        destination_account_id: to,
        value,
        meta: Meta::default(),
        source_transaction_id: held_tx(id, 0),
        destination_transaction_id: held_tx(id, 1),
        pending: Some(PendingTerms { expires_at }),
    }
    .into()
}

/// The IDs of a pending transfer's holds (`side` 0 source, 1 destination).
fn held_tx(id: TransferId, side: u128) -> TransactionId {
    tx(3_000 + side + id.uuid().as_u128() % 1000 * 2)
}

/// The IDs of a pending transfer's posted legs.
fn posted_tx(id: TransferId, side: u128) -> TransactionId {
    tx(5_000 + side + id.uuid().as_u128() % 1000 * 2)
}

fn post(id: TransferId, value: Option<Money>) -> Command {
    TransferCommand::PostPendingTransfer {
        id,
        value,
        source_transaction_id: posted_tx(id, 0),
        destination_transaction_id: posted_tx(id, 1),
    }
    .into()
}

fn void(id: TransferId) -> Command {
    TransferCommand::VoidPendingTransfer { id }.into()
}

fn expire(id: TransferId) -> Command {
    TransferCommand::ExpirePendingTransfer { id }.into()
}

fn run_at(world: &mut World, now: Timestamp, command: Command) -> Result<Decision, DomainError> {
    world.store.execute(&at(prj(P), now, command))
}

/// `(balance, pending_debits, pending_credits, available)` of an account.
fn amounts(world: &World, account: u128) -> (i64, i64, i64, i64) {
    let state = world.store.account(acc(account));
    (
        state.balance.amount,
        state.pending_debits.amount,
        state.pending_credits.amount,
        state.available().amount,
    )
}

fn status(world: &World, id: TransferId) -> TransferStatus {
    world
        .store
        .state(&StreamRef::Transfer(id))
        .as_transfer()
        .expect("transfer exists")
        .status
}

/// The phases recorded on an account's stream for one transfer.
fn phases(world: &World, account: u128, id: TransferId) -> Vec<(PendingPhase, i64)> {
    world
        .store
        .log
        .iter()
        .filter_map(|(stream, event)| match event {
            Event::PendingTransactionRecorded(recorded)
                if *stream == StreamRef::Account(acc(account)) && recorded.pending.transfer_id == id =>
            {
                Some((recorded.pending.phase, recorded.pending.value.amount))
            }
            _ => None,
        })
        .collect()
}

fn funded() -> World {
    let mut world = World::new();
    world.set(A, eur(1_000)).unwrap();
    world
}

#[test]
fn a_pending_transfer_reduces_available_not_posted() {
    let mut world = funded();
    let decision = world.ok(prj(P), pending(trf(1), acc(A), acc(B), eur(300)));
    let written: Vec<&str> = events(&decision).iter().map(|(_, e)| e.event_type()).collect();
    assert_eq!(
        written,
        [
            "PendingTransferCreated",
            "PendingTransactionRecorded",
            "PendingTransactionRecorded"
        ]
    );
    assert_eq!(amounts(&world, A), (1_000, 300, 0, 700));
    assert_eq!(amounts(&world, B), (0, 0, 300, 0));
    assert_eq!(
        status(&world, trf(1)),
        TransferStatus::Pending { expires_at: LATER }
    );
    // A hold is not a transaction, and never touches the project's total.
    assert_eq!(world.store.account(acc(B)).last_transaction, None);
    assert!(
        !events(&decision)
            .iter()
            .any(|(stream, _)| matches!(stream, StreamRef::ProjectBalance(..)))
    );
    let Event::PendingTransactionRecorded(source) = &events(&decision)[1].1 else {
        panic!("{decision:?}");
    };
    assert_eq!(
        source.pending,
        PendingTransaction {
            id: held_tx(trf(1), 0),
            transfer_id: trf(1),
            account_id: acc(A),
            project_id: prj(P),
            phase: PendingPhase::Reserved,
            value: eur(-300),
            pending_debits_after: eur(300),
            pending_credits_after: eur(0),
            created_at: T0,
        }
    );
}

#[test]
fn a_hold_beyond_the_available_balance_is_refused() {
    let mut world = funded();
    world.ok(prj(P), pending(trf(1), acc(A), acc(B), eur(600)));
    assert_refused(
        world.run(prj(P), pending(trf(2), acc(A), acc(B), eur(401))),
        Refusal::InsufficientFunds,
    );
    // Exactly what is available can be held; an account with the
    // allowance can hold beyond it.
    world.ok(prj(P), pending(trf(3), acc(A), acc(B), eur(400)));
    assert_eq!(amounts(&world, A), (1_000, 1_000, 0, 0));
    world.ok(prj(P), pending(trf(4), acc(N), acc(B), eur(50)));
    assert_eq!(amounts(&world, N), (0, 50, 0, -50));
}

#[test]
fn a_plain_transfer_is_judged_on_the_available_balance() {
    let mut world = funded();
    world.ok(prj(P), pending(trf(1), acc(A), acc(B), eur(800)));
    assert_refused(
        world.run(prj(P), transfer(trf(2), acc(A), acc(B), eur(201))),
        Refusal::InsufficientFunds,
    );
    world.ok(prj(P), transfer(trf(3), acc(A), acc(B), eur(200)));
    assert_eq!(amounts(&world, A), (800, 800, 0, 0));
    // The pending credit is not available to B until posted.
    assert_refused(
        world.run(prj(P), transfer(trf(4), acc(B), acc(A), eur(201))),
        Refusal::InsufficientFunds,
    );
    // Nor can the allowance be turned off under a negative available balance.
    world.ok(prj(P), pending(trf(5), acc(N), acc(B), eur(50)));
    assert_refused(
        world.run(prj(P), set_allowance(acc(N), false)),
        Refusal::InsufficientFunds,
    );
}

#[test]
fn posting_the_whole_hold_moves_it() {
    let mut world = funded();
    world.ok(prj(P), pending(trf(1), acc(A), acc(B), eur(300)));
    let decision = world.ok(prj(P), post(trf(1), None));
    let written: Vec<&str> = events(&decision).iter().map(|(_, e)| e.event_type()).collect();
    assert_eq!(
        written,
        [
            "PendingTransferPosted",
            "PendingTransactionRecorded",
            "PendingTransactionRecorded",
            "TransactionRecorded",
            "TransactionRecorded"
        ]
    );
    assert_eq!(amounts(&world, A), (700, 0, 0, 700));
    assert_eq!(amounts(&world, B), (300, 0, 0, 300));
    assert_eq!(
        status(&world, trf(1)),
        TransferStatus::Posted {
            value: eur(300),
            posted_at: T0,
            legs: Some((posted_tx(trf(1), 0), posted_tx(trf(1), 1)))
        }
    );
    let Event::TransactionRecorded(debit) = &events(&decision)[3].1 else {
        panic!("{decision:?}");
    };
    assert_eq!(
        debit.transaction.kind,
        TransactionKind::PostedTransferSource(trf(1))
    );
    assert_eq!(debit.transaction.id, posted_tx(trf(1), 0));
    assert_eq!(
        phases(&world, A, trf(1)),
        [(PendingPhase::Reserved, -300), (PendingPhase::Posted, -300)]
    );
    assert_eq!(
        phases(&world, B, trf(1)),
        [(PendingPhase::Reserved, 300), (PendingPhase::Posted, 300)]
    );
    assert_eq!(world.store.project_total(prj(P), Currency::EUR), Some(1_000));
}

#[test]
fn posting_part_releases_the_rest() {
    let mut world = funded();
    world.ok(prj(P), pending(trf(1), acc(A), acc(B), eur(300)));
    world.ok(prj(P), post(trf(1), Some(eur(120))));
    assert_eq!(amounts(&world, A), (880, 0, 0, 880));
    assert_eq!(amounts(&world, B), (120, 0, 0, 120));
    assert!(matches!(status(&world, trf(1)), TransferStatus::Posted { value, .. } if value == eur(120)));
}

#[test]
fn a_pending_transfer_is_posted_once() {
    let mut world = funded();
    world.ok(prj(P), pending(trf(1), acc(A), acc(B), eur(300)));
    world.ok(prj(P), post(trf(1), Some(eur(100))));
    for again in [post(trf(1), Some(eur(100))), void(trf(1))] {
        match world.run(prj(P), again) {
            Err(DomainError::Refused {
                refusal: Refusal::TransferNotPending,
                message,
            }) => assert!(message.contains("posted"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
    assert_refused(
        run_at(&mut world, LATER, expire(trf(1))),
        Refusal::TransferNotPending,
    );
    // A plain transfer is posted from the start.
    world.ok(prj(P), transfer(trf(2), acc(A), acc(B), eur(1)));
    assert_refused(world.run(prj(P), post(trf(2), None)), Refusal::TransferNotPending);
}

#[test]
fn a_post_is_at_most_the_hold_in_its_currency() {
    let mut world = funded();
    world.ok(prj(P), pending(trf(1), acc(A), acc(B), eur(300)));
    assert_eq!(
        invalid_fields(world.run(prj(P), post(trf(1), Some(eur(301))))),
        ["value.amount"]
    );
    assert_eq!(
        invalid_fields(world.run(prj(P), post(trf(1), Some(eur(0))))),
        ["value.amount"]
    );
    assert_eq!(
        invalid_fields(world.run(prj(P), post(trf(1), Some(usd(10))))),
        ["value.currency"]
    );
    assert_not_found(world.run(prj(P), post(trf(9), None)), "transfer", trf(9));
    // Another project's transfer is not found either.
    world.ok(prj(L), open_account(acc(20), Currency::EUR, false));
    assert_not_found(
        world.store.execute(&at(prj(L), T0, post(trf(1), None))),
        "transfer",
        trf(1),
    );
    world.ok(prj(P), post(trf(1), Some(eur(300))));
}

#[test]
fn voiding_releases_the_hold() {
    let mut world = funded();
    world.ok(prj(P), pending(trf(1), acc(A), acc(B), eur(300)));
    world.ok(prj(P), void(trf(1)));
    assert_eq!(amounts(&world, A), (1_000, 0, 0, 1_000));
    assert_eq!(amounts(&world, B), (0, 0, 0, 0));
    assert_eq!(status(&world, trf(1)), TransferStatus::Voided { at: T0 });
    assert_eq!(
        phases(&world, A, trf(1)),
        [(PendingPhase::Reserved, -300), (PendingPhase::Voided, -300)]
    );
    assert_refused(world.run(prj(P), post(trf(1), None)), Refusal::TransferNotPending);
}

#[test]
fn expiring_before_expires_at_is_refused() {
    let mut world = funded();
    world.ok(prj(P), pending(trf(1), acc(A), acc(B), eur(300)));
    let just_before = Timestamp::from_micros(LATER.micros() - 1);
    assert_refused(
        run_at(&mut world, just_before, expire(trf(1))),
        Refusal::PendingTransferNotExpired,
    );
    assert_eq!(amounts(&world, A), (1_000, 300, 0, 700));
}

#[test]
fn expiring_from_expires_at_releases_the_hold() {
    let mut world = funded();
    world.ok(prj(P), pending(trf(1), acc(A), acc(B), eur(300)));
    run_at(&mut world, LATER, expire(trf(1))).unwrap();
    assert_eq!(amounts(&world, A), (1_000, 0, 0, 1_000));
    assert_eq!(amounts(&world, B), (0, 0, 0, 0));
    assert_eq!(status(&world, trf(1)), TransferStatus::Expired { at: LATER });
    assert_eq!(
        phases(&world, B, trf(1)),
        [(PendingPhase::Reserved, 300), (PendingPhase::Expired, 300)]
    );
    assert_refused(
        run_at(&mut world, LATER, expire(trf(1))),
        Refusal::TransferNotPending,
    );
}

#[test]
fn after_expires_at_a_pending_transfer_can_only_expire() {
    let mut world = funded();
    world.ok(prj(P), pending(trf(1), acc(A), acc(B), eur(300)));
    // The expiry is not written yet, but the hold has lapsed.
    assert_refused(
        run_at(&mut world, LATER, post(trf(1), None)),
        Refusal::PendingTransferExpired,
    );
    assert_refused(
        run_at(&mut world, LATER, void(trf(1))),
        Refusal::PendingTransferExpired,
    );
    let just_before = Timestamp::from_micros(LATER.micros() - 1);
    run_at(&mut world, just_before, post(trf(1), None)).unwrap();
}

#[test]
fn a_pending_transfer_between_currencies_is_refused() {
    let mut world = funded();
    assert_refused(
        world.run(prj(P), pending(trf(1), acc(A), acc(U), eur(10))),
        Refusal::PendingTransferAcrossCurrencies,
    );
    assert_eq!(amounts(&world, A), (1_000, 0, 0, 1_000));
}

#[test]
fn a_pending_transfer_must_expire_in_the_future() {
    let mut world = funded();
    assert_eq!(
        invalid_fields(world.run(prj(P), pending_until(trf(1), acc(A), acc(B), eur(10), T0))),
        ["pending.expires_at"]
    );
    assert_eq!(
        invalid_fields(world.run(prj(P), pending_until(trf(1), acc(A), acc(A), eur(0), T0))),
        ["value.amount", "destination_account_id", "pending.expires_at"]
    );
    world.ok(prj(P), pending(trf(1), acc(A), acc(B), eur(10)));
    let result = world.run(prj(P), pending(trf(1), acc(A), acc(B), eur(10)));
    assert_eq!(
        result,
        Err(DomainError::AlreadyExists {
            kind: "transfer",
            id: trf(1).to_string()
        })
    );
}

#[test]
fn the_refusals_have_stable_reasons() {
    assert_eq!(Refusal::TransferNotPending.reason(), "TRANSFER_NOT_PENDING");
    assert_eq!(
        Refusal::PendingTransferExpired.reason(),
        "PENDING_TRANSFER_EXPIRED"
    );
    assert_eq!(
        Refusal::PendingTransferNotExpired.reason(),
        "PENDING_TRANSFER_NOT_EXPIRED"
    );
    assert_eq!(
        Refusal::PendingTransferAcrossCurrencies.reason(),
        "PENDING_TRANSFER_ACROSS_CURRENCIES"
    );
}
