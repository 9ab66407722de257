//! `transfers`: every transfer between accounts.

use std::collections::HashMap;

use paycore_domain::aggregate::Transfer;
use paycore_domain::{Aggregate, Event, ProjectId, TransferId};
use serde::{Deserialize, Serialize};

use super::{Applied, CreationOrdered, Projection, evolve, unreachable_state};

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Transfers {
    pub transfers: HashMap<ProjectId, CreationOrdered<TransferId, Transfer>>,
    /// Which project owns each transfer, for events that name only the transfer.
    owners: HashMap<TransferId, ProjectId>,
}

impl Projection for Transfers {
    const NAME: &'static str = "transfers";
    const VERSION: u32 = 1;
    const DESCRIPTION: &'static str = "transfers between accounts";

    fn apply(&mut self, applied: &Applied<'_>) {
        let event = applied.event;
        match event {
            Event::TransferCreated(created) => {
                self.owners.insert(created.id, created.project_id);
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
                let Some(list) = self
                    .owners
                    .get(&id)
                    .and_then(|project| self.transfers.get_mut(project))
                else {
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
