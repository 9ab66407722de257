//! The bank payin family's commands: payin references and incoming bank
//! transfers.

use super::{BankPayinEvent, IncomingBankTransfer};
use crate::account::AccountEvent;
use crate::context::{Context, Decided, FamilyCommand};
use crate::kernel::bank::PayinReferenceCode;
use crate::kernel::error::DomainError;
use crate::kernel::id::{AccountId, BankPayinId, BankPayinReferenceId, ProjectId};
use crate::kernel::meta::Meta;
use crate::kernel::stream::StreamRef;

#[derive(Clone, Debug, PartialEq, Eq, strum::IntoStaticStr)]
pub enum BankPayinCommand {
    CreateBankPayinReference {
        id: BankPayinReferenceId,
        account_id: AccountId,
        /// Generated codes to try, in order (see [`crate::kernel::bank`]).
        candidates: Vec<PayinReferenceCode>,
        meta: Meta,
    },
    UpdateBankPayinReference {
        id: BankPayinReferenceId,
        account_id: Option<AccountId>,
        meta: Option<Meta>,
    },
    /// Sandbox: an incoming bank transfer arrived.
    ReceiveBankPayin(IncomingBankTransfer),
    UpdateBankPayin {
        id: BankPayinId,
        meta: Meta,
    },
}

impl<E> FamilyCommand<E> for BankPayinCommand
where
    E: From<BankPayinEvent> + From<AccountEvent>,
{
    fn streams(&self, project: ProjectId, streams: &mut Vec<StreamRef>) {
        match self {
            Self::CreateBankPayinReference {
                id,
                account_id,
                candidates,
                ..
            } => {
                streams.push(StreamRef::BankPayinReference(*id));
                streams.push(StreamRef::Account(*account_id));
                streams.extend(candidates.iter().map(|code| StreamRef::PayinReferenceCode(*code)));
            }
            Self::UpdateBankPayinReference { id, account_id, .. } => {
                streams.push(StreamRef::BankPayinReference(*id));
                streams.extend(account_id.map(StreamRef::Account));
            }
            Self::ReceiveBankPayin(incoming) => {
                streams.push(StreamRef::BankPayin(incoming.id));
                streams.push(StreamRef::ProjectBalance(project, incoming.value.currency));
                streams.extend(
                    incoming
                        .candidate_codes()
                        .into_iter()
                        .map(StreamRef::PayinReferenceCode),
                );
            }
            Self::UpdateBankPayin { id, .. } => streams.push(StreamRef::BankPayin(*id)),
        }
    }

    fn created_stream(&self) -> Option<StreamRef> {
        match self {
            Self::CreateBankPayinReference { id, .. } => Some(StreamRef::BankPayinReference(*id)),
            Self::ReceiveBankPayin(incoming) => Some(StreamRef::BankPayin(incoming.id)),
            Self::UpdateBankPayinReference { .. } | Self::UpdateBankPayin { .. } => None,
        }
    }

    fn dependent_streams(&self, ctx: &Context<'_>) -> Vec<StreamRef> {
        match self {
            Self::ReceiveBankPayin(incoming) => ctx.dependent_streams_of_bank_payin(incoming),
            _ => Vec::new(),
        }
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Decided<E>, DomainError> {
        match self {
            Self::CreateBankPayinReference {
                id,
                account_id,
                candidates,
                meta,
            } => ctx.create_bank_payin_reference(*id, *account_id, candidates, meta),
            Self::UpdateBankPayinReference { id, account_id, meta } => {
                ctx.update_bank_payin_reference(*id, *account_id, meta)
            }
            Self::ReceiveBankPayin(incoming) => ctx.receive_bank_payin(incoming),
            Self::UpdateBankPayin { id, meta } => ctx.update_bank_payin(*id, meta),
        }
    }
}
