//! The account family's commands.

use super::AccountEvent;
use crate::context::{Context, Decided, FamilyCommand};
use crate::kernel::error::DomainError;
use crate::kernel::id::{AccountId, CustomerId, ProjectId, TransactionId};
use crate::kernel::meta::Meta;
use crate::kernel::money::{Currency, Money};
use crate::kernel::stream::StreamRef;

#[derive(Clone, Debug, PartialEq, Eq, strum::IntoStaticStr)]
pub enum AccountCommand {
    CreateAccount {
        id: AccountId,
        currency: Currency,
        customer_id: Option<CustomerId>,
        allow_negative_balance: bool,
        meta: Meta,
    },
    UpdateAccount {
        id: AccountId,
        allow_negative_balance: Option<bool>,
        meta: Option<Meta>,
        /// Sandbox only: set the balance, recorded as a `magic` transaction
        /// with this ID.
        balance: Option<(Money, TransactionId)>,
    },
}

impl<E: From<AccountEvent>> FamilyCommand<E> for AccountCommand {
    fn streams(&self, project: ProjectId, streams: &mut Vec<StreamRef>) {
        match self {
            Self::CreateAccount { id, customer_id, .. } => {
                streams.push(StreamRef::Account(*id));
                streams.extend(customer_id.map(StreamRef::Customer));
            }
            Self::UpdateAccount { id, balance, .. } => {
                streams.push(StreamRef::Account(*id));
                // Setting the balance changes the project's total too.
                if let Some((value, _)) = balance {
                    streams.push(StreamRef::ProjectBalance(project, value.currency));
                }
            }
        }
    }

    fn created_stream(&self) -> Option<StreamRef> {
        match self {
            Self::CreateAccount { id, .. } => Some(StreamRef::Account(*id)),
            Self::UpdateAccount { .. } => None,
        }
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Decided<E>, DomainError> {
        match self {
            Self::CreateAccount {
                id,
                currency,
                customer_id,
                allow_negative_balance,
                meta,
            } => ctx.create_account(*id, *currency, *customer_id, *allow_negative_balance, meta),
            Self::UpdateAccount {
                id,
                allow_negative_balance,
                meta,
                balance,
            } => ctx.update_account(*id, *allow_negative_balance, meta, *balance),
        }
    }
}
