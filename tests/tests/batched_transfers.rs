//! `CreateTransfers`: many transfers in one call, each with its own result;
//! linked chains all or nothing; retries after a lost answer or a kill -9
//! apply each transfer once; bad batches refused whole, bad transfers alone.

use paycore_e2e::{Client, Server, pb, test_dir, transfer_request, with_idempotency_key};

fn batched(source: &str, destination: &str, amount: i64) -> pb::BatchedTransfer {
    pb::BatchedTransfer {
        transfer: Some(transfer_request(source, destination, "EUR", amount)),
        ..Default::default()
    }
}

fn linked(mut transfer: pb::BatchedTransfer) -> pb::BatchedTransfer {
    transfer.linked = true;
    transfer
}

async fn send(
    client: &Client,
    transfers: Vec<pb::BatchedTransfer>,
) -> Result<Vec<pb::CreateTransfersResult>, tonic::Status> {
    Ok(client
        .transfers
        .clone()
        .create_transfers(pb::CreateTransfersRequest { transfers })
        .await?
        .into_inner()
        .results)
}

fn reason(result: &pb::CreateTransfersResult) -> &str {
    result.error.as_ref().map_or("", |error| error.reason.as_str())
}

fn code(result: &pb::CreateTransfersResult) -> tonic::Code {
    result
        .error
        .as_ref()
        .map_or(tonic::Code::Ok, |error| tonic::Code::from(error.code))
}

/// A fresh transfer ID in the API's format (`trf_` + Crockford base32 of a
/// UUID v7), as a client would make one.
fn transfer_id() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let value = uuid::Uuid::now_v7().as_u128();
    let text: String = (0..26)
        .rev()
        .map(|digit| ALPHABET[((value >> (digit * 5)) & 31) as usize] as char)
        .collect();
    format!("trf_{text}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_each_transfer_in_order_and_reads_see_it_at_once() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let client = server.client();
    let (a, b) = client.funded_pair(1_000).await?;

    // 2,000 transfers of 1 then one too many: the 1,001st from `a` finds it
    // empty, and the rest go on.
    let mut transfers: Vec<_> = (0..1_000).map(|_| batched(&a.id, &b.id, 1)).collect();
    transfers.push(batched(&a.id, &b.id, 1));
    transfers.extend((0..999).map(|_| batched(&b.id, &a.id, 1)));
    let results = send(&client, transfers).await?;
    assert_eq!(results.len(), 2_000);
    assert!(
        results[..1_000]
            .iter()
            .all(|r| r.error.is_none() && !r.transfer_id.is_empty())
    );
    assert_eq!(code(&results[1_000]), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&results[1_000]), "INSUFFICIENT_FUNDS");
    assert!(results[1_001..].iter().all(|r| r.error.is_none()));
    // Read your writes: the answer came after the read models had it all.
    assert_eq!(client.balance(&a.id).await?, 999);
    assert_eq!(client.balance(&b.id).await?, 1);
    let listed = client.all_transfers().await?;
    assert_eq!(listed.len(), 1_999);
    let first = client.get_transfer(&results[0].transfer_id).await?;
    assert_eq!(first.source_transaction_id, results[0].source_transaction_id);
    assert_eq!(paycore_e2e::amount(&results[0].destination_value), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_chain_with_a_bad_transfer_leaves_no_trace() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let client = server.client();
    let a = client.create_account("EUR", false).await?;
    let b = client.create_account("EUR", false).await?;
    let c = client.create_account("USD", false).await?;
    client.set_balance(&a.id, "EUR", 100).await?;
    let before = client.all_transactions(None).await?.len();

    let results = send(
        &client,
        vec![
            linked(batched(&a.id, &b.id, 60)),
            // Refused by the ledger: only 40 left.
            linked(batched(&a.id, &b.id, 50)),
            batched(&b.id, &a.id, 10),
            // A chain broken before the engine: a malformed amount.
            linked(batched(&a.id, &b.id, 5)),
            batched(&a.id, &b.id, -1),
            // A chain broken by the domain: value in the wrong currency.
            linked(batched(&a.id, &b.id, 5)),
            pb::BatchedTransfer {
                transfer: Some(transfer_request(&a.id, &c.id, "USD", 5)),
                ..Default::default()
            },
            // Alone, and fine.
            batched(&a.id, &b.id, 7),
        ],
    )
    .await?;
    let linked_failure = |result: &pb::CreateTransfersResult, at: u32| {
        code(result) == tonic::Code::Aborted
            && reason(result) == "LINKED_TRANSFER_FAILED"
            && result.error.as_ref().and_then(|e| e.failed_index) == Some(at)
    };
    assert!(linked_failure(&results[0], 1), "{:?}", results[0]);
    assert_eq!(reason(&results[1]), "INSUFFICIENT_FUNDS");
    assert!(linked_failure(&results[2], 1), "{:?}", results[2]);
    assert!(linked_failure(&results[3], 4), "{:?}", results[3]);
    let malformed = results[4].error.as_ref().expect("refused");
    assert_eq!(malformed.code, tonic::Code::InvalidArgument as i32);
    assert_eq!(malformed.field_violations[0].field, "transfer.value.amount");
    assert!(linked_failure(&results[5], 6), "{:?}", results[5]);
    assert_eq!(code(&results[6]), tonic::Code::InvalidArgument);
    assert_eq!(
        results[6].error.as_ref().expect("refused").field_violations[0].field,
        "transfer.value.currency"
    );
    assert!(results[7].error.is_none());
    // Only the lone transfer moved money.
    assert_eq!(client.balance(&a.id).await?, 93);
    assert_eq!(client.balance(&b.id).await?, 7);
    assert_eq!(client.all_transactions(None).await?.len(), before + 2);
    assert_eq!(client.all_transfers().await?.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_batches_are_refused_whole() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let client = server.client();
    let (a, b) = client.funded_pair(100_000).await?;

    let refused = |result: Result<Vec<pb::CreateTransfersResult>, tonic::Status>| {
        let status = result.expect_err("refused whole");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        status.message().to_owned()
    };
    assert!(refused(send(&client, Vec::new()).await).contains("transfers"));
    let too_many = vec![batched(&a.id, &b.id, 1); 8_191];
    assert!(refused(send(&client, too_many).await).contains("8191"));
    let open = vec![batched(&a.id, &b.id, 1), linked(batched(&a.id, &b.id, 1))];
    assert!(refused(send(&client, open).await).contains("transfers[1].linked"));
    let keyed = client
        .transfers
        .clone()
        .create_transfers(with_idempotency_key(
            pb::CreateTransfersRequest {
                transfers: vec![batched(&a.id, &b.id, 1)],
            },
            "batch-1",
        ))
        .await;
    assert!(refused(keyed.map(|r| r.into_inner().results)).contains("idempotency-key"));
    // Nothing of them was written.
    assert_eq!(client.balance(&a.id).await?, 100_000);

    // The most a batch may hold goes through.
    let full = vec![batched(&a.id, &b.id, 1); 8_190];
    let results = send(&client, full).await?;
    assert!(results.iter().all(|r| r.error.is_none()));
    assert_eq!(client.balance(&b.id).await?, 8_190);

    // Bad transfers, each refused alone: unknown account, another project's
    // ID format, a missing transfer, a malformed chosen ID.
    let results = send(
        &client,
        vec![
            batched(&a.id, "acc_00000000000000000000000000", 1),
            batched(&a.id, "not-an-id", 1),
            pb::BatchedTransfer::default(),
            pb::BatchedTransfer {
                transfer_id: "trf_x".into(),
                ..batched(&a.id, &b.id, 1)
            },
            batched(&a.id, &b.id, 1),
        ],
    )
    .await?;
    assert_eq!(code(&results[0]), tonic::Code::NotFound);
    assert_eq!(code(&results[1]), tonic::Code::InvalidArgument);
    let fields = |result: &pb::CreateTransfersResult| -> Vec<String> {
        result
            .error
            .iter()
            .flat_map(|e| e.field_violations.iter().map(|v| v.field.clone()))
            .collect()
    };
    assert_eq!(fields(&results[1]), ["transfer.destination_account_id"]);
    assert_eq!(fields(&results[2]), ["transfer"]);
    assert_eq!(fields(&results[3]), ["transfer_id"]);
    assert_eq!(results[3].transfer_id, "trf_x", "your ID is named in its result");
    assert!(results[4].error.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_sent_again_applies_each_transfer_once() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let client = server.client();
    let (a, b) = client.funded_pair(1_000).await?;

    // Half the transfers carry an ID of the client's, half a key.
    let transfers: Vec<_> = (0..100)
        .map(|i| {
            let mut transfer = batched(&a.id, &b.id, 1);
            if i % 2 == 0 {
                transfer.transfer_id = transfer_id();
            } else {
                transfer.idempotency_key = format!("sweep-7-{i}");
            }
            transfer
        })
        .collect();
    let first = send(&client, transfers.clone()).await?;
    assert!(first.iter().all(|r| r.error.is_none()));
    let again = send(&client, transfers.clone()).await?;
    for (i, (first, again)) in first.iter().zip(&again).enumerate() {
        if i % 2 == 0 {
            assert_eq!(code(again), tonic::Code::AlreadyExists, "{again:?}");
            assert_eq!(again.transfer_id, first.transfer_id);
        } else {
            assert!(again.replayed, "{again:?}");
            assert_eq!(again.transfer_id, first.transfer_id);
        }
    }
    assert_eq!(client.balance(&b.id).await?, 100);

    // A key used again with another transfer is refused, alone.
    let mut changed = transfers[1].clone();
    changed.transfer = Some(transfer_request(&a.id, &b.id, "EUR", 2));
    let results = send(&client, vec![changed, batched(&a.id, &b.id, 1)]).await?;
    assert_eq!(code(&results[0]), tonic::Code::InvalidArgument);
    assert_eq!(reason(&results[0]), "IDEMPOTENCY_KEY_REUSED");
    assert!(results[1].error.is_none());
    assert_eq!(client.balance(&b.id).await?, 101);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_retried_after_kill_9_mid_append_applies_each_transfer_once() -> anyhow::Result<()> {
    let dir = test_dir();
    let mut server = Server::start(dir.path());
    let client = server.client();
    let (a, b) = client.funded_pair(1_000_000).await?;

    // Batches with the client's own IDs, sent back to back; the server is
    // killed while they are in flight.
    let batches: Vec<Vec<pb::BatchedTransfer>> = (0..30)
        .map(|_| {
            (0..1_000)
                .map(|_| pb::BatchedTransfer {
                    transfer_id: transfer_id(),
                    ..batched(&a.id, &b.id, 1)
                })
                .collect()
        })
        .collect();
    let first_answered = std::sync::Arc::new(tokio::sync::Notify::new());
    let sender = {
        let client = client.clone();
        let batches = batches.clone();
        let first_answered = first_answered.clone();
        tokio::spawn(async move {
            for batch in batches {
                if send(&client, batch).await.is_err() {
                    return;
                }
                first_answered.notify_one();
            }
        })
    };
    first_answered.notified().await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    server.kill9();
    let _ = sender.await;
    server.start_again();
    let client = server.client();

    // Everything sent again: each transfer exists once, whether its first
    // try was durable (ALREADY_EXISTS) or lost (created now).
    let mut created_now = 0;
    for (round, batch) in batches.into_iter().enumerate() {
        for result in send(&client, batch).await? {
            match code(&result) {
                tonic::Code::Ok if round > 0 => created_now += 1,
                tonic::Code::AlreadyExists => {}
                other => panic!("batch {round}: unexpected {other:?}: {result:?}"),
            }
        }
    }
    // The first batch was acknowledged before the kill: durable.
    eprintln!("{created_now} of the 29,000 transfers after the first batch were created by the retry");
    assert_eq!(client.balance(&b.id).await?, 30_000);
    assert_eq!(client.balance(&a.id).await?, 1_000_000 - 30_000);
    Ok(())
}

/// Two servers on one PostgreSQL database send batches over the same
/// accounts at once: their appends conflict, each conflicting batch is
/// decided again whole, and the books add up exactly; a full batch of
/// 8,190 goes through PostgreSQL in one append.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_from_two_servers_on_postgresql_keep_the_books_exact() -> anyhow::Result<()> {
    use paycore_e2e::postgres::{Schema, VaultKeyFile, database_url, server_env};
    let schema = Schema::create();
    let key = VaultKeyFile::new();
    let url = database_url();
    let env = server_env(&url, &schema, &key);
    let (dir_a, dir_b) = (test_dir(), test_dir());
    let a = Server::start_with_env(dir_a.path(), &env);
    let b = Server::start_with_env(dir_b.path(), &env);
    let client = a.client();
    let mut accounts = Vec::new();
    for _ in 0..4 {
        let account = client.create_account("EUR", false).await?;
        client.set_balance(&account.id, "EUR", 1_000).await?;
        accounts.push(account.id);
    }
    // A full batch in one append on PostgreSQL (24,570 events).
    let (payer, payee) = (
        client.create_account("EUR", false).await?,
        client.create_account("EUR", false).await?,
    );
    client.set_balance(&payer.id, "EUR", 8_190).await?;
    let full = (0..8_190)
        .map(|_| batched(&payer.id, &payee.id, 1))
        .collect::<Vec<_>>();
    assert!(send(&client, full).await?.iter().all(|r| r.error.is_none()));
    assert_eq!(
        (client.balance(&payer.id).await?, client.balance(&payee.id).await?),
        (0, 8_190)
    );

    let mut tasks = Vec::new();
    for task in 0..8_usize {
        let client = if task % 2 == 0 {
            a.client()
        } else {
            b.client_with_key(a.key())
        };
        let accounts = accounts.clone();
        tasks.push(tokio::spawn(async move {
            let mut moved = vec![0_i64; accounts.len()];
            for round in 0..10_usize {
                let pairs: Vec<(usize, usize, i64)> = (0..20)
                    .map(|i| {
                        let from = (task + round + i) % 4;
                        let to = (from + 1 + (i % 3)) % 4;
                        (from, to, 1 + ((task * 7 + round * 3 + i) % 40) as i64)
                    })
                    .collect();
                // Every fifth pair linked to the next: chains of two.
                let transfers = pairs
                    .iter()
                    .enumerate()
                    .map(|(i, &(from, to, amount))| pb::BatchedTransfer {
                        linked: i % 5 == 0,
                        ..batched(&accounts[from], &accounts[to], amount)
                    })
                    .collect();
                let results = send(&client, transfers).await?;
                for (result, &(from, to, amount)) in results.iter().zip(&pairs) {
                    match code(result) {
                        tonic::Code::Ok => {
                            moved[from] -= amount;
                            moved[to] += amount;
                        }
                        tonic::Code::FailedPrecondition | tonic::Code::Aborted => {}
                        other => anyhow::bail!("unexpected {other:?}: {result:?}"),
                    }
                }
            }
            Ok::<_, anyhow::Error>(moved)
        }));
    }
    let mut expected = vec![1_000_i64; accounts.len()];
    for task in tasks {
        for (total, delta) in expected.iter_mut().zip(task.await??) {
            *total += delta;
        }
    }
    // Each server's read models follow the other's writes through the log:
    // wait until both show the books the clients counted.
    for client in [a.client(), b.client_with_key(a.key())] {
        for (account, &expected) in accounts.iter().zip(&expected) {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let mut seen = client.balance(account).await?;
            while seen != expected && std::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                seen = client.balance(account).await?;
            }
            assert_eq!(seen, expected, "{account}");
            assert!(seen >= 0);
        }
    }
    Ok(())
}
