//! Card tokens and stored cards, and the card-number plumbing that card
//! payins share: where a full number is sealed, opened and forgotten.
//!
//! A full number is never in the event log, a read model, a response, an
//! error or a log line (`paycore_domain::card`). It exists in clear in memory
//! during a request, and otherwise only sealed in the card vault, under the
//! ID of the resource that needs it later:
//!
//! | resource | sealed under | kept until |
//! |---|---|---|
//! | card token | the token's ID | the token is used (then forgotten, best effort) |
//! | card | the card's ID | always: later payins charge it |
//! | 3-D Secure payin not made from a stored card | the payin's ID | its authentication completes |
//!
//! A number is sealed *before* the command that creates its resource runs,
//! so a durable resource always has its number; if the command is refused
//! (or an idempotent retry answers an older resource), the new entry is
//! forgotten again.

pub mod convert;

use std::collections::HashMap;

use paycore_domain::aggregate::Aggregate;
use paycore_domain::card::CardCommand;
use paycore_domain::card::CardSource;
use paycore_domain::card::{CardInfo, CardNumber, YearMonth};
use paycore_domain::{
    CardId, CardTokenId, Command, IdempotencyKey, ProjectId, ResourceRef, StreamRef, Violations,
};
use paycore_engine::EngineError;
use paycore_projections::ResourceKind;
use paycore_sidestore::{SideStoreError, VaultError};
use paycore_store::StreamName;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};
use uuid::Uuid;

use self::convert::SourceRequest;
use super::{Handlers, correlation_id, finish, methods, unexpected};
use crate::auth::{self, Caller};
use crate::errors::{ERROR_DOMAIN, REASON_STORE_UNAVAILABLE, engine_status, internal};
use crate::idempotency;
use crate::pb::{self, card_service_server::CardService, card_token_service_server::CardTokenService};

#[tonic::async_trait]
impl CardTokenService for Handlers {
    async fn create_card_token(
        &self,
        request: Request<pb::CreateCardTokenRequest>,
    ) -> Result<Response<pb::CardToken>, Status> {
        // The one method a public key may call (see `auth::KeyAccess`).
        let caller = auth::authenticate_allowing_public(&self.state.engine, request.metadata()).await?;
        let fingerprint_key = self.state.side.fingerprint_key(caller.project_id);
        let body = request.get_ref();
        let mut v = Violations::new();
        let hashed = pb::CreateCardTokenRequest {
            card_info: body
                .card_info
                .as_ref()
                .map(|info| convert::card_info_for_hash(info, &fingerprint_key)),
        };
        let key = idempotency::key(
            &self.key_scope(&caller)?,
            request.metadata(),
            methods::CREATE_CARD_TOKEN,
            &hashed,
            &mut v,
        );
        let card = match &body.card_info {
            Some(info) => convert::card_info_request(info, "card_info", self.today(), &mut v),
            None => {
                v.add("card_info", "is required");
                None
            }
        };
        let card = finish(v, card)?;
        let id = CardTokenId::from_uuid(self.new_uuid());
        let command = CardCommand::CreateCardToken {
            id,
            card_info: card.info(&fingerprint_key),
        }
        .into();
        let resource = id.to_string();
        let state = self
            .execute_sealed(
                &caller,
                correlation_id(request.metadata()),
                key,
                command,
                Some((&resource, &card.number)),
            )
            .await?;
        let token = state
            .as_card_token()
            .ok_or_else(|| unexpected("card token", &state))?;
        Ok(Response::new(convert::card_token_pb(token)))
    }

    async fn get_card_token(
        &self,
        request: Request<pb::GetCardTokenRequest>,
    ) -> Result<Response<pb::CardToken>, Status> {
        let id = &request.get_ref().card_token_id;
        let token = self
            .get_one(
                &request,
                "card_token_id",
                id,
                "card token",
                async |read, project, id: CardTokenId| {
                    read.resource(project, ResourceRef::CardToken(id))
                        .await
                        .map(|found| found.and_then(|state| state.as_card_token().cloned()))
                },
            )
            .await?;
        Ok(Response::new(convert::card_token_pb(&token)))
    }
}

#[tonic::async_trait]
impl CardService for Handlers {
    async fn create_card(
        &self,
        request: Request<pb::CreateCardRequest>,
    ) -> Result<Response<pb::Card>, Status> {
        let caller = auth::authenticate(&self.state.engine, request.metadata()).await?;
        let fingerprint_key = self.state.side.fingerprint_key(caller.project_id);
        let body = request.get_ref();
        let mut v = Violations::new();
        let hashed = pb::CreateCardRequest {
            card_info: body
                .card_info
                .as_ref()
                .map(|info| convert::card_info_for_hash(info, &fingerprint_key)),
            ..body.clone()
        };
        let key = idempotency::key(
            &self.key_scope(&caller)?,
            request.metadata(),
            methods::CREATE_CARD,
            &hashed,
            &mut v,
        );
        let parsed = convert::create_card(body, self.today(), &mut v);
        let parsed = finish(v, parsed)?;
        let id = CardId::from_uuid(self.new_uuid());
        let resolved = self
            .resolve_card(&caller, parsed.source, &fingerprint_key)
            .await?;
        let command = CardCommand::CreateCard {
            id,
            source: resolved.source.clone(),
            customer_id: parsed.customer_id,
            meta: parsed.meta,
        }
        .into();
        let resource = id.to_string();
        // Without a number the source is unusable and the decider refuses
        // (or replays an earlier card): nothing to seal.
        let sealed = resolved
            .known
            .as_ref()
            .map(|known| (resource.as_str(), &known.number));
        let state = self
            .execute_sealed(&caller, correlation_id(request.metadata()), key, command, sealed)
            .await?;
        let card = state.as_card().ok_or_else(|| unexpected("card", &state))?;
        self.forget_used_token(&resolved.source).await;
        Ok(Response::new(convert::card_pb(card)))
    }

    async fn get_card(&self, request: Request<pb::GetCardRequest>) -> Result<Response<pb::Card>, Status> {
        let id = &request.get_ref().card_id;
        let card = self
            .get_one(
                &request,
                "card_id",
                id,
                "card",
                async |read, project, id: CardId| {
                    read.resource(project, ResourceRef::Card(id))
                        .await
                        .map(|found| found.and_then(|state| state.as_card().cloned()))
                },
            )
            .await?;
        Ok(Response::new(convert::card_pb(&card)))
    }

    async fn list_cards(
        &self,
        request: Request<pb::ListCardsRequest>,
    ) -> Result<Response<pb::ListCardsResponse>, Status> {
        let (size, token) = (request.get_ref().page_size, &request.get_ref().page_token);
        let page = self
            .list_page(&request, size, token, async |read, project, page| {
                read.list_resources(project, ResourceKind::Card, page).await
            })
            .await?;
        Ok(Response::new(pb::ListCardsResponse {
            items: page.items.iter().filter_map(convert::card_pb_of).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn update_card(
        &self,
        request: Request<pb::UpdateCardRequest>,
    ) -> Result<Response<pb::Card>, Status> {
        let caller = self.caller(&request).await?;
        let mut v = Violations::new();
        let command = convert::update_card(request.get_ref(), &mut v);
        let command = finish(v, command)?;
        let state = self
            .execute(&caller, correlation_id(request.metadata()), None, command)
            .await?;
        let card = state.as_card().ok_or_else(|| unexpected("card", &state))?;
        Ok(Response::new(convert::card_pb(card)))
    }
}

// ---------------------------------------------------------------- card numbers

/// A card source whose full number was found.
#[derive(Debug)]
pub(super) struct KnownCard {
    pub number: CardNumber,
    pub info: CardInfo,
}

/// A request's card source, ready for a command.
#[derive(Debug)]
pub(super) struct ResolvedCard {
    pub source: CardSource,
    /// `None` when the source cannot be used: a token or card that is not
    /// the caller's (or does not exist), or a token used already. The
    /// decider then refuses the command (NOT_FOUND, `CARD_TOKEN_ALREADY_USED`)
    /// or, for an idempotent retry, answers the earlier resource, in both
    /// cases without reading the number, so nothing is asked of the network
    /// or sealed for it.
    pub known: Option<KnownCard>,
}

impl Handlers {
    /// The current UTC month, which card expiry is judged against.
    pub(super) fn today(&self) -> YearMonth {
        YearMonth::of(self.state.clock.now())
    }

    /// Turns a parsed source into the command's [`CardSource`] and, when it
    /// can be used, the card's full number.
    pub(super) async fn resolve_card(
        &self,
        caller: &Caller,
        source: SourceRequest,
        fingerprint_key: &[u8; 32],
    ) -> Result<ResolvedCard, Status> {
        let project = caller.project_id;
        match source {
            SourceRequest::Info(card) => {
                let info = card.info(fingerprint_key);
                Ok(ResolvedCard {
                    source: CardSource::Info(info.clone()),
                    known: Some(KnownCard {
                        number: card.number,
                        info,
                    }),
                })
            }
            SourceRequest::Token(id) => {
                let token = self.load(&StreamRef::CardToken(id)).await?;
                let usable = token
                    .as_card_token()
                    .filter(|token| token.project_id == project && token.used.is_none());
                let known = match usable {
                    Some(token) => self.sealed_token_card(project, id, &token.card_info).await?,
                    None => None,
                };
                Ok(ResolvedCard {
                    source: CardSource::Token(id),
                    known,
                })
            }
            SourceRequest::Card(id) => {
                let card = self.load(&StreamRef::Card(id)).await?;
                let owned = card.as_card().filter(|card| card.project_id == project);
                let known = match owned {
                    Some(card) => Some(
                        self.sealed_card(project, &id.to_string(), &card.card_info)
                            .await?,
                    ),
                    None => None,
                };
                Ok(ResolvedCard {
                    source: CardSource::Card(id),
                    known,
                })
            }
        }
    }

    /// The number sealed for a token that was unused when loaded. A command
    /// that uses a token erases its number once it is committed, so a
    /// number missing while the token's stream has moved past its creation
    /// means a concurrent command used it: `None`, and the decider refuses
    /// this one (`CARD_TOKEN_ALREADY_USED`) against the committed state —
    /// on a version conflict if this server had not seen that use yet.
    /// Missing while the token is still unused, the number was lost.
    async fn sealed_token_card(
        &self,
        project: ProjectId,
        id: CardTokenId,
        info: &CardInfo,
    ) -> Result<Option<KnownCard>, Status> {
        let resource = id.to_string();
        if let Some(number) = self.open_sealed(project, &resource).await? {
            return Ok(Some(KnownCard {
                number,
                info: info.clone(),
            }));
        }
        let stream = StreamName::from(StreamRef::CardToken(id).name());
        let version = self
            .state
            .engine
            .store()
            .stream_version(&stream)
            .await
            .map_err(|e| engine_status(&EngineError::from(e)))?;
        if version.is_some_and(|version| version > 0) {
            return Ok(None);
        }
        Err(internal(format!(
            "{resource} is unused but has no sealed card number"
        )))
    }

    /// The number sealed for a card that exists: it must be there.
    async fn sealed_card(
        &self,
        project: ProjectId,
        resource: &str,
        info: &CardInfo,
    ) -> Result<KnownCard, Status> {
        match self.open_sealed(project, resource).await? {
            Some(number) => Ok(KnownCard {
                number,
                info: info.clone(),
            }),
            None => Err(internal(format!("{resource} has no sealed card number"))),
        }
    }

    /// The committed state of a stream, from the engine (authoritative and
    /// fresh, unlike the read models).
    pub(crate) async fn load(&self, stream: &StreamRef) -> Result<Aggregate, Status> {
        self.state
            .engine
            .load(stream)
            .await
            .map_err(|e| engine_status(&e))
    }

    /// Runs a command that creates the resource `sealed.0`, whose number
    /// `sealed.1` must be in the vault as soon as the resource exists:
    /// seals it first, and forgets it again if the command certainly wrote
    /// nothing for this resource.
    pub(super) async fn execute_sealed(
        &self,
        caller: &Caller,
        correlation_id: Option<Uuid>,
        key: Option<IdempotencyKey>,
        command: Command,
        sealed: Option<(&str, &CardNumber)>,
    ) -> Result<Aggregate, Status> {
        let Some((resource, number)) = sealed else {
            return self.execute(caller, correlation_id, key, command).await;
        };
        self.seal(caller.project_id, resource, number).await?;
        let result = self.execute(caller, correlation_id, key, command).await;
        let unused = match &result {
            // An idempotent retry answers the resource of the first request.
            Ok(state) => created_id(state).as_deref() != Some(resource),
            // Only a refusal by the decider proves that nothing was written;
            // after an infrastructure error the command may be durable.
            Err(status) => is_refusal(status),
        };
        if unused {
            self.forget_sealed(resource).await;
        }
        result
    }

    pub(super) async fn seal(
        &self,
        project: ProjectId,
        resource: &str,
        number: &CardNumber,
    ) -> Result<(), Status> {
        self.state
            .side
            .vault
            .seal(project, resource, number)
            .await
            .map_err(|e| vault_status(&e))
    }

    pub(super) async fn open_sealed(
        &self,
        project: ProjectId,
        resource: &str,
    ) -> Result<Option<CardNumber>, Status> {
        self.state
            .side
            .vault
            .open(project, resource)
            .await
            .map_err(|e| vault_status(&e))
    }

    /// Erases a sealed number that is no longer needed. Best effort: a
    /// leftover entry is encrypted and harmless, so a failure is logged,
    /// not answered.
    pub(super) async fn forget_sealed(&self, resource: &str) {
        if let Err(error) = self.state.side.vault.forget(resource).await {
            tracing::warn!(%resource, %error, "could not erase a sealed card number");
        }
    }

    /// A token is single-use: once a command used it, its number is
    /// needed no more.
    pub(super) async fn forget_used_token(&self, source: &CardSource) {
        if let CardSource::Token(id) = source {
            self.forget_sealed(&id.to_string()).await;
        }
    }
}

/// The ID of the token, card or payin a command answered.
fn created_id(state: &Aggregate) -> Option<String> {
    state
        .as_card_token()
        .map(|token| token.id.to_string())
        .or_else(|| state.as_card().map(|card| card.id.to_string()))
        .or_else(|| state.as_card_payin().map(|payin| payin.id.to_string()))
}

/// Whether `status` is the decider's refusal (nothing was written).
fn is_refusal(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::InvalidArgument | Code::NotFound | Code::AlreadyExists | Code::FailedPrecondition
    )
}

/// The status of a vault failure. Vault errors name resource IDs at most,
/// never a number, so they may be logged.
fn vault_status(error: &VaultError) -> Status {
    match error {
        VaultError::Store(SideStoreError::Unavailable(detail)) => {
            tracing::warn!(%detail, "card vault unavailable");
            let mut details = ErrorDetails::new();
            details.set_error_info(
                REASON_STORE_UNAVAILABLE,
                ERROR_DOMAIN,
                HashMap::<String, String>::new(),
            );
            Status::with_error_details(
                Code::Unavailable,
                "card storage temporarily unavailable; retry later",
                details,
            )
        }
        other => internal(other),
    }
}
