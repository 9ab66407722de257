//! Deciding `CreateTransfer`: the transfer, and the two legs through the
//! ledger. The exchange rate is read from the fx_rate family's state.

use super::events::{Exchange, TransferCreated, TransferEvent};
use super::state::Transfer;
use crate::account::{Account, AccountEvent, TransactionKind};
use crate::context::{Context, Decided};
use crate::kernel::error::{DomainError, Refusal, Violations, overflow};
use crate::kernel::id::{AccountId, TransactionId, TransferId};
use crate::kernel::meta::Meta;
use crate::kernel::money::{Currency, Money};
use crate::kernel::stream::{ResourceRef, StreamRef};

impl Context<'_> {
    pub(crate) fn create_transfer<E>(
        &self,
        id: TransferId,
        (source_id, source_tx): (AccountId, TransactionId),
        (destination_id, destination_tx): (AccountId, TransactionId),
        value: Money,
        meta: &Meta,
    ) -> Result<Decided<E>, DomainError>
    where
        E: From<TransferEvent> + From<AccountEvent>,
    {
        let (source, destination) =
            self.transfer_parties(id, source_id, destination_id, value, Violations::new())?;
        let stream = StreamRef::Transfer(id);
        let exchange = self.exchange(value, destination.currency())?;
        let credit = exchange.map_or(value, |exchange| exchange.destination_value);
        let debit = value.checked_neg().map_err(|_| overflow())?;
        // A same-currency transfer leaves the project's total unchanged; an
        // exchange takes from one currency's total and adds to another's.
        let crosses = exchange.is_some();
        let mut events = vec![(
            stream,
            TransferEvent::TransferCreated(TransferCreated {
                id,
                project_id: self.project_id,
                source_account_id: source_id,
                destination_account_id: destination_id,
                source_transaction_id: source_tx,
                destination_transaction_id: destination_tx,
                value,
                meta: meta.clone(),
                created_at: self.now(),
                exchange,
            })
            .into(),
        )];
        events.extend(self.movement(
            source,
            TransactionKind::TransferSource(id),
            debit,
            source_tx,
            crosses,
        )?);
        events.extend(self.movement(
            destination,
            TransactionKind::TransferDestination(id),
            credit,
            destination_tx,
            crosses,
        )?);
        Ok((events, ResourceRef::Transfer(id)))
    }

    /// What every new transfer checks, plain or pending: the request's
    /// fields (with the `violations` the caller found already), a fresh ID,
    /// both accounts, and the value in the source's currency.
    pub(crate) fn transfer_parties(
        &self,
        id: TransferId,
        source_id: AccountId,
        destination_id: AccountId,
        value: Money,
        found: Violations,
    ) -> Result<(&Account, &Account), DomainError> {
        let mut violations = Violations::new();
        if value.amount <= 0 {
            violations.add("value.amount", "must be positive");
        }
        if source_id == destination_id {
            violations.add("destination_account_id", "must differ from source_account_id");
        }
        violations.extend(found);
        violations.into_result()?;
        self.must_be_new(&StreamRef::Transfer(id), "transfer", id)?;
        let source = self.account(source_id)?;
        let destination = self.account(destination_id)?;
        if value.currency != source.currency() {
            return Err(DomainError::invalid(
                "value.currency",
                format!("must be the source account's currency, {}", source.currency()),
            ));
        }
        Ok((source, destination))
    }

    pub(crate) fn update_transfer<E: From<TransferEvent>>(
        &self,
        id: TransferId,
        meta: &Meta,
    ) -> Result<Decided<E>, DomainError> {
        self.replace_meta::<Transfer, _>(ResourceRef::Transfer(id), "transfer", meta, |meta| {
            TransferEvent::TransferMetaUpdated(meta).into()
        })
    }

    /// The conversion of `value` into `to`, at the configured rate; `None`
    /// when no conversion is needed.
    pub(crate) fn exchange(&self, value: Money, to: Currency) -> Result<Option<Exchange>, DomainError> {
        let from = value.currency;
        if from == to {
            return Ok(None);
        }
        let unavailable = || {
            DomainError::refused(
                Refusal::FxRateUnavailable,
                format!("no exchange rate is configured from {from} to {to}"),
            )
        };
        let rate = self.fx_rate(from, to).ok_or_else(unavailable)?;
        let impossible = |error: crate::kernel::fx::FxError| {
            DomainError::refused(
                Refusal::FxConversionImpossible,
                format!("{value} cannot be converted to {to}: {error}"),
            )
        };
        let quote =
            crate::kernel::fx::Quote::new(from, to, rate.mid_rate, rate.spread_bps).map_err(impossible)?;
        let conversion = crate::kernel::fx::convert(value, quote).map_err(impossible)?;
        Ok(Some(Exchange {
            destination_value: conversion.destination,
            mid_rate: rate.mid_rate,
            spread_bps: rate.spread_bps,
            rate_used: conversion.rate_used,
        }))
    }
}

impl Context<'_> {
    /// What `CreateTransfer` reads once its accounts are loaded: between
    /// currencies, the exchange rate and both currencies' project totals.
    pub(crate) fn dependent_streams_of_transfer(
        &self,
        source: AccountId,
        destination: AccountId,
    ) -> Vec<StreamRef> {
        let project = self.project_id;
        let mut streams = Vec::new();
        let source = self.state::<Account>(&StreamRef::Account(source));
        let destination = self.state::<Account>(&StreamRef::Account(destination));
        if let (Some(source), Some(destination)) = (source, destination)
            && source.currency() != destination.currency()
        {
            streams.push(StreamRef::FxRate(source.currency(), destination.currency()));
            streams.push(StreamRef::ProjectBalance(project, source.currency()));
            streams.push(StreamRef::ProjectBalance(project, destination.currency()));
        }
        streams
    }
}
