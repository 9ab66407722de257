//! The server expires pending transfers on time: a transfer whose
//! `pending_timeout` passes becomes EXPIRED and its hold is released,
//! while others keep holding; one that came due while the server was down
//! (killed, not stopped) expires right after the next start; on
//! PostgreSQL, when the server elected to expire transfers dies, another
//! takes over.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use paycore_e2e::postgres::{Schema, VaultKeyFile, database_url, server_env};
use paycore_e2e::{Client, Server, amount, micros, money, pb, test_dir};

/// How long a test waits for an expiry past its due time: the task polls
/// at least once a second (`crates/cli/src/expiry.rs`).
const EXPIRY_GRACE: Duration = Duration::from_millis(1_500);

/// A transfer of `value` EUR from `source` to `destination`, holding until
/// `timeout` from now.
async fn pending(
    client: &Client,
    source: &str,
    destination: &str,
    value: i64,
    timeout: Duration,
) -> anyhow::Result<pb::Transfer> {
    let request = pb::CreateTransferRequest {
        source_account_id: source.into(),
        destination_account_id: destination.into(),
        value: money("EUR", value),
        pending_timeout: Some(prost_types::Duration {
            seconds: i64::try_from(timeout.as_secs())?,
            nanos: 0,
        }),
        ..Default::default()
    };
    let transfer = client
        .transfers
        .clone()
        .create_transfer(request)
        .await?
        .into_inner();
    assert_eq!(transfer.status(), pb::TransferStatus::Pending);
    Ok(transfer)
}

async fn transfer(client: &Client, id: &str) -> anyhow::Result<pb::Transfer> {
    let request = pb::GetTransferRequest {
        transfer_id: id.into(),
    };
    Ok(client.transfers.clone().get_transfer(request).await?.into_inner())
}

/// Polls transfer `id` until it is EXPIRED, or fails past `deadline`.
async fn expired_by(client: &Client, id: &str, deadline: Instant) -> anyhow::Result<pb::Transfer> {
    loop {
        let found = transfer(client, id).await?;
        if found.status() == pb::TransferStatus::Expired {
            return Ok(found);
        }
        anyhow::ensure!(Instant::now() < deadline, "transfer {id} is not expired in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long after its `expires_at` the server expired `transfer`, by the
/// server's own clock (its `ended_at`).
fn lateness(transfer: &pb::Transfer, expires_at: i64) -> Duration {
    let late = micros(&transfer.ended_at).saturating_sub(expires_at);
    Duration::from_micros(u64::try_from(late).unwrap_or(0))
}

/// A funded EUR account and an empty one.
async fn accounts(client: &Client, funding: i64) -> anyhow::Result<(String, String)> {
    let a = client.create_account("EUR", false).await?.id;
    let b = client.create_account("EUR", false).await?.id;
    client.set_balance(&a, "EUR", funding).await?;
    Ok((a, b))
}

/// (balance, available balance, pending debits) of an account.
async fn holds(client: &Client, id: &str) -> anyhow::Result<(i64, i64, i64)> {
    let account = client.account(id).await?;
    Ok((
        amount(&account.balance),
        amount(&account.available_balance),
        amount(&account.pending_debits),
    ))
}

/// The value of the sample `name` (no labels) in the server's Prometheus
/// scrape, if it has one.
fn scraped(server: &Server, name: &str) -> anyhow::Result<Option<f64>> {
    let address = server
        .stdout_lines()
        .iter()
        .find_map(|line| line.strip_prefix("paycore metrics on http://"))
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no metrics address printed"))?;
    let mut stream = TcpStream::connect(&address)?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let prefix = format!("{name} ");
    Ok(response
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_transfer_expires_on_time_and_releases_its_hold() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start_with_env(dir.path(), &[("PAYCORE_METRICS_LISTEN", "127.0.0.1:0")]);
    let client = server.client();
    let (a, b) = accounts(&client, 1_000).await?;

    let created = Instant::now();
    let short = pending(&client, &a, &b, 300, Duration::from_secs(2)).await?;
    let long = pending(&client, &a, &b, 200, Duration::from_secs(60)).await?;
    assert_eq!(holds(&client, &a).await?, (1_000, 500, 500));

    let due = created + Duration::from_secs(2);
    let expired = expired_by(&client, &short.id, due + EXPIRY_GRACE).await?;
    let late = lateness(&expired, micros(&short.expires_at));
    eprintln!("expired {late:?} after its expires_at");
    assert!(late <= EXPIRY_GRACE, "expired {late:?} late");
    assert_eq!(holds(&client, &a).await?, (1_000, 800, 200));
    let long = transfer(&client, &long.id).await?;
    assert_eq!(long.status(), pb::TransferStatus::Pending);
    assert_eq!(scraped(&server, "paycore_transfers_expired_total")?, Some(1.0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_due_while_the_server_was_down_expires_after_the_restart() -> anyhow::Result<()> {
    let dir = test_dir();
    let mut server = Server::start(dir.path());
    let client = server.client();
    let (a, b) = accounts(&client, 1_000).await?;
    let held = pending(&client, &a, &b, 400, Duration::from_secs(3)).await?;
    server.kill9();

    tokio::time::sleep(Duration::from_secs(4)).await;
    server.start_again();
    let started = Instant::now();
    let client = server.client();
    let expired = expired_by(&client, &held.id, started + EXPIRY_GRACE).await?;
    eprintln!(
        "expired {} ms after the restart answered, {} ms after its expires_at",
        started.elapsed().as_millis(),
        lateness(&expired, micros(&held.expires_at)).as_millis()
    );
    assert_eq!(holds(&client, &a).await?, (1_000, 1_000, 0));
    Ok(())
}

/// On PostgreSQL the servers elect the one that expires transfers
/// (`transfer-expiry`); when it dies, another is elected and expires what
/// came due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_another_server_takes_over_when_the_expiring_one_dies() -> anyhow::Result<()> {
    let schema = Schema::create();
    let (url, key) = (database_url(), VaultKeyFile::new());
    let env = server_env(&url, &schema, &key);
    let (dir_a, dir_b) = (test_dir(), test_dir());
    // Started first, `a` is elected; `b` waits.
    let mut a = Server::start_with_env(dir_a.path(), &env);
    let b = Server::start_with_env(dir_b.path(), &env);
    let client_a = a.client();
    let (source, destination) = accounts(&client_a, 1_000).await?;
    let held = pending(&client_a, &source, &destination, 100, Duration::from_secs(2)).await?;
    let killed = Instant::now();
    a.kill9();

    let client_b = b.client_with_key(a.key());
    // `b` asks for the election every 5 s (`ELECTION_RETRY`).
    let deadline = killed + Duration::from_secs(5) + Duration::from_secs(2) + EXPIRY_GRACE;
    let expired = expired_by(&client_b, &held.id, deadline).await?;
    eprintln!(
        "expired by the other server {:?} after the kill, {:?} after its expires_at",
        killed.elapsed(),
        lateness(&expired, micros(&held.expires_at))
    );
    assert!(
        b.log().contains("another server expires pending transfers"),
        "the second server was not waiting for the election"
    );
    assert_eq!(holds(&client_b, &source).await?, (1_000, 1_000, 0));
    Ok(())
}
