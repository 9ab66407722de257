//! Card payins and their refunds.
//!
//! The decider never sees a card number: before a payin command runs, this
//! facade finds the number (request, token or stored card; see `card/mod.rs`),
//! asks the card network, and puts only the verdict in the command. Sandbox
//! projects ask the sandbox network (`paycore_domain::sandbox_network`); no
//! network is connected to live projects yet.

pub mod convert;

use std::collections::HashMap;

use paycore_domain::card::CardSource;
use paycore_domain::card::{CardNumber, YearMonth};
use paycore_domain::card_payin::CardPayinCommand;
use paycore_domain::card_payin::{
    CardPayin, CardPayinState, DeclineReason, NetworkVerdict, NewCardPayin, PayinAuthorization,
};
use paycore_domain::sandbox_network::{self, Authentication};
use paycore_domain::{
    CardPayinId, CardPayinRefundId, Command, DomainError, Environment, IdempotencyKey, ProjectId,
    ResourceRef, StreamRef, Timestamp, TransactionId, Violations,
};
use paycore_projections::{PageError, ResourceKind};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};
use uuid::Uuid;

use self::convert::{AuthenticationRequest, RefundIds};
use super::card::{KnownCard, ResolvedCard};
use super::{Handlers, correlation_id, finish, methods, unexpected};
use crate::auth::{self, Caller};
use crate::convert as shared;
use crate::errors::{ERROR_DOMAIN, domain_status, internal, page_status};
use crate::idempotency;
use crate::pb::{self, card_payin_service_server::CardPayinService};
use crate::services::card::convert as card_convert;

/// `ErrorInfo.reason` of a card payin in a project no card network serves.
pub const REASON_CARD_NETWORK_UNAVAILABLE: &str = "CARD_NETWORK_UNAVAILABLE";

/// Who completes a payin's 3-D Secure: the project it must belong to, and
/// the actor its events record (the API key, or the challenge page).
#[derive(Clone, Debug)]
pub(crate) struct Cardholder {
    pub project_id: ProjectId,
    pub environment: Environment,
    pub actor: String,
}

/// The verdict put in a command the decider is certain to refuse or replay
/// without reading it (see [`ResolvedCard::known`] and
/// `complete_card_payin_authentication`). A decline, so that a mistake in
/// that reasoning could never approve a charge nobody asked the network for.
const UNUSED_VERDICT: NetworkVerdict = NetworkVerdict::Declined(DeclineReason::CardDeclined);

#[tonic::async_trait]
impl CardPayinService for Handlers {
    async fn create_card_payin(
        &self,
        request: Request<pb::CreateCardPayinRequest>,
    ) -> Result<Response<pb::CardPayin>, Status> {
        let caller = auth::authenticate(&self.state.engine, request.metadata()).await?;
        let fingerprint_key = self.state.side.fingerprint_key(caller.project_id);
        let body = request.get_ref();
        let mut v = Violations::new();
        let hashed = pb::CreateCardPayinRequest {
            card_info: body
                .card_info
                .as_ref()
                .map(|info| card_convert::card_info_for_hash(info, &fingerprint_key)),
            ..body.clone()
        };
        let key = idempotency::key(
            &self.key_scope(&caller)?,
            request.metadata(),
            methods::CREATE_CARD_PAYIN,
            &hashed,
            &mut v,
        );
        let parsed = convert::create_card_payin(body, self.today(), &mut v);
        let parsed = finish(v, parsed)?;
        if caller.environment != Environment::Sandbox {
            return Err(card_network_unavailable());
        }
        let id = CardPayinId::from_uuid(self.new_uuid());
        let card = self
            .resolve_card(&caller, parsed.source, &fingerprint_key)
            .await?;
        let (authorization, sealed) = self.authorization(id, parsed.authentication, &card);
        let command = CardPayinCommand::CreateCardPayin(NewCardPayin {
            id,
            account_id: parsed.account_id,
            source: card.source.clone(),
            value: parsed.value,
            authorization,
            meta: parsed.meta,
        })
        .into();
        let resource = id.to_string();
        let sealed = sealed.map(|number| (resource.as_str(), number));
        let state = self
            .execute_sealed(&caller, correlation_id(request.metadata()), key, command, sealed)
            .await?;
        let payin = state
            .as_card_payin()
            .ok_or_else(|| unexpected("card payin", &state))?;
        self.forget_used_token(&card.source).await;
        // A 3-D Secure payin the decider declined at once (an expired card)
        // will never complete its authentication: its number is not needed.
        if sealed.is_some() && payin.state != CardPayinState::AuthenticationPending {
            self.forget_sealed(&resource).await;
        }
        log_payin(payin, "card payin created");
        Ok(Response::new(convert::card_payin_pb(payin)))
    }

    async fn get_card_payin(
        &self,
        request: Request<pb::GetCardPayinRequest>,
    ) -> Result<Response<pb::CardPayin>, Status> {
        let id = &request.get_ref().card_payin_id;
        let payin = self
            .get_one(
                &request,
                "card_payin_id",
                id,
                "card payin",
                async |read, project, id: CardPayinId| {
                    read.resource(project, ResourceRef::CardPayin(id))
                        .await
                        .map(|found| found.and_then(|state| state.as_card_payin().cloned()))
                },
            )
            .await?;
        Ok(Response::new(convert::card_payin_pb(&payin)))
    }

    async fn list_card_payins(
        &self,
        request: Request<pb::ListCardPayinsRequest>,
    ) -> Result<Response<pb::ListCardPayinsResponse>, Status> {
        let (size, token) = (request.get_ref().page_size, &request.get_ref().page_token);
        let page = self
            .list_page(&request, size, token, async |read, project, page| {
                read.list_resources(project, ResourceKind::CardPayin, page).await
            })
            .await?;
        Ok(Response::new(pb::ListCardPayinsResponse {
            items: page.items.iter().filter_map(convert::card_payin_pb_of).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn update_card_payin(
        &self,
        request: Request<pb::UpdateCardPayinRequest>,
    ) -> Result<Response<pb::CardPayin>, Status> {
        let caller = self.caller(&request).await?;
        let mut v = Violations::new();
        let command = convert::update_card_payin(request.get_ref(), &mut v);
        let command = finish(v, command)?;
        self.payin_command(&caller, &request, None, command).await
    }

    async fn complete_card_payin_authentication(
        &self,
        request: Request<pb::CompleteCardPayinAuthenticationRequest>,
    ) -> Result<Response<pb::CardPayin>, Status> {
        let mut v = Violations::new();
        let (caller, key) = self
            .create_caller(&request, methods::COMPLETE_CARD_PAYIN_AUTHENTICATION, &mut v)
            .await?;
        let id = shared::id::<CardPayinId>(&request.get_ref().card_payin_id, "card_payin_id", &mut v);
        let id = finish(v, id)?;
        let authentication = if request.get_ref().authentication_failed {
            Authentication::Failed
        } else {
            Authentication::Passed
        };
        let cardholder = Cardholder {
            project_id: caller.project_id,
            environment: caller.environment,
            actor: caller.key_id.to_string(),
        };
        let payin = self
            .complete_authentication(
                &cardholder,
                id,
                authentication,
                (correlation_id(request.metadata()), key),
            )
            .await?;
        Ok(Response::new(convert::card_payin_pb(&payin)))
    }

    async fn settle_card_payin(
        &self,
        request: Request<pb::SettleCardPayinRequest>,
    ) -> Result<Response<pb::CardPayin>, Status> {
        let mut v = Violations::new();
        let (caller, key) = self
            .create_caller(&request, methods::SETTLE_CARD_PAYIN, &mut v)
            .await?;
        let id = shared::id::<CardPayinId>(&request.get_ref().card_payin_id, "card_payin_id", &mut v);
        let id = finish(v, id)?;
        let command = CardPayinCommand::SettleCardPayin {
            id,
            transaction_id: TransactionId::from_uuid(self.new_uuid()),
        }
        .into();
        self.payin_command(&caller, &request, key, command).await
    }

    async fn create_card_payin_refund(
        &self,
        request: Request<pb::CreateCardPayinRefundRequest>,
    ) -> Result<Response<pb::CardPayinRefund>, Status> {
        let mut v = Violations::new();
        let (caller, key) = self
            .create_caller(&request, methods::CREATE_CARD_PAYIN_REFUND, &mut v)
            .await?;
        let ids = RefundIds {
            refund: CardPayinRefundId::from_uuid(self.new_uuid()),
            transaction: TransactionId::from_uuid(self.new_uuid()),
        };
        let command = convert::create_card_payin_refund(request.get_ref(), ids, &mut v);
        let command = finish(v, command)?;
        self.refund_command(&caller, &request, key, command).await
    }

    async fn get_card_payin_refund(
        &self,
        request: Request<pb::GetCardPayinRefundRequest>,
    ) -> Result<Response<pb::CardPayinRefund>, Status> {
        let id = &request.get_ref().card_payin_refund_id;
        let refund = self
            .get_one(
                &request,
                "card_payin_refund_id",
                id,
                "card payin refund",
                async |read, project, id: CardPayinRefundId| {
                    read.resource(project, ResourceRef::CardPayinRefund(id))
                        .await
                        .map(|found| found.and_then(|state| state.as_card_payin_refund().cloned()))
                },
            )
            .await?;
        Ok(Response::new(convert::card_payin_refund_pb(&refund)))
    }

    async fn list_card_payin_refunds(
        &self,
        request: Request<pb::ListCardPayinRefundsRequest>,
    ) -> Result<Response<pb::ListCardPayinRefundsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let body = request.get_ref();
        let mut v = Violations::new();
        let payin = shared::id::<CardPayinId>(&body.card_payin_id, "card_payin_id", &mut v);
        let page = shared::page_request(body.page_size, &body.page_token, &mut v);
        let (payin, page) = finish(v, payin.zip(page))?;
        let page = self
            .queries()
            .list_card_payin_refunds(caller.project_id, payin, &page)
            .await
            .map_err(|e| match e {
                PageError::ParentNotFound => domain_status(&DomainError::not_found("card payin", payin)),
                other => page_status(&other, None),
            })?;
        Ok(Response::new(pb::ListCardPayinRefundsResponse {
            items: page
                .items
                .iter()
                .filter_map(convert::card_payin_refund_pb_of)
                .collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn update_card_payin_refund(
        &self,
        request: Request<pb::UpdateCardPayinRefundRequest>,
    ) -> Result<Response<pb::CardPayinRefund>, Status> {
        let caller = self.caller(&request).await?;
        let mut v = Violations::new();
        let command = convert::update_card_payin_refund(request.get_ref(), &mut v);
        let command = finish(v, command)?;
        self.refund_command(&caller, &request, None, command).await
    }

    async fn complete_card_payin_refund(
        &self,
        request: Request<pb::CompleteCardPayinRefundRequest>,
    ) -> Result<Response<pb::CardPayinRefund>, Status> {
        let mut v = Violations::new();
        let (caller, key) = self
            .create_caller(&request, methods::COMPLETE_CARD_PAYIN_REFUND, &mut v)
            .await?;
        let id = refund_id(&request.get_ref().card_payin_refund_id, &mut v);
        let id = finish(v, id)?;
        let command = CardPayinCommand::CompleteCardPayinRefund { id }.into();
        self.refund_command(&caller, &request, key, command).await
    }

    async fn fail_card_payin_refund(
        &self,
        request: Request<pb::FailCardPayinRefundRequest>,
    ) -> Result<Response<pb::CardPayinRefund>, Status> {
        let mut v = Violations::new();
        let (caller, key) = self
            .create_caller(&request, methods::FAIL_CARD_PAYIN_REFUND, &mut v)
            .await?;
        let id = refund_id(&request.get_ref().card_payin_refund_id, &mut v);
        let id = finish(v, id)?;
        let command = CardPayinCommand::FailCardPayinRefund {
            id,
            failure_transaction_id: TransactionId::from_uuid(self.new_uuid()),
        }
        .into();
        self.refund_command(&caller, &request, key, command).await
    }
}

impl Handlers {
    /// How a new payin is authorized, and the number to seal under the
    /// payin's ID (3-D Secure, when no stored card will still hold it at
    /// `CompleteCardPayinAuthentication`).
    fn authorization<'a>(
        &self,
        id: CardPayinId,
        authentication: AuthenticationRequest,
        card: &'a ResolvedCard,
    ) -> (PayinAuthorization, Option<&'a CardNumber>) {
        match authentication {
            AuthenticationRequest::None => {
                let verdict = card.known.as_ref().map_or(UNUSED_VERDICT, |known| {
                    sandbox_verdict(known, self.state.clock.now(), Authentication::NotAttempted)
                });
                (PayinAuthorization::Direct(verdict), None)
            }
            AuthenticationRequest::ThreeDSecure { redirect_url } => {
                let authorization = PayinAuthorization::ThreeDSecure {
                    authentication_url: crate::challenge::authentication_url(
                        &self.state.authentication_url_base,
                        &self.state.side.fingerprint_secret,
                        id,
                    ),
                    redirect_url,
                };
                let sealed = match card.source {
                    CardSource::Card(_) => None,
                    CardSource::Info(_) | CardSource::Token(_) => {
                        card.known.as_ref().map(|known| &known.number)
                    }
                };
                (authorization, sealed)
            }
        }
    }

    /// Completes a payin's 3-D Secure as the cardholder did (the RPC, or
    /// the hosted challenge page): asks the network, records its answer.
    pub(crate) async fn complete_authentication(
        &self,
        cardholder: &Cardholder,
        id: CardPayinId,
        authentication: Authentication,
        (correlation, key): (Option<Uuid>, Option<IdempotencyKey>),
    ) -> Result<CardPayin, Status> {
        let verdict = self
            .verdict_after_authentication(cardholder, id, authentication)
            .await?;
        let command = CardPayinCommand::CompleteCardPayinAuthentication { id, verdict }.into();
        let state = self
            .execute_as(
                cardholder.project_id,
                cardholder.actor.clone(),
                correlation,
                key,
                command,
            )
            .await?;
        let payin = state
            .as_card_payin()
            .ok_or_else(|| unexpected("card payin", &state))?;
        // The payin's own sealed number served this step only; a stored
        // card's number stays for the card's next payins.
        if payin.card_id.is_none() && payin.state != CardPayinState::AuthenticationPending {
            self.forget_sealed(&payin.id.to_string()).await;
        }
        log_payin(payin, "card payin authentication completed");
        Ok(payin.clone())
    }

    /// The network's answer once the cardholder went through 3-D Secure.
    /// Asked only of a sandbox project's pending payin: for anything else
    /// the decider refuses (`SANDBOX_ONLY`, NOT_FOUND,
    /// `CARD_PAYIN_NOT_AWAITING_AUTHENTICATION`) or replays an idempotent
    /// retry without reading the verdict.
    async fn verdict_after_authentication(
        &self,
        caller: &Cardholder,
        id: CardPayinId,
        authentication: Authentication,
    ) -> Result<NetworkVerdict, Status> {
        if caller.environment != Environment::Sandbox {
            return Ok(UNUSED_VERDICT);
        }
        let Some(payin) = self.pending_payin(caller, id).await? else {
            return Ok(UNUSED_VERDICT);
        };
        let resource = payin
            .card_id
            .map_or_else(|| id.to_string(), |card| card.to_string());
        match self.open_sealed(caller.project_id, &resource).await? {
            Some(number) => {
                let known = KnownCard {
                    number,
                    info: payin.card_info,
                };
                Ok(sandbox_verdict(&known, self.state.clock.now(), authentication))
            }
            // A concurrent completion won the race and erased the entry.
            None if self.pending_payin(caller, id).await?.is_none() => Ok(UNUSED_VERDICT),
            None => Err(internal(format!(
                "card payin {id} awaits authentication but {resource} has no sealed card number"
            ))),
        }
    }

    /// The caller's payin `id` if it awaits 3-D Secure.
    async fn pending_payin(&self, caller: &Cardholder, id: CardPayinId) -> Result<Option<CardPayin>, Status> {
        let state = self.load(&StreamRef::CardPayin(id)).await?;
        Ok(state
            .as_card_payin()
            .filter(|payin| {
                payin.project_id == caller.project_id && payin.state == CardPayinState::AuthenticationPending
            })
            .cloned())
    }

    /// Runs a command on a payin and answers the payin.
    async fn payin_command<T>(
        &self,
        caller: &Caller,
        request: &Request<T>,
        key: Option<IdempotencyKey>,
        command: Command,
    ) -> Result<Response<pb::CardPayin>, Status> {
        let state = self
            .execute(caller, correlation_id(request.metadata()), key, command)
            .await?;
        let payin = state
            .as_card_payin()
            .ok_or_else(|| unexpected("card payin", &state))?;
        Ok(Response::new(convert::card_payin_pb(payin)))
    }

    /// Runs a command on a refund and answers the refund.
    async fn refund_command<T>(
        &self,
        caller: &Caller,
        request: &Request<T>,
        key: Option<IdempotencyKey>,
        command: Command,
    ) -> Result<Response<pb::CardPayinRefund>, Status> {
        let state = self
            .execute(caller, correlation_id(request.metadata()), key, command)
            .await?;
        let refund = state
            .as_card_payin_refund()
            .ok_or_else(|| unexpected("card payin refund", &state))?;
        Ok(Response::new(convert::card_payin_refund_pb(refund)))
    }
}

fn refund_id(text: &str, v: &mut Violations) -> Option<CardPayinRefundId> {
    shared::id::<CardPayinRefundId>(text, "card_payin_refund_id", v)
}

/// The sandbox network's answer. A card whose expiry month has passed is
/// declined, as an issuer would, unless the cardholder failed 3-D Secure
/// (that answer comes first). The decider declines a payin on an expired
/// stored card or token at creation already; this also covers a challenge
/// completed after the card's last month ended.
fn sandbox_verdict(card: &KnownCard, now: Timestamp, authentication: Authentication) -> NetworkVerdict {
    let expired = card.info.expiry().is_expired_at(YearMonth::of(now));
    if expired && authentication != Authentication::Failed {
        return NetworkVerdict::Declined(DeclineReason::ExpiredCard);
    }
    sandbox_network::authorize(&card.number, authentication)
}

/// FAILED_PRECONDITION `CARD_NETWORK_UNAVAILABLE`: a live project's payin.
fn card_network_unavailable() -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(
        REASON_CARD_NETWORK_UNAVAILABLE,
        ERROR_DOMAIN,
        HashMap::<String, String>::new(),
    );
    Status::with_error_details(
        Code::FailedPrecondition,
        "no card network is connected to live projects yet; card payins work in sandbox projects",
        details,
    )
}

/// One line per payin decision, for operators: the masked number only.
fn log_payin(payin: &CardPayin, message: &str) {
    tracing::info!(
        card_payin_id = %payin.id,
        card = %payin.card_info.number(),
        brand = %payin.card_info.brand(),
        state = payin.state.as_str(),
        decline_reason = payin.decline_reason.map(DeclineReason::as_str),
        "{message}"
    );
}
