//! The card payin family's commands: payins, their sandbox outcomes, and
//! refunds.

use super::{CardPayinEvent, NetworkVerdict, NewCardPayin, NewRefund};
use crate::account::AccountEvent;
use crate::card::CardEvent;
use crate::context::{Context, Decided, FamilyCommand};
use crate::kernel::error::DomainError;
use crate::kernel::id::{CardPayinId, CardPayinRefundId, ProjectId, TransactionId};
use crate::kernel::meta::Meta;
use crate::kernel::stream::StreamRef;

#[derive(Clone, Debug, PartialEq, Eq, strum::IntoStaticStr)]
pub enum CardPayinCommand {
    CreateCardPayin(NewCardPayin),
    /// Sandbox: the cardholder went through 3-D Secure; `verdict` is the
    /// network's answer after it.
    CompleteCardPayinAuthentication {
        id: CardPayinId,
        verdict: NetworkVerdict,
    },
    /// Sandbox: the card network settled the payin.
    SettleCardPayin {
        id: CardPayinId,
        transaction_id: TransactionId,
    },
    UpdateCardPayin {
        id: CardPayinId,
        meta: Meta,
    },
    CreateCardPayinRefund(NewRefund),
    /// Sandbox: the refund reached the cardholder.
    CompleteCardPayinRefund {
        id: CardPayinRefundId,
    },
    /// Sandbox: the refund failed; its funds come back.
    FailCardPayinRefund {
        id: CardPayinRefundId,
        failure_transaction_id: TransactionId,
    },
    UpdateCardPayinRefund {
        id: CardPayinRefundId,
        meta: Meta,
    },
}

impl<E> FamilyCommand<E> for CardPayinCommand
where
    E: From<CardPayinEvent> + From<CardEvent> + From<AccountEvent>,
{
    fn streams(&self, _project: ProjectId, streams: &mut Vec<StreamRef>) {
        match self {
            Self::CreateCardPayin(new) => {
                streams.push(StreamRef::CardPayin(new.id));
                streams.push(StreamRef::Account(new.account_id));
                streams.extend(new.source.stream());
            }
            Self::CompleteCardPayinAuthentication { id, .. }
            | Self::SettleCardPayin { id, .. }
            | Self::UpdateCardPayin { id, .. } => streams.push(StreamRef::CardPayin(*id)),
            Self::CreateCardPayinRefund(new) => {
                streams.push(StreamRef::CardPayinRefund(new.id));
                streams.push(StreamRef::CardPayin(new.card_payin_id));
                streams.extend(new.account_id.map(StreamRef::Account));
            }
            Self::CompleteCardPayinRefund { id }
            | Self::FailCardPayinRefund { id, .. }
            | Self::UpdateCardPayinRefund { id, .. } => streams.push(StreamRef::CardPayinRefund(*id)),
        }
    }

    fn created_stream(&self) -> Option<StreamRef> {
        match self {
            Self::CreateCardPayin(new) => Some(StreamRef::CardPayin(new.id)),
            Self::CreateCardPayinRefund(new) => Some(StreamRef::CardPayinRefund(new.id)),
            _ => None,
        }
    }

    fn dependent_streams(&self, ctx: &Context<'_>) -> Vec<StreamRef> {
        match self {
            Self::SettleCardPayin { id, .. } => ctx.dependent_streams_of_settlement(*id),
            Self::CreateCardPayinRefund(new) => ctx.dependent_streams_of_refund(new),
            Self::FailCardPayinRefund { id, .. } => ctx.dependent_streams_of_refund_failure(*id),
            _ => Vec::new(),
        }
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Decided<E>, DomainError> {
        match self {
            Self::CreateCardPayin(new) => ctx.create_card_payin(new),
            Self::CompleteCardPayinAuthentication { id, verdict } => {
                ctx.complete_card_payin_authentication(*id, *verdict)
            }
            Self::SettleCardPayin { id, transaction_id } => ctx.settle_card_payin(*id, *transaction_id),
            Self::UpdateCardPayin { id, meta } => ctx.update_card_payin(*id, meta),
            Self::CreateCardPayinRefund(new) => ctx.create_refund(new),
            Self::CompleteCardPayinRefund { id } => ctx.complete_refund(*id),
            Self::FailCardPayinRefund {
                id,
                failure_transaction_id,
            } => ctx.fail_refund(*id, *failure_transaction_id),
            Self::UpdateCardPayinRefund { id, meta } => ctx.update_card_payin_refund(*id, meta),
        }
    }
}
