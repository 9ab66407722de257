//! Times a full import of `user_good` from the sandbox bank: sign-in,
//! consent, accounts with balances, every transaction of every account (5
//! years) and of the credit card, in pages of 1,000.
//!
//! `cargo run --release -p paycore-bank-connector --example sandbox_history [institution] [N]`
//! (with `N`, also prints the last `N` transactions of each account).

use std::time::Instant;

use paycore_bank_connector::{
    BankConnector, BookingStatus, ConsentRequest, Credentials, SandboxBank, SignInOutcome, SignInRequest,
    SyncPoint, TransactionQuery, TransactionStatus,
};
use time::macros::{date, datetime};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let institution = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sandbox_pl_wisla".to_owned());
    let show: usize = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(0);
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    runtime.block_on(async {
        let bank = SandboxBank::new();
        let now = datetime!(2026-12-06 12:00 UTC);
        let at = SyncPoint::first(now);
        let started = Instant::now();
        let institutions = bank.institutions().await?;
        let described = institutions
            .iter()
            .find(|i| i.id.as_str() == institution)
            .ok_or_else(|| format!("no institution {institution}"))?;
        let outcome = bank
            .start_sign_in(SignInRequest {
                institution: described.id.clone(),
                credentials: Credentials {
                    username: "user_good".into(),
                    password: "pass_good".into(),
                },
                consent: ConsentRequest::everything(described, now.date()),
                redirect_uri: String::new(),
                now,
            })
            .await?;
        let SignInOutcome::Connected { session } = outcome else {
            return Err(format!("not connected: {outcome:?}").into());
        };
        let consent = bank.grant_consent(&session, now).await?;
        let query = |cursor| TransactionQuery {
            from: date!(2000 - 01 - 01),
            to: now.date(),
            status: BookingStatus::Both,
            cursor,
            page_size: 1_000,
        };
        let mut lines = Vec::new();
        let mut total = 0;
        let accounts = bank.accounts(&consent, at).await?;
        for account in &accounts {
            let (mut count, mut pending, mut cursor) = (0, 0, None);
            let mut last = Vec::new();
            loop {
                let page = bank
                    .transactions(&consent, &account.id, &query(cursor), at)
                    .await?;
                count += page.transactions.len();
                last.extend(page.transactions.iter().rev().take(show).rev().cloned());
                last.drain(..last.len().saturating_sub(show));
                pending += page
                    .transactions
                    .iter()
                    .filter(|t| t.status == TransactionStatus::Pending)
                    .count();
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            total += count;
            let balance = account.balances.first().map(|b| b.amount.to_string());
            lines.push(format!(
                "  {:<16} {} {count:>6} transactions ({pending} pending), booked balance {}",
                account.name,
                account.currency,
                balance.unwrap_or_default()
            ));
            for t in &last {
                lines.push(format!(
                    "      {} {:?} {:>12} {:<44} {}",
                    t.value_date,
                    t.status,
                    t.amount.to_string(),
                    t.description,
                    t.original_amount.map(|a| a.to_string()).unwrap_or_default()
                ));
            }
        }
        if let Ok(cards) = bank.credit_cards(&consent, at).await {
            for card in cards {
                let (mut count, mut cursor) = (0, None);
                loop {
                    let page = bank
                        .card_transactions(&consent, &card.id, &query(cursor), at)
                        .await?;
                    count += page.transactions.len();
                    match page.next {
                        Some(next) => cursor = Some(next),
                        None => break,
                    }
                }
                total += count;
                lines.push(format!(
                    "  {:<16} {} {count:>6} transactions",
                    card.name, card.currency
                ));
            }
        }
        let elapsed = started.elapsed();
        println!("user_good at {institution}, 5 years as of {now}:");
        for line in lines {
            println!("{line}");
        }
        println!(
            "{total} transactions generated in {:.1} ms (sign-in, consent, balances, every page)",
            elapsed.as_secs_f64() * 1_000.0
        );
        Ok(())
    })
}
