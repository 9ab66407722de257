//! Exchange rates through the real server and CLI: `paycore fx` on a running
//! and on a stopped server, cross-currency transfers converting at the rate
//! (rounded down) and recording it, and the project total rule.

#![allow(clippy::unwrap_used)]

use paycore_e2e::{
    Client, Server, assert_bad_request, assert_reason, bearer, expect_err, money, pb, test_dir,
    transfer_request,
};
use paycore_grpc::FxRateServiceClient;
use tonic::Code;

/// `paycore fx <args>` on the server's data directory; its stdout.
fn fx(server: &Server, args: &[&str]) -> String {
    let args: Vec<&str> = ["fx"].iter().chain(args).copied().collect();
    let output = server.cli(&args);
    assert!(
        output.status.success(),
        "`paycore {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The rates as `FxRateService` lists them. The CLI changes rates through
/// the admin socket, which does not wait for the read models: the write
/// barrier makes sure they have applied everything written before.
async fn public_rates(server: &Server) -> anyhow::Result<Vec<pb::FxRate>> {
    server.client().write_barrier("fx").await?;
    let mut client = FxRateServiceClient::with_interceptor(server.channel(), bearer(server.key()));
    Ok(client
        .list_fx_rates(pb::ListFxRatesRequest {})
        .await?
        .into_inner()
        .rates)
}

async fn refuse(client: &Client, request: pb::CreateTransferRequest) -> tonic::Status {
    expect_err(client.transfers.clone().create_transfer(request).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_convert_at_the_rate_set_with_the_cli() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let client = server.client();
    let eur = client.create_account("EUR", false).await?;
    client.set_balance(&eur.id, "EUR", 10_000).await?;
    let usd = client.create_account("USD", false).await?;

    // No rate yet: refused, nothing moved.
    let status = refuse(&client, transfer_request(&eur.id, &usd.id, "EUR", 1_000)).await;
    assert_reason(&status, Code::FailedPrecondition, "FX_RATE_NOT_CONFIGURED");
    assert_eq!(client.balance(&eur.id).await?, 10_000);

    // Set through the running server's admin socket.
    let out = fx(&server, &["set", "EUR", "USD", "1.0842", "--spread-bps", "30"]);
    assert!(out.contains("EUR USD 1.0842 30"), "{out}");
    let listed = fx(&server, &["list"]);
    assert!(listed.contains("EUR USD 1.0842 30"), "{listed}");
    assert!(listed.contains("rate used 1.0809474"), "{listed}");
    let rates = public_rates(&server).await?;
    assert_eq!(rates.len(), 1);
    let rate = &rates[0];
    assert_eq!(
        (rate.source_currency.as_str(), rate.destination_currency.as_str()),
        ("EUR", "USD")
    );
    assert_eq!(
        (rate.mid_rate.as_str(), rate.spread_bps, rate.rate_used.as_str()),
        ("1.0842", 30, "1.0809474")
    );

    // 10.00 EUR × 1.0809474 = 10.809474 USD: 10.80 credited (rounded down).
    let transfer = client.transfer(&eur.id, &usd.id, "EUR", 1_000).await?;
    assert_eq!(transfer.value, money("EUR", 1_000));
    let exchange = transfer.exchange.clone().unwrap();
    assert_eq!(exchange.destination_value, money("USD", 1_080));
    assert_eq!(exchange.mid_rate, "1.0842");
    assert_eq!(exchange.spread_bps, 30);
    assert_eq!(exchange.rate_used, "1.0809474");
    assert_eq!(client.balance(&eur.id).await?, 9_000);
    assert_eq!(client.balance(&usd.id).await?, 1_080);
    let got = client
        .transfers
        .clone()
        .get_transfer(pb::GetTransferRequest {
            transfer_id: transfer.id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(got, transfer);
    client.check_transaction_chain(&eur.id).await?;
    client.check_transaction_chain(&usd.id).await?;

    // Each direction is configured on its own; the value is in the source's currency.
    let status = refuse(&client, transfer_request(&usd.id, &eur.id, "USD", 100)).await;
    assert_reason(&status, Code::FailedPrecondition, "FX_RATE_NOT_CONFIGURED");
    let status = refuse(&client, transfer_request(&eur.id, &usd.id, "USD", 100)).await;
    assert_bad_request(&status, "value.currency");
    // A same-currency transfer records no exchange.
    let other_eur = client.create_account("EUR", false).await?;
    let plain = client.transfer(&eur.id, &other_eur.id, "EUR", 1).await?;
    assert_eq!(plain.exchange, None);

    // Removed: refused again, and no longer listed.
    fx(&server, &["remove", "EUR", "USD"]);
    let status = refuse(&client, transfer_request(&eur.id, &usd.id, "EUR", 1_000)).await;
    assert_reason(&status, Code::FailedPrecondition, "FX_RATE_NOT_CONFIGURED");
    assert!(public_rates(&server).await?.is_empty());
    assert!(fx(&server, &["list"]).contains("no exchange rates"));
    // The recorded transfer keeps its rate.
    let again = client
        .transfers
        .clone()
        .get_transfer(pb::GetTransferRequest {
            transfer_id: transfer.id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(again.exchange, Some(exchange));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversion_cannot_take_the_project_total_below_zero() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    fx(&server, &["set", "EUR", "USD", "1.1"]);
    let client = server.client();
    let funded = client.create_account("EUR", false).await?;
    client.set_balance(&funded.id, "EUR", 5_000).await?;
    let overdraft = client.create_account("EUR", true).await?;
    let usd = client.create_account("USD", false).await?;

    // The project holds 50.00 EUR in total: an account allowed to go
    // negative may lend within the currency, but not convert more than that.
    let status = refuse(&client, transfer_request(&overdraft.id, &usd.id, "EUR", 5_001)).await;
    assert_reason(&status, Code::FailedPrecondition, "PROJECT_BALANCE_NEGATIVE");
    assert_eq!(client.balance(&overdraft.id).await?, 0);
    assert_eq!(client.balance(&usd.id).await?, 0);
    // Within a currency the total does not change, so going negative is fine.
    client.transfer(&overdraft.id, &funded.id, "EUR", 7_000).await?;
    assert_eq!(client.balance(&overdraft.id).await?, -7_000);
    // Exactly the total converts (it reaches zero, not below).
    let transfer = client.transfer(&overdraft.id, &usd.id, "EUR", 5_000).await?;
    assert_eq!(transfer.exchange.unwrap().destination_value, money("USD", 5_500));
    let status = refuse(&client, transfer_request(&funded.id, &usd.id, "EUR", 1)).await;
    assert_reason(&status, Code::FailedPrecondition, "PROJECT_BALANCE_NEGATIVE");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rates_are_managed_on_a_stopped_server_and_imported_from_a_file() -> anyhow::Result<()> {
    let dir = test_dir();
    let mut server = Server::start(dir.path());
    server.stop_ok();

    // Directly on the data directory.
    fx(&server, &["set", "GBP", "EUR", "1.17", "--spread-bps", "5"]);
    let file = dir.path().join("rates.txt");
    std::fs::write(
        &file,
        "# weekly rates\nEUR USD 1.0842 30\nUSD EUR 0.9201 30   # inverse\n\nEUR JPY 163.25\n",
    )?;
    let out = fx(&server, &["import", file.to_str().unwrap()]);
    assert!(out.contains("imported 3"), "{out}");
    let listed = fx(&server, &["list"]);
    let pairs: Vec<&str> = listed.lines().filter(|line| !line.starts_with('#')).collect();
    assert_eq!(pairs.len(), 4, "{listed}");
    assert!(pairs[0].starts_with("EUR JPY 163.25 0"), "{listed}");
    assert!(pairs[3].starts_with("USD EUR 0.9201 30"), "{listed}");

    // A bad file is refused whole, naming each bad line.
    std::fs::write(&file, "EUR GBP 0.85\nEUR CHF abc\nEUR EUR 1\n")?;
    let output = server.cli(&["fx", "import", file.to_str().unwrap()]);
    assert!(!output.status.success());
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(errors.contains("line 2") && errors.contains("line 3"), "{errors}");
    assert!(!errors.contains("line 1:"), "{errors}");

    // The running server sees what was set while it was stopped.
    server.start_again();
    let rates = public_rates(&server).await?;
    let shown: Vec<String> = rates
        .iter()
        .map(|rate| format!("{} {}", rate.source_currency, rate.destination_currency))
        .collect();
    assert_eq!(shown, ["EUR JPY", "EUR USD", "GBP EUR", "USD EUR"]);
    assert_eq!(fx(&server, &["list"]), listed);
    let output = server.cli(&["fx", "remove", "CHF", "EUR"]);
    assert!(!output.status.success(), "removing a pair without a rate");
    Ok(())
}
