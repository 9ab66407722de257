//! Point-in-time queries through the real server: `GetAccountAt` and
//! `ListTransactions` with `as_of` (positions and times between known
//! writes), their refusals, isolation between projects, and
//! `paycore accounts balance` on the stopped server's data directory.

use std::time::Duration;

use paycore_e2e::{
    Client, Server, amount, assert_bad_request, assert_code, expect_err, test_dir, transfer_request,
};
use paycore_grpc::pb;
use tonic::{Code, Status};

fn position(position: i64) -> Option<pb::AsOf> {
    Some(pb::AsOf {
        point: Some(pb::as_of::Point::Position(position)),
    })
}

fn time(at: prost_types::Timestamp) -> Option<pb::AsOf> {
    Some(pb::AsOf {
        point: Some(pb::as_of::Point::Time(at)),
    })
}

fn micros(at: &prost_types::Timestamp) -> i64 {
    at.seconds * 1_000_000 + i64::from(at.nanos / 1_000)
}

fn from_micros(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: i32::try_from(micros.rem_euclid(1_000_000) * 1_000).expect("nanos fit"),
    }
}

async fn at(client: &Client, account: &str, as_of: Option<pb::AsOf>) -> Result<pb::AccountAt, Status> {
    let request = pb::GetAccountAtRequest {
        account_id: account.into(),
        as_of,
    };
    Ok(client
        .accounts
        .clone()
        .get_account_at(request)
        .await?
        .into_inner())
}

/// Every page of the account's transactions as of the point, newest first.
async fn history(
    client: &Client,
    account: &str,
    as_of: Option<pb::AsOf>,
    page_size: i32,
) -> Result<Vec<i64>, Status> {
    let mut balances = Vec::new();
    let mut token = String::new();
    loop {
        let request = pb::ListTransactionsRequest {
            page_size,
            page_token: token,
            account_id: Some(account.into()),
            as_of,
        };
        let page = client
            .transactions
            .clone()
            .list_transactions(request)
            .await?
            .into_inner();
        balances.extend(page.items.iter().map(|tx| amount(&tx.balance_after)));
        if page.next_page_token.is_empty() {
            return Ok(balances);
        }
        token = page.next_page_token;
    }
}

/// Position and commit time of the account's latest change.
async fn head(client: &Client, account: &str) -> (i64, i64) {
    let now = at(client, account, position(i64::MAX))
        .await
        .expect("account now");
    (
        now.position,
        micros(now.recorded_at.as_ref().expect("recorded_at")),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn balances_and_transactions_as_of_positions_and_times() {
    let root = test_dir();
    let (mut server, second) = Server::start_with_second_project(root.path());
    let client = server.client();
    let a = client.create_account("EUR", false).await.expect("account a").id;
    let b = client.create_account("EUR", false).await.expect("account b").id;
    let (created, created_at) = head(&client, &a).await;

    // Three writes at known, distinct moments.
    let pause = Duration::from_millis(20);
    tokio::time::sleep(pause).await;
    client.set_balance(&a, "EUR", 10_000).await.expect("magic");
    let (p1, t1) = head(&client, &a).await;
    tokio::time::sleep(pause).await;
    client.transfer(&a, &b, "EUR", 3_000).await.expect("transfer 1");
    let (p2, t2) = head(&client, &a).await;
    tokio::time::sleep(pause).await;
    client.transfer(&a, &b, "EUR", 2_000).await.expect("transfer 2");
    let (p3, t3) = head(&client, &a).await;
    assert!(created < p1 && p1 < p2 && p2 < p3, "{created} {p1} {p2} {p3}");
    assert!(
        created_at < t1 && t1 < t2 && t2 < t3,
        "{created_at} {t1} {t2} {t3}"
    );

    // Positions: exactly at a write, between two, beyond the end.
    for (point, balance, reflected) in [
        (created, 0, created),
        (p1, 10_000, p1),
        (p2 - 1, 10_000, p1),
        (p2, 7_000, p2),
        (p3 - 1, 7_000, p2),
        (p3, 5_000, p3),
        (p3 + 1_000_000, 5_000, p3),
    ] {
        let answer = at(&client, &a, position(point)).await.expect("as of position");
        let account = answer.account.expect("account");
        assert_eq!(amount(&account.balance), balance, "position {point}");
        assert_eq!(answer.position, reflected, "position {point}");
        assert_eq!(account.id, a);
    }
    assert_eq!(
        history(&client, &a, position(p2), 1).await.expect("list at p2"),
        [7_000, 10_000]
    );
    assert_eq!(
        history(&client, &a, position(p3 - 1), 100)
            .await
            .expect("list before p3"),
        [7_000, 10_000]
    );
    assert_eq!(
        history(&client, &a, position(p3), 2).await.expect("list at p3"),
        [5_000, 7_000, 10_000]
    );
    assert_eq!(
        history(&client, &a, position(created), 10)
            .await
            .expect("list at creation"),
        Vec::<i64>::new()
    );
    // One commit, several positions: at the debit's position the credit (a
    // later position of the same append) is not included; at its commit
    // time both are.
    let b_at_p2 = at(&client, &b, position(p2)).await.expect("b at p2");
    assert_eq!(amount(&b_at_p2.account.expect("b").balance), 0);
    let b_at_t2 = at(&client, &b, time(from_micros(t2))).await.expect("b at t2");
    assert_eq!(amount(&b_at_t2.account.expect("b").balance), 3_000);
    assert!(b_at_t2.position > p2);

    // Times: at a commit, between two commits, far in the future.
    for (point, balance) in [
        (t1, 10_000),
        (t2 - 1, 10_000),
        (t2, 7_000),
        ((t2 + t3) / 2, 7_000),
        (t3 + 3_600_000_000, 5_000),
    ] {
        let answer = at(&client, &a, time(from_micros(point)))
            .await
            .expect("as of time");
        assert_eq!(
            amount(&answer.account.expect("account").balance),
            balance,
            "time {point}"
        );
    }
    assert_eq!(
        history(&client, &a, time(from_micros(t2 - 1)), 10)
            .await
            .expect("list before t2"),
        [10_000]
    );

    // Before the account existed.
    assert_code(
        &expect_err(at(&client, &a, position(created - 1)).await),
        Code::NotFound,
    );
    assert_code(
        &expect_err(at(&client, &a, time(from_micros(created_at - 1))).await),
        Code::NotFound,
    );
    assert_code(
        &expect_err(history(&client, &a, position(created - 1), 10).await),
        Code::NotFound,
    );

    // Bad points.
    assert_bad_request(&expect_err(at(&client, &a, position(-1)).await), "as_of.position");
    let bad_nanos = prost_types::Timestamp {
        seconds: 1,
        nanos: -1,
    };
    assert_bad_request(&expect_err(at(&client, &a, time(bad_nanos)).await), "as_of.time");
    let bad_seconds = prost_types::Timestamp {
        seconds: i64::MAX,
        nanos: 0,
    };
    assert_bad_request(
        &expect_err(at(&client, &a, time(bad_seconds)).await),
        "as_of.time",
    );
    assert_bad_request(&expect_err(at(&client, &a, None).await), "as_of");
    assert_bad_request(
        &expect_err(at(&client, &a, Some(pb::AsOf { point: None })).await),
        "as_of",
    );
    assert_bad_request(
        &expect_err(history(&client, &a, position(-5), 10).await),
        "as_of.position",
    );
    let everything = pb::ListTransactionsRequest {
        page_size: 10,
        page_token: String::new(),
        account_id: None,
        as_of: position(p2),
    };
    let status = client
        .transactions
        .clone()
        .list_transactions(everything)
        .await
        .expect_err("as_of without account_id");
    assert_bad_request(&status, "as_of");

    // Another project's account does not exist for it, at any point.
    let other = server.client_with_key(&second.key);
    assert_code(&expect_err(at(&other, &a, position(p3)).await), Code::NotFound);
    assert_code(
        &expect_err(history(&other, &a, position(p3), 10).await),
        Code::NotFound,
    );

    // A pending transfer holds 10.00 of a's 50.00 (after every point above).
    let hold = pb::CreateTransferRequest {
        pending_timeout: Some(prost_types::Duration {
            seconds: 3_600,
            nanos: 0,
        }),
        ..transfer_request(&a, &b, "EUR", 1_000)
    };
    let held = client
        .transfers
        .clone()
        .create_transfer(hold)
        .await
        .expect("pending transfer")
        .into_inner();

    // The CLI refuses a log held by the server, then reads the stopped one.
    let busy = server.cli(&["accounts", "balance", &a]);
    assert!(!busy.status.success(), "{busy:?}");
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("running paycore server"),
        "{busy:?}"
    );
    server.stop_ok();
    let cli = |args: &[&str]| {
        let output = server.cli(args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{args:?}: {output:?}");
        stdout
    };
    let at_p2 = cli(&["accounts", "balance", &a, "--at-position", &p2.to_string()]);
    assert!(at_p2.contains("balance:   70.00 EUR"), "{at_p2}");
    assert!(at_p2.contains(&format!("position {p2} ")), "{at_p2}");
    assert!(at_p2.contains("transactions: 2"), "{at_p2}");
    assert!(
        at_p2.contains("pending:   debits 0.00 EUR, credits 0.00 EUR"),
        "{at_p2}"
    );
    assert!(at_p2.contains("available: 70.00 EUR"), "{at_p2}");
    assert!(at_p2.contains("pending transactions: 0"), "{at_p2}");
    let before_t2 = from_micros(t2 - 1).to_string();
    let at_time = cli(&["accounts", "balance", &a, "--at-time", &before_t2]);
    assert!(at_time.contains("balance:   100.00 EUR"), "{at_time}");
    assert!(at_time.contains("transactions: 1"), "{at_time}");
    let now = cli(&["accounts", "balance", &a]);
    assert!(now.contains("balance:   50.00 EUR"), "{now}");
    assert!(
        now.contains("pending:   debits 10.00 EUR, credits 0.00 EUR"),
        "{now}"
    );
    assert!(now.contains("available: 40.00 EUR"), "{now}");
    assert!(now.contains("transactions: 3"), "{now}");
    assert!(now.contains("pending transactions: 1"), "{now}");
    let hold_line = now
        .lines()
        .find(|line| line.contains(&held.source_transaction_id))
        .unwrap_or_else(|| panic!("the hold is listed: {now}"));
    assert!(
        hold_line.contains("-10.00 EUR")
            && hold_line.contains("pending debits after")
            && hold_line.contains("10.00 EUR  reserved")
            && hold_line.ends_with(&held.id),
        "{hold_line}"
    );
    let b_now = cli(&["accounts", "balance", &b]);
    assert!(
        b_now.contains("pending:   debits 0.00 EUR, credits 10.00 EUR"),
        "{b_now}"
    );
    assert!(b_now.contains("available: 50.00 EUR"), "{b_now}");
    let before = server.cli(&[
        "accounts",
        "balance",
        &a,
        "--at-position",
        &(created - 1).to_string(),
    ]);
    assert!(!before.status.success(), "{before:?}");
    assert!(
        String::from_utf8_lossy(&before.stderr).contains("did not exist"),
        "{before:?}"
    );
}
