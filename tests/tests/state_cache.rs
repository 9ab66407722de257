//! The engine's cache of committed states is set by `--state-cache-bytes`
//! or `PAYCORE_STATE_CACHE_BYTES`, and what it keeps changes no answer: a
//! server that keeps no state at all answers like any other. (`make test`
//! also runs this whole suite with `PAYCORE_STATE_CACHE_BYTES=4096`.)

use paycore_e2e::{Server, assert_reason, expect_err, test_dir, transfer_request, with_idempotency_key};
use tonic::Code;

/// The budget the server logs at start, from its `paycore serving gRPC` line.
fn logged_budget(server: &Server) -> Option<u64> {
    server
        .log()
        .lines()
        .filter(|line| line.contains("paycore serving gRPC"))
        .filter_map(|line| line.split("state_cache_bytes=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|value| value.parse().ok())
        .next_back()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_comes_from_the_environment_the_server_inherits() -> anyhow::Result<()> {
    // This suite's own environment reaches the server: the run with a tiny
    // budget (`make test`) really runs with it.
    let expected = match std::env::var("PAYCORE_STATE_CACHE_BYTES") {
        Ok(value) if value.bytes().all(|b| b.is_ascii_digit()) => value.parse()?,
        Ok(_) => return Ok(()), // a value with a unit: parsed by the server's own tests
        Err(_) => 256 << 20,
    };
    let dir = test_dir();
    let server = Server::start(dir.path());
    assert_eq!(logged_budget(&server), Some(expected), "{}", server.log());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_keeps_no_state_answers_the_same() -> anyhow::Result<()> {
    let dir = test_dir();
    let mut server = Server::start_with_env(dir.path(), &[("PAYCORE_STATE_CACHE_BYTES", "0")]);
    assert_eq!(logged_budget(&server), Some(0));
    let client = server.client();
    let a = client.create_account("EUR", false).await?;
    let b = client.create_account("EUR", false).await?;
    client.set_balance(&a.id, "EUR", 1_000).await?;

    let request = transfer_request(&a.id, &b.id, "EUR", 300);
    let keyed = || with_idempotency_key(request.clone(), "order-7");
    let first = client
        .transfers
        .clone()
        .create_transfer(keyed())
        .await?
        .into_inner();
    let retry = client
        .transfers
        .clone()
        .create_transfer(keyed())
        .await?
        .into_inner();
    assert_eq!(retry, first, "the retry finds the key's record in the log");
    for _ in 0..2 {
        client
            .transfers
            .clone()
            .create_transfer(transfer_request(&a.id, &b.id, "EUR", 300))
            .await?;
    }
    // 100 left: the decider reads the real balance, not a remembered one.
    let refused = expect_err(
        client
            .transfers
            .clone()
            .create_transfer(transfer_request(&a.id, &b.id, "EUR", 300))
            .await,
    );
    assert_reason(&refused, Code::FailedPrecondition, "INSUFFICIENT_FUNDS");
    assert_eq!(client.balance(&a.id).await?, 100);
    assert_eq!(client.balance(&b.id).await?, 900);

    // After a restart (still keeping nothing) the log answers the same.
    server.stop_ok();
    server.start_again();
    let client = server.client();
    let retry = client
        .transfers
        .clone()
        .create_transfer(keyed())
        .await?
        .into_inner();
    assert_eq!(retry, first);
    assert_eq!(client.balance(&a.id).await?, 100);
    Ok(())
}
