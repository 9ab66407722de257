//! The end user's side of a connection, for the hosted connection pages
//! (`paycore-pages`): the link a connection's `authentication_url`
//! carries, the bank selection, and the consent to share accounts, with
//! the same rules as the API (the domain decides; an inactive institution
//! or an expired consent is refused the same way).
//!
//! The link names the connection and carries a token (`link.rs`, its own
//! context), so only whoever was given the URL acts on the connection.

use paycore_aggregation_sync::{SignInStep, SyncError};
use paycore_bank_connector::{Institution, RedirectCallback};
use paycore_domain::aggregate::{AggregatedAccount, AggregationConnection};
use paycore_domain::aggregated_account::AggregatedAccountCommand;
use paycore_domain::aggregation_connection::AggregationConnectionCommand;
use paycore_domain::kernel::institution::InstitutionId;
use paycore_domain::{AggregatedAccountId, AggregationConnectionId, Command, StreamRef};
use tonic::Status;

use crate::AppState;
use crate::link;
use crate::services::Handlers;
use crate::services::aggregation_connection::sources_of;

/// The actor the events of the connection pages record.
pub const CONNECT_ACTOR: &str = "bank connection page";

/// The context of a connection link's MAC.
const CONTEXT: &[u8] = b"paycore bank connection link v1\0";

/// The token of `connection`'s link.
pub fn link_token(server_secret: &[u8; 32], connection: AggregationConnectionId) -> String {
    link::token(server_secret, CONTEXT, &connection.to_string())
}

/// A connection's `authentication_url`: `<base>/<connection ID>?token=<token>`.
pub fn connect_url(base: &str, server_secret: &[u8; 32], connection: AggregationConnectionId) -> String {
    format!(
        "{base}/{connection}?token={}",
        link_token(server_secret, connection)
    )
}

/// Why a connection page cannot do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A malformed connection ID, a wrong token, or no such connection (or
    /// a deleted one): one case, so a link cannot be used to learn which
    /// connections exist.
    #[error("this connection link is not valid")]
    UnknownLink,
    /// The end user asked for something the connection refuses (an
    /// institution not offered, an account not the connection's).
    #[error("{0}")]
    Refused(String),
    /// A sign-in step could not go on (the bank is down, the step is
    /// over, …).
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error("{}", .0.message())]
    Failed(Status),
}

impl From<Status> for ConnectError {
    fn from(status: Status) -> Self {
        Self::Failed(status)
    }
}

/// Acts on connections on behalf of end users. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Connections {
    handlers: Handlers,
    server_secret: [u8; 32],
}

impl Connections {
    pub fn new(state: AppState) -> Self {
        let server_secret = state.side.fingerprint_secret;
        Self {
            handlers: Handlers::new(state),
            server_secret,
        }
    }

    /// The connection a link names, as the engine holds it now, if the link
    /// is genuine and the connection not deleted.
    pub async fn connection(&self, id: &str, token: &str) -> Result<AggregationConnection, ConnectError> {
        let id: AggregationConnectionId = id.parse().map_err(|_| ConnectError::UnknownLink)?;
        if !link::is_genuine(&self.server_secret, CONTEXT, &id.to_string(), token) {
            return Err(ConnectError::UnknownLink);
        }
        self.live(id).await
    }

    /// Connection `id` as the engine holds it now, unless deleted.
    async fn live(&self, id: AggregationConnectionId) -> Result<AggregationConnection, ConnectError> {
        let state = self.handlers.load(&StreamRef::AggregationConnection(id)).await?;
        state
            .as_aggregation_connection()
            .filter(|connection| !connection.is_deleted())
            .cloned()
            .ok_or(ConnectError::UnknownLink)
    }

    /// The institutions the connection's project activated whose name or
    /// code contains `query` (any case), in `country` if given, by country
    /// then name.
    pub async fn institutions(
        &self,
        connection: &AggregationConnection,
        query: &str,
        country: Option<&str>,
    ) -> Result<Vec<Institution>, ConnectError> {
        let query = query.trim().to_lowercase();
        let mut offered = Vec::new();
        for institution in self.handlers.catalogue().await? {
            let matches = country.is_none_or(|country| institution.country.to_string() == country)
                && (query.is_empty()
                    || institution.name.to_lowercase().contains(&query)
                    || institution.id.as_str().to_lowercase().contains(&query));
            if matches
                && self
                    .handlers
                    .is_active(connection.project_id, &institution)
                    .await?
            {
                offered.push(institution);
            }
        }
        offered.sort_by(|a, b| (a.country.to_string(), &a.name).cmp(&(b.country.to_string(), &b.name)));
        Ok(offered)
    }

    /// The connection's bank as the catalogue names it, if it has one.
    pub async fn institution(
        &self,
        connection: &AggregationConnection,
    ) -> Result<Option<Institution>, ConnectError> {
        let Some(id) = &connection.institution_id else {
            return Ok(None);
        };
        let catalogue = self.handlers.catalogue().await?;
        Ok(catalogue
            .into_iter()
            .find(|institution| institution.id.as_str() == id.as_str()))
    }

    /// Records the end user's choice of bank on a connection created for the
    /// bank-selection page.
    pub async fn choose_institution(
        &self,
        id: &str,
        token: &str,
        institution: &str,
    ) -> Result<AggregationConnection, ConnectError> {
        let connection = self.connection(id, token).await?;
        let offered = self.institutions(&connection, "", None).await?;
        let Some(chosen) = offered.iter().find(|offered| offered.id.as_str() == institution) else {
            return Err(ConnectError::Refused("Choose one of the banks listed.".into()));
        };
        let institution_id = InstitutionId::parse(chosen.id.as_str())
            .map_err(|_| ConnectError::Refused("Choose one of the banks listed.".into()))?;
        let command = AggregationConnectionCommand::ChooseAggregationInstitution {
            id: connection.id,
            institution_id,
            sources: sources_of(chosen),
        };
        let state = self.run(&connection, command.into()).await?;
        state
            .as_aggregation_connection()
            .cloned()
            .ok_or(ConnectError::UnknownLink)
    }

    /// The connection's accounts the bank still lists, in the order found.
    pub async fn accounts(
        &self,
        connection: &AggregationConnection,
    ) -> Result<Vec<AggregatedAccount>, ConnectError> {
        let mut accounts = Vec::with_capacity(connection.accounts.len());
        for id in &connection.accounts {
            let state = self.handlers.load(&StreamRef::AggregatedAccount(*id)).await?;
            if let Some(account) = state.as_aggregated_account()
                && !account.is_archived()
            {
                accounts.push(account.clone());
            }
        }
        Ok(accounts)
    }

    /// Records the end user's consent to share `chosen` (IDs of the
    /// connection's accounts); the others stay disabled.
    pub async fn consent(
        &self,
        id: &str,
        token: &str,
        chosen: &[String],
    ) -> Result<AggregationConnection, ConnectError> {
        let connection = self.connection(id, token).await?;
        for raw in chosen {
            let account: AggregatedAccountId = raw
                .parse()
                .ok()
                .filter(|account| connection.accounts.contains(account))
                .ok_or_else(|| ConnectError::Refused("Choose among the accounts listed.".into()))?;
            self.run(
                &connection,
                AggregatedAccountCommand::EnableAggregatedAccount { id: account }.into(),
            )
            .await?;
        }
        if !chosen.is_empty() {
            // The accounts' details and transactions come with an import.
            match self.syncer().refresh(connection.project_id, connection.id).await {
                Ok(_) | Err(SyncError::AlreadyUpdating { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        self.connection(id, token).await
    }

    /// Signs in with the end user's credentials at the connection's bank.
    pub async fn submit_credentials(
        &self,
        id: &str,
        token: &str,
        username: &str,
        password: &str,
    ) -> Result<SignInStep, ConnectError> {
        let connection = self.connection(id, token).await?;
        Ok(self
            .syncer()
            .submit_credentials(connection.project_id, connection.id, username, password)
            .await?)
    }

    /// The sign-in step the connection waits for, as the bank last asked it
    /// (the prompt, the bank's page), if one waits.
    pub async fn waiting(
        &self,
        connection: &AggregationConnection,
    ) -> Result<Option<SignInStep>, ConnectError> {
        Ok(self
            .syncer()
            .waiting(connection.project_id, connection.id)
            .await?)
    }

    /// Answers the bank's one-time code challenge.
    pub async fn submit_one_time_code(
        &self,
        id: &str,
        token: &str,
        code: &str,
    ) -> Result<SignInStep, ConnectError> {
        let connection = self.connection(id, token).await?;
        Ok(self
            .syncer()
            .submit_one_time_code(connection.project_id, connection.id, code)
            .await?)
    }

    /// Asks the bank whether the end user approved the sign-in in its app.
    pub async fn poll_sca(&self, id: &str, token: &str) -> Result<SignInStep, ConnectError> {
        let connection = self.connection(id, token).await?;
        Ok(self
            .syncer()
            .poll_sca(connection.project_id, connection.id)
            .await?)
    }

    /// Finishes a sign-in the bank redirected the end user back from. The
    /// callback carries no link token: the bank's `state`, which the syncer
    /// checks against the sign-in waiting, is what proves it. Answers the
    /// connection's own link, to continue on its page.
    pub async fn complete_redirect(
        &self,
        id: &str,
        callback: RedirectCallback,
    ) -> Result<(SignInStep, String), ConnectError> {
        let id: AggregationConnectionId = id.parse().map_err(|_| ConnectError::UnknownLink)?;
        let connection = self.live(id).await?;
        let step = self
            .syncer()
            .complete_redirect(connection.project_id, id, callback)
            .await?;
        Ok((step, connect_url("", &self.server_secret, id)))
    }

    /// Where banks send end users back to (`<base>/<connection ID>`): the
    /// only place the sandbox bank's page sends anyone.
    pub fn bank_redirect_uri(&self) -> &str {
        &self.handlers.state.sync_config().bank_redirect_uri
    }

    fn syncer(&self) -> &paycore_aggregation_sync::Syncer {
        &self.handlers.state.syncer
    }

    /// Runs `command` in the connection's project as the page.
    async fn run(
        &self,
        connection: &AggregationConnection,
        command: Command,
    ) -> Result<paycore_domain::Aggregate, ConnectError> {
        Ok(self
            .handlers
            .execute_as(
                connection.project_id,
                CONNECT_ACTOR.to_owned(),
                None,
                None,
                command,
            )
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn a_link_is_bound_to_its_connection_and_opens_no_other_page() {
        let secret = [7u8; 32];
        let connection = AggregationConnectionId::from_uuid(Uuid::from_u128(1));
        let token = link_token(&secret, connection);
        assert!(link::is_genuine(
            &secret,
            CONTEXT,
            &connection.to_string(),
            &token
        ));
        assert_ne!(
            token,
            link_token(&secret, AggregationConnectionId::from_uuid(Uuid::from_u128(2)))
        );
        assert_ne!(token, link_token(&[8u8; 32], connection), "another deployment");
        assert!(
            !link::is_genuine(
                &secret,
                b"paycore 3-D Secure challenge link v1\0",
                &connection.to_string(),
                &token
            ),
            "a connection's token is no challenge's"
        );
        assert_eq!(
            connect_url("https://pay.example/connect", &secret, connection),
            format!("https://pay.example/connect/{connection}?token={token}")
        );
    }
}
