pub mod convert;

use paycore_domain::{Aggregate, BankAccountId, ResourceRef, Violations};
use paycore_projections::ResourceKind;
use tonic::{Request, Response, Status};

use super::{Handlers, correlation_id, finish, methods, unexpected};
use crate::pb::{self, bank_account_service_server::BankAccountService};

/// The answer for a command on a bank account.
fn bank_account_answer(state: &Aggregate) -> Result<Response<pb::BankAccount>, Status> {
    let account = state
        .as_bank_account()
        .ok_or_else(|| unexpected("bank account", state))?;
    Ok(Response::new(convert::bank_account_pb(account)))
}

#[tonic::async_trait]
impl BankAccountService for Handlers {
    async fn create_bank_account(
        &self,
        request: Request<pb::CreateBankAccountRequest>,
    ) -> Result<Response<pb::BankAccount>, Status> {
        let mut v = Violations::new();
        let (caller, key) = self
            .create_caller(&request, methods::CREATE_BANK_ACCOUNT, &mut v)
            .await?;
        let id = BankAccountId::from_uuid(self.new_uuid());
        let command = convert::create_bank_account(request.get_ref(), id, &mut v);
        let command = finish(v, command)?;
        let state = self
            .execute(&caller, correlation_id(request.metadata()), key, command)
            .await?;
        bank_account_answer(&state)
    }

    async fn get_bank_account(
        &self,
        request: Request<pb::GetBankAccountRequest>,
    ) -> Result<Response<pb::BankAccount>, Status> {
        let id = &request.get_ref().bank_account_id;
        let state = self
            .get_one(
                &request,
                "bank_account_id",
                id,
                "bank account",
                async |read, project, id: BankAccountId| {
                    read.resource(project, ResourceRef::BankAccount(id)).await
                },
            )
            .await?;
        bank_account_answer(&state)
    }

    async fn list_bank_accounts(
        &self,
        request: Request<pb::ListBankAccountsRequest>,
    ) -> Result<Response<pb::ListBankAccountsResponse>, Status> {
        let (size, token) = (request.get_ref().page_size, &request.get_ref().page_token);
        let page = self
            .list_page(&request, size, token, async |read, project, page| {
                read.list_resources(project, ResourceKind::BankAccount, page)
                    .await
            })
            .await?;
        Ok(Response::new(pb::ListBankAccountsResponse {
            items: page
                .items
                .iter()
                .filter_map(Aggregate::as_bank_account)
                .map(convert::bank_account_pb)
                .collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn update_bank_account(
        &self,
        request: Request<pb::UpdateBankAccountRequest>,
    ) -> Result<Response<pb::BankAccount>, Status> {
        let caller = self.caller(&request).await?;
        let mut v = Violations::new();
        let command = convert::update_bank_account(request.get_ref(), &mut v);
        let command = finish(v, command)?;
        let state = self
            .execute(&caller, correlation_id(request.metadata()), None, command)
            .await?;
        bank_account_answer(&state)
    }
}
