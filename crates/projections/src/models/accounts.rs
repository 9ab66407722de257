//! `accounts`: every account with its balance, per project in creation order.

use paycore_domain::aggregate::Account;
use paycore_domain::{AccountId, Aggregate, Event};

use super::{Applied, Projection, evolve, unreachable_state};
use crate::db::ModelError;
use crate::rows::{Key, RowsMut};

pub(crate) struct Accounts;

impl Projection for Accounts {
    const NAME: &'static str = "accounts";
    /// 4: rows hold `pending_debits`/`pending_credits` (two-phase transfers).
    const VERSION: u32 = 5;
    /// 5: new IDs stored as runs (`id_runs.rs`); rows of 4 read as they are.
    const CONTINUES: Option<u32> = Some(4);
    const DESCRIPTION: &'static str = "accounts and their balances";

    fn apply(rows: &mut RowsMut<'_>, applied: &Applied<'_>) -> Result<(), ModelError> {
        let event = applied.event;
        match event {
            Event::AccountOpened(opened) => {
                if let Some(Aggregate::Account(account)) = evolve(None, event) {
                    rows.insert(
                        Key::Accounts(opened.project_id),
                        Key::Account(opened.id),
                        &account,
                    )?;
                }
            }
            Event::NegativeBalanceAllowanceChanged(_) | Event::AccountMetaUpdated(_) => {
                if let Ok(id) = applied.stream_id.parse::<AccountId>() {
                    update(rows, id, event)?;
                }
            }
            Event::TransactionRecorded(recorded) => update(rows, recorded.transaction.account_id, event)?,
            // A pending transfer's hold or release: the pending totals, so
            // the available balance, change; the posted balance does not.
            Event::PendingTransactionRecorded(recorded) => update(rows, recorded.pending.account_id, event)?,
            _ => {}
        }
        Ok(())
    }
}

fn update(rows: &mut RowsMut<'_>, id: AccountId, event: &Event) -> Result<(), ModelError> {
    rows.update(Key::Account(id), |account: Account| {
        match Aggregate::Account(account).evolve(event) {
            Aggregate::Account(account) => account,
            _ => unreachable_state(),
        }
    })
}
