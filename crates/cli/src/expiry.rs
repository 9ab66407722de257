//! Expiring pending transfers on time (two-phase transfers), on one server
//! of a deployment: on the embedded log the server is alone; on PostgreSQL
//! the servers elect one by advisory lock under the name `transfer-expiry`,
//! as the open banking schedule does (`sync.rs`), and another takes over
//! when it dies.
//!
//! The task keeps no state of its own: each round asks the read models for
//! the pending transfers due now (the transfers model's due list, earliest
//! first) and sends `ExpirePendingTransfer` for each, so after a restart
//! (or a fail-over) whatever came due meanwhile is expired at once. The
//! expiry is an event like any other, decided by the domain at the time
//! the command carries.
//!
//! **Lateness**: the task sleeps until the next expiry but never longer
//! than [`POLL_EVERY`] (a transfer created meanwhile may be due sooner than
//! the one it waited for), so a transfer expires at most about 1 s after
//! its `expires_at`, plus the read models' lag behind the log (the time to
//! apply a batch, milliseconds normally) and one append. In practice it is
//! milliseconds: the API's shortest `pending_timeout` is 1 s, so a transfer
//! created during a sleep is never due before that sleep ends. Only after a
//! failed round ([`RETRY_AFTER`]), a round of refusals only, or a start
//! (what came due while no server was elected) is it later.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use paycore_aggregation_sync::Clock;
use paycore_domain::transfer::TransferCommand;
use paycore_domain::{CommandEnvelope, DomainError, ProjectId, Refusal, Timestamp, TransferId};
use paycore_engine::{BatchCommand, CommandMeta, Engine, EngineError};
use paycore_projections::{DueTransfer, ModelError, ReadModels};
use paycore_relay::Election;
use paycore_relay::election::elect;
use paycore_store::Position;

/// Transfers expired by this server (`--metrics-listen`).
pub const EXPIRED_TOTAL: &str = "paycore_transfers_expired_total";

/// The longest sleep between two rounds: the bound on lateness.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// How many due transfers one round expires (in one append per project).
const ROUND_SIZE: usize = 1_000;

/// How long to wait after a round failed (store unavailable, engine
/// overloaded) before the next.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How often a server not elected asks again.
const ELECTION_RETRY: Duration = Duration::from_secs(5);

/// The election's name, beside the relay's streams and the sync schedule's.
const ELECTION_NAME: &str = "transfer-expiry";

/// Who the expiries' events say acted.
const ACTOR: &str = "system:transfer-expiry";

#[derive(Debug, thiserror::Error)]
enum ExpiryError {
    #[error("reading the due transfers: {0}")]
    ReadModels(#[from] ModelError),
    #[error("expiring the transfers of project {project}: {source}")]
    Engine { project: ProjectId, source: EngineError },
}

/// What expires pending transfers: the engine writes, the read models say
/// what is due, the clock says when now is (the API's, so a transfer's
/// `expires_at` and its expiry are read on one clock).
#[derive(Clone, Debug)]
pub struct TransferExpiry {
    engine: Engine,
    read: ReadModels,
    clock: Arc<dyn Clock>,
}

/// What one round did.
#[derive(Clone, Copy, Debug, Default)]
struct Round {
    /// Transfers found due.
    due: usize,
    /// Transfers expired.
    expired: u64,
}

impl Round {
    /// More may be due right now: the round took as many as it may, and
    /// made progress (a round of only refusals waits, so a transfer that
    /// cannot be expired never turns the loop into a busy one).
    fn more_due(&self) -> bool {
        self.due == ROUND_SIZE && self.expired > 0
    }

    /// Every transfer found due was refused.
    fn only_refusals(&self) -> bool {
        self.due > 0 && self.expired == 0
    }
}

/// Runs the expiry whenever this server is elected, until the task is
/// dropped.
pub async fn run(expiry: TransferExpiry, election: Election) {
    loop {
        let waiting = || tracing::info!("another server expires pending transfers");
        match elect(&election, ELECTION_NAME, ELECTION_RETRY, waiting).await {
            Ok(mut lease) => {
                tokio::select! {
                    () = expiry.expire_forever() => {}
                    () = lease.lost() => {
                        tracing::warn!("lost the transfer expiry election; asking again");
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "the transfer expiry election failed; asking again"),
        }
        tokio::time::sleep(ELECTION_RETRY).await;
    }
}

impl TransferExpiry {
    pub fn new(engine: Engine, read: ReadModels, clock: Arc<dyn Clock>) -> Self {
        Self { engine, read, clock }
    }

    /// Rounds, one after the other, never ending (errors are logged and
    /// the round tried again).
    async fn expire_forever(&self) {
        loop {
            match self.expire_due().await {
                Ok(round) if round.more_due() => continue,
                Ok(round) if round.only_refusals() => tokio::time::sleep(POLL_EVERY).await,
                Ok(_) => self.sleep_until_next_due().await,
                Err(error) => {
                    tracing::warn!(%error, "expiring pending transfers failed; trying again");
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
    }

    /// One round: expires up to [`ROUND_SIZE`] transfers due now, and
    /// waits until the read models show them expired, so the next round's
    /// query does not find them again.
    async fn expire_due(&self) -> Result<Round, ExpiryError> {
        let now = self.clock.now();
        let due = self.read.pending_transfers_due(now, ROUND_SIZE)?;
        let mut round = Round {
            due: due.len(),
            expired: 0,
        };
        let mut written = None;
        for (project, transfers) in by_project(&due) {
            let (expired, position) = self.expire(project, &transfers, now).await?;
            round.expired += expired;
            written = written.max(position);
            metrics::counter!(EXPIRED_TOTAL).increment(expired);
        }
        if let Some(position) = written {
            self.read.wait_for(position).await;
        }
        if round.due > 0 {
            tracing::debug!(
                due = round.due,
                expired = round.expired,
                "expired pending transfers"
            );
        }
        Ok(round)
    }

    /// Expires `transfers` of `project` in one batch (one append); answers
    /// how many expired and the last position written.
    async fn expire(
        &self,
        project: ProjectId,
        transfers: &[TransferId],
        now: Timestamp,
    ) -> Result<(u64, Option<Position>), ExpiryError> {
        let commands = transfers
            .iter()
            .map(|&id| BatchCommand::new(expire_command(project, id, now)))
            .collect();
        let meta = CommandMeta {
            actor: Some(ACTOR.to_owned()),
            ..CommandMeta::default()
        };
        let answers = self
            .engine
            .execute_batch(commands, meta)
            .await
            .map_err(|source| ExpiryError::Engine { project, source })?;
        let (mut expired, mut position) = (0, None);
        for (id, answer) in transfers.iter().zip(answers) {
            match answer {
                Ok(executed) => {
                    expired += 1;
                    position = position.max(Some(executed.position));
                }
                Err(error) if ended_already(&error) => {
                    tracing::debug!(transfer = %id, %error, "pending transfer not expired");
                }
                Err(error) => {
                    tracing::warn!(transfer = %id, %error, "a pending transfer could not be expired")
                }
            }
        }
        Ok((expired, position))
    }

    /// Sleeps until the earliest pending transfer is due, at most
    /// [`POLL_EVERY`]: one created meanwhile may be due sooner.
    async fn sleep_until_next_due(&self) {
        let next = match self.read.next_pending_transfer_expiry() {
            Ok(next) => next,
            Err(error) => {
                tracing::warn!(%error, "reading the next pending transfer's expiry failed");
                None
            }
        };
        let wait = next.map_or(POLL_EVERY, |at| until(self.clock.now(), at).min(POLL_EVERY));
        tokio::time::sleep(wait).await;
    }
}

fn expire_command(project: ProjectId, id: TransferId, now: Timestamp) -> CommandEnvelope {
    CommandEnvelope {
        project_id: project,
        now,
        idempotency: None,
        command: TransferCommand::ExpirePendingTransfer { id }.into(),
    }
}

/// The due transfers of each project, earliest first: a batch of the
/// engine is of one project.
fn by_project(due: &[DueTransfer]) -> BTreeMap<ProjectId, Vec<TransferId>> {
    let mut projects: BTreeMap<ProjectId, Vec<TransferId>> = BTreeMap::new();
    for transfer in due {
        projects
            .entry(transfer.project)
            .or_default()
            .push(transfer.transfer);
    }
    projects
}

/// Refusals that mean there is nothing to do: the transfer was posted or
/// voided since the read models said it was pending (or expired by a
/// round whose events they had not applied yet), or its expiry is not
/// reached on the clock of the decision.
fn ended_already(error: &EngineError) -> bool {
    matches!(
        error,
        EngineError::Domain(DomainError::Refused {
            refusal: Refusal::TransferNotPending | Refusal::PendingTransferNotExpired,
            ..
        })
    )
}

/// How long from `now` until `at` (zero if past).
fn until(now: Timestamp, at: Timestamp) -> Duration {
    let micros = at.micros().saturating_sub(now.micros());
    Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn project(n: u128) -> ProjectId {
        ProjectId::from_uuid(Uuid::from_u128(n))
    }

    fn transfer(n: u128) -> TransferId {
        TransferId::from_uuid(Uuid::from_u128(n))
    }

    fn due(project_n: u128, transfer_n: u128) -> DueTransfer {
        DueTransfer {
            project: project(project_n),
            transfer: transfer(transfer_n),
            expires_at: Timestamp::from_micros(0),
        }
    }

    #[test]
    fn due_transfers_are_grouped_by_project_in_their_order() {
        let grouped = by_project(&[due(2, 10), due(1, 11), due(2, 12)]);
        let grouped: Vec<_> = grouped.into_iter().collect();
        assert_eq!(
            grouped,
            [
                (project(1), vec![transfer(11)]),
                (project(2), vec![transfer(10), transfer(12)]),
            ]
        );
    }

    #[test]
    fn a_transfer_that_ended_meanwhile_is_no_error() {
        let refused = |refusal| EngineError::Domain(DomainError::refused(refusal, "refused"));
        assert!(ended_already(&refused(Refusal::TransferNotPending)));
        assert!(ended_already(&refused(Refusal::PendingTransferNotExpired)));
        assert!(!ended_already(&refused(Refusal::InsufficientFunds)));
        assert!(!ended_already(&EngineError::Overloaded));
    }

    #[test]
    fn a_full_round_goes_on_unless_it_was_all_refusals() {
        let full = |expired| Round {
            due: ROUND_SIZE,
            expired,
        };
        assert!(full(1).more_due());
        assert!(!full(0).more_due());
        assert!(full(0).only_refusals());
        assert!(!Round::default().only_refusals());
        assert!(!Round { due: 3, expired: 3 }.more_due());
    }

    #[test]
    fn time_until_a_past_expiry_is_zero() {
        let at = |micros| Timestamp::from_micros(micros);
        assert_eq!(until(at(5), at(3)), Duration::ZERO);
        assert_eq!(until(at(3), at(1_000_003)), Duration::from_secs(1));
    }
}
