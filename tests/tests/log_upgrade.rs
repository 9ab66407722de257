//! Upgrade: a data directory whose log index is the `index.snapshot` that
//! builds before the on-disk index runs wrote starts with no manual step,
//! answers the same, and keeps taking writes (expected versions checked
//! against the converted index).

use paycore_e2e::{Server, test_dir};

#[tokio::test(flavor = "multi_thread")]
async fn a_log_indexed_by_an_older_build_starts_and_answers_the_same() {
    let root = test_dir();
    let mut server = Server::start(root.path());
    let client = server.client();
    let a = client.create_account("EUR", false).await.expect("account").id;
    let b = client.create_account("EUR", false).await.expect("account").id;
    client.set_balance(&a, "EUR", 10_000).await.expect("funding");
    for value in [100, 250, 75, 30] {
        client.transfer(&a, &b, "EUR", value).await.expect("transfer");
    }
    let before = client.snapshot().await.expect("snapshot");
    server.stop_ok();

    // Lay the log out as an older build left it: its index as one
    // `index.snapshot`, no runs.
    let log = server.data_dir().join("log");
    let legacy = paycore_store::fuzzing::legacy_index_snapshot(&log).expect("the old index snapshot");
    std::fs::remove_dir_all(log.join("index")).expect("removing the runs");
    std::fs::write(log.join("index.snapshot"), legacy).expect("writing the old snapshot");

    server.start_again();
    let client = server.client();
    assert_eq!(client.snapshot().await.expect("snapshot"), before);
    assert!(!log.join("index.snapshot").exists(), "converted, then removed");
    // Writes go on: the engine loads the accounts through the new index.
    client
        .transfer(&b, &a, "EUR", 55)
        .await
        .expect("transfer after the upgrade");
    assert_eq!(client.balance(&a).await.expect("balance"), 10_000 - 455 + 55);
    assert_eq!(client.check_transaction_chain(&b).await.expect("chain").len(), 5);
    server.stop_ok();

    // And once more from the runs the upgrade wrote.
    server.start_again();
    assert_eq!(server.client().balance(&b).await.expect("balance"), 455 - 55);
}
