//! The service implementations. Every handler: authenticate, parse the whole
//! request (collecting all violations), run the command through the engine
//! or read the projections, answer in proto.

pub mod account;
pub mod aggregated_account;
pub mod aggregation_connection;
pub mod aggregation_import;
pub mod bank_account;
pub mod bank_payin;
pub mod bank_payout;
pub mod card;
pub mod card_payin;
pub mod customer;
pub mod events;
pub mod file;
pub mod fx_rate;
pub mod institution;
pub mod project;
pub mod transfer;

use std::sync::Arc;

use paycore_domain::history::{AccountHistory, AsOf};
use paycore_domain::{
    AccountId, Aggregate, Command, CommandEnvelope, DomainError, IdempotencyKey, ProjectId, Violations,
};
use paycore_engine::{BatchCommand, CommandMeta, EngineError, Executed};
use paycore_projections::{ModelError, Page, PageError, PageRequest};
use tonic::metadata::MetadataMap;
use tonic::{Request, Status};
use uuid::Uuid;

use crate::AppState;
use crate::auth::{self, Caller};
use crate::convert;
use crate::errors::{domain_status, engine_status, internal, model_status, page_status};
use crate::idempotency;
use crate::queries::Queries;

pub use events::Drain;

/// Full gRPC method names, as hashed with idempotent requests.
pub mod methods {
    pub const CREATE_CUSTOMER: &str = "/paycore.v1.CustomerService/CreateCustomer";
    pub const CREATE_ACCOUNT: &str = "/paycore.v1.AccountService/CreateAccount";
    pub const CREATE_TRANSFER: &str = "/paycore.v1.TransferService/CreateTransfer";
    pub const CREATE_TRANSFERS: &str = "/paycore.v1.TransferService/CreateTransfers";
    pub const POST_PENDING_TRANSFER: &str = "/paycore.v1.TransferService/PostPendingTransfer";
    pub const VOID_PENDING_TRANSFER: &str = "/paycore.v1.TransferService/VoidPendingTransfer";
    pub const CREATE_BANK_ACCOUNT: &str = "/paycore.v1.BankAccountService/CreateBankAccount";
    pub const CREATE_BANK_PAYOUT: &str = "/paycore.v1.BankPayoutService/CreateBankPayout";
    pub const COMPLETE_BANK_PAYOUT: &str = "/paycore.v1.BankPayoutService/CompleteBankPayout";
    pub const FAIL_BANK_PAYOUT: &str = "/paycore.v1.BankPayoutService/FailBankPayout";
    pub const RETURN_BANK_PAYOUT: &str = "/paycore.v1.BankPayoutService/ReturnBankPayout";
    pub const CREATE_BANK_PAYIN_REFERENCE: &str =
        "/paycore.v1.BankPayinReferenceService/CreateBankPayinReference";
    pub const SIMULATE_BANK_PAYIN: &str = "/paycore.v1.BankPayinService/SimulateBankPayin";
    pub const UPLOAD_FILE: &str = "/paycore.v1.FileService/UploadFile";
    pub const CREATE_CARD_TOKEN: &str = "/paycore.v1.CardTokenService/CreateCardToken";
    pub const CREATE_CARD: &str = "/paycore.v1.CardService/CreateCard";
    pub const CREATE_CARD_PAYIN: &str = "/paycore.v1.CardPayinService/CreateCardPayin";
    pub const COMPLETE_CARD_PAYIN_AUTHENTICATION: &str =
        "/paycore.v1.CardPayinService/CompleteCardPayinAuthentication";
    pub const SETTLE_CARD_PAYIN: &str = "/paycore.v1.CardPayinService/SettleCardPayin";
    pub const CREATE_CARD_PAYIN_REFUND: &str = "/paycore.v1.CardPayinService/CreateCardPayinRefund";
    pub const COMPLETE_CARD_PAYIN_REFUND: &str = "/paycore.v1.CardPayinService/CompleteCardPayinRefund";
    pub const FAIL_CARD_PAYIN_REFUND: &str = "/paycore.v1.CardPayinService/FailCardPayinRefund";
    pub const CREATE_AGGREGATION_CONNECTION: &str =
        "/paycore.v1.AggregationConnectionService/CreateAggregationConnection";
}

/// One value implementing every service; cheap to clone.
#[derive(Clone, Debug)]
pub struct Handlers {
    pub(crate) state: Arc<AppState>,
    /// Ends event subscriptions when the server shuts down.
    drain: Drain,
}

impl Handlers {
    pub fn new(state: AppState) -> Self {
        Self {
            state: Arc::new(state),
            drain: Drain::new(),
        }
    }

    pub fn drain(&self) -> Drain {
        self.drain.clone()
    }

    fn new_uuid(&self) -> Uuid {
        self.state.clock.new_uuid()
    }

    /// Authenticates a `Create*` request and reads its idempotency key.
    async fn create_caller<T: prost::Message>(
        &self,
        request: &Request<T>,
        method: &str,
        v: &mut Violations,
    ) -> Result<(Caller, Option<IdempotencyKey>), Status> {
        let caller = auth::authenticate(&self.state.engine, request.metadata()).await?;
        let key = idempotency::key(
            &self.key_scope(&caller)?,
            request.metadata(),
            method,
            request.get_ref(),
            v,
        );
        Ok((caller, key))
    }

    /// Where `caller`'s idempotency keys are kept.
    fn key_scope(&self, caller: &Caller) -> Result<idempotency::KeyScope, Status> {
        let verbatim_until = self
            .state
            .read
            .verbatim_idempotency_until()
            .map_err(|error| model_status(&error))?;
        Ok(idempotency::KeyScope::new(
            caller.project_id,
            self.state.side.fingerprint_secret,
            verbatim_until,
            self.state.clock.now(),
        ))
    }

    /// Authenticates any other request; these refuse an idempotency key.
    async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let caller = auth::authenticate(&self.state.engine, request.metadata()).await?;
        idempotency::reject(request.metadata())?;
        Ok(caller)
    }

    /// Runs a command on behalf of `caller` (recorded as the events' actor)
    /// and waits until the read models have applied it, so a
    /// read right after the answer sees the change. Answers the state of the
    /// resource the command created or changed.
    async fn execute(
        &self,
        caller: &Caller,
        correlation_id: Option<Uuid>,
        idempotency: Option<IdempotencyKey>,
        command: Command,
    ) -> Result<Aggregate, Status> {
        let actor = caller.key_id.to_string();
        self.execute_as(caller.project_id, actor, correlation_id, idempotency, command)
            .await
    }

    /// [`Handlers::execute`] in `project_id` for an actor that is not an
    /// API key (the hosted challenge page).
    pub(crate) async fn execute_as(
        &self,
        project_id: ProjectId,
        actor: String,
        correlation_id: Option<Uuid>,
        idempotency: Option<IdempotencyKey>,
        command: Command,
    ) -> Result<Aggregate, Status> {
        let read_by = ReadBy::of(&command);
        let envelope = CommandEnvelope {
            project_id,
            now: self.state.clock.now(),
            idempotency,
            command,
        };
        let meta = CommandMeta {
            actor: Some(actor),
            correlation_id,
            // The engine records the call's trace context (its command span).
            trace: None,
        };
        let executed = self
            .state
            .engine
            .execute_with(envelope, meta)
            .await
            .map_err(|e| engine_status(&e))?;
        self.read_your_write(executed.position, read_by).await;
        Ok(executed.state)
    }

    /// Runs `commands` of `caller`'s project as one batch (see
    /// `Engine::execute_batch`), and waits until the read models have
    /// applied every command it wrote.
    async fn execute_batch(
        &self,
        caller: &Caller,
        correlation_id: Option<Uuid>,
        commands: Vec<BatchCommand>,
    ) -> Result<Vec<Result<Executed, EngineError>>, Status> {
        let meta = CommandMeta {
            actor: Some(caller.key_id.to_string()),
            correlation_id,
            trace: None,
        };
        let answers = self
            .state
            .engine
            .execute_batch(commands, meta)
            .await
            .map_err(|e| engine_status(&e))?;
        let newest = answers.iter().flatten().map(|executed| executed.position).max();
        if let Some(position) = newest {
            self.read_your_write(position, ReadBy::Queries).await;
        }
        Ok(answers)
    }

    /// Waits until the read models `read_by` applied `position` (bounded
    /// by the read-your-writes timeout).
    async fn read_your_write(&self, position: paycore_store::Position, read_by: ReadBy) {
        let queries = self.queries();
        let caught_up = tokio::time::timeout(self.state.read_your_writes_timeout, async {
            match read_by {
                ReadBy::Queries => queries.wait_for(position).await,
                ReadBy::Local => queries.local().wait_for(position).await,
            }
        })
        .await;
        if caught_up.is_err() {
            // The command is durable: answering an error would invite a
            // duplicate. Answer, and let the lag be seen in the logs.
            tracing::warn!(
                position,
                "read models did not reach the command's position in time"
            );
        }
    }
}

impl Handlers {
    /// The account `id` of `project` as it was at `as_of`, read from the
    /// log; NOT_FOUND if it did not exist yet or is another project's.
    async fn account_as_of(
        &self,
        project: ProjectId,
        id: AccountId,
        as_of: AsOf,
    ) -> Result<AccountHistory, Status> {
        paycore_engine::history::account_as_of(self.state.engine.store().as_ref(), id, as_of)
            .await
            .map_err(|e| engine_status(&e))?
            .filter(|history| history.account.project_id == project)
            .ok_or_else(|| domain_status(&DomainError::not_found("account", id)))
    }
}

impl Handlers {
    /// Where queries are answered from (see [`crate::queries`]).
    fn queries(&self) -> Queries<'_> {
        Queries::new(&self.state.read, self.state.tables.as_ref())
    }

    /// A page of one of the caller's lists: validates `page_size` and
    /// `page_token`, then reads it from the read models.
    async fn list_page<Q, T>(
        &self,
        request: &Request<Q>,
        page_size: i32,
        page_token: &str,
        list: impl AsyncFnOnce(Queries<'_>, ProjectId, &PageRequest) -> Result<Page<T>, PageError>,
    ) -> Result<Page<T>, Status> {
        let caller = self.caller(request).await?;
        let mut v = Violations::new();
        let page = convert::page_request(page_size, page_token, &mut v);
        let page = finish(v, page)?;
        list(self.queries(), caller.project_id, &page)
            .await
            .map_err(|e| page_status(&e, None))
    }

    /// One resource of the caller's project by the ID in `field`, from the
    /// read models; NOT_FOUND for a missing one and for another project's.
    async fn get_one<Q, I, T>(
        &self,
        request: &Request<Q>,
        field: &str,
        raw_id: &str,
        kind: &'static str,
        get: impl AsyncFnOnce(Queries<'_>, ProjectId, I) -> Result<Option<T>, ModelError>,
    ) -> Result<T, Status>
    where
        I: std::str::FromStr<Err = paycore_domain::IdError> + Copy + std::fmt::Display,
    {
        let caller = self.caller(request).await?;
        let mut v = Violations::new();
        let id = convert::id::<I>(raw_id, field, &mut v);
        let id = finish(v, id)?;
        get(self.queries(), caller.project_id, id)
            .await
            .map_err(|error| model_status(&error))?
            .ok_or_else(|| domain_status(&DomainError::not_found(kind, id)))
    }
}

/// Which read models show a command's resource.
#[derive(Clone, Copy, Debug)]
enum ReadBy {
    /// The payments queries' source: this server's models or the tables.
    Queries,
    /// This server's own models: open banking is not in the tables.
    Local,
}

impl ReadBy {
    /// Exhaustive, so a new family is placed on purpose.
    fn of(command: &Command) -> Self {
        match command {
            Command::AggregationConnection(_)
            | Command::AggregationImport(_)
            | Command::AggregatedAccount(_) => Self::Local,
            Command::Deployment(_)
            | Command::Project(_)
            | Command::Customer(_)
            | Command::Account(_)
            | Command::Transfer(_)
            | Command::Card(_)
            | Command::CardPayin(_)
            | Command::BankAccount(_)
            | Command::BankPayout(_)
            | Command::BankPayin(_)
            | Command::File(_)
            | Command::FxRate(_)
            | Command::Consumer(_)
            | Command::Institution(_) => Self::Queries,
        }
    }
}

/// Metadata a client may send to correlate the events of its request with
/// its own logs: a UUID, recorded as the events' correlation ID.
pub const REQUEST_ID: &str = "x-request-id";

/// The client's `x-request-id`, if it is a UUID; anything else is ignored.
fn correlation_id(metadata: &MetadataMap) -> Option<Uuid> {
    metadata
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| Uuid::parse_str(text.trim()).ok())
}

/// The parsed value, or INVALID_ARGUMENT with every violation.
fn finish<T>(v: Violations, value: Option<T>) -> Result<T, Status> {
    v.into_result().map_err(|e| domain_status(&e))?;
    value.ok_or_else(|| internal("request parsing failed without a violation"))
}

/// The engine answered another aggregate than the command's resource.
fn unexpected(expected: &str, state: &Aggregate) -> Status {
    internal(format!("expected a {expected} state, got {state:?}"))
}
