//! The sign-in steps the gRPC API and the hosted pages call. Each asks the
//! bank first and records the answer after, along the diagram:
//!
//! - a first sign-in (`INITIAL_ACTION_REQUIRED`) records `CONNECTING`, then
//!   `UPDATING` when signed in, or `INITIAL_ACTION_REQUIRED` with the
//!   reason when the bank asks for more (a one-time code, SCA, a redirect)
//!   or refuses;
//! - a sign-in again from `ACTION_REQUIRED` records `UPDATING` when signed
//!   in and nothing otherwise (the diagram has no other arrow from there).
//!
//! A bank that is down or limits calls leaves the connection as it was
//! (the status moves only once the bank answered): the caller shows the
//! error and the end user tries the same step again.

use paycore_bank_connector::{
    ConnectorError, ConsentRequest, Credentials, RedirectCallback, Session, SignInOutcome, SignInRequest,
};
use paycore_domain::aggregation_connection::{
    ActionRequiredReason, AggregationConnection, AggregationConnectionCommand, CONSENT_MAX_DAYS,
    ConnectionStatus,
};
use paycore_domain::aggregation_import::AdvancedScope;
use paycore_domain::aggregation_import::AggregationImportCommand;
use paycore_domain::{AggregationConnectionId, AggregationImportId, ProjectId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::Syncer;
use crate::clock::{from_offset, to_offset};
use crate::convert::StoredConsent;
use crate::error::SyncError;
use crate::secrets::{consent_key, step_key};

/// What the caller shows the end user next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignInStep {
    /// Signed in, consent granted; the default import is running.
    Connected { import_id: AggregationImportId },
    /// The bank sent a code: [`Syncer::submit_one_time_code`].
    OneTimeCodeRequired { prompt: String },
    /// Send the end user to the bank's page; it sends them back to the
    /// redirect URI: [`Syncer::complete_redirect`].
    RedirectRequired { url: String },
    /// Approve in the bank's app, then [`Syncer::poll_sca`].
    ScaRequired { prompt: String },
    /// The bank refused; the connection records why. Sign in again.
    Failed {
        reason: ActionRequiredReason,
        detail: String,
    },
}

/// A step waiting for the end user, sealed in side storage.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum WaitingStep {
    OneTimeCode { challenge: String, prompt: String },
    Sca { challenge: String, prompt: String },
    Redirect { state: String, url: String },
}

impl WaitingStep {
    /// What the end user is shown for it.
    fn shown(&self) -> SignInStep {
        match self {
            Self::OneTimeCode { prompt, .. } => SignInStep::OneTimeCodeRequired {
                prompt: prompt.clone(),
            },
            Self::Sca { prompt, .. } => SignInStep::ScaRequired {
                prompt: prompt.clone(),
            },
            Self::Redirect { url, .. } => SignInStep::RedirectRequired { url: url.clone() },
        }
    }
}

/// Whether the connection is in its first sign-in (`CONNECTING` too: a
/// step that stopped between its two status changes goes on from there).
fn first_sign_in(connection: &AggregationConnection) -> bool {
    matches!(
        connection.status,
        ConnectionStatus::InitialActionRequired { .. } | ConnectionStatus::Connecting
    )
}

fn signing_in(connection: &AggregationConnection) -> Result<(), SyncError> {
    if first_sign_in(connection) || matches!(connection.status, ConnectionStatus::ActionRequired { .. }) {
        Ok(())
    } else {
        Err(SyncError::WrongStep {
            connection: connection.id,
            status: connection.status.name(),
            expected: "only a connection waiting for the end user signs in",
        })
    }
}

fn sign_in_error(error: ConnectorError) -> SyncError {
    match error {
        ConnectorError::BankUnavailable { retry_after } => SyncError::BankUnavailable {
            retry_after: retry_after.map(from_offset),
        },
        ConnectorError::Transport(_) => SyncError::BankUnavailable { retry_after: None },
        ConnectorError::RateLimited { retry_after } => SyncError::RateLimited {
            retry_after: from_offset(retry_after),
        },
        other => SyncError::Connector(other),
    }
}

/// The consent's days as the domain records them: what the bank granted,
/// 1 to 180.
fn consent_days(consent: &paycore_bank_connector::Consent, today: time::Date) -> u16 {
    let days = (consent.valid_until - today).whole_days();
    u16::try_from(days.clamp(1, i64::from(CONSENT_MAX_DAYS))).unwrap_or(CONSENT_MAX_DAYS)
}

fn status(id: AggregationConnectionId, status: ConnectionStatus) -> paycore_domain::Command {
    AggregationConnectionCommand::ChangeAggregationConnectionStatus { id, status }.into()
}

impl Syncer {
    /// Signs in with the end user's credentials (never kept, never logged).
    pub async fn submit_credentials(
        &self,
        project: ProjectId,
        id: AggregationConnectionId,
        username: &str,
        password: &str,
    ) -> Result<SignInStep, SyncError> {
        let connection = self.connection(project, id).await?;
        signing_in(&connection)?;
        let institution = self.institution(&connection).await?;
        let now = self.now();
        let at = to_offset(now)?;
        let request = SignInRequest {
            institution: institution.id.clone(),
            credentials: Credentials {
                username: username.to_owned(),
                password: password.to_owned(),
            },
            consent: ConsentRequest::everything(&institution, at.date()),
            redirect_uri: self.redirect_uri(id),
            now: at,
        };
        self.inner.limiter.wait(institution.id.as_str()).await;
        let outcome = self.inner.bank.start_sign_in(request).await;
        self.answer(project, &connection, outcome, now).await
    }

    /// Answers the one-time code the bank asked for.
    pub async fn submit_one_time_code(
        &self,
        project: ProjectId,
        id: AggregationConnectionId,
        code: &str,
    ) -> Result<SignInStep, SyncError> {
        let connection = self.connection(project, id).await?;
        signing_in(&connection)?;
        let WaitingStep::OneTimeCode { challenge, .. } = self.waiting_step(project, &connection).await?
        else {
            return Err(self.not_this_step(&connection, "the bank did not ask for a one-time code"));
        };
        let now = self.now();
        self.pace(&connection).await;
        let outcome = self
            .inner
            .bank
            .submit_one_time_code(&challenge, code, to_offset(now)?)
            .await;
        self.answer(project, &connection, outcome, now).await
    }

    /// Finishes a redirect with what the bank sent the end user back with.
    pub async fn complete_redirect(
        &self,
        project: ProjectId,
        id: AggregationConnectionId,
        callback: RedirectCallback,
    ) -> Result<SignInStep, SyncError> {
        let connection = self.connection(project, id).await?;
        signing_in(&connection)?;
        let WaitingStep::Redirect { state, .. } = self.waiting_step(project, &connection).await? else {
            return Err(self.not_this_step(&connection, "the bank did not redirect the end user"));
        };
        if callback.state != state {
            return Err(SyncError::RedirectMismatch(id));
        }
        let now = self.now();
        self.pace(&connection).await;
        let outcome = self
            .inner
            .bank
            .complete_redirect(&callback, to_offset(now)?)
            .await;
        self.answer(project, &connection, outcome, now).await
    }

    /// Asks whether the end user approved in the bank's app; while they
    /// have not, answers `ScaRequired` again and records nothing.
    pub async fn poll_sca(
        &self,
        project: ProjectId,
        id: AggregationConnectionId,
    ) -> Result<SignInStep, SyncError> {
        let connection = self.connection(project, id).await?;
        signing_in(&connection)?;
        let WaitingStep::Sca { challenge, prompt } = self.waiting_step(project, &connection).await? else {
            return Err(self.not_this_step(&connection, "the bank did not ask for an approval in its app"));
        };
        let now = self.now();
        self.pace(&connection).await;
        let outcome = self.inner.bank.poll_sca(&challenge, to_offset(now)?).await;
        if let Ok(SignInOutcome::ScaRequired { .. }) = outcome {
            return Ok(SignInStep::ScaRequired { prompt });
        }
        self.answer(project, &connection, outcome, now).await
    }

    /// The step the connection waits for, as it was last shown (for a page
    /// reloaded, or served by another server); `None` when none waits.
    pub async fn waiting(
        &self,
        project: ProjectId,
        id: AggregationConnectionId,
    ) -> Result<Option<SignInStep>, SyncError> {
        let connection = self.connection(project, id).await?;
        if signing_in(&connection).is_err() {
            return Ok(None);
        }
        match self.waiting_step(project, &connection).await {
            Ok(step) => Ok(Some(step.shown())),
            Err(SyncError::StepMissing(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn redirect_uri(&self, id: AggregationConnectionId) -> String {
        format!(
            "{}/{id}",
            self.inner.config.bank_redirect_uri.trim_end_matches('/')
        )
    }

    async fn pace(&self, connection: &AggregationConnection) {
        if let Some(institution) = &connection.institution_id {
            self.inner.limiter.wait(institution.as_str()).await;
        }
    }

    fn not_this_step(&self, connection: &AggregationConnection, expected: &'static str) -> SyncError {
        SyncError::WrongStep {
            connection: connection.id,
            status: connection.status.name(),
            expected,
        }
    }

    async fn waiting_step(
        &self,
        project: ProjectId,
        connection: &AggregationConnection,
    ) -> Result<WaitingStep, SyncError> {
        let key = step_key(connection.id, connection.status_changed_at);
        self.inner
            .secrets
            .get(project, &key)
            .await?
            .ok_or(SyncError::StepMissing(connection.id))
    }

    /// Records the bank's answer to a step and says what comes next.
    async fn answer(
        &self,
        project: ProjectId,
        connection: &AggregationConnection,
        outcome: Result<SignInOutcome, ConnectorError>,
        now: Timestamp,
    ) -> Result<SignInStep, SyncError> {
        use ActionRequiredReason as Reason;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            // The challenge or session ran out: this sign-in is over.
            Err(ConnectorError::SessionExpired { .. } | ConnectorError::InvalidToken { .. }) => {
                let detail = "the bank's sign-in step expired: sign in again";
                return self
                    .failed(project, connection, Reason::CredentialsInvalid, detail, now)
                    .await;
            }
            Err(error) => return Err(sign_in_error(error)),
        };
        match outcome {
            SignInOutcome::Connected { session } => self.connected(project, connection, &session, now).await,
            SignInOutcome::OneTimeCodeRequired { challenge } => {
                let step = WaitingStep::OneTimeCode {
                    challenge: challenge.token,
                    prompt: challenge.prompt,
                };
                self.wait_for(project, connection, Reason::OneTimeCodeRequired, &step, now)
                    .await?;
                Ok(step.shown())
            }
            SignInOutcome::RedirectRequired { url, state } => {
                let step = WaitingStep::Redirect { state, url };
                self.wait_for(project, connection, Reason::WebAuthenticationRequired, &step, now)
                    .await?;
                Ok(step.shown())
            }
            SignInOutcome::ScaRequired { challenge } => {
                let step = WaitingStep::Sca {
                    challenge: challenge.token,
                    prompt: challenge.prompt,
                };
                self.wait_for(project, connection, Reason::ScaRequired, &step, now)
                    .await?;
                Ok(step.shown())
            }
            SignInOutcome::InvalidCredentials => {
                let detail = "the bank refused the username or password";
                self.failed(project, connection, Reason::CredentialsInvalid, detail, now)
                    .await
            }
            SignInOutcome::AuthenticationFailed { reason } => {
                self.failed(project, connection, Reason::CredentialsInvalid, &reason, now)
                    .await
            }
            SignInOutcome::BankDown { retry_after } => Err(SyncError::BankUnavailable {
                retry_after: retry_after.map(from_offset),
            }),
            SignInOutcome::RateLimited { retry_after } => Err(SyncError::RateLimited {
                retry_after: from_offset(retry_after),
            }),
        }
    }

    /// Keeps the step sealed, then records that the end user must act.
    async fn wait_for(
        &self,
        project: ProjectId,
        connection: &AggregationConnection,
        reason: ActionRequiredReason,
        step: &WaitingStep,
        now: Timestamp,
    ) -> Result<(), SyncError> {
        let id = connection.id;
        if !first_sign_in(connection) {
            // No status to change: the step replaces the last one.
            let key = step_key(id, connection.status_changed_at);
            return Ok(self.inner.secrets.replace(project, &key, step).await?);
        }
        // Sealed before the status that points at it, under the time that
        // status is recorded at.
        self.inner
            .secrets
            .replace(project, &step_key(id, now), step)
            .await?;
        self.exec(project, now, status(id, ConnectionStatus::Connecting))
            .await?;
        let waiting = ConnectionStatus::InitialActionRequired { reason: Some(reason) };
        self.exec(project, now, status(id, waiting)).await?;
        if connection.status_changed_at != now {
            self.forget_step(connection).await;
        }
        Ok(())
    }

    /// The bank refused: a first sign-in goes back to
    /// `INITIAL_ACTION_REQUIRED` with the reason.
    async fn failed(
        &self,
        project: ProjectId,
        connection: &AggregationConnection,
        reason: ActionRequiredReason,
        detail: &str,
        now: Timestamp,
    ) -> Result<SignInStep, SyncError> {
        if first_sign_in(connection) {
            let id = connection.id;
            self.exec(project, now, status(id, ConnectionStatus::Connecting))
                .await?;
            let again = ConnectionStatus::InitialActionRequired { reason: Some(reason) };
            self.exec(project, now, status(id, again)).await?;
        }
        self.forget_step(connection).await;
        Ok(SignInStep::Failed {
            reason,
            detail: detail.to_owned(),
        })
    }

    /// Signed in: the consent as the bank granted it (sealed, then
    /// recorded), `UPDATING`, and the default import.
    async fn connected(
        &self,
        project: ProjectId,
        connection: &AggregationConnection,
        session: &Session,
        now: Timestamp,
    ) -> Result<SignInStep, SyncError> {
        let id = connection.id;
        let at = to_offset(now)?;
        self.pace(connection).await;
        let consent = self
            .inner
            .bank
            .grant_consent(session, at)
            .await
            .map_err(sign_in_error)?;
        if first_sign_in(connection) {
            self.exec(project, now, status(id, ConnectionStatus::Connecting))
                .await?;
        }
        // Sealed under the time the domain records the grant at, so the
        // imports find it from the connection's state.
        let sealed = StoredConsent::from_bank(&consent);
        self.inner
            .secrets
            .replace(project, &consent_key(id, now), &sealed)
            .await?;
        let grant = AggregationConnectionCommand::GrantAggregationConsent {
            id,
            valid_for_days: consent_days(&consent, at.date()),
        };
        self.exec(project, now, grant.into()).await?;
        // The import before UPDATING: a crash in between leaves an
        // unfinished import, whose resumed job moves the connection on
        // (see `import::prepare`), never a connection UPDATING for nothing.
        let import_id = self.new_import(project, id, None, now).await?;
        self.exec(project, now, status(id, ConnectionStatus::Updating))
            .await?;
        if let Some(old) = connection.consent
            && old.granted_at != now
        {
            self.inner
                .secrets
                .delete(&consent_key(id, old.granted_at))
                .await?;
        }
        self.forget_step(connection).await;
        self.spawn_job(project, id, import_id);
        Ok(SignInStep::Connected { import_id })
    }

    /// Deletes the step the connection was waiting for (used or replaced).
    /// A failure only leaves a sealed entry no step reads again.
    async fn forget_step(&self, connection: &AggregationConnection) {
        let key = step_key(connection.id, connection.status_changed_at);
        if let Err(error) = self.inner.secrets.delete(&key).await {
            tracing::warn!(target: "paycore::aggregation", connection = %connection.id, %error, "a used sign-in step could not be deleted");
        }
    }

    /// Creates an import and starts its job.
    pub(crate) async fn create_import(
        &self,
        project: ProjectId,
        connection: AggregationConnectionId,
        scope: Option<AdvancedScope>,
        now: Timestamp,
    ) -> Result<AggregationImportId, SyncError> {
        let id = self.new_import(project, connection, scope, now).await?;
        self.spawn_job(project, connection, id);
        Ok(id)
    }

    async fn new_import(
        &self,
        project: ProjectId,
        connection: AggregationConnectionId,
        scope: Option<AdvancedScope>,
        now: Timestamp,
    ) -> Result<AggregationImportId, SyncError> {
        let id = AggregationImportId::from_uuid(self.inner.clock.new_uuid());
        let command = AggregationImportCommand::CreateAggregationImport {
            id,
            connection_id: connection,
            scope,
        };
        self.exec(project, now, command.into()).await?;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consent_recorded_is_what_the_bank_granted_within_180_days() {
        let today = time::macros::date!(2026 - 12 - 06);
        let consent = |valid_until| paycore_bank_connector::Consent {
            id: "c".into(),
            institution: paycore_bank_connector::InstitutionId::new("x"),
            granted_at: time::OffsetDateTime::UNIX_EPOCH,
            valid_until,
            frequency_per_day: 4,
            recurring: true,
            max_history_days: 90,
            scope: Default::default(),
        };
        assert_eq!(
            consent_days(&consent(today + time::Duration::days(90)), today),
            90
        );
        assert_eq!(
            consent_days(&consent(today + time::Duration::days(400)), today),
            180
        );
        assert_eq!(consent_days(&consent(today), today), 1);
    }
}
