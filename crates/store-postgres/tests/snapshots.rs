#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing
//! Aggregate snapshots in PostgreSQL (`PgSnapshots`, migration 3): the
//! backend-independent contract, saves that never move a snapshot
//! backwards even when servers race, and the table as an operator sees it.

mod common;

use common::StoreOf;

use bytes::Bytes;
use common::SchemaGuard;
use paycore_store::{AggregateSnapshots, StoredSnapshot, StreamName};

fn snapshot(version: u64, format: u32) -> StoredSnapshot {
    StoredSnapshot {
        version,
        event_hash: [(version % 256) as u8; 32],
        format,
        state: Bytes::from(format!("state at {version} in format {format}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_snapshots_keep_the_contract() {
    let guard = SchemaGuard::new().await;
    let store = guard.store().await;
    paycore_store::snapshot_conformance::check(&store.snapshots()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_saves_from_two_servers_leave_the_newest() {
    let guard = SchemaGuard::new().await;
    let (one, two) = (guard.store().await.snapshots(), guard.store().await.snapshots());
    let stream = StreamName::from("account-acc_race");
    // 200 saves of versions in a scrambled order, from two servers at once.
    let saves: Vec<_> = (0..200u64)
        .map(|i| {
            let snapshots = if i % 2 == 0 { one.clone() } else { two.clone() };
            let stream = stream.clone();
            let version = (i * 73) % 200;
            tokio::spawn(async move { snapshots.save(&stream, snapshot(version, 1)).await })
        })
        .collect();
    for save in futures_join(saves).await {
        save.unwrap().unwrap();
    }
    assert_eq!(one.load(&stream).await.unwrap(), Some(snapshot(199, 1)));
    // Older versions, even from the other server, change nothing.
    two.save(&stream, snapshot(150, 1)).await.unwrap();
    assert_eq!(one.load(&stream).await.unwrap(), Some(snapshot(199, 1)));
    // A newer format wins over a later version of an older one.
    two.save(&stream, snapshot(3, 2)).await.unwrap();
    assert_eq!(one.load(&stream).await.unwrap(), Some(snapshot(3, 2)));
}

async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<Result<T, tokio::task::JoinError>> {
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await);
    }
    results
}

#[tokio::test]
async fn rows_are_plain_columns_and_deleting_them_is_harmless() {
    let guard = SchemaGuard::new().await;
    let snapshots = guard.store().await.snapshots();
    let stream = StreamName::from("account-acc_rows");
    snapshots.save(&stream, snapshot(41, 7)).await.unwrap();
    let s = &guard.schema;
    // The row as an operator sees it.
    let (client, connection) = tokio_postgres::connect(&guard.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let row = client
        .query_one(
            &format!(
                "SELECT version, format, octet_length(event_hash), state FROM {s}.aggregate_snapshots \
                 WHERE stream = $1"
            ),
            &[&stream.as_str()],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 41);
    assert_eq!(row.get::<_, i64>(1), 7);
    assert_eq!(row.get::<_, i32>(2), 32);
    assert_eq!(row.get::<_, Vec<u8>>(3), snapshot(41, 7).state.to_vec());

    // Deleting every row is an operator's reset: no snapshot, no error.
    client
        .batch_execute(&format!("DELETE FROM {s}.aggregate_snapshots"))
        .await
        .unwrap();
    assert_eq!(snapshots.load(&stream).await.unwrap(), None);
    // The table refuses rows no snapshot can be (so every row decodes).
    for bad in [
        format!("INSERT INTO {s}.aggregate_snapshots VALUES ('x', -1, '\\x00', 1, '\\x00')"),
        format!(
            "INSERT INTO {s}.aggregate_snapshots VALUES ('x', 1, decode(repeat('00', 31), 'hex'), 1, '\\x00')"
        ),
        format!(
            "INSERT INTO {s}.aggregate_snapshots VALUES ('x', 1, decode(repeat('00', 32), 'hex'), -1, '\\x00')"
        ),
    ] {
        assert!(client.batch_execute(&bad).await.is_err(), "{bad}");
    }
    drop(client);
    let _ = driver.await;
    // Saving again after the reset works from any version.
    snapshots.save(&stream, snapshot(2, 1)).await.unwrap();
    assert_eq!(snapshots.load(&stream).await.unwrap(), Some(snapshot(2, 1)));
}
