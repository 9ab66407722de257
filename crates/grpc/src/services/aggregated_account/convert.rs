//! Accounts at other banks and their transactions: domain → proto (personal
//! data goes only into the `personal` sub-messages, [`account_personal_pb`],
//! [`transaction_personal_pb`]), and the list requests' filters.

use paycore_domain::aggregated_account::{
    AccountIdentifier, AccountOwner, AccountPersonal, AggregatedAccount, AggregatedAccountType,
    AggregatedTransaction, Balance, BalanceType, Counterparty, OwnerRole, TransactionPersonal,
    TransactionStatus,
};

use paycore_domain::Violations;
use paycore_projections::{AggregatedAccountsOf, AggregatedTransactionFilter};

use crate::convert::{self as shared, date_pb, money_pb, timestamp};
use crate::pb;
use crate::services::customer;

pub fn account_type_pb(account_type: AggregatedAccountType) -> pb::AggregatedAccountType {
    use pb::AggregatedAccountType as T;
    match account_type {
        AggregatedAccountType::Current => T::Current,
        AggregatedAccountType::Savings => T::Savings,
        AggregatedAccountType::CreditCard => T::CreditCard,
        AggregatedAccountType::Loan => T::Loan,
        AggregatedAccountType::Investment => T::Investment,
        AggregatedAccountType::Other => T::Other,
    }
}

pub fn balance_pb(balance: &Balance) -> pb::AggregatedBalance {
    use pb::AggregatedBalanceType as T;
    pb::AggregatedBalance {
        r#type: match balance.balance_type {
            BalanceType::ClosingBooked => T::ClosingBooked,
            BalanceType::Expected => T::Expected,
            BalanceType::InterimAvailable => T::InterimAvailable,
            BalanceType::InterimBooked => T::InterimBooked,
            BalanceType::OpeningBooked => T::OpeningBooked,
            BalanceType::ForwardAvailable => T::ForwardAvailable,
            BalanceType::CreditLimit => T::CreditLimit,
        }
        .into(),
        amount: Some(money_pb(balance.amount)),
        date: Some(date_pb(balance.date)),
    }
}

pub fn identifier_pb(identifier: &AccountIdentifier) -> pb::AggregatedAccountIdentifier {
    use pb::aggregated_account_identifier::Identifier;
    pb::AggregatedAccountIdentifier {
        identifier: Some(match identifier {
            AccountIdentifier::Iban(iban) => Identifier::Iban(iban.as_str().to_owned()),
            AccountIdentifier::Other { scheme, value } => Identifier::Other(pb::OtherAccountIdentifier {
                scheme: scheme.clone(),
                value: value.clone(),
            }),
        }),
    }
}

fn owner_pb(owner: &AccountOwner) -> pb::AggregatedAccountOwner {
    use pb::AggregatedAccountOwnerRole as R;
    pb::AggregatedAccountOwner {
        name: owner.name.clone(),
        role: match owner.role {
            OwnerRole::Owner => R::Owner,
            OwnerRole::CoOwner => R::CoOwner,
            OwnerRole::Representative => R::Representative,
        }
        .into(),
    }
}

pub fn account_personal_pb(personal: &AccountPersonal) -> pb::AggregatedAccountPersonal {
    pb::AggregatedAccountPersonal {
        bank_account_id: personal.bank_account_id.as_str().to_owned(),
        name: personal.name.clone(),
        identifier: personal.identifier.as_ref().map(identifier_pb),
        owners: personal.owners.iter().map(owner_pb).collect(),
    }
}

pub fn aggregated_account_pb(account: &AggregatedAccount) -> pb::AggregatedAccount {
    pb::AggregatedAccount {
        id: account.id.to_string(),
        discovered_at: Some(timestamp(account.discovered_at)),
        project_id: account.project_id.to_string(),
        connection_id: account.connection_id.to_string(),
        customer_id: account.customer_id.to_string(),
        r#type: account_type_pb(account.account_type).into(),
        currency: account.currency.code().to_owned(),
        personal: Some(account_personal_pb(&account.personal)),
        balances: account.balances.iter().map(balance_pb).collect(),
        disabled: account.is_disabled(),
        enabled_at: account.enabled_at.map(timestamp),
        archived_at: account.archived_at.map(timestamp),
        updated_at: Some(timestamp(account.updated_at)),
    }
}

fn counterparty_pb(counterparty: &Counterparty) -> pb::AggregatedCounterparty {
    pb::AggregatedCounterparty {
        name: counterparty.name.clone(),
        identifier: counterparty.identifier.as_ref().map(identifier_pb),
    }
}

pub fn transaction_personal_pb(personal: &TransactionPersonal) -> pb::AggregatedTransactionPersonal {
    pb::AggregatedTransactionPersonal {
        counterparty: personal.counterparty.as_ref().map(counterparty_pb),
        description: personal.description.clone(),
    }
}

pub fn aggregated_transaction_pb(transaction: &AggregatedTransaction) -> pb::AggregatedTransaction {
    pb::AggregatedTransaction {
        id: transaction.id.to_string(),
        bank_transaction_id: transaction.bank_transaction_id.as_str().to_owned(),
        status: match transaction.status {
            TransactionStatus::Pending => pb::AggregatedTransactionStatus::Pending,
            TransactionStatus::Booked => pb::AggregatedTransactionStatus::Booked,
        }
        .into(),
        booking_date: Some(date_pb(transaction.booking_date)),
        value_date: transaction.value_date.map(date_pb),
        amount: Some(money_pb(transaction.amount)),
        replaces: transaction.replaces.map(|id| id.to_string()),
        personal: Some(transaction_personal_pb(&transaction.personal)),
    }
}

/// Whose accounts `ListAggregatedAccounts` asks for (exactly one of the
/// two).
pub fn accounts_of(
    of: Option<&pb::list_aggregated_accounts_request::Of>,
    v: &mut Violations,
) -> Option<AggregatedAccountsOf> {
    use pb::list_aggregated_accounts_request::Of;
    match of {
        Some(Of::ConnectionId(id)) => {
            shared::id(id, "connection_id", v).map(AggregatedAccountsOf::Connection)
        }
        Some(Of::CustomerId(id)) => shared::id(id, "customer_id", v).map(AggregatedAccountsOf::Customer),
        None => {
            v.add("of", "give connection_id or customer_id");
            None
        }
    }
}

/// The filters of `ListAggregatedTransactions`.
pub fn transaction_filter(
    request: &pb::ListAggregatedTransactionsRequest,
    v: &mut Violations,
) -> Option<AggregatedTransactionFilter> {
    let from = request
        .booked_from
        .as_ref()
        .map(|date| customer::convert::date(date, "booked_from", v));
    let to = request
        .booked_to
        .as_ref()
        .map(|date| customer::convert::date(date, "booked_to", v));
    let status = match pb::AggregatedTransactionStatus::try_from(request.status) {
        Ok(pb::AggregatedTransactionStatus::Unspecified) => Some(None),
        Ok(pb::AggregatedTransactionStatus::Pending) => Some(Some(TransactionStatus::Pending)),
        Ok(pb::AggregatedTransactionStatus::Booked) => Some(Some(TransactionStatus::Booked)),
        Err(_) => {
            v.add("status", format!("unknown status {}", request.status));
            None
        }
    };
    // Absent: no bound; present but invalid: a violation, no filter.
    let booked_from = from.map_or(Some(None), |date| date.map(Some))?;
    let booked_to = to.map_or(Some(None), |date| date.map(Some))?;
    if let (Some(from), Some(to)) = (booked_from, booked_to)
        && from > to
    {
        v.add("booked_to", "must not be before booked_from");
        return None;
    }
    Some(AggregatedTransactionFilter {
        booked_from,
        booked_to,
        status: status?,
    })
}
