//! `accounts`: every account with its balance.

use paycore_domain::aggregate::Account;
use paycore_domain::{AccountId, Aggregate, Event, ProjectId};
use serde::{Deserialize, Serialize};

use super::{Applied, CreationOrdered, Map, Projection, evolve, unreachable_state};

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Accounts {
    pub accounts: Map<ProjectId, CreationOrdered<AccountId, Account>>,
    /// Which project owns each account, for events that name only the account.
    owners: Map<AccountId, ProjectId>,
}

impl Accounts {
    pub fn get(&self, project: ProjectId, id: AccountId) -> Option<&Account> {
        self.accounts.get(&project)?.get(&id)
    }

    fn update(&mut self, id: AccountId, event: &Event) {
        let Some(list) = self
            .owners
            .get(&id)
            .and_then(|project| self.accounts.get_mut(project))
        else {
            return;
        };
        list.update(&id, |account| {
            match Aggregate::Account(account.clone()).evolve(event) {
                Aggregate::Account(account) => account,
                _ => unreachable_state(),
            }
        });
    }
}

impl Projection for Accounts {
    const NAME: &'static str = "accounts";
    const VERSION: u32 = 2;
    const DESCRIPTION: &'static str = "accounts and their balances";

    fn apply(&mut self, applied: &Applied<'_>) {
        let event = applied.event;
        match event {
            Event::AccountOpened(opened) => {
                self.owners.insert(opened.id, opened.project_id);
                if let Some(Aggregate::Account(account)) = evolve(None, event) {
                    self.accounts
                        .entry(opened.project_id)
                        .or_default()
                        .insert(opened.id, account);
                }
            }
            Event::NegativeBalanceAllowanceChanged(_) | Event::AccountMetaUpdated(_) => {
                if let Ok(id) = applied.stream_id.parse::<AccountId>() {
                    self.update(id, event);
                }
            }
            Event::TransactionRecorded(recorded) => self.update(recorded.transaction.account_id, event),
            _ => {}
        }
    }
}
