//! Which stream of the log holds which aggregate.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::bank::PayinReferenceCode;
use super::consumer_name::ConsumerName;
use super::iban::Iban;
use super::id::*;
use super::institution::InstitutionId;
use super::money::Currency;

/// An aggregate instance, and so one stream of the event log.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamRef {
    Project(ProjectId),
    ApiKey(ApiKeyId),
    Customer(CustomerId),
    Account(AccountId),
    Transfer(TransferId),
    /// The sum of all balances of one project in one currency. Only operations
    /// that bring money in or take it out of the project touch it, so plain
    /// transfers never contend on it.
    ProjectBalance(ProjectId, Currency),
    /// One idempotency key of one project.
    Idempotency(ProjectId, String),
    CardToken(CardTokenId),
    Card(CardId),
    CardPayin(CardPayinId),
    CardPayinRefund(CardPayinRefundId),
    BankAccount(BankAccountId),
    BankPayout(BankPayoutId),
    /// Every payout ever sent to one IBAN, from any project: the minirefs
    /// in use, so that two payouts to the IBAN within a year never share one.
    PayoutDestination(Iban),
    BankPayinReference(BankPayinReferenceId),
    /// Which reference owns a reference code. Codes are read from incoming
    /// transfers' concepts, so they are unique across all projects.
    PayinReferenceCode(PayinReferenceCode),
    BankPayin(BankPayinId),
    File(FileId),
    /// The exchange rate of one ordered currency pair (platform-wide).
    FxRate(Currency, Currency),
    /// The checkpoint of one durable subscription consumer of a project.
    Consumer(ProjectId, ConsumerName),
    /// Which sandbox project the deployment's first start created
    /// (platform-wide, one stream: `deployment-bootstrap`).
    Deployment,
    /// Whether a project activated one institution of the connector's
    /// catalogue (`institution-prj_….SANDBOX_GB_BANK`).
    Institution(ProjectId, InstitutionId),
    AggregationConnection(AggregationConnectionId),
    AggregationImport(AggregationImportId),
    /// An aggregated account, and its transactions (recorded in batches).
    AggregatedAccount(AggregatedAccountId),
}

impl StreamRef {
    /// The stream category: the part of the stream name before the first `-`.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Project(_) => "project",
            Self::ApiKey(_) => "apikey",
            Self::Customer(_) => "customer",
            Self::Account(_) => "account",
            Self::Transfer(_) => "transfer",
            Self::ProjectBalance(..) => "projectbalance",
            Self::Idempotency(..) => "idempotency",
            Self::CardToken(_) => "cardtoken",
            Self::Card(_) => "card",
            Self::CardPayin(_) => "cardpayin",
            Self::CardPayinRefund(_) => "cardpayinrefund",
            Self::BankAccount(_) => "bankaccount",
            Self::BankPayout(_) => "bankpayout",
            Self::PayoutDestination(_) => "payoutdestination",
            Self::BankPayinReference(_) => "bankpayinreference",
            Self::PayinReferenceCode(_) => "payinreferencecode",
            Self::BankPayin(_) => "bankpayin",
            Self::File(_) => "file",
            Self::FxRate(..) => "fxrate",
            Self::Consumer(..) => "consumer",
            Self::Deployment => "deployment",
            Self::Institution(..) => "institution",
            Self::AggregationConnection(_) => "aggregationconnection",
            Self::AggregationImport(_) => "aggregationimport",
            Self::AggregatedAccount(_) => "aggregatedaccount",
        }
    }

    /// The part of the stream name after the category.
    pub fn instance(&self) -> String {
        match self {
            Self::Project(id) => id.to_string(),
            Self::ApiKey(id) => id.to_string(),
            Self::Customer(id) => id.to_string(),
            Self::Account(id) => id.to_string(),
            Self::Transfer(id) => id.to_string(),
            Self::ProjectBalance(project, currency) => format!("{project}.{currency}"),
            Self::Idempotency(project, key) => format!("{project}.{key}"),
            Self::CardToken(id) => id.to_string(),
            Self::Card(id) => id.to_string(),
            Self::CardPayin(id) => id.to_string(),
            Self::CardPayinRefund(id) => id.to_string(),
            Self::BankAccount(id) => id.to_string(),
            Self::BankPayout(id) => id.to_string(),
            Self::PayoutDestination(iban) => iban.as_str().to_owned(),
            Self::BankPayinReference(id) => id.to_string(),
            Self::PayinReferenceCode(code) => code.as_str().to_owned(),
            Self::BankPayin(id) => id.to_string(),
            Self::File(id) => id.to_string(),
            Self::FxRate(from, to) => format!("{from}.{to}"),
            Self::Consumer(project, name) => format!("{project}.{name}"),
            Self::Deployment => "bootstrap".to_owned(),
            Self::Institution(project, institution) => format!("{project}.{institution}"),
            Self::AggregationConnection(id) => id.to_string(),
            Self::AggregationImport(id) => id.to_string(),
            Self::AggregatedAccount(id) => id.to_string(),
        }
    }

    /// The full stream name, `<category>-<instance>`.
    pub fn name(&self) -> String {
        format!("{}-{}", self.category(), self.instance())
    }

    /// The stream a name denotes, if it is one of ours (the inverse of
    /// [`StreamRef::name`]).
    pub fn parse(name: &str) -> Option<Self> {
        let (category, instance) = name.split_once('-')?;
        let scoped = || {
            let (project, rest) = instance.split_once('.')?;
            Some((project.parse::<ProjectId>().ok()?, rest))
        };
        match category {
            "project" => instance.parse().ok().map(Self::Project),
            "apikey" => instance.parse().ok().map(Self::ApiKey),
            "customer" => instance.parse().ok().map(Self::Customer),
            "account" => instance.parse().ok().map(Self::Account),
            "transfer" => instance.parse().ok().map(Self::Transfer),
            "projectbalance" => {
                let (project, currency) = scoped()?;
                Some(Self::ProjectBalance(project, currency.parse().ok()?))
            }
            "idempotency" => {
                let (project, key) = scoped()?;
                Some(Self::Idempotency(project, key.to_owned()))
            }
            "cardtoken" => instance.parse().ok().map(Self::CardToken),
            "card" => instance.parse().ok().map(Self::Card),
            "cardpayin" => instance.parse().ok().map(Self::CardPayin),
            "cardpayinrefund" => instance.parse().ok().map(Self::CardPayinRefund),
            "bankaccount" => instance.parse().ok().map(Self::BankAccount),
            "bankpayout" => instance.parse().ok().map(Self::BankPayout),
            "payoutdestination" => Iban::parse(instance).ok().map(Self::PayoutDestination),
            "bankpayinreference" => instance.parse().ok().map(Self::BankPayinReference),
            "payinreferencecode" => PayinReferenceCode::parse(instance)
                .ok()
                .filter(|code| code.as_str() == instance)
                .map(Self::PayinReferenceCode),
            "bankpayin" => instance.parse().ok().map(Self::BankPayin),
            "file" => instance.parse().ok().map(Self::File),
            "fxrate" => {
                let (from, to) = instance.split_once('.')?;
                Some(Self::FxRate(from.parse().ok()?, to.parse().ok()?))
            }
            "consumer" => {
                let (project, name) = scoped()?;
                Some(Self::Consumer(project, ConsumerName::parse(name).ok()?))
            }
            "deployment" => (instance == "bootstrap").then_some(Self::Deployment),
            "institution" => {
                let (project, institution) = scoped()?;
                Some(Self::Institution(
                    project,
                    InstitutionId::parse(institution).ok()?,
                ))
            }
            "aggregationconnection" => instance.parse().ok().map(Self::AggregationConnection),
            "aggregationimport" => instance.parse().ok().map(Self::AggregationImport),
            "aggregatedaccount" => instance.parse().ok().map(Self::AggregatedAccount),
            _ => None,
        }
    }
}

impl fmt::Display for StreamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.category(), self.instance())
    }
}

impl fmt::Debug for StreamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The resource a command created or changed, as a serializable reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResourceRef {
    Project(ProjectId),
    ApiKey(ApiKeyId),
    Customer(CustomerId),
    Account(AccountId),
    Transfer(TransferId),
    // New resources go at the end: postcard records the variant's index.
    CardToken(CardTokenId),
    Card(CardId),
    CardPayin(CardPayinId),
    CardPayinRefund(CardPayinRefundId),
    BankAccount(BankAccountId),
    BankPayout(BankPayoutId),
    BankPayinReference(BankPayinReferenceId),
    BankPayin(BankPayinId),
    File(FileId),
    FxRate(Currency, Currency),
    AggregationConnection(AggregationConnectionId),
    AggregationImport(AggregationImportId),
    AggregatedAccount(AggregatedAccountId),
}

impl ResourceRef {
    pub fn stream(self) -> StreamRef {
        match self {
            Self::Project(id) => StreamRef::Project(id),
            Self::ApiKey(id) => StreamRef::ApiKey(id),
            Self::Customer(id) => StreamRef::Customer(id),
            Self::Account(id) => StreamRef::Account(id),
            Self::Transfer(id) => StreamRef::Transfer(id),
            Self::CardToken(id) => StreamRef::CardToken(id),
            Self::Card(id) => StreamRef::Card(id),
            Self::CardPayin(id) => StreamRef::CardPayin(id),
            Self::CardPayinRefund(id) => StreamRef::CardPayinRefund(id),
            Self::BankAccount(id) => StreamRef::BankAccount(id),
            Self::BankPayout(id) => StreamRef::BankPayout(id),
            Self::BankPayinReference(id) => StreamRef::BankPayinReference(id),
            Self::BankPayin(id) => StreamRef::BankPayin(id),
            Self::File(id) => StreamRef::File(id),
            Self::FxRate(from, to) => StreamRef::FxRate(from, to),
            Self::AggregationConnection(id) => StreamRef::AggregationConnection(id),
            Self::AggregationImport(id) => StreamRef::AggregationImport(id),
            Self::AggregatedAccount(id) => StreamRef::AggregatedAccount(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    #[allow(clippy::unwrap_used)]
    fn names_parse_back_to_their_stream() {
        let project = ProjectId::from_uuid(Uuid::from_u128(1));
        let streams = [
            StreamRef::Project(project),
            StreamRef::ApiKey(ApiKeyId::from_uuid(Uuid::from_u128(2))),
            StreamRef::Customer(CustomerId::from_uuid(Uuid::from_u128(3))),
            StreamRef::Account(AccountId::from_uuid(Uuid::from_u128(4))),
            StreamRef::Transfer(TransferId::from_uuid(Uuid::from_u128(5))),
            StreamRef::ProjectBalance(project, Currency::EUR),
            StreamRef::Idempotency(project, "order.42-retry".into()),
            StreamRef::CardToken(CardTokenId::from_uuid(Uuid::from_u128(6))),
            StreamRef::Card(CardId::from_uuid(Uuid::from_u128(7))),
            StreamRef::CardPayin(CardPayinId::from_uuid(Uuid::from_u128(8))),
            StreamRef::CardPayinRefund(CardPayinRefundId::from_uuid(Uuid::from_u128(9))),
            StreamRef::BankAccount(BankAccountId::from_uuid(Uuid::from_u128(10))),
            StreamRef::BankPayout(BankPayoutId::from_uuid(Uuid::from_u128(11))),
            StreamRef::PayoutDestination(Iban::parse("ES9121000418450200051332").unwrap()),
            StreamRef::BankPayinReference(BankPayinReferenceId::from_uuid(Uuid::from_u128(12))),
            StreamRef::PayinReferenceCode(PayinReferenceCode::from_index(12345)),
            StreamRef::BankPayin(BankPayinId::from_uuid(Uuid::from_u128(13))),
            StreamRef::File(FileId::from_uuid(Uuid::from_u128(14))),
            StreamRef::FxRate(Currency::EUR, Currency::USD),
            StreamRef::Consumer(project, ConsumerName::parse("billing-2_x").unwrap()),
            StreamRef::Deployment,
            StreamRef::Institution(project, InstitutionId::parse("SANDBOX_GB_BANK").unwrap()),
            StreamRef::AggregationConnection(AggregationConnectionId::from_uuid(Uuid::from_u128(15))),
            StreamRef::AggregationImport(AggregationImportId::from_uuid(Uuid::from_u128(16))),
            StreamRef::AggregatedAccount(AggregatedAccountId::from_uuid(Uuid::from_u128(17))),
        ];
        for stream in streams {
            assert_eq!(StreamRef::parse(&stream.name()), Some(stream.clone()), "{stream}");
        }
        for bad in [
            "",
            "account",
            "account-",
            "account-cus_x",
            "nope-1",
            "projectbalance-prj_x.EUR",
            "consumer-prj_x.billing",
            "deployment-other",
            "institution-prj_x.BANK",
            "aggregatedaccount-acc_x",
        ] {
            assert_eq!(StreamRef::parse(bad), None, "{bad}");
        }
    }
}
