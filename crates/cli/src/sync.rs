//! Running the open banking sync schedule (`paycore-aggregation-sync`) on
//! one server of a deployment: on the embedded log the server is alone; on
//! PostgreSQL the servers elect one by advisory lock, as the relay does, and
//! another takes over when it dies. (Sign-in steps and imports asked for
//! through the API run on whichever server is asked.)

use std::time::Duration;

use paycore_aggregation_sync::Syncer;
use paycore_relay::Election;
use paycore_relay::election::elect;

/// How often a server not elected asks again.
const ELECTION_RETRY: Duration = Duration::from_secs(5);

/// The election's name, beside the relay's streams.
const ELECTION_NAME: &str = "aggregation-sync";

/// Runs the schedule whenever this server is elected, until the task is
/// dropped.
pub async fn run(syncer: Syncer, election: Election) {
    loop {
        let waiting = || tracing::info!("another server runs the open banking sync schedule");
        match elect(&election, ELECTION_NAME, ELECTION_RETRY, waiting).await {
            Ok(mut lease) => {
                tokio::select! {
                    ended = syncer.run() => {
                        if let Err(error) = ended {
                            tracing::warn!(%error, "the open banking sync schedule stopped; starting it again");
                        }
                    }
                    () = lease.lost() => {
                        tracing::warn!("lost the open banking sync election; asking again");
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "the open banking sync election failed; asking again"),
        }
        tokio::time::sleep(ELECTION_RETRY).await;
    }
}
