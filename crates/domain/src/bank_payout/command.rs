//! The bank payout family's commands: payouts and their sandbox outcomes.

use super::{BankPayoutEvent, NewBankPayout};
use crate::account::AccountEvent;
use crate::context::{Context, Decided, FamilyCommand};
use crate::kernel::error::DomainError;
use crate::kernel::id::{BankPayoutId, ProjectId, TransactionId};
use crate::kernel::meta::Meta;
use crate::kernel::stream::StreamRef;

#[derive(Clone, Debug, PartialEq, Eq, strum::IntoStaticStr)]
pub enum BankPayoutCommand {
    CreateBankPayout(NewBankPayout),
    /// Sandbox: the bank transfer was sent.
    CompleteBankPayout {
        id: BankPayoutId,
    },
    /// Sandbox: the bank transfer could not be sent; its funds come back.
    FailBankPayout {
        id: BankPayoutId,
        failure_transaction_id: TransactionId,
    },
    /// Sandbox: the destination bank sent a completed transfer back.
    ReturnBankPayout {
        id: BankPayoutId,
        failure_transaction_id: TransactionId,
    },
    UpdateBankPayout {
        id: BankPayoutId,
        meta: Meta,
    },
}

impl<E> FamilyCommand<E> for BankPayoutCommand
where
    E: From<BankPayoutEvent> + From<AccountEvent>,
{
    fn streams(&self, project: ProjectId, streams: &mut Vec<StreamRef>) {
        match self {
            Self::CreateBankPayout(new) => {
                streams.push(StreamRef::BankPayout(new.id));
                streams.push(StreamRef::Account(new.account_id));
                streams.push(StreamRef::ProjectBalance(project, new.value.currency));
                streams.push(new.destination.stream());
            }
            Self::CompleteBankPayout { id }
            | Self::FailBankPayout { id, .. }
            | Self::ReturnBankPayout { id, .. }
            | Self::UpdateBankPayout { id, .. } => streams.push(StreamRef::BankPayout(*id)),
        }
    }

    fn created_stream(&self) -> Option<StreamRef> {
        match self {
            Self::CreateBankPayout(new) => Some(StreamRef::BankPayout(new.id)),
            _ => None,
        }
    }

    fn dependent_streams(&self, ctx: &Context<'_>) -> Vec<StreamRef> {
        match self {
            Self::CreateBankPayout(new) => ctx.dependent_streams_of_payout(new),
            Self::FailBankPayout { id, .. } | Self::ReturnBankPayout { id, .. } => {
                ctx.dependent_streams_of_payout_reversal(*id)
            }
            Self::CompleteBankPayout { .. } | Self::UpdateBankPayout { .. } => Vec::new(),
        }
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Decided<E>, DomainError> {
        match self {
            Self::CreateBankPayout(new) => ctx.create_bank_payout(new),
            Self::CompleteBankPayout { id } => ctx.complete_bank_payout(*id),
            Self::FailBankPayout {
                id,
                failure_transaction_id,
            } => ctx.reverse_bank_payout(*id, *failure_transaction_id, false),
            Self::ReturnBankPayout {
                id,
                failure_transaction_id,
            } => ctx.reverse_bank_payout(*id, *failure_transaction_id, true),
            Self::UpdateBankPayout { id, meta } => ctx.update_bank_payout(*id, meta),
        }
    }
}
