//! The read-model part of the admin service: projection status and online
//! rebuilds, as the `paycore projections` commands use them.

use paycore_domain::FieldViolation;
use paycore_projections::{ProjectionStatus, ReadModels, RebuildError, RebuildProgress, RebuildState};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::pb;
use crate::errors::invalid_argument;

/// The stream `RebuildProjections` answers with.
pub type ProgressStream = ReceiverStream<Result<pb::RebuildProgress, Status>>;

pub(crate) fn status_pb(status: &ProjectionStatus) -> pb::ProjectionStatus {
    pb::ProjectionStatus {
        name: status.name.to_owned(),
        description: status.description.to_owned(),
        version: status.version,
        checkpoint: status.checkpoint,
        head: status.head,
        lag: status.lag(),
        rebuilding: status.rebuilding.as_ref().map(progress_pb),
    }
}

pub(crate) fn progress_pb(progress: &RebuildProgress) -> pb::RebuildProgress {
    let (state, error) = match &progress.state {
        RebuildState::Running => (pb::rebuild_progress::State::Running, String::new()),
        RebuildState::Done => (pb::rebuild_progress::State::Done, String::new()),
        RebuildState::Failed(reason) => (pb::rebuild_progress::State::Failed, reason.clone()),
    };
    pb::RebuildProgress {
        projections: progress
            .projections
            .iter()
            .map(|name| (*name).to_owned())
            .collect(),
        position: progress.position,
        head: progress.head,
        applied: progress.applied,
        elapsed_seconds: progress.elapsed.as_secs_f64(),
        state: state.into(),
        error,
    }
}

fn rebuild_status(error: &RebuildError) -> Status {
    match error {
        RebuildError::UnknownProjection(_) | RebuildError::NoneChosen => {
            invalid_argument(&[FieldViolation {
                field: "projections".into(),
                description: error.to_string(),
            }])
        }
        RebuildError::AlreadyRebuilding(_) => Status::failed_precondition(error.to_string()),
    }
}

/// Starts the rebuild and streams its progress until it is done or failed.
/// The job belongs to the server: a caller that goes away stops watching,
/// not rebuilding.
pub(crate) fn rebuild(read: &ReadModels, names: &[String]) -> Result<ProgressStream, Status> {
    let mut progress = read.rebuild(names).map_err(|error| rebuild_status(&error))?;
    let (sender, receiver) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let current = progress.borrow_and_update().clone();
            let finished = current.state != RebuildState::Running;
            if sender.send(Ok(progress_pb(&current))).await.is_err() || finished {
                return;
            }
            if changed_or_closed(&mut progress).await {
                return;
            }
        }
    });
    Ok(ReceiverStream::new(receiver))
}

/// Waits for the next progress report; true when the job is gone.
async fn changed_or_closed(progress: &mut watch::Receiver<RebuildProgress>) -> bool {
    // Reports come once per batch; a tenth of a second between messages
    // keeps a terminal's progress bar smooth without flooding the socket.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    progress.changed().await.is_err()
}
