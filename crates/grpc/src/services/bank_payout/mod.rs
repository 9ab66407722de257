pub mod convert;

use paycore_domain::bank_payout::BankPayoutCommand;
use paycore_domain::{Aggregate, BankPayoutId, Command, ResourceRef, TransactionId, Violations};
use paycore_projections::ResourceKind;
use tonic::{Request, Response, Status};

use self::convert::PayoutIds;
use super::{Handlers, correlation_id, finish, methods, unexpected};
use crate::convert as shared;
use crate::pb::{self, bank_payout_service_server::BankPayoutService};

/// The answer for a command on a payout.
fn bank_payout_answer(state: &Aggregate) -> Result<Response<pb::BankPayout>, Status> {
    let payout = state
        .as_bank_payout()
        .ok_or_else(|| unexpected("bank payout", state))?;
    Ok(Response::new(convert::bank_payout_pb(payout)))
}

impl Handlers {
    /// A sandbox answer of the bank network about payout `raw_id`. These
    /// change state and move funds, so they take an idempotency key like a
    /// create: a retried call answers the payout instead of being refused as
    /// "not processing any more".
    async fn bank_payout_transition<Q: prost::Message>(
        &self,
        request: &Request<Q>,
        method: &str,
        raw_id: &str,
        command: impl FnOnce(BankPayoutId) -> Command,
    ) -> Result<Response<pb::BankPayout>, Status> {
        let mut v = Violations::new();
        let (caller, key) = self.create_caller(request, method, &mut v).await?;
        let id = shared::id::<BankPayoutId>(raw_id, "bank_payout_id", &mut v);
        let id = finish(v, id)?;
        let state = self
            .execute(&caller, correlation_id(request.metadata()), key, command(id))
            .await?;
        bank_payout_answer(&state)
    }
}

#[tonic::async_trait]
impl BankPayoutService for Handlers {
    async fn create_bank_payout(
        &self,
        request: Request<pb::CreateBankPayoutRequest>,
    ) -> Result<Response<pb::BankPayout>, Status> {
        let mut v = Violations::new();
        let (caller, key) = self
            .create_caller(&request, methods::CREATE_BANK_PAYOUT, &mut v)
            .await?;
        let ids = PayoutIds {
            payout: BankPayoutId::from_uuid(self.new_uuid()),
            transaction: TransactionId::from_uuid(self.new_uuid()),
            miniref_entropy: rand::random(),
        };
        let command = convert::create_bank_payout(request.get_ref(), ids, &mut v);
        let command = finish(v, command)?;
        let state = self
            .execute(&caller, correlation_id(request.metadata()), key, command)
            .await?;
        bank_payout_answer(&state)
    }

    async fn get_bank_payout(
        &self,
        request: Request<pb::GetBankPayoutRequest>,
    ) -> Result<Response<pb::BankPayout>, Status> {
        let id = &request.get_ref().bank_payout_id;
        let state = self
            .get_one(
                &request,
                "bank_payout_id",
                id,
                "bank payout",
                async |read, project, id: BankPayoutId| {
                    read.resource(project, ResourceRef::BankPayout(id)).await
                },
            )
            .await?;
        bank_payout_answer(&state)
    }

    async fn list_bank_payouts(
        &self,
        request: Request<pb::ListBankPayoutsRequest>,
    ) -> Result<Response<pb::ListBankPayoutsResponse>, Status> {
        let (size, token) = (request.get_ref().page_size, &request.get_ref().page_token);
        let page = self
            .list_page(&request, size, token, async |read, project, page| {
                read.list_resources(project, ResourceKind::BankPayout, page).await
            })
            .await?;
        Ok(Response::new(pb::ListBankPayoutsResponse {
            items: page
                .items
                .iter()
                .filter_map(Aggregate::as_bank_payout)
                .map(convert::bank_payout_pb)
                .collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn update_bank_payout(
        &self,
        request: Request<pb::UpdateBankPayoutRequest>,
    ) -> Result<Response<pb::BankPayout>, Status> {
        let caller = self.caller(&request).await?;
        let mut v = Violations::new();
        let command = convert::update_bank_payout(request.get_ref(), &mut v);
        let command = finish(v, command)?;
        let state = self
            .execute(&caller, correlation_id(request.metadata()), None, command)
            .await?;
        bank_payout_answer(&state)
    }

    async fn complete_bank_payout(
        &self,
        request: Request<pb::CompleteBankPayoutRequest>,
    ) -> Result<Response<pb::BankPayout>, Status> {
        let raw_id = request.get_ref().bank_payout_id.clone();
        self.bank_payout_transition(&request, methods::COMPLETE_BANK_PAYOUT, &raw_id, |id| {
            BankPayoutCommand::CompleteBankPayout { id }.into()
        })
        .await
    }

    async fn fail_bank_payout(
        &self,
        request: Request<pb::FailBankPayoutRequest>,
    ) -> Result<Response<pb::BankPayout>, Status> {
        let raw_id = request.get_ref().bank_payout_id.clone();
        let failure_transaction_id = TransactionId::from_uuid(self.new_uuid());
        self.bank_payout_transition(&request, methods::FAIL_BANK_PAYOUT, &raw_id, |id| {
            BankPayoutCommand::FailBankPayout {
                id,
                failure_transaction_id,
            }
            .into()
        })
        .await
    }

    async fn return_bank_payout(
        &self,
        request: Request<pb::ReturnBankPayoutRequest>,
    ) -> Result<Response<pb::BankPayout>, Status> {
        let raw_id = request.get_ref().bank_payout_id.clone();
        let failure_transaction_id = TransactionId::from_uuid(self.new_uuid());
        self.bank_payout_transition(&request, methods::RETURN_BANK_PAYOUT, &raw_id, |id| {
            BankPayoutCommand::ReturnBankPayout {
                id,
                failure_transaction_id,
            }
            .into()
        })
        .await
    }
}
