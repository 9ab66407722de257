//! `paycore accounts balance`: an account's balance and transactions as of a
//! position or a time, read from the log without a server.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use paycore_domain::history::{AccountHistory, AsOf};
use paycore_domain::{AccountId, Timestamp};

use crate::serve::StoreChoice;

/// Prints the balance of `id` as of `as_of` (now when `None`) and its
/// transactions up to then, oldest first.
pub async fn balance(
    data_dir: &Path,
    choice: &StoreChoice,
    id: AccountId,
    as_of: Option<AsOf>,
) -> anyhow::Result<()> {
    let (log, store) = crate::audit::open(data_dir, choice, "`paycore accounts balance`").await?;
    let as_of = as_of.unwrap_or(AsOf::Position(u64::MAX));
    let result = paycore_engine::history::account_as_of(store.as_ref(), id, as_of).await;
    if let Some(log) = log {
        log.close().context("closing the event log")?;
    }
    let history = result
        .with_context(|| format!("reading the history of account {id}"))?
        .ok_or_else(|| anyhow::anyhow!("account {id} did not exist at that point (or does not exist)"))?;
    print!("{}", report(&history));
    Ok(())
}

fn rfc3339(at: Timestamp) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.micros()) * 1_000)
        .ok()
        .and_then(|at| at.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{} µs", at.micros()))
}

/// The text printed: the account, its balance, the position it reflects and
/// its transactions, oldest first.
fn report(history: &AccountHistory) -> String {
    let account = &history.account;
    let mut out = String::new();
    let _ = writeln!(out, "account:   {}", account.id);
    let _ = writeln!(out, "project:   {}", account.project_id);
    let _ = writeln!(out, "balance:   {}", account.balance);
    let _ = writeln!(
        out,
        "as of:     position {} ({})",
        history.position,
        rfc3339(history.recorded_at)
    );
    let _ = writeln!(out, "transactions: {}", history.transactions.len());
    for tx in &history.transactions {
        let cause = tx
            .kind
            .transfer_id()
            .map(|id| format!(" {id}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}  {}  {:>16}  balance after {:>16}  {}{cause}",
            rfc3339(tx.created_at),
            tx.id,
            tx.value.to_string(),
            tx.balance_after.to_string(),
            tx.kind.as_str(),
        );
    }
    out
}
