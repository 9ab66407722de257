#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing

//! The read models as PostgreSQL tables, read with SQL beside two servers:
//! they show what the servers answer, one server writes them at a time, and
//! when that one is killed with SIGKILL another takes over with nothing
//! applied twice or skipped.

use std::time::{Duration, Instant};

use paycore_e2e::postgres::{Schema, VaultKeyFile, database_url, query, server_env};
use paycore_e2e::{Client, Server};

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

/// The tables show exactly what the server answers: every balance, every
/// account's transactions, the project's transfers.
async fn tables_agree_with(client: &Client, schema: &str, project: &str, accounts: &[String]) {
    for account in accounts {
        let balance = client.balance(account).await.unwrap();
        let transactions = client.all_transactions(Some(account)).await.unwrap().len();
        let row = query(&format!(
            "SELECT a.balance_minor, (SELECT count(*) FROM {schema}.transactions t WHERE t.account_id = a.id), \
             (SELECT coalesce(sum(t.value_minor), 0) FROM {schema}.transactions t WHERE t.account_id = a.id) \
             FROM {schema}.accounts a WHERE a.id = '{account}'"
        ));
        assert_eq!(
            row,
            [format!("{balance}|{transactions}|{balance}")],
            "account {account}: balance, transactions and their sum in the tables"
        );
    }
    let transfers = client.all_transfers().await.unwrap().len();
    let in_table = query(&format!(
        "SELECT count(*) FROM {schema}.transfers WHERE project_id = '{project}'"
    ));
    assert_eq!(in_table, [transfers.to_string()], "transfers in the table");
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
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
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
    let name = &schema.name;
    caught_up(name);
    tables_agree_with(&clients[1], name, &project, &accounts).await;

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
