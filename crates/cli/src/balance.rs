//! `paycore accounts balance`: an account's balance and transactions as of a
//! position or a time, read from the log without a server: the posted
//! balance, what pending transfers held then (debits and credits) and the
//! available balance, the transactions, and the records of pending
//! transfers' holds and their releases.

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

/// The text printed: the account, its balance, pending amounts and
/// available balance, the position it reflects, its transactions and the
/// records of its holds (pending transactions), oldest first.
fn report(history: &AccountHistory) -> String {
    let account = &history.account;
    let mut out = String::new();
    let _ = writeln!(out, "account:   {}", account.id);
    let _ = writeln!(out, "project:   {}", account.project_id);
    let _ = writeln!(out, "balance:   {}", account.balance);
    let _ = writeln!(
        out,
        "pending:   debits {}, credits {}",
        account.pending_debits, account.pending_credits
    );
    let _ = writeln!(out, "available: {}", account.available());
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
    let _ = writeln!(
        out,
        "pending transactions: {}",
        history.pending_transactions.len()
    );
    for pending in &history.pending_transactions {
        // A hold's sign says which total it changes: a debit's the
        // account's pending debits, a credit's its pending credits.
        let (total, after) = if pending.value.is_negative() {
            ("debits", pending.pending_debits_after)
        } else {
            ("credits", pending.pending_credits_after)
        };
        let _ = writeln!(
            out,
            "  {}  {}  {:>16}  pending {total} after {:>16}  {} {}",
            rfc3339(pending.created_at),
            pending.id,
            pending.value.to_string(),
            after.to_string(),
            pending.phase.as_str(),
            pending.transfer_id,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use paycore_domain::account::{Account, PendingPhase, PendingTransaction};
    use paycore_domain::{Currency, Meta, Money, ProjectId, TransactionId, TransferId};
    use uuid::Uuid;

    use super::*;

    #[test]
    fn the_report_shows_pending_amounts_available_balance_and_holds() {
        let eur = |amount| Money::new(amount, Currency::EUR);
        let account = Account {
            id: AccountId::from_uuid(Uuid::from_u128(1)),
            project_id: ProjectId::from_uuid(Uuid::from_u128(2)),
            customer_id: None,
            balance: eur(5_000),
            allow_negative_balance: false,
            meta: Meta::default(),
            created_at: Timestamp::from_micros(0),
            last_transaction: None,
            pending_debits: eur(1_000),
            pending_credits: eur(250),
        };
        let hold = PendingTransaction {
            id: TransactionId::from_uuid(Uuid::from_u128(3)),
            transfer_id: TransferId::from_uuid(Uuid::from_u128(4)),
            account_id: account.id,
            project_id: account.project_id,
            phase: PendingPhase::Reserved,
            value: eur(-1_000),
            pending_debits_after: eur(1_000),
            pending_credits_after: eur(0),
            created_at: Timestamp::from_micros(1_000_000),
        };
        let credit = PendingTransaction {
            id: TransactionId::from_uuid(Uuid::from_u128(5)),
            value: eur(250),
            pending_credits_after: eur(250),
            ..hold
        };
        let history = AccountHistory {
            account,
            position: 7,
            recorded_at: Timestamp::from_micros(1_000_000),
            transactions: Vec::new(),
            pending_transactions: vec![hold, credit],
        };
        let report = report(&history);
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines[2], "balance:   50.00 EUR");
        assert_eq!(lines[3], "pending:   debits 10.00 EUR, credits 2.50 EUR");
        assert_eq!(lines[4], "available: 40.00 EUR");
        assert_eq!(lines[5], "as of:     position 7 (1970-01-01T00:00:01Z)");
        assert_eq!(lines[6], "transactions: 0");
        assert_eq!(lines[7], "pending transactions: 2");
        assert_eq!(
            lines[8],
            format!(
                "  1970-01-01T00:00:01Z  {}        -10.00 EUR  pending debits after        10.00 EUR  reserved {}",
                hold.id, hold.transfer_id
            )
        );
        assert_eq!(
            lines[9],
            format!(
                "  1970-01-01T00:00:01Z  {}          2.50 EUR  pending credits after         2.50 EUR  reserved {}",
                credit.id, credit.transfer_id
            )
        );
        assert_eq!(lines.len(), 10);
    }
}
