//! The schedule: resume unfinished imports after a restart, refresh
//! connections on an interval, retry `REFRESH_DELAYED` ones at their
//! `next_try_at`, expire consents at their `expires_at`. It sleeps until
//! the index's next due time (or the re-check interval, or a kick), and
//! loads each due connection's real state before acting (the index may
//! lag the log).

use std::time::Duration;

use paycore_domain::aggregation_connection::{
    AggregationConnection, AggregationConnectionCommand, ConnectionStatus,
};
use paycore_domain::{ProjectId, Timestamp};

use crate::Syncer;
use crate::clock::{minus, until};
use crate::convert::StoredConsent;
use crate::error::SyncError;
use crate::index::DueConnection;
use crate::secrets::consent_key;

const DAY: Duration = Duration::from_secs(86_400);

/// What one look at the schedule did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Consents expired (connections moved to `ACTION_REQUIRED`).
    pub expired: usize,
    /// Imports started for connected connections.
    pub refreshed: usize,
    /// Imports started for `REFRESH_DELAYED` connections.
    pub retried: usize,
    /// Due by the index, nothing to do now (not yet due by their state or
    /// their consent's frequency, already running, the queue full).
    pub skipped: usize,
}

enum Done {
    Expired,
    Refreshed,
    Retried,
    Skipped,
}

impl Syncer {
    /// The background task: resumes unfinished imports, then follows the
    /// schedule until the task is dropped. It does not return: what fails
    /// (the index, a connection) is logged and tried again at the next
    /// look. (The `Result` is kept for callers written when a failed resume
    /// ended it.) Run it on one server of a deployment (see the crate docs).
    pub async fn run(&self) -> Result<(), SyncError> {
        // Until the index answers once, each look tries the resume again:
        // an import left unfinished must not wait for the next restart.
        let mut resumed = false;
        loop {
            if !resumed {
                match self.resume().await {
                    Ok(count) => {
                        resumed = true;
                        tracing::info!(target: "paycore::aggregation", resumed = count, "aggregation sync started");
                    }
                    Err(error) => {
                        tracing::warn!(target: "paycore::aggregation", %error, "unfinished imports could not be resumed yet")
                    }
                }
            }
            match self.tick().await {
                Ok(report) if report != TickReport::default() => {
                    tracing::debug!(target: "paycore::aggregation", ?report, "schedule");
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(target: "paycore::aggregation", %error, "the schedule could not look at what is due")
                }
            }
            let pause = self.pause();
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.inner.kick.notified() => {}
            }
        }
    }

    /// Starts a job for every unfinished import (after a restart: from the
    /// start, at the import's own sync point). Returns how many.
    pub async fn resume(&self) -> Result<usize, SyncError> {
        let unfinished = self.inner.index.unfinished_imports()?;
        let mut started = 0;
        for (project, id) in unfinished {
            match self.import_state(project, id).await {
                Ok(import) if !import.status.is_finished() => {
                    self.spawn_job(project, import.connection_id, id);
                    started += 1;
                }
                Ok(_) | Err(SyncError::ImportNotFound(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(started)
    }

    /// How long to sleep: until the next due time, at most the re-check
    /// interval, at least the least pause.
    fn pause(&self) -> Duration {
        let config = &self.inner.config;
        let next = match self.inner.index.next_due(config.refresh_interval) {
            Ok(Some(at)) => until(self.now(), at),
            Ok(None) => config.recheck_interval,
            Err(error) => {
                tracing::warn!(target: "paycore::aggregation", %error, "the sync index could not say what is next");
                config.recheck_interval
            }
        };
        next.min(config.recheck_interval).max(config.min_pause)
    }

    /// One look at what is due now.
    pub async fn tick(&self) -> Result<TickReport, SyncError> {
        let now = self.now();
        let config = &self.inner.config;
        let due =
            self.inner
                .index
                .connections_due(now, minus(now, config.refresh_interval), config.due_batch)?;
        let mut report = TickReport::default();
        for connection in due {
            match self.due(connection, now).await {
                Ok(Done::Expired) => report.expired += 1,
                Ok(Done::Refreshed) => report.refreshed += 1,
                Ok(Done::Retried) => report.retried += 1,
                Ok(Done::Skipped) => report.skipped += 1,
                Err(error) => {
                    report.skipped += 1;
                    tracing::warn!(target: "paycore::aggregation", connection = %connection.connection_id, %error, "a due connection could not be handled");
                }
            }
        }
        Ok(report)
    }

    async fn due(&self, due: DueConnection, now: Timestamp) -> Result<Done, SyncError> {
        let project = due.project_id;
        let connection = match self.connection(project, due.connection_id).await {
            Ok(connection) => connection,
            Err(SyncError::ConnectionNotFound(_)) => return Ok(Done::Skipped),
            Err(error) => return Err(error),
        };
        let id = connection.id;
        if connection.consent.is_some_and(|c| c.expires_at <= now) && connection.status.may_expire_consent() {
            let command = AggregationConnectionCommand::ExpireAggregationConsent { id };
            self.exec(project, now, command.into()).await?;
            return Ok(Done::Expired);
        }
        if self.running_import(id).is_some() || self.jobs() >= self.inner.config.max_queued_imports {
            return Ok(Done::Skipped);
        }
        let done = match connection.status {
            ConnectionStatus::RefreshDelayed { next_try_at } if next_try_at <= now => Done::Retried,
            ConnectionStatus::Connected
                if connection.status_changed_at
                    <= minus(now, self.refresh_every(project, &connection).await) =>
            {
                Done::Refreshed
            }
            _ => return Ok(Done::Skipped),
        };
        self.create_import(project, id, None, now).await?;
        Ok(done)
    }

    /// The refresh interval of a connection: the configured one, or longer
    /// if its consent allows fewer syncs a day.
    async fn refresh_every(&self, project: ProjectId, connection: &AggregationConnection) -> Duration {
        let interval = self.inner.config.refresh_interval;
        let Some(consent) = connection.consent else {
            return interval;
        };
        let key = consent_key(connection.id, consent.granted_at);
        match self.inner.secrets.get::<StoredConsent>(project, &key).await {
            Ok(Some(sealed)) => interval.max(DAY / sealed.frequency_per_day.max(1)),
            // Unreadable: the import that follows says so; at most once a day.
            _ => interval.max(DAY),
        }
    }
}
