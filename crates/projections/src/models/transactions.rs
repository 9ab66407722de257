//! `transactions`: every transaction, per project and per account.

use paycore_domain::{AccountId, Event, ProjectId, Transaction, TransactionId};
use serde::{Deserialize, Serialize};

use super::{Applied, CreationOrdered, Map, Projection};

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Transactions {
    pub projects: Map<ProjectId, ProjectTransactions>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct ProjectTransactions {
    pub all: CreationOrdered<TransactionId, Transaction>,
    /// Per account: indices into `all`, oldest first.
    pub by_account: Map<AccountId, Vec<u32>>,
}

impl Projection for Transactions {
    const NAME: &'static str = "transactions";
    const VERSION: u32 = 2;
    const DESCRIPTION: &'static str = "transactions, per project and per account";

    fn apply(&mut self, applied: &Applied<'_>) {
        let Event::TransactionRecorded(recorded) = applied.event else {
            return;
        };
        let transaction = recorded.transaction;
        let project = self.projects.entry(transaction.project_id).or_default();
        if let Some(index) = project.all.insert(transaction.id, transaction) {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            project
                .by_account
                .entry(transaction.account_id)
                .or_default()
                .push(index);
        }
    }
}
