//! `idempotency-key`: a retry replays the first answer instead of doing the
//! work again, concurrent duplicates have one effect, and keys belong to one
//! project.

use std::sync::Arc;

use paycore_e2e::{
    Client, Server, contains, files_under, pb, test_dir, transfer_request, with_idempotency_key,
};
use tokio::sync::Barrier;

async fn keyed_transfer(
    client: &Client,
    request: pb::CreateTransferRequest,
    key: &str,
) -> Result<pb::Transfer, tonic::Status> {
    Ok(client
        .transfers
        .clone()
        .create_transfer(with_idempotency_key(request, key))
        .await?
        .into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_the_same_key_moves_money_once() -> anyhow::Result<()> {
    let dir = test_dir();
    let mut server = Server::start(dir.path());
    let client = server.client();
    let (a, b) = client.funded_pair(1_000).await?;

    let request = transfer_request(&a.id, &b.id, "EUR", 100);
    let first = keyed_transfer(&client, request.clone(), "pay-order-1").await?;
    for _ in 0..3 {
        let retry = keyed_transfer(&client, request.clone(), "pay-order-1").await?;
        assert_eq!(retry, first, "a retry must answer the original transfer");
    }
    assert_eq!(client.balance(&a.id).await?, 900);
    assert_eq!(client.balance(&b.id).await?, 100);
    assert_eq!(client.all_transfers().await?, vec![first.clone()]);
    assert_eq!(
        client.all_transactions(None).await?.len(),
        3,
        "one magic and two legs"
    );

    // The key, not the parameters, identifies the request: another key with
    // the same parameters is another transfer.
    let second = keyed_transfer(&client, request.clone(), "pay-order-2").await?;
    assert_ne!(second.id, first.id);
    assert_eq!(client.balance(&a.id).await?, 800);

    // Customers and accounts replay too.
    let customer_request = pb::CreateCustomerRequest {
        identity: Some(paycore_e2e::identity()),
        meta: paycore_e2e::meta(&[("crm", "1")]),
    };
    let customer = client
        .customers
        .clone()
        .create_customer(with_idempotency_key(customer_request.clone(), "customer-1"))
        .await?
        .into_inner();
    let account_request = pb::CreateAccountRequest {
        currency: "EUR".into(),
        allow_negative_balance: false,
        customer_id: Some(customer.id.clone()),
        meta: Default::default(),
    };
    let account = client
        .accounts
        .clone()
        .create_account(with_idempotency_key(account_request.clone(), "account-1"))
        .await?
        .into_inner();
    let customer_again = client
        .customers
        .clone()
        .create_customer(with_idempotency_key(customer_request.clone(), "customer-1"))
        .await?
        .into_inner();
    let account_again = client
        .accounts
        .clone()
        .create_account(with_idempotency_key(account_request.clone(), "account-1"))
        .await?
        .into_inner();
    assert_eq!(customer_again.id, customer.id);
    assert_eq!(account_again.id, account.id);
    assert_eq!(client.all_customers().await?.len(), 1);
    assert_eq!(client.all_accounts().await?.len(), 3);

    // Keys are durable: after a restart the retry still replays.
    let before = client.snapshot().await?;
    server.restart();
    let client = server.client();
    let retry = keyed_transfer(&client, request.clone(), "pay-order-1").await?;
    assert_eq!(retry.id, first.id);
    let account_again = client
        .accounts
        .clone()
        .create_account(with_idempotency_key(account_request, "account-1"))
        .await?
        .into_inner();
    assert_eq!(account_again.id, account.id);
    assert_eq!(
        client.snapshot().await?,
        before,
        "a retry after a restart changed something"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_one_key_have_one_effect() -> anyhow::Result<()> {
    const CONCURRENT: usize = 16;
    let dir = test_dir();
    let server = Server::start(dir.path());
    let client = server.client();
    let (a, b) = client.funded_pair(100_000).await?;
    // Each request on its own connection, so they really arrive together.
    let clients: Vec<Client> = (0..CONCURRENT).map(|_| server.client()).collect();

    for round in 0..4_i64 {
        let key = format!("burst-{round}");
        let request = transfer_request(&a.id, &b.id, "EUR", 1_000 + round);
        let barrier = Arc::new(Barrier::new(CONCURRENT));
        let tasks: Vec<_> = clients
            .iter()
            .map(|client| {
                let (client, request, key, barrier) =
                    (client.clone(), request.clone(), key.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    keyed_transfer(&client, request, &key).await
                })
            })
            .collect();
        let mut ids = Vec::new();
        for task in tasks {
            let transfer = task
                .await?
                .map_err(|status| anyhow::anyhow!("round {round}: {status:?}"))?;
            ids.push(transfer.id);
        }
        ids.dedup();
        assert_eq!(
            ids.len(),
            1,
            "round {round}: {CONCURRENT} requests with one key gave {ids:?}"
        );
    }
    let moved = 1_000 + 1_001 + 1_002 + 1_003;
    assert_eq!(client.balance(&a.id).await?, 100_000 - moved);
    assert_eq!(client.balance(&b.id).await?, moved);
    assert_eq!(client.all_transfers().await?.len(), 4);
    assert_eq!(client.all_transactions(None).await?.len(), 1 + 4 * 2);

    // Same for creating accounts.
    let barrier = Arc::new(Barrier::new(CONCURRENT));
    let tasks: Vec<_> = clients
        .iter()
        .map(|client| {
            let (client, barrier) = (client.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let request = pb::CreateAccountRequest {
                    currency: "USD".into(),
                    allow_negative_balance: true,
                    customer_id: None,
                    meta: Default::default(),
                };
                client
                    .accounts
                    .clone()
                    .create_account(with_idempotency_key(request, "open-usd"))
                    .await
                    .map(|response| response.into_inner().id)
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await??);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(client.all_accounts().await?.len(), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_belong_to_one_project() -> anyhow::Result<()> {
    let dir = test_dir();
    let (server, second) = Server::start_with_second_project(dir.path());
    let one = server.client();
    let two = server.client_with_key(&second.key);

    // The very same request with the very same key in two projects: two
    // customers, one in each.
    let request = pb::CreateCustomerRequest::default();
    let mut created = Vec::new();
    for client in [&one, &two] {
        let customer = client
            .customers
            .clone()
            .create_customer(with_idempotency_key(request.clone(), "shared-key"))
            .await?
            .into_inner();
        created.push(customer);
    }
    assert_ne!(created[0].id, created[1].id);
    assert_eq!(created[0].project_id, server.project_id());
    assert_eq!(created[1].project_id, second.id);
    assert_eq!(one.all_customers().await?, vec![created[0].clone()]);
    assert_eq!(two.all_customers().await?, vec![created[1].clone()]);

    // Transfers: each project moves its own money once under the shared key.
    let mut transfers = Vec::new();
    for client in [&one, &two] {
        let (a, b) = client.funded_pair(500).await?;
        let request = transfer_request(&a.id, &b.id, "EUR", 200);
        let transfer = keyed_transfer(client, request.clone(), "shared-transfer").await?;
        let retry = keyed_transfer(client, request, "shared-transfer").await?;
        assert_eq!(retry.id, transfer.id);
        assert_eq!(client.balance(&a.id).await?, 300);
        assert_eq!(client.balance(&b.id).await?, 200);
        transfers.push(transfer);
    }
    assert_ne!(transfers[0].id, transfers[1].id);
    assert_eq!(one.all_transfers().await?, vec![transfers[0].clone()]);
    assert_eq!(two.all_transfers().await?, vec![transfers[1].clone()]);
    Ok(())
}

/// Clients build keys from what they have, payment data included: a key is
/// kept only as a keyed digest, so it is nowhere in the data directory or
/// the server's log, and a retry still finds it after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_kept_only_as_digests() -> anyhow::Result<()> {
    const KEY: &str = "4242424242424242-ana.garcia@example.com";
    let dir = test_dir();
    let mut server = Server::start(dir.path());
    let client = server.client();
    let (a, b) = client.funded_pair(1_000).await?;
    let first = keyed_transfer(&client, transfer_request(&a.id, &b.id, "EUR", 100), KEY).await?;
    server.restart();
    let client = server.client();
    let retry = keyed_transfer(&client, transfer_request(&a.id, &b.id, "EUR", 100), KEY).await?;
    assert_eq!(retry.id, first.id);
    assert_eq!(client.balance(&a.id).await?, 900);
    server.stop_ok();

    let mut searched = files_under(&server.data_dir());
    searched.push(("server log".into(), server.log().into_bytes()));
    assert!(searched.len() > 3, "{searched:?}");
    for (path, bytes) in &searched {
        for needle in [KEY, "4242424242424242", "ana.garcia@example.com"] {
            assert!(!contains(bytes, needle.as_bytes()), "{needle} found in {path}");
        }
    }
    Ok(())
}
