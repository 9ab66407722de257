//! `paycore projections` against the real server: status and an online
//! rebuild through the admin socket while the server serves; offline status
//! and rebuild after it stopped; the next start serves the rebuilt models.

use paycore_e2e::{Server, test_dir};

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn projections_are_rebuilt_online_and_offline_without_changing_an_answer() {
    let root = test_dir();
    let mut server = Server::start(root.path());
    let client = server.client();
    let a = client.create_account("EUR", false).await.expect("account").id;
    let b = client.create_account("EUR", false).await.expect("account").id;
    client.set_balance(&a, "EUR", 10_000).await.expect("funding");
    for value in 1..=20 {
        client.transfer(&a, &b, "EUR", value).await.expect("transfer");
    }
    let before = (
        client.all_accounts().await.expect("accounts"),
        client.balance(&a).await.expect("a"),
    );

    let status = server.cli(&["projections", "status"]);
    assert!(status.status.success(), "{}", stderr(&status));
    let text = stdout(&status);
    for name in [
        "directory",
        "accounts",
        "transactions",
        "transfers",
        "resources",
        "fx-rates",
        "open-banking",
    ] {
        let line = text
            .lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_else(|| panic!("{name}: {text}"));
        assert!(line.ends_with("up to date"), "{line}");
    }

    let rebuilt = server.cli(&["projections", "rebuild", "accounts", "transactions"]);
    assert!(rebuilt.status.success(), "{}", stderr(&rebuilt));
    assert!(
        stdout(&rebuilt).contains("swapped them in"),
        "{}",
        stdout(&rebuilt)
    );
    let after = (
        client.all_accounts().await.expect("accounts"),
        client.balance(&a).await.expect("a"),
    );
    assert_eq!(before, after);

    let unknown = server.cli(&["projections", "rebuild", "balances"]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("unknown projection \"balances\""),
        "{}",
        stderr(&unknown)
    );

    server.stop_ok();
    let offline = server.cli(&["projections", "status"]);
    assert!(offline.status.success(), "{}", stderr(&offline));
    assert!(
        stdout(&offline).contains("no server running"),
        "{}",
        stdout(&offline)
    );
    let rebuilt = server.cli(&["projections", "rebuild", "--all"]);
    assert!(rebuilt.status.success(), "{}", stderr(&rebuilt));
    assert!(stdout(&rebuilt).contains("events/s"), "{}", stdout(&rebuilt));

    server.start_again();
    let client = server.client();
    let restarted = (
        client.all_accounts().await.expect("accounts"),
        client.balance(&a).await.expect("a"),
    );
    assert_eq!(before, restarted);
    assert_eq!(client.balance(&b).await.expect("b"), (1..=20).sum::<i64>());
    server.stop_ok();
}
