//! How much memory an aggregate state or a stream name holds, for caches
//! that keep them under a budget in bytes.
//!
//! An estimate, cheap enough to take on every insertion: the value itself
//! (`size_of`), the bytes of its strings and the nodes of its maps. It does
//! not walk the allocator's size classes, so it is a little under what the
//! allocator hands out, never far from it.

use std::collections::BTreeMap;
use std::mem::size_of;

use crate::aggregate::Aggregate;
use crate::aggregated_account::{AccountIdentifier, AccountOwner, AccountPersonal, Balance};
use crate::aggregation_connection::ConnectionSource;
use crate::bank_account::BankAccountInfo;
use crate::bank_payout::PayoutDestination;
use crate::card::CardInfo;
use crate::customer::identity::{Address, Identity, IdentityDocument};
use crate::kernel::id::AggregatedAccountId;
use crate::kernel::meta::Meta;
use crate::kernel::stream::StreamRef;

/// Entries per node that a `BTreeMap` filled in key order (as decoding and
/// `evolve` fill them) ends up with: std's nodes hold 5 to 11, and a split
/// while inserting in order leaves the left node with 6.
const BTREE_ENTRIES_PER_NODE: usize = 6;
/// Entries a std `BTreeMap` node has room for (2B − 1 with B = 6): every
/// node is allocated at that size, however few it holds.
const BTREE_NODE_SLOTS: usize = 11;

impl Aggregate {
    /// The approximate memory this state takes when kept on its own (for
    /// example behind an `Arc`): the enum and everything it owns on the heap.
    pub fn approx_bytes(&self) -> usize {
        size_of::<Self>() + self.heap_bytes()
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Self::Empty
            | Self::ApiKey(_)
            | Self::ProjectBalance(_)
            | Self::Idempotency(_)
            | Self::PayinReferenceCode(_)
            | Self::FxRate(_)
            | Self::Bootstrap(_) => 0,
            Self::Project(project) => project.name.capacity() + meta_bytes(&project.meta),
            Self::Customer(customer) => {
                customer.identity.as_ref().map_or(0, identity_bytes) + meta_bytes(&customer.meta)
            }
            Self::Account(account) => meta_bytes(&account.meta),
            Self::Transfer(transfer) => meta_bytes(&transfer.meta),
            Self::CardToken(token) => card_info_bytes(&token.card_info),
            Self::Card(card) => card_info_bytes(&card.card_info) + meta_bytes(&card.meta),
            Self::CardPayin(payin) => {
                card_info_bytes(&payin.card_info)
                    + optional_string_bytes(&payin.authentication_url)
                    + optional_string_bytes(&payin.authentication_redirect_url)
                    + meta_bytes(&payin.meta)
            }
            Self::CardPayinRefund(refund) => meta_bytes(&refund.meta),
            Self::BankAccount(account) => {
                bank_account_info_bytes(&account.bank_account_info) + meta_bytes(&account.meta)
            }
            Self::BankPayout(payout) => {
                bank_account_info_bytes(&payout.bank_account_info)
                    + payout.concept.as_str().len()
                    + meta_bytes(&payout.meta)
            }
            Self::PayoutDestination(PayoutDestination { minirefs }) => btree_bytes(minirefs),
            Self::BankPayinReference(reference) => meta_bytes(&reference.meta),
            Self::BankPayin(payin) => payin.concept.as_str().len() + meta_bytes(&payin.meta),
            Self::File(file) => file.name.capacity(),
            Self::Consumer(checkpoint) => checkpoint.consumer.as_str().len(),
            Self::Institution(activation) => activation.institution_id.as_str().len(),
            Self::AggregationConnection(connection) => {
                connection
                    .institution_id
                    .as_ref()
                    .map_or(0, |id| id.as_str().len())
                    + connection.sources.capacity() * size_of::<ConnectionSource>()
                    + connection.accounts.capacity() * size_of::<AggregatedAccountId>()
                    + optional_string_bytes(&connection.redirect_url)
            }
            Self::AggregationImport(import) => optional_string_bytes(&import.failure_detail),
            Self::AggregatedAccount(account) => {
                account_personal_bytes(&account.personal)
                    + account.balances.capacity() * size_of::<Balance>()
                    + account.transactions.heap_bytes()
            }
        }
    }
}

impl StreamRef {
    /// The approximate memory this name owns on the heap, beyond
    /// `size_of::<StreamRef>()` (idempotency keys, IBANs, consumer names).
    pub fn approx_heap_bytes(&self) -> usize {
        match self {
            Self::Idempotency(_, key) => key.capacity(),
            Self::PayoutDestination(iban) => iban.as_str().len(),
            Self::Consumer(_, name) => name.as_str().len(),
            _ => 0,
        }
    }
}

/// The nodes of a `BTreeMap` whose keys and values own nothing on the heap.
fn btree_bytes<K, V>(map: &BTreeMap<K, V>) -> usize {
    if map.is_empty() {
        return 0;
    }
    // A leaf node: parent pointer, index and length, then the slots.
    let node =
        size_of::<usize>() + 2 * size_of::<u16>() + BTREE_NODE_SLOTS * (size_of::<K>() + size_of::<V>());
    map.len().div_ceil(BTREE_ENTRIES_PER_NODE) * node
}

fn account_personal_bytes(personal: &AccountPersonal) -> usize {
    let identifier = match &personal.identifier {
        Some(AccountIdentifier::Iban(iban)) => iban.as_str().len(),
        Some(AccountIdentifier::Other { scheme, value }) => scheme.capacity() + value.capacity(),
        None => 0,
    };
    personal.bank_account_id.as_str().len()
        + personal.name.capacity()
        + identifier
        + personal.owners.capacity() * size_of::<AccountOwner>()
        + personal
            .owners
            .iter()
            .map(|owner| owner.name.capacity())
            .sum::<usize>()
}

fn meta_bytes(meta: &Meta) -> usize {
    if meta.is_empty() {
        return 0;
    }
    let nodes = meta.len().div_ceil(BTREE_ENTRIES_PER_NODE);
    let node = size_of::<usize>() + 2 * size_of::<u16>() + BTREE_NODE_SLOTS * 2 * size_of::<String>();
    nodes * node
        + meta
            .iter()
            .map(|(key, value)| key.capacity() + value.capacity())
            .sum::<usize>()
}

fn optional_string_bytes(text: &Option<String>) -> usize {
    text.as_ref().map_or(0, String::capacity)
}

fn card_info_bytes(card: &CardInfo) -> usize {
    card.number().as_str().len()
}

fn bank_account_info_bytes(info: &BankAccountInfo) -> usize {
    info.iban.as_str().len() + info.beneficiary_name.capacity()
}

fn identity_bytes(identity: &Identity) -> usize {
    let Identity {
        first_name,
        last_name,
        email_address,
        phone_number,
        nationality,
        employment_status: _,
        address,
        document,
    } = identity;
    first_name.capacity()
        + last_name.capacity()
        + optional_string_bytes(email_address)
        + optional_string_bytes(phone_number)
        + optional_string_bytes(nationality)
        + address.as_ref().map_or(0, address_bytes)
        + document.as_ref().map_or(0, document_bytes)
}

fn address_bytes(address: &Address) -> usize {
    let Address {
        line_1,
        line_2,
        postal_code,
        city,
        region,
        country,
    } = address;
    [line_1, line_2, postal_code, city, region, country]
        .iter()
        .map(|text| text.capacity())
        .sum()
}

fn document_bytes(document: &IdentityDocument) -> usize {
    document.country.capacity() + document.number.capacity()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Account;
    use crate::kernel::id::{AccountId, ProjectId};
    use crate::kernel::money::{Currency, Money};
    use crate::kernel::time::Timestamp;

    fn account(meta: Meta) -> Aggregate {
        Aggregate::Account(Account {
            id: AccountId::from_uuid(uuid::Uuid::from_u128(1)),
            project_id: ProjectId::from_uuid(uuid::Uuid::from_u128(2)),
            customer_id: None,
            balance: Money::new(0, Currency::EUR),
            allow_negative_balance: false,
            meta,
            created_at: Timestamp::from_micros(0),
            last_transaction: None,
            pending_debits: Money::new(0, Currency::EUR),
            pending_credits: Money::new(0, Currency::EUR),
        })
    }

    fn meta(entries: &[(&str, &str)]) -> Meta {
        let mut violations = crate::kernel::error::Violations::default();
        Meta::parse(
            entries.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            "meta",
            &mut violations,
        )
        .unwrap_or_default()
    }

    #[test]
    fn a_state_costs_at_least_its_enum_and_grows_with_what_it_owns() {
        let bare = account(Meta::default());
        assert_eq!(bare.approx_bytes(), size_of::<Aggregate>());
        let one = account(meta(&[("order", "A-1")]));
        let long_value = "x".repeat(400);
        let bigger = account(meta(&[("order", "A-1"), ("note", long_value.as_str())]));
        // One key needs a whole map node, plus its 8 bytes of text.
        assert!(one.approx_bytes() >= bare.approx_bytes() + 8 + BTREE_NODE_SLOTS * 48);
        assert!(bigger.approx_bytes() >= one.approx_bytes() + 400);
    }

    #[test]
    fn stream_names_count_the_text_they_own() {
        let project = ProjectId::from_uuid(uuid::Uuid::from_u128(2));
        assert_eq!(StreamRef::Project(project).approx_heap_bytes(), 0);
        let key = "h1-0123456789abcdef0123456789abcdef".to_owned();
        assert!(StreamRef::Idempotency(project, key.clone()).approx_heap_bytes() >= key.len());
    }
}
