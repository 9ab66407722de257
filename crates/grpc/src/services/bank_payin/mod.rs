pub mod convert;

use paycore_domain::bank_payin::REFERENCE_CODE_CANDIDATES;
use paycore_domain::kernel::bank::PayinReferenceCode;
use paycore_domain::{Aggregate, BankPayinId, BankPayinReferenceId, ResourceRef, TransactionId, Violations};
use paycore_projections::ResourceKind;
use tonic::{Request, Response, Status};

use self::convert::PayinIds;
use super::{Handlers, correlation_id, finish, methods, unexpected};
use crate::pb::{
    self, bank_payin_reference_service_server::BankPayinReferenceService,
    bank_payin_service_server::BankPayinService,
};

fn reference_answer(state: &Aggregate) -> Result<Response<pb::BankPayinReference>, Status> {
    let reference = state
        .as_bank_payin_reference()
        .ok_or_else(|| unexpected("bank payin reference", state))?;
    Ok(Response::new(convert::bank_payin_reference_pb(reference)))
}

fn payin_answer(state: &Aggregate) -> Result<Response<pb::BankPayin>, Status> {
    let payin = state
        .as_bank_payin()
        .ok_or_else(|| unexpected("bank payin", state))?;
    Ok(Response::new(convert::bank_payin_pb(payin)))
}

/// Codes for a new reference to try, from a random starting point: the
/// decider takes the first one no reference has claimed (the domain has no
/// randomness of its own).
fn reference_code_candidates() -> Vec<PayinReferenceCode> {
    PayinReferenceCode::candidates(rand::random())
        .take(REFERENCE_CODE_CANDIDATES)
        .collect()
}

#[tonic::async_trait]
impl BankPayinReferenceService for Handlers {
    async fn create_bank_payin_reference(
        &self,
        request: Request<pb::CreateBankPayinReferenceRequest>,
    ) -> Result<Response<pb::BankPayinReference>, Status> {
        let mut v = Violations::new();
        let (caller, key) = self
            .create_caller(&request, methods::CREATE_BANK_PAYIN_REFERENCE, &mut v)
            .await?;
        let id = BankPayinReferenceId::from_uuid(self.new_uuid());
        let candidates = reference_code_candidates();
        let command = convert::create_bank_payin_reference(request.get_ref(), id, candidates, &mut v);
        let command = finish(v, command)?;
        let state = self
            .execute(&caller, correlation_id(request.metadata()), key, command)
            .await?;
        reference_answer(&state)
    }

    async fn get_bank_payin_reference(
        &self,
        request: Request<pb::GetBankPayinReferenceRequest>,
    ) -> Result<Response<pb::BankPayinReference>, Status> {
        let id = &request.get_ref().bank_payin_reference_id;
        let state = self
            .get_one(
                &request,
                "bank_payin_reference_id",
                id,
                "bank payin reference",
                async |read, project, id: BankPayinReferenceId| {
                    read.resource(project, ResourceRef::BankPayinReference(id)).await
                },
            )
            .await?;
        reference_answer(&state)
    }

    async fn list_bank_payin_references(
        &self,
        request: Request<pb::ListBankPayinReferencesRequest>,
    ) -> Result<Response<pb::ListBankPayinReferencesResponse>, Status> {
        let (size, token) = (request.get_ref().page_size, &request.get_ref().page_token);
        let page = self
            .list_page(&request, size, token, async |read, project, page| {
                read.list_resources(project, ResourceKind::BankPayinReference, page)
                    .await
            })
            .await?;
        Ok(Response::new(pb::ListBankPayinReferencesResponse {
            items: page
                .items
                .iter()
                .filter_map(Aggregate::as_bank_payin_reference)
                .map(convert::bank_payin_reference_pb)
                .collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn update_bank_payin_reference(
        &self,
        request: Request<pb::UpdateBankPayinReferenceRequest>,
    ) -> Result<Response<pb::BankPayinReference>, Status> {
        let caller = self.caller(&request).await?;
        let mut v = Violations::new();
        let command = convert::update_bank_payin_reference(request.get_ref(), &mut v);
        let command = finish(v, command)?;
        let state = self
            .execute(&caller, correlation_id(request.metadata()), None, command)
            .await?;
        reference_answer(&state)
    }
}

#[tonic::async_trait]
impl BankPayinService for Handlers {
    async fn get_bank_payin(
        &self,
        request: Request<pb::GetBankPayinRequest>,
    ) -> Result<Response<pb::BankPayin>, Status> {
        let id = &request.get_ref().bank_payin_id;
        let state = self
            .get_one(
                &request,
                "bank_payin_id",
                id,
                "bank payin",
                async |read, project, id: BankPayinId| {
                    read.resource(project, ResourceRef::BankPayin(id)).await
                },
            )
            .await?;
        payin_answer(&state)
    }

    async fn list_bank_payins(
        &self,
        request: Request<pb::ListBankPayinsRequest>,
    ) -> Result<Response<pb::ListBankPayinsResponse>, Status> {
        let (size, token) = (request.get_ref().page_size, &request.get_ref().page_token);
        let page = self
            .list_page(&request, size, token, async |read, project, page| {
                read.list_resources(project, ResourceKind::BankPayin, page).await
            })
            .await?;
        Ok(Response::new(pb::ListBankPayinsResponse {
            items: page
                .items
                .iter()
                .filter_map(Aggregate::as_bank_payin)
                .map(convert::bank_payin_pb)
                .collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn update_bank_payin(
        &self,
        request: Request<pb::UpdateBankPayinRequest>,
    ) -> Result<Response<pb::BankPayin>, Status> {
        let caller = self.caller(&request).await?;
        let mut v = Violations::new();
        let command = convert::update_bank_payin(request.get_ref(), &mut v);
        let command = finish(v, command)?;
        let state = self
            .execute(&caller, correlation_id(request.metadata()), None, command)
            .await?;
        payin_answer(&state)
    }

    async fn simulate_bank_payin(
        &self,
        request: Request<pb::SimulateBankPayinRequest>,
    ) -> Result<Response<pb::BankPayin>, Status> {
        let mut v = Violations::new();
        let (caller, key) = self
            .create_caller(&request, methods::SIMULATE_BANK_PAYIN, &mut v)
            .await?;
        let ids = PayinIds {
            payin: BankPayinId::from_uuid(self.new_uuid()),
            transaction: TransactionId::from_uuid(self.new_uuid()),
        };
        let command = convert::simulate_bank_payin(request.get_ref(), ids, &mut v);
        let command = finish(v, command)?;
        let state = self
            .execute(&caller, correlation_id(request.metadata()), key, command)
            .await?;
        payin_answer(&state)
    }
}
