//! Reads on a freshly started server, as the first clients after a restart
//! meet them: GetAccount and ListTransactions of random accounts, one at a
//! time, with the server's caches empty.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use paycore_grpc::pb;
use paycore_grpc::{AccountServiceClient, TransactionServiceClient};
use tonic::Request;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Endpoint;

use crate::report::{Rng, Table, latency_columns, latency_histogram, micros, record, thousands};

/// Both reads' aim: p99 below this with cold caches.
const TARGET_P99_MICROS: u64 = 5_000;
/// Transactions per listed page.
const PAGE_SIZE: i32 = 20;

/// Who can read which account: a project's API key and one of its accounts.
#[derive(Clone, Debug)]
pub struct Reader {
    pub key: String,
    pub account: String,
}

impl Reader {
    /// Writes one `<key> <account>` line per reader.
    pub fn save(path: &Path, readers: &[Reader]) -> anyhow::Result<()> {
        let text: String = readers
            .iter()
            .map(|reader| format!("{} {}\n", reader.key, reader.account))
            .collect();
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    pub fn load(path: &Path) -> anyhow::Result<Vec<Reader>> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading {} (generate the log again)", path.display()))?;
        let readers: Vec<Reader> = text
            .lines()
            .filter_map(|line| line.split_once(' '))
            .map(|(key, account)| Reader {
                key: key.to_owned(),
                account: account.to_owned(),
            })
            .collect();
        anyhow::ensure!(!readers.is_empty(), "{} names no account", path.display());
        Ok(readers)
    }
}

/// Asks the kernel to drop its page cache (clean pages only), so that the
/// next start reads the log and the models from the disk. Needs root;
/// answers whether it was done.
pub fn drop_os_page_cache() -> bool {
    rustix::fs::sync();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

/// The latencies of the two kinds of read.
pub struct ColdReads {
    get_account: Histogram<u64>,
    list_transactions: Histogram<u64>,
    first: Duration,
}

impl ColdReads {
    pub fn render(&self, os_cache: &str) -> String {
        let mut table = Table::new(&[
            "read (cold caches, one at a time)",
            "requests",
            "p50",
            "p99",
            "max",
            "aim",
        ]);
        for (name, histogram) in [
            ("GetAccount", &self.get_account),
            (
                "ListTransactions (one account, 20 per page)",
                &self.list_transactions,
            ),
        ] {
            let [p50, p99, _, max] = latency_columns(histogram);
            let met = histogram.value_at_quantile(0.99) < TARGET_P99_MICROS;
            table.row(vec![
                name.into(),
                thousands(histogram.len()),
                p50,
                p99,
                max,
                format!(
                    "p99 < {} {}",
                    micros(TARGET_P99_MICROS),
                    if met { "(met)" } else { "(missed)" }
                ),
            ]);
        }
        format!(
            "{}\nfirst read after the start: {}; {os_cache}",
            table.render(),
            micros(u64::try_from(self.first.as_micros()).unwrap_or(u64::MAX))
        )
    }
}

/// `count` reads against the server at `address`, alternating GetAccount
/// and ListTransactions of accounts drawn at random from `readers`. Every
/// answer must be OK and name the account asked for.
pub async fn measure(address: &str, readers: &[Reader], count: usize) -> anyhow::Result<ColdReads> {
    let channel = Endpoint::from_shared(format!("http://{address}"))?
        .tcp_nodelay(true)
        .connect()
        .await
        .context("connecting to the server")?;
    let mut accounts = AccountServiceClient::new(channel.clone());
    let mut transactions = TransactionServiceClient::new(channel);
    let mut measured = ColdReads {
        get_account: latency_histogram()?,
        list_transactions: latency_histogram()?,
        first: Duration::ZERO,
    };
    let mut rng = Rng::new(0xc01d);
    for i in 0..count {
        let reader = &readers[rng.below(readers.len() as u64) as usize];
        let auth =
            AsciiMetadataValue::try_from(format!("Bearer {}", reader.key)).context("API key as metadata")?;
        let started = Instant::now();
        if i % 2 == 0 {
            let mut request = Request::new(pb::GetAccountRequest {
                account_id: reader.account.clone(),
            });
            request.metadata_mut().insert("authorization", auth);
            let account = accounts
                .get_account(request)
                .await
                .with_context(|| format!("GetAccount {}", reader.account))?
                .into_inner();
            anyhow::ensure!(account.id == reader.account, "GetAccount answered {}", account.id);
            record(&mut measured.get_account, started.elapsed());
        } else {
            let mut request = Request::new(pb::ListTransactionsRequest {
                page_size: PAGE_SIZE,
                account_id: Some(reader.account.clone()),
                ..Default::default()
            });
            request.metadata_mut().insert("authorization", auth);
            let page = transactions
                .list_transactions(request)
                .await
                .with_context(|| format!("ListTransactions {}", reader.account))?
                .into_inner();
            anyhow::ensure!(
                !page.items.is_empty(),
                "account {} listed no transaction (it was funded)",
                reader.account
            );
            record(&mut measured.list_transactions, started.elapsed());
        }
        if i == 0 {
            measured.first = started.elapsed();
        }
    }
    Ok(measured)
}
