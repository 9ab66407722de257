//! The bank account family's commands.

use super::{BankAccountEvent, BankAccountInfo};
use crate::context::{Context, Decided, FamilyCommand};
use crate::kernel::error::DomainError;
use crate::kernel::id::{BankAccountId, CustomerId, ProjectId};
use crate::kernel::meta::Meta;
use crate::kernel::stream::StreamRef;

#[derive(Clone, Debug, PartialEq, Eq, strum::IntoStaticStr)]
pub enum BankAccountCommand {
    CreateBankAccount {
        id: BankAccountId,
        info: BankAccountInfo,
        customer_id: Option<CustomerId>,
        meta: Meta,
    },
    UpdateBankAccount {
        id: BankAccountId,
        meta: Meta,
    },
}

impl<E: From<BankAccountEvent>> FamilyCommand<E> for BankAccountCommand {
    fn streams(&self, _project: ProjectId, streams: &mut Vec<StreamRef>) {
        match self {
            Self::CreateBankAccount { id, customer_id, .. } => {
                streams.push(StreamRef::BankAccount(*id));
                streams.extend(customer_id.map(StreamRef::Customer));
            }
            Self::UpdateBankAccount { id, .. } => streams.push(StreamRef::BankAccount(*id)),
        }
    }

    fn created_stream(&self) -> Option<StreamRef> {
        match self {
            Self::CreateBankAccount { id, .. } => Some(StreamRef::BankAccount(*id)),
            Self::UpdateBankAccount { .. } => None,
        }
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Decided<E>, DomainError> {
        match self {
            Self::CreateBankAccount {
                id,
                info,
                customer_id,
                meta,
            } => ctx.create_bank_account(*id, info, *customer_id, meta),
            Self::UpdateBankAccount { id, meta } => ctx.update_bank_account(*id, meta),
        }
    }
}
