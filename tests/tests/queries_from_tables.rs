#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing

//! `paycore serve --queries-from-tables`: on PostgreSQL the payments
//! queries read the read-model tables every server shares. A write answered
//! by one server is read at once on another, a server started late answers
//! complete lists from its first request (it does not replay the log first),
//! page tokens of one server continue on another, and when the server
//! writing the tables dies, commands wait for the next writer and answer.

use std::time::{Duration, Instant};

use paycore_e2e::postgres::{Schema, VaultKeyFile, database_url, query, server_env};
use paycore_e2e::{Client, Server, amount, pb, transfer_request};

/// The environment of a server of `schema` answering from the tables.
fn tables_env<'a>(url: &'a str, schema: &'a Schema, key: &'a VaultKeyFile) -> Vec<(&'static str, &'a str)> {
    let mut env = server_env(url, schema, key).to_vec();
    env.push(("PAYCORE_QUERIES_FROM_TABLES", "true"));
    env
}

/// Every page of the project's transfers, `size` at a time, the first
/// pages from `first` and the rest from `then` (continuing its tokens).
async fn transfer_ids_paged(first: &Client, then: &Client, size: i32, switch_after: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut token = String::new();
    for page_number in 0.. {
        let client = if page_number < switch_after { first } else { then };
        let page = client
            .transfers
            .clone()
            .list_transfers(pb::ListTransfersRequest {
                page_size: size,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        ids.extend(page.items.into_iter().map(|transfer| transfer.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    ids
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
    items.iter().map(|item| id(item).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_is_read_at_once_on_another_server_and_a_late_server_answers_every_list() {
    let schema = Schema::create();
    let url = database_url();
    let key = VaultKeyFile::new();
    let env = tables_env(&url, &schema, &key);
    let (dir_a, dir_b, dir_c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let server_a = Server::start_with_env(dir_a.path(), &env);
    let server_b = Server::start_with_env(dir_b.path(), &env);
    let clients = [server_a.client(), server_b.client_with_key(server_a.key())];

    let mut accounts = Vec::new();
    for _ in 0..4 {
        let account = clients[0].create_account("EUR", false).await.unwrap();
        clients[0].set_balance(&account.id, "EUR", 100_000).await.unwrap();
        accounts.push(account.id);
    }
    let mut balances = [100_000i64; 4];
    // Each transfer answered by one server is read on the other at once:
    // the answer waited for the tables, which both read.
    for round in 0..40 {
        let (writer, reader) = (&clients[round % 2], &clients[1 - round % 2]);
        let (from, to) = (round % 4, (round + 1) % 4);
        let value = 10 + round as i64;
        let created = writer
            .transfer(&accounts[from], &accounts[to], "EUR", value)
            .await
            .unwrap();
        balances[from] -= value;
        balances[to] += value;
        let read = reader.get_transfer(&created.id).await.unwrap();
        assert_eq!(read.id, created.id);
        assert_eq!(reader.balance(&accounts[from]).await.unwrap(), balances[from]);
        let newest = reader.all_transactions(Some(&accounts[to])).await.unwrap();
        assert_eq!(
            newest.first().map(|transaction| amount(&transaction.value)),
            Some(value),
            "round {round}: the credit is the destination's newest transaction on the other server"
        );
    }
    // A hold made on one server and posted on the other.
    let held = clients[0]
        .transfers
        .clone()
        .create_transfer(pb::CreateTransferRequest {
            pending_timeout: Some(prost_types::Duration {
                seconds: 3_600,
                nanos: 0,
            }),
            ..transfer_request(&accounts[0], &accounts[2], "EUR", 700)
        })
        .await
        .unwrap()
        .into_inner();
    let account = clients[1].account(&accounts[0]).await.unwrap();
    assert_eq!(amount(&account.pending_debits), 700);
    assert_eq!(amount(&account.available_balance), balances[0] - 700);
    clients[1]
        .transfers
        .clone()
        .post_pending_transfer(pb::PostPendingTransferRequest {
            transfer_id: held.id.clone(),
            value: None,
        })
        .await
        .unwrap();
    let posted = clients[0].get_transfer(&held.id).await.unwrap();
    assert_eq!(posted.status, pb::TransferStatus::Posted as i32);
    // Some history for the late server: one batch of 2,000.
    let transfers = (0..2_000)
        .map(|index| pb::BatchedTransfer {
            transfer: Some(transfer_request(
                &accounts[index % 4],
                &accounts[(index + 2) % 4],
                "EUR",
                1,
            )),
            ..Default::default()
        })
        .collect();
    let results = clients[1]
        .transfers
        .clone()
        .create_transfers(pb::CreateTransfersRequest { transfers })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert!(results.iter().all(|result| result.error.is_none()));

    // A server started now answers its first requests completely.
    let started = Instant::now();
    let server_c = Server::start_with_env(dir_c.path(), &env);
    let late = server_c.client_with_key(server_a.key());
    let late_transfers = late.all_transfers().await.unwrap();
    let answered = started.elapsed();
    let expected = clients[0].all_transfers().await.unwrap();
    assert_eq!(late_transfers.len(), 2_041);
    assert_eq!(
        ids(&late_transfers, |transfer| &transfer.id),
        ids(&expected, |transfer| &transfer.id),
        "the late server's first list is the others' list"
    );
    eprintln!("late server: start to a complete list of 2,041 transfers in {answered:?}");
    for (index, account) in accounts.iter().enumerate() {
        let on_late = late.account(account).await.unwrap();
        let on_a = clients[0].account(account).await.unwrap();
        assert_eq!(on_late, on_a, "account {index} on the late server");
        assert_eq!(
            ids(&late.all_transactions(Some(account)).await.unwrap(), |t| &t.id),
            ids(&clients[1].all_transactions(Some(account)).await.unwrap(), |t| &t
                .id),
            "account {index}'s transactions on the late server"
        );
    }
    assert_eq!(
        late.all_transactions(None).await.unwrap().len(),
        clients[0].all_transactions(None).await.unwrap().len()
    );
    // Tokens of one server continue on another.
    let whole = ids(&expected, |transfer| &transfer.id);
    for (size, switch_after) in [(7, 3), (100, 1), (33, 5)] {
        assert_eq!(
            transfer_ids_paged(&clients[0], &late, size, switch_after).await,
            whole,
            "pages of {size}, from the late server after {switch_after}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commands_answer_through_a_change_of_the_tables_writer() {
    let schema = Schema::create();
    let url = database_url();
    let key = VaultKeyFile::new();
    let env = tables_env(&url, &schema, &key);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut servers = [
        Server::start_with_env(dir_a.path(), &env),
        Server::start_with_env(dir_b.path(), &env),
    ];
    let first = servers[0].client();
    let (source, destination) = first.funded_pair(1_000_000).await.unwrap();
    first
        .transfer(&source.id, &destination.id, "EUR", 1)
        .await
        .unwrap();
    let name = &schema.name;
    let writer = query(&format!(
        "SELECT DISTINCT writer FROM {name}.read_model_checkpoints"
    ));
    assert_eq!(writer.len(), 1, "one writer: {writer:?}");
    let killed = servers
        .iter()
        .position(|server| writer[0].ends_with(&server.addr().to_string()))
        .unwrap_or_else(|| panic!("the writer {writer:?} is one of the two servers"));
    let survivor = servers[1 - killed].client_with_key(servers[0].key());
    servers[killed].kill9();
    // The survivor takes the writing over within about a second; meanwhile
    // its answers wait for the tables, then each is read back at once.
    let mut slowest = Duration::ZERO;
    for round in 0..20 {
        let sent = Instant::now();
        let created = survivor
            .transfer(&source.id, &destination.id, "EUR", 2)
            .await
            .unwrap();
        slowest = slowest.max(sent.elapsed());
        let read = survivor.get_transfer(&created.id).await.unwrap();
        assert_eq!(read.id, created.id, "round {round}");
    }
    assert_eq!(
        survivor.balance(&destination.id).await.unwrap(),
        1 + 20 * 2,
        "every transfer counted once"
    );
    eprintln!("slowest answer across the change of writer: {slowest:?}");
    assert!(
        slowest < Duration::from_secs(10),
        "answers waited for the tables, not for the read-your-writes timeout: {slowest:?}"
    );
}

#[test]
fn queries_from_tables_need_a_postgresql_store() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(paycore_e2e::paycore_bin())
        .args([
            "serve",
            "--queries-from-tables",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--queries-from-tables needs a PostgreSQL store"),
        "{stderr}"
    );
}
