//! Deciding two-phase transfers: a pending transfer holds its value on
//! both accounts (the source's available balance drops, the destination
//! gets a pending credit) through the ledger's
//! [`Context::pending_change`], then is posted (all or part of the held
//! value moves, once), voided or expires, each releasing the holds in full
//! and each recorded on both accounts' streams.
//!
//! Time: a pending transfer holds while `now < expires_at`. From
//! `expires_at` on it can no longer be posted or voided, only expired (by
//! the server's scheduler), even before the expiry is written.

use super::command::PendingTerms;
use super::events::{
    PendingTransferCreated, PendingTransferExpired, PendingTransferPosted, PendingTransferVoided,
    TransferEvent,
};
use super::state::Transfer;
use crate::account::{Account, AccountEvent, PendingPhase, TransactionKind};
use crate::context::{Context, Decided};
use crate::kernel::error::{DomainError, Refusal, Violations, overflow};
use crate::kernel::id::{AccountId, TransactionId, TransferId};
use crate::kernel::meta::Meta;
use crate::kernel::money::Money;
use crate::kernel::stream::{ResourceRef, StreamRef};

/// The events releasing a transfer's two holds, and its source and
/// destination accounts as they leave them.
type Released<E> = (Vec<(StreamRef, E)>, Account, Account);

impl Context<'_> {
    pub(crate) fn create_pending_transfer<E>(
        &self,
        id: TransferId,
        (source_id, source_tx): (AccountId, TransactionId),
        (destination_id, destination_tx): (AccountId, TransactionId),
        value: Money,
        meta: &Meta,
        terms: PendingTerms,
    ) -> Result<Decided<E>, DomainError>
    where
        E: From<TransferEvent> + From<AccountEvent>,
    {
        let mut violations = Violations::new();
        if terms.expires_at <= self.now() {
            violations.add("pending.expires_at", "must be after the time of the request");
        }
        let (source, destination) =
            self.transfer_parties(id, source_id, destination_id, value, violations)?;
        if destination.currency() != source.currency() {
            return Err(DomainError::refused(
                Refusal::PendingTransferAcrossCurrencies,
                format!(
                    "a pending transfer must stay in one currency: {source_id} holds {}, {destination_id} {}",
                    source.currency(),
                    destination.currency()
                ),
            ));
        }
        let debit = value.checked_neg().map_err(|_| overflow())?;
        let (source_hold, _) = self.pending_change(source, (id, source_tx), PendingPhase::Reserved, debit)?;
        let (destination_hold, _) =
            self.pending_change(destination, (id, destination_tx), PendingPhase::Reserved, value)?;
        let created = TransferEvent::PendingTransferCreated(PendingTransferCreated {
            id,
            project_id: self.project_id,
            source_account_id: source_id,
            destination_account_id: destination_id,
            source_transaction_id: source_tx,
            destination_transaction_id: destination_tx,
            value,
            meta: meta.clone(),
            created_at: self.now(),
            expires_at: terms.expires_at,
        });
        let events = vec![
            (StreamRef::Transfer(id), created.into()),
            source_hold,
            destination_hold,
        ];
        Ok((events, ResourceRef::Transfer(id)))
    }

    pub(crate) fn post_pending_transfer<E>(
        &self,
        id: TransferId,
        value: Option<Money>,
        (source_tx, destination_tx): (TransactionId, TransactionId),
    ) -> Result<Decided<E>, DomainError>
    where
        E: From<TransferEvent> + From<AccountEvent>,
    {
        if value.is_some_and(|value| value.amount <= 0) {
            return Err(DomainError::invalid("value.amount", "must be positive"));
        }
        let transfer = self.holding_transfer(id, PendingPhase::Posted)?;
        let held = transfer.value;
        let posted = value.unwrap_or(held);
        check_posted_value(posted, held)?;
        let (mut events, source, destination) = self.release_holds(transfer, PendingPhase::Posted)?;
        let posted_event = TransferEvent::PendingTransferPosted(PendingTransferPosted {
            value: posted,
            source_transaction_id: source_tx,
            destination_transaction_id: destination_tx,
            posted_at: self.now(),
        });
        events.insert(0, (StreamRef::Transfer(id), posted_event.into()));
        let debit = posted.checked_neg().map_err(|_| overflow())?;
        // The holds are gone: the debit is judged on the available balance
        // they leave, which it can never take below where it was.
        events.extend(self.movement(
            &source,
            TransactionKind::PostedTransferSource(id),
            debit,
            source_tx,
            false,
        )?);
        events.extend(self.movement(
            &destination,
            TransactionKind::PostedTransferDestination(id),
            posted,
            destination_tx,
            false,
        )?);
        Ok((events, ResourceRef::Transfer(id)))
    }

    pub(crate) fn void_pending_transfer<E>(&self, id: TransferId) -> Result<Decided<E>, DomainError>
    where
        E: From<TransferEvent> + From<AccountEvent>,
    {
        let transfer = self.holding_transfer(id, PendingPhase::Voided)?;
        let (mut events, _, _) = self.release_holds(transfer, PendingPhase::Voided)?;
        let voided = TransferEvent::PendingTransferVoided(PendingTransferVoided {
            voided_at: self.now(),
        });
        events.insert(0, (StreamRef::Transfer(id), voided.into()));
        Ok((events, ResourceRef::Transfer(id)))
    }

    pub(crate) fn expire_pending_transfer<E>(&self, id: TransferId) -> Result<Decided<E>, DomainError>
    where
        E: From<TransferEvent> + From<AccountEvent>,
    {
        let transfer = self.holding_transfer(id, PendingPhase::Expired)?;
        let (mut events, _, _) = self.release_holds(transfer, PendingPhase::Expired)?;
        let expired = TransferEvent::PendingTransferExpired(PendingTransferExpired {
            expired_at: self.now(),
        });
        events.insert(0, (StreamRef::Transfer(id), expired.into()));
        Ok((events, ResourceRef::Transfer(id)))
    }

    /// The pending transfer `id` if it may end in `phase` now: pending, and
    /// before its `expires_at` to be posted or voided, at or after it to
    /// expire.
    fn holding_transfer(&self, id: TransferId, phase: PendingPhase) -> Result<&Transfer, DomainError> {
        let transfer = self
            .owned::<Transfer>(&StreamRef::Transfer(id))
            .ok_or_else(|| DomainError::not_found("transfer", id))?;
        let Some(expires_at) = transfer.pending_until() else {
            return Err(DomainError::refused(
                Refusal::TransferNotPending,
                format!("transfer {id} is {}, not pending", transfer.status.as_str()),
            ));
        };
        let expired = self.now() >= expires_at;
        match (phase, expired) {
            (PendingPhase::Expired, false) => Err(DomainError::refused(
                Refusal::PendingTransferNotExpired,
                format!("transfer {id} holds until {}", expires_at.micros()),
            )),
            (PendingPhase::Posted | PendingPhase::Voided, true) => Err(DomainError::refused(
                Refusal::PendingTransferExpired,
                format!(
                    "transfer {id} expired at {}; it can only be expired",
                    expires_at.micros()
                ),
            )),
            _ => Ok(transfer),
        }
    }

    /// Releases both holds of `transfer` in full, in `phase`: the events,
    /// and the two accounts as they leave them.
    fn release_holds<E: From<AccountEvent>>(
        &self,
        transfer: &Transfer,
        phase: PendingPhase,
    ) -> Result<Released<E>, DomainError> {
        let id = transfer.id;
        let source = self.account(transfer.source_account_id)?;
        let destination = self.account(transfer.destination_account_id)?;
        let debit = transfer.value.checked_neg().map_err(|_| overflow())?;
        let (source_release, source) =
            self.pending_change(source, (id, transfer.source_transaction_id), phase, debit)?;
        let (destination_release, destination) = self.pending_change(
            destination,
            (id, transfer.destination_transaction_id),
            phase,
            transfer.value,
        )?;
        Ok((vec![source_release, destination_release], source, destination))
    }

    /// The accounts a pending transfer holds on, once its stream is loaded.
    pub(crate) fn accounts_of_transfer(&self, id: TransferId) -> Vec<StreamRef> {
        self.owned::<Transfer>(&StreamRef::Transfer(id))
            .map(|transfer| {
                vec![
                    StreamRef::Account(transfer.source_account_id),
                    StreamRef::Account(transfer.destination_account_id),
                ]
            })
            .unwrap_or_default()
    }
}

/// A post moves at most what was held, in its currency.
fn check_posted_value(posted: Money, held: Money) -> Result<(), DomainError> {
    if posted.currency != held.currency {
        return Err(DomainError::invalid(
            "value.currency",
            format!("must be the pending transfer's currency, {}", held.currency),
        ));
    }
    if posted.amount > held.amount {
        return Err(DomainError::invalid(
            "value.amount",
            format!("must be at most the pending amount, {held}"),
        ));
    }
    Ok(())
}
