//! `transfers`: every transfer between accounts.

use paycore_domain::aggregate::Transfer;
use paycore_domain::{Aggregate, Event, ProjectId, TransferId};
use serde::{Deserialize, Serialize};

use super::{Applied, CreationOrdered, Map, Projection, evolve, unreachable_state};

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Transfers {
    /// No map from transfer to project: transfers are the most numerous
    /// resource and their only later event (a meta update) is rare, so it
    /// searches the few projects instead of costing memory and load time.
    pub transfers: Map<ProjectId, CreationOrdered<TransferId, Transfer>>,
}

impl Projection for Transfers {
    const NAME: &'static str = "transfers";
    const VERSION: u32 = 3;
    const DESCRIPTION: &'static str = "transfers between accounts";

    fn apply(&mut self, applied: &Applied<'_>) {
        let event = applied.event;
        match event {
            Event::TransferCreated(created) => {
                if let Some(Aggregate::Transfer(transfer)) = evolve(None, event) {
                    self.transfers
                        .entry(created.project_id)
                        .or_default()
                        .insert(created.id, transfer);
                }
            }
            Event::TransferMetaUpdated(_) => {
                let Ok(id) = applied.stream_id.parse::<TransferId>() else {
                    return;
                };
                let Some(list) = self.transfers.values_mut().find(|list| list.get(&id).is_some()) else {
                    return;
                };
                list.update(&id, |transfer| {
                    match Aggregate::Transfer(transfer.clone()).evolve(event) {
                        Aggregate::Transfer(transfer) => transfer,
                        _ => unreachable_state(),
                    }
                });
            }
            _ => {}
        }
    }
}
