//! `transfers`: every transfer between accounts.

use paycore_domain::aggregate::Transfer;
use paycore_domain::{Aggregate, Event, TransferId};

use super::{Applied, Projection, evolve, unreachable_state};
use crate::db::ModelError;
use crate::rows::{Key, RowsMut};

pub(crate) struct Transfers;

impl Projection for Transfers {
    const NAME: &'static str = "transfers";
    const VERSION: u32 = 4;
    const DESCRIPTION: &'static str = "transfers between accounts";

    fn apply(rows: &mut RowsMut<'_>, applied: &Applied<'_>) -> Result<(), ModelError> {
        let event = applied.event;
        match event {
            Event::TransferCreated(created) => {
                if let Some(Aggregate::Transfer(transfer)) = evolve(None, event) {
                    rows.insert(
                        Key::Transfers(created.project_id),
                        Key::Transfer(created.id),
                        &transfer,
                    )?;
                }
            }
            Event::TransferMetaUpdated(_) => {
                if let Ok(id) = applied.stream_id.parse::<TransferId>() {
                    rows.update(
                        Key::Transfer(id),
                        |transfer: Transfer| match Aggregate::Transfer(transfer).evolve(event) {
                            Aggregate::Transfer(transfer) => transfer,
                            _ => unreachable_state(),
                        },
                    )?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}
