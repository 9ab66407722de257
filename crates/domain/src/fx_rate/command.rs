//! The exchange rate family's commands. Platform-wide: not tied to the
//! envelope's project.

use super::FxRateEvent;
use crate::context::{Context, Decided, FamilyCommand};
use crate::kernel::error::DomainError;
use crate::kernel::fx::Rate;
use crate::kernel::id::ProjectId;
use crate::kernel::money::Currency;
use crate::kernel::stream::StreamRef;

#[derive(Clone, Debug, PartialEq, Eq, strum::IntoStaticStr)]
pub enum FxRateCommand {
    SetFxRate {
        from: Currency,
        to: Currency,
        mid_rate: Rate,
        spread_bps: u32,
    },
    RemoveFxRate {
        from: Currency,
        to: Currency,
    },
}

impl<E: From<FxRateEvent>> FamilyCommand<E> for FxRateCommand {
    fn streams(&self, _project: ProjectId, streams: &mut Vec<StreamRef>) {
        match self {
            Self::SetFxRate { from, to, .. } | Self::RemoveFxRate { from, to } => {
                streams.push(StreamRef::FxRate(*from, *to))
            }
        }
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Decided<E>, DomainError> {
        match self {
            Self::SetFxRate {
                from,
                to,
                mid_rate,
                spread_bps,
            } => ctx.set_fx_rate(*from, *to, *mid_rate, *spread_bps),
            Self::RemoveFxRate { from, to } => ctx.remove_fx_rate(*from, *to),
        }
    }
}
