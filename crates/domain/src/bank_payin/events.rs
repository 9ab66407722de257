//! The bank payin family's events (type names, versions and codec in
//! [`crate::events`]).

use serde::{Deserialize, Serialize};

use crate::kernel::bank::{Concept, PayinReferenceCode};
use crate::kernel::id::*;
use crate::kernel::meta::{Meta, MetaUpdated};
use crate::kernel::money::Money;
use crate::kernel::time::Timestamp;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankPayinReferenceCreated {
    pub id: BankPayinReferenceId,
    pub project_id: ProjectId,
    pub account_id: AccountId,
    pub reference: PayinReferenceCode,
    pub meta: Meta,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankPayinReferenceAccountChanged {
    pub account_id: AccountId,
}

/// On a reference code's stream: the code belongs to this reference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayinReferenceCodeClaimed {
    pub project_id: ProjectId,
    pub bank_payin_reference_id: BankPayinReferenceId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankPayinReceived {
    pub id: BankPayinId,
    pub project_id: ProjectId,
    pub bank_payin_reference_id: BankPayinReferenceId,
    pub account_id: AccountId,
    pub transaction_id: TransactionId,
    /// As the sender wrote it.
    pub concept: Concept,
    /// Always positive.
    pub value: Money,
    pub meta: Meta,
    pub created_at: Timestamp,
}

/// The bank payin family's events: what its deciders emit and its `evolve`
/// folds (the routers' `Event` wraps each as the variant of the same name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BankPayinEvent {
    BankPayinReferenceCreated(BankPayinReferenceCreated),
    BankPayinReferenceAccountChanged(BankPayinReferenceAccountChanged),
    BankPayinReferenceMetaUpdated(MetaUpdated),
    PayinReferenceCodeClaimed(PayinReferenceCodeClaimed),
    BankPayinReceived(BankPayinReceived),
    BankPayinMetaUpdated(MetaUpdated),
}
