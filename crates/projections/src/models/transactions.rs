//! `transactions`: every transaction, per project and per account.

use paycore_domain::Event;

use super::{Applied, Projection};
use crate::db::ModelError;
use crate::rows::{Key, RowsMut};

pub(crate) struct Transactions;

impl Projection for Transactions {
    const NAME: &'static str = "transactions";
    const VERSION: u32 = 4;
    /// 4: new IDs stored as runs (`id_runs.rs`); rows of 3 read as they are.
    const CONTINUES: Option<u32> = Some(3);
    const DESCRIPTION: &'static str = "transactions, per project and per account";

    fn apply(rows: &mut RowsMut<'_>, applied: &Applied<'_>) -> Result<(), ModelError> {
        let Event::TransactionRecorded(recorded) = applied.event else {
            return Ok(());
        };
        let transaction = recorded.transaction;
        let list = Key::Transactions(transaction.project_id);
        if let Some(seq) = rows.insert(list, Key::Transaction(transaction.id), &transaction)? {
            // The account's list holds positions in the project's list.
            rows.push_index(Key::AccountTransactions(transaction.account_id), seq)?;
        }
        Ok(())
    }
}
