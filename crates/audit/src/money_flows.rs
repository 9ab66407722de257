//! Rules over card payins, refunds and bank payouts: each money movement
//! they cause happens exactly once, with exactly their value.
//!
//! - a settled payin has one `card_payin` transaction of its value, and an
//!   unsettled one none; it is refunded only once settled;
//! - a payin's recorded `refunded_value` equals its processing and completed
//!   refunds, and never exceeds its value;
//! - a refund has one `card_payin_refund` debit of its value; a failed refund
//!   one `card_payin_refund_failure` credit of its value, any other none;
//! - a payout has one `bank_payout` debit of its value; a failed or returned
//!   payout one `bank_payout_failure` credit of its value, any other none;
//! - a bank payin has one `bank_payin` credit of its value.
//!
//! Movements are matched at the end of the replay (or of its limit), so the
//! order of events inside one atomic write does not matter.

use std::collections::HashMap;

use paycore_domain::{
    BankPayinId, BankPayoutId, CardPayinId, CardPayinRefundId, Event, Money, Transaction, TransactionKind,
};

use crate::{ExtraCheck, Location, Rule, Violation};

/// What a payin, refund, payout or bank payin should have moved, and what
/// the log shows it moved.
#[derive(Debug, Default)]
struct Flow {
    at: Option<Location>,
    value: Option<Money>,
    /// The forward movement (credit for payins, debit for refunds/payouts)
    /// is due: settled payin, any created refund, payout or bank payin.
    movement_due: bool,
    /// A failure/return credit is due.
    reversal_due: bool,
    movements: Vec<(Location, Money)>,
    reversals: Vec<(Location, Money)>,
}

#[derive(Debug, Default)]
struct Payin {
    value: Option<Money>,
    settled: bool,
    /// Refunds processing or completed, recomputed from refund events.
    refunded: i64,
    refunds: HashMap<CardPayinRefundId, i64>,
}

/// The money-flow rules (see the module docs).
#[derive(Debug, Default)]
pub struct MoneyFlows {
    payins: HashMap<CardPayinId, Payin>,
    payin_flows: HashMap<CardPayinId, Flow>,
    refund_flows: HashMap<CardPayinRefundId, Flow>,
    refund_payins: HashMap<CardPayinRefundId, CardPayinId>,
    payout_flows: HashMap<BankPayoutId, Flow>,
    bank_payin_flows: HashMap<BankPayinId, Flow>,
}

impl ExtraCheck for MoneyFlows {
    fn on_event(&mut self, at: &Location, event: &Event, violations: &mut Vec<Violation>) {
        match event {
            Event::CardPayinCreated(created) => {
                let payin = self.payins.entry(created.id).or_default();
                payin.value = Some(created.value);
                let flow = self.payin_flows.entry(created.id).or_default();
                flow.value = Some(created.value);
                flow.at = Some(at.clone());
            }
            Event::CardPayinSettled(_) => {
                if let Some(id) = instance::<CardPayinId>(at) {
                    self.payins.entry(id).or_default().settled = true;
                    self.payin_flows.entry(id).or_default().movement_due = true;
                }
            }
            Event::CardPayinRefundCreated(created) => self.refund_created(at, created, violations),
            Event::CardPayinRefundFailed(_) => {
                if let Some(id) = instance::<CardPayinRefundId>(at) {
                    self.refund_flows.entry(id).or_default().reversal_due = true;
                    self.refund_failed(id);
                }
            }
            Event::CardPayinRefundChanged(changed) => {
                if let Some(payin_id) = instance::<CardPayinId>(at) {
                    let payin = self.payins.entry(payin_id).or_default();
                    let value = payin.value.map_or(i64::MAX, |value| value.amount);
                    if changed.refunded_value_after.amount != payin.refunded {
                        violations.push(Violation::new(
                            Rule::RefundsWithinPayin,
                            Some(at.clone()),
                            format!(
                                "card payin {payin_id} records refunded_value {}, but its refunds add up to {}",
                                changed.refunded_value_after, payin.refunded
                            ),
                        ));
                    }
                    if changed.refunded_value_after.amount > value {
                        violations.push(Violation::new(
                            Rule::RefundsWithinPayin,
                            Some(at.clone()),
                            format!(
                                "card payin {payin_id} refunded {} of a value of {value}",
                                changed.refunded_value_after
                            ),
                        ));
                    }
                }
            }
            Event::BankPayoutCreated(created) => {
                let flow = self.payout_flows.entry(created.id).or_default();
                flow.value = Some(created.value);
                flow.at = Some(at.clone());
                flow.movement_due = true;
            }
            Event::BankPayoutFailed(_) | Event::BankPayoutReturned(_) => {
                if let Some(id) = instance::<BankPayoutId>(at) {
                    self.payout_flows.entry(id).or_default().reversal_due = true;
                }
            }
            Event::BankPayinReceived(received) => {
                let flow = self.bank_payin_flows.entry(received.id).or_default();
                flow.value = Some(received.value);
                flow.at = Some(at.clone());
                flow.movement_due = true;
            }
            Event::TransactionRecorded(recorded) => self.transaction(at, &recorded.transaction),
            _ => {}
        }
    }

    fn finish(&mut self, violations: &mut Vec<Violation>) {
        let flows = self
            .payin_flows
            .iter()
            .map(|(id, flow)| (format!("card payin {id}"), flow, 1))
            .chain(
                self.refund_flows
                    .iter()
                    .map(|(id, flow)| (format!("refund {id}"), flow, -1)),
            )
            .chain(
                self.payout_flows
                    .iter()
                    .map(|(id, flow)| (format!("bank payout {id}"), flow, -1)),
            )
            .chain(
                self.bank_payin_flows
                    .iter()
                    .map(|(id, flow)| (format!("bank payin {id}"), flow, 1)),
            );
        for (name, flow, sign) in flows {
            check_flow(&name, flow, sign, violations);
        }
        violations.sort_by_key(|violation| violation.at.as_ref().map(|at| at.position));
    }
}

impl MoneyFlows {
    fn refund_created(
        &mut self,
        at: &Location,
        created: &paycore_domain::events::CardPayinRefundCreated,
        violations: &mut Vec<Violation>,
    ) {
        let flow = self.refund_flows.entry(created.id).or_default();
        flow.value = Some(created.value);
        flow.at = Some(at.clone());
        flow.movement_due = true;
        self.refund_payins.insert(created.id, created.card_payin_id);
        let payin = self.payins.entry(created.card_payin_id).or_default();
        if !payin.settled {
            violations.push(Violation::new(
                Rule::RefundsWithinPayin,
                Some(at.clone()),
                format!(
                    "refund {} of card payin {}, which is not settled",
                    created.id, created.card_payin_id
                ),
            ));
        }
        payin.refunded = payin.refunded.saturating_add(created.value.amount);
        payin.refunds.insert(created.id, created.value.amount);
    }

    fn refund_failed(&mut self, id: CardPayinRefundId) {
        let Some(payin_id) = self.refund_payins.get(&id) else {
            return;
        };
        if let Some(payin) = self.payins.get_mut(payin_id)
            && let Some(value) = payin.refunds.remove(&id)
        {
            payin.refunded = payin.refunded.saturating_sub(value);
        }
    }

    fn transaction(&mut self, at: &Location, tx: &Transaction) {
        let entry = (at.clone(), tx.value);
        match tx.kind {
            TransactionKind::CardPayin(id) => self.payin_flows.entry(id).or_default().movements.push(entry),
            TransactionKind::CardPayinRefund(id) => {
                self.refund_flows.entry(id).or_default().movements.push(entry)
            }
            TransactionKind::CardPayinRefundFailure(id) => {
                self.refund_flows.entry(id).or_default().reversals.push(entry)
            }
            TransactionKind::BankPayout(id) => self.payout_flows.entry(id).or_default().movements.push(entry),
            TransactionKind::BankPayoutFailure(id) => {
                self.payout_flows.entry(id).or_default().reversals.push(entry)
            }
            TransactionKind::BankPayin(id) => {
                self.bank_payin_flows.entry(id).or_default().movements.push(entry)
            }
            TransactionKind::Magic
            | TransactionKind::TransferSource(_)
            | TransactionKind::TransferDestination(_)
            | TransactionKind::PostedTransferSource(_)
            | TransactionKind::PostedTransferDestination(_) => {}
        }
    }
}

/// Compares what a flow should have moved with what it moved. `sign` is the
/// direction of the forward movement (+1 credit, −1 debit); a reversal goes
/// the other way.
fn check_flow(name: &str, flow: &Flow, sign: i64, violations: &mut Vec<Violation>) {
    let Some(value) = flow.value else {
        for (at, moved) in flow.movements.iter().chain(&flow.reversals) {
            violations.push(Violation::new(
                Rule::FailureCreditedOnce,
                Some(at.clone()),
                format!("transaction of {moved} for {name}, which was never created"),
            ));
        }
        return;
    };
    let forward = Money::new(value.amount.saturating_mul(sign), value.currency);
    let back = Money::new(-forward.amount, value.currency);
    expect_once(
        name,
        "movement",
        flow.movement_due,
        forward,
        &flow.movements,
        flow,
        violations,
    );
    expect_once(
        name,
        "failure credit",
        flow.reversal_due,
        back,
        &flow.reversals,
        flow,
        violations,
    );
}

fn expect_once(
    name: &str,
    what: &str,
    due: bool,
    value: Money,
    found: &[(Location, Money)],
    flow: &Flow,
    violations: &mut Vec<Violation>,
) {
    let wanted = usize::from(due);
    // The first surplus transaction, or the resource itself when one is missing.
    let at = found
        .get(wanted)
        .map(|(at, _)| at.clone())
        .or_else(|| flow.at.clone());
    if found.len() != wanted {
        violations.push(Violation::new(
            Rule::FailureCreditedOnce,
            at,
            format!(
                "{name} has {} {what} transactions, expected {wanted}",
                found.len()
            ),
        ));
        return;
    }
    for (at, moved) in found {
        if *moved != value {
            violations.push(Violation::new(
                Rule::FailureCreditedOnce,
                Some(at.clone()),
                format!("{what} of {name} is {moved}, expected {value}"),
            ));
        }
    }
}

/// The ID in the name of the stream the event is in.
fn instance<I: std::str::FromStr>(at: &Location) -> Option<I> {
    at.stream.split_once('-')?.1.parse().ok()
}
