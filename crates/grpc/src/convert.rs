//! Proto ↔ domain. Parsing collects every invalid field of a request into
//! [`Violations`], named by its path in the request (`value.currency`,
//! `identity.document.type`), so a client sees all its mistakes at once.
//!
//! Every parser returning `None` has recorded at least one violation, and
//! handlers check the violations before using a parsed value.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use paycore_domain::aggregate::{Account, Customer, Project, Transfer};
use paycore_domain::history::{AccountHistory, AsOf};
use paycore_domain::id::IdError;
use paycore_domain::identity::{Address, Date, DocumentType, EmploymentStatus, Identity, IdentityDocument};
use paycore_domain::{
    AccountId, Command, Currency, CustomerId, Environment, FileId, Meta, Money, TransactionId,
    TransactionKind, TransferId, Violations,
};
use paycore_projections::PageRequest;

use crate::pb;

/// Page size when the request gives none (0).
pub const DEFAULT_PAGE_SIZE: usize = 10;
/// Largest page a list returns.
pub const MAX_PAGE_SIZE: usize = 100;

// ---------------------------------------------------------------- proto → domain

/// A required ID of type `T` in `field`.
pub fn id<T: FromStr<Err = IdError>>(text: &str, field: &str, v: &mut Violations) -> Option<T> {
    if text.is_empty() {
        v.add(field, "is required");
        return None;
    }
    v.check(field, text.parse::<T>())
}

/// An optional ID: absent is fine, present must parse.
pub fn optional_id<T: FromStr<Err = IdError>>(
    text: Option<&str>,
    field: &str,
    v: &mut Violations,
) -> Option<Option<T>> {
    match text {
        None => Some(None),
        Some(text) => v.check(field, text.parse::<T>()).map(Some),
    }
}

/// Earliest and latest seconds of a `google.protobuf.Timestamp`
/// (0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z).
const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

/// An optional `as_of` point (field `as_of`): absent is `Some(None)`; a
/// negative position or an invalid timestamp is a violation on
/// `as_of.position` / `as_of.time`.
pub fn as_of(as_of: Option<&pb::AsOf>, v: &mut Violations) -> Option<Option<AsOf>> {
    let Some(point) = as_of.and_then(|as_of| as_of.point.as_ref()) else {
        return Some(None);
    };
    match point {
        pb::as_of::Point::Position(position) => match u64::try_from(*position) {
            Ok(position) => Some(Some(AsOf::Position(position))),
            Err(_) => {
                v.add("as_of.position", format!("must be 0 or more, got {position}"));
                None
            }
        },
        pb::as_of::Point::Time(time) => {
            if !(MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&time.seconds)
                || !(0..1_000_000_000).contains(&time.nanos)
            {
                v.add(
                    "as_of.time",
                    "must be a valid timestamp: seconds within 0001-01-01 … 9999-12-31, nanos within 0 … 999999999",
                );
                return None;
            }
            let micros = time.seconds * 1_000_000 + i64::from(time.nanos / 1_000);
            Some(Some(AsOf::Time(paycore_domain::Timestamp::from_micros(micros))))
        }
    }
}

/// A required `as_of` point: absent is a violation on `as_of`.
pub fn required_as_of(as_of: Option<&pb::AsOf>, v: &mut Violations) -> Option<AsOf> {
    match self::as_of(as_of, v)? {
        Some(point) => Some(point),
        None => {
            v.add("as_of", "required: a position or a time");
            None
        }
    }
}

pub fn currency(code: &str, field: &str, v: &mut Violations) -> Option<Currency> {
    if code.is_empty() {
        v.add(field, "is required");
        return None;
    }
    v.check(field, code.parse::<Currency>())
}

/// A required `Money` message in `field`.
pub fn money(money: Option<&pb::Money>, field: &str, v: &mut Violations) -> Option<Money> {
    let Some(money) = money else {
        v.add(field, "is required");
        return None;
    };
    let currency = currency(&money.currency, &format!("{field}.currency"), v)?;
    Some(Money::new(money.amount, currency))
}

pub fn meta(entries: &BTreeMap<String, String>, field: &str, v: &mut Violations) -> Option<Meta> {
    Meta::parse(entries.iter().map(|(k, val)| (k.clone(), val.clone())), field, v)
}

fn employment_status(value: i32, field: &str, v: &mut Violations) -> Option<Option<EmploymentStatus>> {
    use pb::EmploymentStatus as P;
    match P::try_from(value) {
        Ok(P::Unspecified) => Some(None),
        Ok(P::Student) => Some(Some(EmploymentStatus::Student)),
        Ok(P::Employed) => Some(Some(EmploymentStatus::Employed)),
        Ok(P::SelfEmployed) => Some(Some(EmploymentStatus::SelfEmployed)),
        Ok(P::Searching) => Some(Some(EmploymentStatus::Searching)),
        Ok(P::NotEmployed) => Some(Some(EmploymentStatus::NotEmployed)),
        Err(_) => {
            v.add(field, format!("unknown employment status {value}"));
            None
        }
    }
}

fn document_type(value: i32, field: &str, v: &mut Violations) -> Option<DocumentType> {
    use pb::DocumentType as P;
    match P::try_from(value) {
        Ok(P::NationalId) => Some(DocumentType::NationalId),
        Ok(P::Passport) => Some(DocumentType::Passport),
        Ok(P::Unspecified) => {
            v.add(field, "is required");
            None
        }
        Err(_) => {
            v.add(field, format!("unknown document type {value}"));
            None
        }
    }
}

pub fn date(date: &pb::Date, field: &str, v: &mut Violations) -> Option<Date> {
    let parsed = match (
        u16::try_from(date.year),
        u8::try_from(date.month),
        u8::try_from(date.day),
    ) {
        (Ok(year), Ok(month), Ok(day)) if year <= 9999 => Date::new(year, month, day),
        _ => None,
    };
    if parsed.is_none() {
        v.add(
            field,
            format!(
                "{:04}-{:02}-{:02} is not a valid date (year 1-9999, month 1-12, day of the month)",
                date.year, date.month, date.day
            ),
        );
    }
    parsed
}

fn document(document: &pb::IdentityDocument, field: &str, v: &mut Violations) -> Option<IdentityDocument> {
    let document_type = document_type(document.r#type, &format!("{field}.type"), v);
    let expiration_date = match &document.expiration_date {
        None => Some(None),
        Some(d) => date(d, &format!("{field}.expiration_date"), v).map(Some),
    };
    let file = |text: &Option<String>, name: &str, v: &mut Violations| {
        optional_id::<FileId>(text.as_deref(), &format!("{field}.{name}"), v)
    };
    let front_file_id = file(&document.front_file_id, "front_file_id", v);
    let back_file_id = file(&document.back_file_id, "back_file_id", v);
    let selfie_file_id = file(&document.selfie_file_id, "selfie_file_id", v);
    Some(IdentityDocument {
        document_type: document_type?,
        country: document.country.clone(),
        number: document.number.clone(),
        expiration_date: expiration_date?,
        front_file_id: front_file_id?,
        back_file_id: back_file_id?,
        selfie_file_id: selfie_file_id?,
    })
}

/// An identity, checked in full (enums, dates, file IDs and the domain's own
/// rules on names, email, phone and countries).
pub fn identity(identity: &pb::Identity, field: &str, v: &mut Violations) -> Option<Identity> {
    let employment_status = employment_status(
        identity.employment_status,
        &format!("{field}.employment_status"),
        v,
    );
    let document = match &identity.document {
        None => Some(None),
        Some(d) => document(d, &format!("{field}.document"), v).map(Some),
    };
    let address = identity.address.as_ref().map(|a| Address {
        line_1: a.line_1.clone(),
        line_2: a.line_2.clone(),
        postal_code: a.postal_code.clone(),
        city: a.city.clone(),
        region: a.region.clone(),
        country: a.country.clone(),
    });
    let parsed = Identity {
        first_name: identity.first_name.clone(),
        last_name: identity.last_name.clone(),
        email_address: identity.email_address.clone(),
        phone_number: identity.phone_number.clone(),
        nationality: identity.nationality.clone(),
        employment_status: employment_status.flatten(),
        address,
        document: document.clone().flatten(),
    };
    // The decider validates again; doing it here reports these problems
    // together with the ones only the edge can see.
    let mut rules = Violations::new();
    parsed.validate(field, &mut rules);
    let valid = rules.is_empty();
    v.extend(rules);
    (valid && employment_status.is_some() && document.is_some()).then_some(parsed)
}

/// The paths of an update mask, each checked against `allowed`.
#[derive(Debug)]
pub struct Mask(BTreeSet<String>);

impl Mask {
    pub fn parse(
        mask: Option<&prost_types::FieldMask>,
        allowed: &[&str],
        v: &mut Violations,
    ) -> Option<Self> {
        let paths = mask.map(|m| m.paths.as_slice()).unwrap_or_default();
        let allowed_list = allowed.join(", ");
        if paths.is_empty() {
            v.add(
                "update_mask",
                format!("is required: name the fields to change ({allowed_list})"),
            );
            return None;
        }
        let mut ok = true;
        for path in paths {
            if !allowed.contains(&path.as_str()) {
                v.add(
                    "update_mask",
                    format!("unknown path `{path}`; allowed: {allowed_list}"),
                );
                ok = false;
            }
        }
        ok.then(|| Self(paths.iter().cloned().collect()))
    }

    pub fn has(&self, path: &str) -> bool {
        self.0.contains(path)
    }
}

/// `page_size` and `page_token` of a list request.
pub fn page_request(page_size: i32, page_token: &str, v: &mut Violations) -> Option<PageRequest> {
    let size = match usize::try_from(page_size) {
        Ok(0) => DEFAULT_PAGE_SIZE,
        Ok(size) if size <= MAX_PAGE_SIZE => size,
        _ => {
            v.add(
                "page_size",
                format!(
                    "must be between 1 and {MAX_PAGE_SIZE} (0 for the default, {DEFAULT_PAGE_SIZE}), got {page_size}"
                ),
            );
            return None;
        }
    };
    let token = (!page_token.is_empty()).then(|| page_token.to_owned());
    Some(PageRequest { size, token })
}

// ---------------------------------------------------------------- requests → commands

pub fn create_customer(
    request: &pb::CreateCustomerRequest,
    id: CustomerId,
    v: &mut Violations,
) -> Option<Command> {
    let identity = match &request.identity {
        None => Some(None),
        Some(i) => identity(i, "identity", v).map(Some),
    };
    let meta = meta(&request.meta, "meta", v);
    Some(Command::CreateCustomer {
        id,
        identity: identity?,
        meta: meta?,
    })
}

pub fn update_customer(request: &pb::UpdateCustomerRequest, v: &mut Violations) -> Option<Command> {
    let id = id::<CustomerId>(&request.customer_id, "customer_id", v);
    let mask = Mask::parse(request.update_mask.as_ref(), &["identity", "meta"], v)?;
    let identity = if mask.has("identity") {
        match &request.identity {
            None => Some(Some(None)),
            Some(i) => identity(i, "identity", v).map(|i| Some(Some(i))),
        }
    } else {
        Some(None)
    };
    let meta = if mask.has("meta") {
        meta(&request.meta, "meta", v).map(Some)
    } else {
        Some(None)
    };
    Some(Command::UpdateCustomer {
        id: id?,
        identity: identity?,
        meta: meta?,
    })
}

pub fn create_account(
    request: &pb::CreateAccountRequest,
    id: AccountId,
    v: &mut Violations,
) -> Option<Command> {
    let currency = currency(&request.currency, "currency", v);
    let customer_id = optional_id::<CustomerId>(request.customer_id.as_deref(), "customer_id", v);
    let meta = meta(&request.meta, "meta", v);
    Some(Command::CreateAccount {
        id,
        currency: currency?,
        customer_id: customer_id?,
        allow_negative_balance: request.allow_negative_balance,
        meta: meta?,
    })
}

/// `magic_transaction` is the ID of the transaction a `balance` change records.
pub fn update_account(
    request: &pb::UpdateAccountRequest,
    magic_transaction: TransactionId,
    v: &mut Violations,
) -> Option<Command> {
    let id = id::<AccountId>(&request.account_id, "account_id", v);
    let mask = Mask::parse(
        request.update_mask.as_ref(),
        &["allow_negative_balance", "balance", "meta"],
        v,
    )?;
    let allow_negative_balance = mask
        .has("allow_negative_balance")
        .then_some(request.allow_negative_balance);
    let balance = if mask.has("balance") {
        money(request.balance.as_ref(), "balance", v).map(|m| Some((m, magic_transaction)))
    } else {
        Some(None)
    };
    let meta = if mask.has("meta") {
        meta(&request.meta, "meta", v).map(Some)
    } else {
        Some(None)
    };
    Some(Command::UpdateAccount {
        id: id?,
        allow_negative_balance,
        meta: meta?,
        balance: balance?,
    })
}

/// The IDs a new transfer needs.
#[derive(Clone, Copy, Debug)]
pub struct TransferIds {
    pub transfer: TransferId,
    pub source_transaction: TransactionId,
    pub destination_transaction: TransactionId,
}

pub fn create_transfer(
    request: &pb::CreateTransferRequest,
    ids: TransferIds,
    v: &mut Violations,
) -> Option<Command> {
    let source = id::<AccountId>(&request.source_account_id, "source_account_id", v);
    let destination = id::<AccountId>(&request.destination_account_id, "destination_account_id", v);
    let value = money(request.value.as_ref(), "value", v);
    // The decider checks these too; checking here reports them together with
    // the parsing problems.
    let positive = value.is_none_or(|value| value.amount > 0);
    if !positive {
        v.add("value.amount", "must be positive");
    }
    let distinct = source.is_none() || source != destination;
    if !distinct {
        v.add("destination_account_id", "must differ from source_account_id");
    }
    let meta = meta(&request.meta, "meta", v);
    if !(positive && distinct) {
        return None;
    }
    Some(Command::CreateTransfer {
        id: ids.transfer,
        source_account_id: source?,
        destination_account_id: destination?,
        value: value?,
        meta: meta?,
        source_transaction_id: ids.source_transaction,
        destination_transaction_id: ids.destination_transaction,
    })
}

pub fn update_transfer(request: &pb::UpdateTransferRequest, v: &mut Violations) -> Option<Command> {
    let id = id::<TransferId>(&request.transfer_id, "transfer_id", v);
    let mask = Mask::parse(request.update_mask.as_ref(), &["meta"], v);
    let meta = meta(&request.meta, "meta", v);
    mask?;
    Some(Command::UpdateTransfer { id: id?, meta: meta? })
}

pub fn update_project(request: &pb::UpdateProjectRequest, v: &mut Violations) -> Option<Command> {
    let mask = Mask::parse(request.update_mask.as_ref(), &["meta"], v);
    let meta = meta(&request.meta, "meta", v);
    mask?;
    Some(Command::UpdateProject { meta: meta? })
}

// ---------------------------------------------------------------- domain → proto

pub fn timestamp(at: paycore_domain::Timestamp) -> prost_types::Timestamp {
    let micros = at.micros();
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        // In 0..1_000_000_000, so it fits.
        nanos: i32::try_from(micros.rem_euclid(1_000_000) * 1_000).unwrap_or(0),
    }
}

pub fn money_pb(money: Money) -> pb::Money {
    pb::Money {
        currency: money.currency.code().to_owned(),
        amount: money.amount,
    }
}

pub fn meta_pb(meta: &Meta) -> BTreeMap<String, String> {
    meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub fn environment_pb(environment: Environment) -> pb::Environment {
    match environment {
        Environment::Sandbox => pb::Environment::Sandbox,
        Environment::Live => pb::Environment::Live,
    }
}

pub fn project_pb(project: &Project) -> pb::Project {
    pb::Project {
        id: project.id.to_string(),
        created_at: Some(timestamp(project.created_at)),
        meta: meta_pb(&project.meta),
        name: project.name.clone(),
        environment: environment_pb(project.environment).into(),
    }
}

fn employment_status_pb(status: EmploymentStatus) -> pb::EmploymentStatus {
    match status {
        EmploymentStatus::Student => pb::EmploymentStatus::Student,
        EmploymentStatus::Employed => pb::EmploymentStatus::Employed,
        EmploymentStatus::SelfEmployed => pb::EmploymentStatus::SelfEmployed,
        EmploymentStatus::Searching => pb::EmploymentStatus::Searching,
        EmploymentStatus::NotEmployed => pb::EmploymentStatus::NotEmployed,
    }
}

fn document_type_pb(document_type: DocumentType) -> pb::DocumentType {
    match document_type {
        DocumentType::NationalId => pb::DocumentType::NationalId,
        DocumentType::Passport => pb::DocumentType::Passport,
    }
}

pub fn identity_pb(identity: &Identity) -> pb::Identity {
    pb::Identity {
        first_name: identity.first_name.clone(),
        last_name: identity.last_name.clone(),
        email_address: identity.email_address.clone(),
        phone_number: identity.phone_number.clone(),
        nationality: identity.nationality.clone(),
        employment_status: identity
            .employment_status
            .map_or(pb::EmploymentStatus::Unspecified, employment_status_pb)
            .into(),
        address: identity.address.as_ref().map(|a| pb::Address {
            line_1: a.line_1.clone(),
            line_2: a.line_2.clone(),
            postal_code: a.postal_code.clone(),
            city: a.city.clone(),
            region: a.region.clone(),
            country: a.country.clone(),
        }),
        document: identity.document.as_ref().map(|d| pb::IdentityDocument {
            r#type: document_type_pb(d.document_type).into(),
            country: d.country.clone(),
            number: d.number.clone(),
            expiration_date: d.expiration_date.map(|date| pb::Date {
                year: date.year.into(),
                month: date.month.into(),
                day: date.day.into(),
            }),
            front_file_id: d.front_file_id.map(|id| id.to_string()),
            back_file_id: d.back_file_id.map(|id| id.to_string()),
            selfie_file_id: d.selfie_file_id.map(|id| id.to_string()),
        }),
    }
}

pub fn customer_pb(customer: &Customer) -> pb::Customer {
    pb::Customer {
        id: customer.id.to_string(),
        created_at: Some(timestamp(customer.created_at)),
        project_id: customer.project_id.to_string(),
        identity: customer.identity.as_ref().map(identity_pb),
        meta: meta_pb(&customer.meta),
    }
}

pub fn account_pb(account: &Account) -> pb::Account {
    pb::Account {
        id: account.id.to_string(),
        created_at: Some(timestamp(account.created_at)),
        project_id: account.project_id.to_string(),
        customer_id: account.customer_id.map(|id| id.to_string()),
        balance: Some(money_pb(account.balance)),
        allow_negative_balance: account.allow_negative_balance,
        meta: meta_pb(&account.meta),
    }
}

pub fn transaction_type_pb(kind: TransactionKind) -> pb::TransactionType {
    match kind {
        TransactionKind::Magic => pb::TransactionType::Magic,
        TransactionKind::TransferSource(_) => pb::TransactionType::TransferSource,
        TransactionKind::TransferDestination(_) => pb::TransactionType::TransferDestination,
        TransactionKind::CardPayin(_) => pb::TransactionType::CardPayin,
        TransactionKind::CardPayinRefund(_) => pb::TransactionType::CardPayinRefund,
        TransactionKind::CardPayinRefundFailure(_) => pb::TransactionType::CardPayinRefundFailure,
        TransactionKind::BankPayout(_) => pb::TransactionType::BankPayout,
        TransactionKind::BankPayoutFailure(_) => pb::TransactionType::BankPayoutFailure,
        TransactionKind::BankPayin(_) => pb::TransactionType::BankPayin,
    }
}

/// `AccountService.GetAccountAt`'s answer.
pub fn account_at_pb(history: &AccountHistory) -> pb::AccountAt {
    pb::AccountAt {
        account: Some(account_pb(&history.account)),
        position: i64::try_from(history.position).unwrap_or(i64::MAX),
        recorded_at: Some(timestamp(history.recorded_at)),
    }
}

pub fn transaction_pb(transaction: &paycore_domain::Transaction) -> pb::Transaction {
    pb::Transaction {
        id: transaction.id.to_string(),
        created_at: Some(timestamp(transaction.created_at)),
        project_id: transaction.project_id.to_string(),
        account_id: transaction.account_id.to_string(),
        r#type: transaction_type_pb(transaction.kind).into(),
        value: Some(money_pb(transaction.value)),
        balance_after: Some(money_pb(transaction.balance_after)),
        transfer_id: transaction.kind.transfer_id().map(|id| id.to_string()),
        card_payin_id: match transaction.kind {
            TransactionKind::CardPayin(id) => Some(id.to_string()),
            _ => None,
        },
        card_payin_refund_id: match transaction.kind {
            TransactionKind::CardPayinRefund(id) | TransactionKind::CardPayinRefundFailure(id) => {
                Some(id.to_string())
            }
            _ => None,
        },
        bank_payout_id: match transaction.kind {
            TransactionKind::BankPayout(id) | TransactionKind::BankPayoutFailure(id) => Some(id.to_string()),
            _ => None,
        },
        bank_payin_id: match transaction.kind {
            TransactionKind::BankPayin(id) => Some(id.to_string()),
            _ => None,
        },
    }
}

pub fn transfer_pb(transfer: &Transfer) -> pb::Transfer {
    pb::Transfer {
        id: transfer.id.to_string(),
        created_at: Some(timestamp(transfer.created_at)),
        project_id: transfer.project_id.to_string(),
        source_account_id: transfer.source_account_id.to_string(),
        source_transaction_id: transfer.source_transaction_id.to_string(),
        destination_account_id: transfer.destination_account_id.to_string(),
        destination_transaction_id: transfer.destination_transaction_id.to_string(),
        value: Some(money_pb(transfer.value)),
        meta: meta_pb(&transfer.meta),
        exchange: transfer.exchange.as_ref().map(exchange_pb),
    }
}

/// The conversion a cross-currency transfer recorded; rates as exact decimals.
pub fn exchange_pb(exchange: &paycore_domain::events::Exchange) -> pb::Exchange {
    pb::Exchange {
        destination_value: Some(money_pb(exchange.destination_value)),
        mid_rate: exchange.mid_rate.to_string(),
        spread_bps: exchange.spread_bps,
        rate_used: exchange.rate_used.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paycore_domain::{DomainError, FieldViolation, ProjectId, Timestamp};
    use uuid::Uuid;

    fn fields(v: Violations) -> Vec<String> {
        match v.into_result() {
            Ok(()) => Vec::new(),
            Err(DomainError::Invalid(fields)) => fields.into_iter().map(|f| f.field).collect(),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    fn violations(v: Violations) -> Vec<FieldViolation> {
        match v.into_result() {
            Ok(()) => Vec::new(),
            Err(DomainError::Invalid(fields)) => fields,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    fn acc(n: u128) -> AccountId {
        AccountId::from_uuid(Uuid::from_u128(n))
    }

    fn eur(amount: i64) -> Option<pb::Money> {
        Some(pb::Money {
            currency: "EUR".into(),
            amount,
        })
    }

    fn ids() -> TransferIds {
        TransferIds {
            transfer: TransferId::from_uuid(Uuid::from_u128(10)),
            source_transaction: TransactionId::from_uuid(Uuid::from_u128(11)),
            destination_transaction: TransactionId::from_uuid(Uuid::from_u128(12)),
        }
    }

    #[test]
    fn page_size_bounds() {
        let ok = |size, token: &str| {
            let mut v = Violations::new();
            let page = page_request(size, token, &mut v);
            assert!(v.is_empty());
            page.map(|p| (p.size, p.token))
        };
        assert_eq!(ok(0, ""), Some((DEFAULT_PAGE_SIZE, None)));
        assert_eq!(ok(1, "abc"), Some((1, Some("abc".to_owned()))));
        assert_eq!(ok(100, ""), Some((100, None)));
        for bad in [-1, 101, i32::MIN, i32::MAX] {
            let mut v = Violations::new();
            assert!(page_request(bad, "", &mut v).is_none());
            assert_eq!(fields(v), ["page_size"]);
        }
    }

    #[test]
    fn ids_name_their_field() {
        let mut v = Violations::new();
        let good = acc(1).to_string();
        assert_eq!(id::<AccountId>(&good, "account_id", &mut v), Some(acc(1)));
        assert!(id::<AccountId>("", "a", &mut v).is_none());
        assert!(id::<AccountId>(&good.replace("acc_", "cus_"), "b", &mut v).is_none());
        assert!(id::<AccountId>("acc_nope", "c", &mut v).is_none());
        assert_eq!(optional_id::<AccountId>(None, "d", &mut v), Some(None));
        assert!(optional_id::<AccountId>(Some(""), "e", &mut v).is_none());
        let found = violations(v);
        assert_eq!(
            found.iter().map(|f| f.field.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c", "e"]
        );
        assert_eq!(found[0].description, "is required");
        assert!(found[1].description.contains("acc_"), "{}", found[1].description);
    }

    #[test]
    fn create_transfer_reports_every_problem_at_once() {
        let request = pb::CreateTransferRequest {
            source_account_id: "cus_x".into(),
            destination_account_id: String::new(),
            value: Some(pb::Money {
                currency: "EURO".into(),
                amount: 5,
            }),
            meta: [("_secret".to_owned(), "x".to_owned())].into(),
        };
        let mut v = Violations::new();
        assert!(create_transfer(&request, ids(), &mut v).is_none());
        assert_eq!(
            fields(v),
            [
                "source_account_id",
                "destination_account_id",
                "value.currency",
                "meta._secret"
            ]
        );

        let request = pb::CreateTransferRequest {
            source_account_id: acc(1).to_string(),
            destination_account_id: acc(1).to_string(),
            value: eur(0),
            meta: BTreeMap::new(),
        };
        let mut v = Violations::new();
        assert!(create_transfer(&request, ids(), &mut v).is_none());
        assert_eq!(fields(v), ["value.amount", "destination_account_id"]);

        let request = pb::CreateTransferRequest {
            value: None,
            ..request
        };
        let mut v = Violations::new();
        assert!(create_transfer(&request, ids(), &mut v).is_none());
        assert_eq!(fields(v), ["value", "destination_account_id"]);
    }

    #[test]
    fn create_transfer_builds_the_command() {
        let request = pb::CreateTransferRequest {
            source_account_id: acc(1).to_string(),
            destination_account_id: acc(2).to_string(),
            value: eur(250),
            meta: [("order".to_owned(), "42".to_owned())].into(),
        };
        let mut v = Violations::new();
        let command = create_transfer(&request, ids(), &mut v).unwrap();
        assert!(v.is_empty());
        let Command::CreateTransfer {
            id,
            source_account_id,
            destination_account_id,
            value,
            meta,
            source_transaction_id,
            destination_transaction_id,
        } = command
        else {
            panic!("wrong command");
        };
        assert_eq!(id, ids().transfer);
        assert_eq!((source_account_id, destination_account_id), (acc(1), acc(2)));
        assert_eq!(value, Money::new(250, Currency::EUR));
        assert_eq!(meta.get("order"), Some("42"));
        assert_eq!(source_transaction_id, ids().source_transaction);
        assert_eq!(destination_transaction_id, ids().destination_transaction);
    }

    #[test]
    fn create_account_parses_currency_customer_and_meta() {
        let id = acc(3);
        let request = pb::CreateAccountRequest {
            currency: "JPY".into(),
            allow_negative_balance: true,
            customer_id: Some(CustomerId::from_uuid(Uuid::from_u128(4)).to_string()),
            meta: BTreeMap::new(),
        };
        let mut v = Violations::new();
        let command = create_account(&request, id, &mut v).unwrap();
        assert_eq!(
            command,
            Command::CreateAccount {
                id,
                currency: "JPY".parse().unwrap(),
                customer_id: Some(CustomerId::from_uuid(Uuid::from_u128(4))),
                allow_negative_balance: true,
                meta: Meta::default(),
            }
        );
        let request = pb::CreateAccountRequest {
            currency: "eur".into(),
            customer_id: Some("acc_1".into()),
            ..request
        };
        let mut v = Violations::new();
        assert!(create_account(&request, id, &mut v).is_none());
        assert_eq!(fields(v), ["currency", "customer_id"]);
        let mut v = Violations::new();
        assert!(create_account(&pb::CreateAccountRequest::default(), id, &mut v).is_none());
        assert_eq!(violations(v)[0].description, "is required");
    }

    fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
        Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        })
    }

    #[test]
    fn update_masks() {
        let base = pb::UpdateAccountRequest {
            account_id: acc(1).to_string(),
            update_mask: mask(&["balance", "allow_negative_balance"]),
            allow_negative_balance: true,
            balance: eur(-500),
            meta: [("k".to_owned(), "v".to_owned())].into(),
        };
        let tx = TransactionId::from_uuid(Uuid::from_u128(9));
        let mut v = Violations::new();
        let command = update_account(&base, tx, &mut v).unwrap();
        assert_eq!(
            command,
            Command::UpdateAccount {
                id: acc(1),
                allow_negative_balance: Some(true),
                meta: None,
                balance: Some((Money::new(-500, Currency::EUR), tx)),
            }
        );
        for bad in [None, mask(&[]), mask(&["meta", "id"]), mask(&["*"])] {
            let request = pb::UpdateAccountRequest {
                update_mask: bad.clone(),
                ..base.clone()
            };
            let mut v = Violations::new();
            assert!(update_account(&request, tx, &mut v).is_none(), "{bad:?}");
            assert_eq!(fields(v), ["update_mask"]);
        }
        let request = pb::UpdateAccountRequest {
            update_mask: mask(&["balance"]),
            balance: None,
            ..base.clone()
        };
        let mut v = Violations::new();
        assert!(update_account(&request, tx, &mut v).is_none());
        assert_eq!(fields(v), ["balance"]);

        let request = pb::UpdateTransferRequest {
            transfer_id: "trf_bad".into(),
            update_mask: mask(&["metadata"]),
            meta: BTreeMap::new(),
        };
        let mut v = Violations::new();
        assert!(update_transfer(&request, &mut v).is_none());
        assert_eq!(fields(v), ["transfer_id", "update_mask"]);

        let request = pb::UpdateProjectRequest {
            update_mask: mask(&["meta"]),
            meta: [("a".to_owned(), "b".to_owned())].into(),
        };
        let mut v = Violations::new();
        let Some(Command::UpdateProject { meta }) = update_project(&request, &mut v) else {
            panic!("expected UpdateProject");
        };
        assert_eq!(meta.get("a"), Some("b"));
    }

    fn full_identity() -> pb::Identity {
        pb::Identity {
            first_name: "John".into(),
            last_name: "McJohn".into(),
            email_address: Some("john@example.com".into()),
            phone_number: Some("+34600111222".into()),
            nationality: Some("ES".into()),
            employment_status: pb::EmploymentStatus::SelfEmployed.into(),
            address: Some(pb::Address {
                line_1: "Calle Ejemplo, 31".into(),
                line_2: "2o 1a".into(),
                postal_code: "08102".into(),
                city: "L'Hospitalet de Llobregat".into(),
                region: "Barcelona".into(),
                country: "ES".into(),
            }),
            document: Some(pb::IdentityDocument {
                r#type: pb::DocumentType::Passport.into(),
                country: "ES".into(),
                number: "12345678R".into(),
                expiration_date: Some(pb::Date {
                    year: 2030,
                    month: 2,
                    day: 28,
                }),
                front_file_id: Some(FileId::from_uuid(Uuid::from_u128(5)).to_string()),
                back_file_id: None,
                selfie_file_id: None,
            }),
        }
    }

    #[test]
    fn identity_round_trips() {
        let mut v = Violations::new();
        let parsed = identity(&full_identity(), "identity", &mut v).unwrap();
        assert!(v.is_empty());
        assert_eq!(parsed.employment_status, Some(EmploymentStatus::SelfEmployed));
        let document = parsed.document.clone().unwrap();
        assert_eq!(document.document_type, DocumentType::Passport);
        assert_eq!(document.expiration_date, Date::new(2030, 2, 28));
        assert_eq!(identity_pb(&parsed), full_identity());
    }

    #[test]
    fn identity_reports_enums_dates_files_and_domain_rules() {
        let mut bad = full_identity();
        bad.first_name = String::new();
        bad.email_address = Some("nope".into());
        bad.employment_status = 42;
        if let Some(document) = bad.document.as_mut() {
            document.r#type = pb::DocumentType::Unspecified.into();
            document.expiration_date = Some(pb::Date {
                year: 2023,
                month: 2,
                day: 29,
            });
            document.selfie_file_id = Some("acc_x".into());
        }
        let mut v = Violations::new();
        assert!(identity(&bad, "identity", &mut v).is_none());
        assert_eq!(
            fields(v),
            [
                "identity.employment_status",
                "identity.document.type",
                "identity.document.expiration_date",
                "identity.document.selfie_file_id",
                "identity.first_name",
                "identity.email_address",
            ]
        );
        let mut unspecified = full_identity();
        unspecified.employment_status = 0;
        let mut v = Violations::new();
        assert_eq!(
            identity(&unspecified, "identity", &mut v)
                .unwrap()
                .employment_status,
            None
        );
    }

    #[test]
    fn update_customer_can_clear_identity() {
        let id = CustomerId::from_uuid(Uuid::from_u128(6));
        let request = pb::UpdateCustomerRequest {
            customer_id: id.to_string(),
            update_mask: mask(&["identity"]),
            identity: None,
            meta: BTreeMap::new(),
        };
        let mut v = Violations::new();
        assert_eq!(
            update_customer(&request, &mut v),
            Some(Command::UpdateCustomer {
                id,
                identity: Some(None),
                meta: None
            })
        );
        let request = pb::UpdateCustomerRequest {
            update_mask: mask(&["meta"]),
            identity: Some(full_identity()),
            ..request
        };
        let mut v = Violations::new();
        assert_eq!(
            update_customer(&request, &mut v),
            Some(Command::UpdateCustomer {
                id,
                identity: None,
                meta: Some(Meta::default())
            })
        );
    }

    #[test]
    fn as_of_points_parse_or_name_their_field() {
        let point = |point| pb::AsOf { point: Some(point) };
        let time = |seconds, nanos| point(pb::as_of::Point::Time(prost_types::Timestamp { seconds, nanos }));
        let mut v = Violations::new();
        assert_eq!(as_of(None, &mut v), Some(None));
        assert_eq!(as_of(Some(&pb::AsOf { point: None }), &mut v), Some(None));
        assert_eq!(
            as_of(Some(&point(pb::as_of::Point::Position(7))), &mut v),
            Some(Some(AsOf::Position(7)))
        );
        // Finer than a microsecond is dropped; before 1970 is fine.
        assert_eq!(
            as_of(Some(&time(-2, 1_999)), &mut v),
            Some(Some(AsOf::Time(Timestamp::from_micros(-1_999_999))))
        );
        assert!(v.is_empty());
        for (bad, field) in [
            (point(pb::as_of::Point::Position(-1)), "as_of.position"),
            (time(0, -1), "as_of.time"),
            (time(0, 1_000_000_000), "as_of.time"),
            (time(MAX_TIMESTAMP_SECONDS + 1, 0), "as_of.time"),
            (time(MIN_TIMESTAMP_SECONDS - 1, 0), "as_of.time"),
        ] {
            let mut v = Violations::new();
            assert_eq!(as_of(Some(&bad), &mut v), None);
            assert_eq!(fields(v), [field]);
        }
        let mut v = Violations::new();
        assert_eq!(required_as_of(None, &mut v), None);
        assert_eq!(fields(v), ["as_of"]);
    }

    #[test]
    fn timestamps_split_into_seconds_and_nanos() {
        assert_eq!(
            timestamp(Timestamp::from_micros(1_500_000)),
            prost_types::Timestamp {
                seconds: 1,
                nanos: 500_000_000
            }
        );
        assert_eq!(
            timestamp(Timestamp::from_micros(-1)),
            prost_types::Timestamp {
                seconds: -1,
                nanos: 999_999_000
            }
        );
    }

    #[test]
    fn transactions_carry_type_and_cause() {
        let transfer = TransferId::from_uuid(Uuid::from_u128(7));
        let transaction = paycore_domain::Transaction {
            id: TransactionId::from_uuid(Uuid::from_u128(8)),
            account_id: acc(1),
            project_id: ProjectId::from_uuid(Uuid::from_u128(2)),
            kind: TransactionKind::TransferSource(transfer),
            value: Money::new(-100, Currency::EUR),
            balance_after: Money::new(900, Currency::EUR),
            created_at: Timestamp::from_micros(0),
        };
        let pb = transaction_pb(&transaction);
        assert_eq!(pb.r#type(), pb::TransactionType::TransferSource);
        assert_eq!(pb.transfer_id, Some(transfer.to_string()));
        assert_eq!(pb.value, eur(-100));
        assert_eq!(pb.balance_after, eur(900));
        let magic = transaction_pb(&paycore_domain::Transaction {
            kind: TransactionKind::Magic,
            ..transaction
        });
        assert_eq!(magic.r#type(), pb::TransactionType::Magic);
        assert_eq!(magic.transfer_id, None);
    }

    #[test]
    fn exchanges_show_rates_as_exact_decimals() {
        let rate = |text| paycore_domain::fx::Rate::parse(text).unwrap();
        let exchange = paycore_domain::events::Exchange {
            destination_value: Money::new(1_080, "USD".parse().unwrap()),
            mid_rate: rate("1.0842"),
            spread_bps: 30,
            rate_used: rate("1.0809474"),
        };
        assert_eq!(
            exchange_pb(&exchange),
            pb::Exchange {
                destination_value: Some(pb::Money {
                    currency: "USD".into(),
                    amount: 1_080
                }),
                mid_rate: "1.0842".into(),
                spread_bps: 30,
                rate_used: "1.0809474".into(),
            }
        );
    }
}
