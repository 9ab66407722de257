#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing

//! The read models as PostgreSQL tables, read with SQL beside two servers:
//! they show what the servers answer (pending transfers and the amounts
//! they hold included), one server writes them at a time, and when that one
//! is killed with SIGKILL another takes over with nothing applied twice or
//! skipped.

use std::time::{Duration, Instant};

use paycore_e2e::postgres::{Schema, VaultKeyFile, database_url, query, server_env};
use paycore_e2e::{Client, Server, amount, pb, transfer_request};

/// Waits until every projection's tables reached the log's head.
fn caught_up(schema: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let sql = format!(
        "SELECT count(*) FROM {schema}.read_model_checkpoints c, {schema}.log_head h \
         WHERE c.next_position = h.next_position"
    );
    while query(&sql) != ["6"] {
        assert!(
            Instant::now() < deadline,
            "the tables did not catch up with the log: {:?}",
            query(&format!("SELECT * FROM {schema}.read_model_checkpoints"))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The tables show exactly what the server answers: every balance, pending
/// amount and available balance, every account's transactions, the
/// project's transfers and where each stands.
async fn tables_agree_with(client: &Client, schema: &str, project: &str, accounts: &[String]) {
    for account in accounts {
        let answer = client.account(account).await.unwrap();
        let balance = amount(&answer.balance);
        let (debits, credits) = (amount(&answer.pending_debits), amount(&answer.pending_credits));
        let available = amount(&answer.available_balance);
        let transactions = client.all_transactions(Some(account)).await.unwrap().len();
        let row = query(&format!(
            "SELECT a.balance_minor, a.pending_debits_minor, a.pending_credits_minor, a.available_minor, \
             (SELECT count(*) FROM {schema}.transactions t WHERE t.account_id = a.id), \
             (SELECT coalesce(sum(t.value_minor), 0) FROM {schema}.transactions t WHERE t.account_id = a.id) \
             FROM {schema}.accounts a WHERE a.id = '{account}'"
        ));
        assert_eq!(
            row,
            [format!(
                "{balance}|{debits}|{credits}|{available}|{transactions}|{balance}"
            )],
            "account {account}: balance, pending amounts, available, transactions and their sum in the tables"
        );
    }
    let mut transfers: Vec<String> = client
        .all_transfers()
        .await
        .unwrap()
        .iter()
        .map(|transfer| {
            let status = pb::TransferStatus::try_from(transfer.status).unwrap();
            let status = status.as_str_name().trim_start_matches("TRANSFER_STATUS_");
            let posted = transfer
                .posted_value
                .as_ref()
                .map(|value| value.amount.to_string())
                .unwrap_or_default();
            format!(
                "{}|{}|{posted}|{}",
                transfer.id,
                status.to_lowercase(),
                transfer.posted_source_transaction_id.clone().unwrap_or_default()
            )
        })
        .collect();
    transfers.sort();
    let in_table = query(&format!(
        "SELECT id, status, coalesce(posted_value_minor::text, ''), coalesce(posted_source_transaction_id, '') \
         FROM {schema}.transfers WHERE project_id = '{project}' ORDER BY id"
    ));
    assert_eq!(in_table, transfers, "transfers in the table");
}

/// A pending transfer of `value` from `source` to `destination`, held for
/// an hour.
async fn hold(client: &Client, source: &str, destination: &str, value: i64) -> pb::Transfer {
    let request = pb::CreateTransferRequest {
        pending_timeout: Some(prost_types::Duration {
            seconds: 3_600,
            nanos: 0,
        }),
        ..transfer_request(source, destination, "EUR", value)
    };
    client
        .transfers
        .clone()
        .create_transfer(request)
        .await
        .unwrap()
        .into_inner()
}

fn writers(schema: &str) -> Vec<String> {
    query(&format!(
        "SELECT DISTINCT writer FROM {schema}.read_model_checkpoints"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tables_follow_the_log_and_another_server_writes_them_when_the_writer_is_killed() {
    let schema = Schema::create();
    let url = database_url();
    let key = VaultKeyFile::new();
    let env = server_env(&url, &schema, &key);
    // `test_dir`: with PAYCORE_KEEP_TEST_DIRS set, both servers' logs stay.
    let (dir_a, dir_b) = (paycore_e2e::test_dir(), paycore_e2e::test_dir());
    let mut servers = [
        Server::start_with_env(dir_a.path(), &env),
        Server::start_with_env(dir_b.path(), &env),
    ];
    let project = servers[0].project_id().to_owned();
    let clients = [servers[0].client(), servers[1].client_with_key(servers[0].key())];
    let mut accounts = Vec::new();
    for _ in 0..4 {
        let account = clients[0].create_account("EUR", false).await.unwrap();
        clients[0].set_balance(&account.id, "EUR", 10_000).await.unwrap();
        accounts.push(account.id);
    }
    for round in 0..40 {
        let client = &clients[round % 2];
        let (from, to) = (&accounts[round % 4], &accounts[(round + 1) % 4]);
        client
            .transfer(from, to, "EUR", 100 + round as i64)
            .await
            .unwrap();
    }
    // Two-phase: one held, one posted in part, one voided.
    let held = hold(&clients[0], &accounts[0], &accounts[1], 500).await;
    let posted = hold(&clients[1], &accounts[2], &accounts[3], 300).await;
    let request = pb::PostPendingTransferRequest {
        transfer_id: posted.id.clone(),
        value: Some(pb::Money {
            currency: "EUR".to_owned(),
            amount: 120,
        }),
    };
    let posted = clients[0]
        .transfers
        .clone()
        .post_pending_transfer(request)
        .await
        .unwrap()
        .into_inner();
    let voided = hold(&clients[1], &accounts[1], &accounts[2], 50).await;
    clients[1]
        .transfers
        .clone()
        .void_pending_transfer(pb::VoidPendingTransferRequest {
            transfer_id: voided.id.clone(),
        })
        .await
        .unwrap();
    let name = &schema.name;
    caught_up(name);
    tables_agree_with(&clients[1], name, &project, &accounts).await;
    assert_eq!(
        query(&format!(
            "SELECT status, expires_at IS NOT NULL, ended_at IS NOT NULL FROM {name}.transfers \
             WHERE id IN ('{}', '{}', '{}') ORDER BY status",
            held.id, posted.id, voided.id
        )),
        ["pending|t|f", "posted|f|t", "voided|f|t"]
    );
    let legs = query(&format!(
        "SELECT kind, value_minor FROM {name}.transactions WHERE cause_id = '{}' ORDER BY position",
        posted.id
    ));
    assert_eq!(
        legs,
        ["posted_transfer_source|-120", "posted_transfer_destination|120"]
    );

    // One server writes; kill it mid-traffic.
    let writer = writers(name);
    assert_eq!(writer.len(), 1, "one writer: {writer:?}");
    let killed = servers
        .iter()
        .position(|server| writer[0].ends_with(&server.addr().to_string()))
        .unwrap_or_else(|| panic!("the writer {writer:?} is one of the two servers"));
    let survivor = 1 - killed;
    let traffic = {
        let client = servers[survivor].client_with_key(servers[0].key());
        let accounts = accounts.clone();
        tokio::spawn(async move {
            for round in 0..60 {
                let (from, to) = (&accounts[(round + 2) % 4], &accounts[round % 4]);
                client.transfer(from, to, "EUR", 7).await.unwrap();
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    servers[killed].kill9();
    traffic.await.unwrap();

    caught_up(name);
    let survivor_addr = servers[survivor].addr().to_string();
    assert!(
        writers(name)
            .iter()
            .all(|writer| writer.ends_with(&survivor_addr)),
        "the survivor writes now: {:?}",
        writers(name)
    );
    let client = servers[survivor].client_with_key(servers[0].key());
    tables_agree_with(&client, name, &project, &accounts).await;
    // Each transaction once (the primary key would refuse a second), and
    // as many as the log recorded.
    let logged = query(&format!(
        "SELECT count(*) FROM {name}.events WHERE event_type = 'TransactionRecorded'"
    ));
    assert_eq!(
        query(&format!("SELECT count(*) FROM {name}.transactions")),
        logged
    );

    // Operators see it in `projections status`.
    let status = servers[survivor].cli(&["projections", "status"]);
    let printed = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        printed.contains(&format!("tables in PostgreSQL schema {name}")) && printed.contains(&survivor_addr),
        "{printed}"
    );
}
