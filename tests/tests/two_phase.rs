//! Two-phase transfers through gRPC: a pending transfer holds its value on
//! the available balance, is posted (whole or less) or voided once, and
//! every phase shows on the accounts, the transfer, its transactions and
//! the event stream.

use paycore_e2e::{
    Client, Server, amount, bearer, money, pb, test_dir, transfer_request, with_idempotency_key,
};
use paycore_grpc::EventServiceClient;
use tonic::Code;

/// Every event of the project from the start of the log up to a barrier
/// written now.
async fn all_events(server: &Server, client: &Client) -> anyhow::Result<Vec<pb::EventEnvelope>> {
    client.write_barrier("two-phase").await?;
    let mut events = EventServiceClient::with_interceptor(server.channel(), bearer(server.key()));
    let request = pb::SubscribeEventsRequest {
        start: Some(pb::subscribe_events_request::Start::FromPosition(0)),
        ..Default::default()
    };
    let mut stream = events.subscribe_events(request).await?.into_inner();
    let mut seen = Vec::new();
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(20), stream.message());
        let envelope = next.await?.map_err(anyhow::Error::from)?;
        let envelope = envelope.ok_or_else(|| anyhow::anyhow!("the stream ended before the barrier"))?;
        let barrier = matches!(&envelope.event, Some(pb::event_envelope::Event::ProjectMetaUpdated(updated))
            if updated.meta.get("e2e_barrier").map(String::as_str) == Some("two-phase"));
        seen.push(envelope);
        if barrier {
            return Ok(seen);
        }
    }
}

fn pending_request(
    source: &str,
    destination: &str,
    value: i64,
    timeout_seconds: i64,
) -> pb::CreateTransferRequest {
    pb::CreateTransferRequest {
        pending_timeout: Some(prost_types::Duration {
            seconds: timeout_seconds,
            nanos: 0,
        }),
        ..transfer_request(source, destination, "EUR", value)
    }
}

async fn pending(
    client: &Client,
    source: &str,
    destination: &str,
    value: i64,
) -> Result<pb::Transfer, tonic::Status> {
    Ok(client
        .transfers
        .clone()
        .create_transfer(pending_request(source, destination, value, 3_600))
        .await?
        .into_inner())
}

async fn post(client: &Client, id: &str, value: Option<i64>) -> Result<pb::Transfer, tonic::Status> {
    Ok(client
        .transfers
        .clone()
        .post_pending_transfer(pb::PostPendingTransferRequest {
            transfer_id: id.to_owned(),
            value: value.and_then(|value| money("EUR", value)),
        })
        .await?
        .into_inner())
}

async fn void(client: &Client, id: &str) -> Result<pb::Transfer, tonic::Status> {
    Ok(client
        .transfers
        .clone()
        .void_pending_transfer(pb::VoidPendingTransferRequest {
            transfer_id: id.to_owned(),
        })
        .await?
        .into_inner())
}

/// (balance, pending debits, pending credits, available).
async fn balances(client: &Client, id: &str) -> Result<(i64, i64, i64, i64), tonic::Status> {
    let account = client.account(id).await?;
    Ok((
        amount(&account.balance),
        amount(&account.pending_debits),
        amount(&account.pending_credits),
        amount(&account.available_balance),
    ))
}

fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_transfer_holds_then_posts_part_and_releases_the_rest() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let client = server.client();
    let (a, b) = client.funded_pair(1_000).await?;

    let held = pending(&client, &a.id, &b.id, 600).await?;
    assert_eq!(held.status(), pb::TransferStatus::Pending);
    assert!(held.expires_at.is_some() && held.posted_value.is_none());
    assert_eq!(balances(&client, &a.id).await?, (1_000, 600, 0, 400));
    assert_eq!(balances(&client, &b.id).await?, (0, 0, 600, 0));

    // The overdraft rule holds on what is available: 400, not 1,000.
    let over = client.transfer(&a.id, &b.id, "EUR", 401).await.unwrap_err();
    assert_eq!(
        (over.code(), reason(&over)),
        (Code::FailedPrecondition, "INSUFFICIENT_FUNDS".into())
    );
    let over = pending(&client, &a.id, &b.id, 401).await.unwrap_err();
    assert_eq!(reason(&over), "INSUFFICIENT_FUNDS");
    // A posted balance not yet credited is not available to the destination.
    let early = client.transfer(&b.id, &a.id, "EUR", 1).await.unwrap_err();
    assert_eq!(reason(&early), "INSUFFICIENT_FUNDS");

    // More than held is refused; then 250 of the 600 is posted, once.
    let too_much = post(&client, &held.id, Some(601)).await.unwrap_err();
    assert_eq!(too_much.code(), Code::InvalidArgument);
    let posted = post(&client, &held.id, Some(250)).await?;
    assert_eq!(posted.status(), pb::TransferStatus::Posted);
    assert_eq!(amount(&posted.posted_value), 250);
    assert!(posted.ended_at.is_some() && posted.expires_at.is_none());
    assert_eq!(balances(&client, &a.id).await?, (750, 0, 0, 750));
    assert_eq!(balances(&client, &b.id).await?, (250, 0, 0, 250));
    let twice = post(&client, &held.id, None).await.unwrap_err();
    assert_eq!(
        (twice.code(), reason(&twice)),
        (Code::FailedPrecondition, "TRANSFER_NOT_PENDING".into())
    );
    let void_after = void(&client, &held.id).await.unwrap_err();
    assert_eq!(reason(&void_after), "TRANSFER_NOT_PENDING");

    // The posted legs are transactions of their own types; the read model
    // shows the transfer as posted.
    let posted_source = posted.posted_source_transaction_id.clone().expect("posted legs");
    let source_legs = client.all_transactions(Some(&a.id)).await?;
    let leg = source_legs
        .iter()
        .find(|tx| tx.id == posted_source)
        .expect("the posted leg is listed");
    assert_eq!(leg.r#type(), pb::TransactionType::PostedTransferSource);
    assert_eq!((amount(&leg.value), amount(&leg.balance_after)), (-250, 750));
    assert_eq!(leg.transfer_id.as_deref(), Some(held.id.as_str()));
    let got = client.get_transfer(&held.id).await?;
    assert_eq!(got, posted);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voided_transfer_releases_its_hold_and_moves_nothing() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let client = server.client();
    let a = client.create_account("EUR", false).await?;
    let b = client.create_account("EUR", false).await?;
    let usd = client.create_account("USD", false).await?;
    client.set_balance(&a.id, "EUR", 100).await?;

    let held = pending(&client, &a.id, &b.id, 100).await?;
    assert_eq!(balances(&client, &a.id).await?, (100, 100, 0, 0));
    // Voided with an idempotency key, and retried: one effect.
    let request = pb::VoidPendingTransferRequest {
        transfer_id: held.id.clone(),
    };
    let voided = client
        .transfers
        .clone()
        .void_pending_transfer(with_idempotency_key(request.clone(), "void-1"))
        .await?
        .into_inner();
    let again = client
        .transfers
        .clone()
        .void_pending_transfer(with_idempotency_key(request, "void-1"))
        .await?
        .into_inner();
    assert_eq!(voided.status(), pb::TransferStatus::Voided);
    assert_eq!(again, voided);
    assert_eq!(balances(&client, &a.id).await?, (100, 0, 0, 100));
    assert_eq!(balances(&client, &b.id).await?, (0, 0, 0, 0));
    let late = post(&client, &held.id, None).await.unwrap_err();
    assert_eq!(reason(&late), "TRANSFER_NOT_PENDING");

    // Bad input: a timeout out of bounds, across currencies, a plain
    // transfer ID posted, a malformed ID.
    let request = pending_request(&a.id, &b.id, 10, 0);
    let status = client
        .transfers
        .clone()
        .create_transfer(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("pending_timeout"),
        "{}",
        status.message()
    );
    let request = pending_request(&a.id, &usd.id, 10, 60);
    let status = client
        .transfers
        .clone()
        .create_transfer(request)
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "PENDING_TRANSFER_ACROSS_CURRENCIES");
    let plain = client.transfer(&a.id, &b.id, "EUR", 1).await?;
    assert_eq!(plain.status(), pb::TransferStatus::Posted);
    let status = void(&client, &plain.id).await.unwrap_err();
    assert_eq!(reason(&status), "TRANSFER_NOT_PENDING");
    let status = post(&client, "trf_bad", None).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = post(&client, "trf_00000000000000000000000000", None)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_transfers_in_a_batch_and_their_events() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let client = server.client();
    let (a, b) = client.funded_pair(50).await?;

    // Holds decided in order inside one batch: the third finds nothing
    // available.
    let hold = |value| pb::BatchedTransfer {
        transfer: Some(pending_request(&a.id, &b.id, value, 600)),
        ..Default::default()
    };
    let response = client
        .transfers
        .clone()
        .create_transfers(pb::CreateTransfersRequest {
            transfers: vec![hold(20), hold(30), hold(1)],
        })
        .await?
        .into_inner();
    let results = response.results;
    assert!(results[0].error.is_none() && results[1].error.is_none());
    assert_eq!(
        results[2].error.as_ref().map(|e| e.reason.as_str()),
        Some("INSUFFICIENT_FUNDS")
    );
    assert_eq!(balances(&client, &a.id).await?, (50, 50, 0, 0));
    post(&client, &results[0].transfer_id, None).await?;
    void(&client, &results[1].transfer_id).await?;
    assert_eq!(balances(&client, &a.id).await?, (30, 0, 0, 30));
    assert_eq!(balances(&client, &b.id).await?, (20, 0, 0, 20));

    // The event stream carries each phase, typed.
    let events = all_events(&server, &client).await?;
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    for envelope in &events {
        *seen.entry(envelope.event_type.as_str()).or_default() += 1;
        match &envelope.event {
            Some(pb::event_envelope::Event::PendingTransactionRecorded(hold)) => {
                assert!(!hold.transfer_id.is_empty() && hold.value.is_some());
            }
            Some(pb::event_envelope::Event::PendingTransferPosted(posted)) => {
                assert_eq!(posted.transfer_id, results[0].transfer_id);
                assert_eq!(amount(&posted.value), 20);
            }
            _ => {}
        }
    }
    assert_eq!(seen.get("PendingTransferCreated"), Some(&2));
    assert_eq!(seen.get("PendingTransferPosted"), Some(&1));
    assert_eq!(seen.get("PendingTransferVoided"), Some(&1));
    // Two holds, each reserved and released on both accounts.
    assert_eq!(seen.get("PendingTransactionRecorded"), Some(&8));
    Ok(())
}
