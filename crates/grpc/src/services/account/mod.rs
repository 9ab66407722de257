pub mod convert;
mod transactions;

use paycore_domain::{AccountId, TransactionId, Violations};
use tonic::{Request, Response, Status};

use super::{Handlers, correlation_id, finish, methods, unexpected};
use crate::convert as shared;
use crate::pb::{self, account_service_server::AccountService};

#[tonic::async_trait]
impl AccountService for Handlers {
    async fn create_account(
        &self,
        request: Request<pb::CreateAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let mut v = Violations::new();
        let (caller, key) = self
            .create_caller(&request, methods::CREATE_ACCOUNT, &mut v)
            .await?;
        let id = AccountId::from_uuid(self.new_uuid());
        let command = convert::create_account(request.get_ref(), id, &mut v);
        let command = finish(v, command)?;
        let state = self
            .execute(&caller, correlation_id(request.metadata()), key, command)
            .await?;
        let account = state.as_account().ok_or_else(|| unexpected("account", &state))?;
        Ok(Response::new(convert::account_pb(account)))
    }

    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let id = &request.get_ref().account_id;
        let account = self
            .get_one(
                &request,
                "account_id",
                id,
                "account",
                async |read, project, id: AccountId| read.account(project, id).await,
            )
            .await?;
        Ok(Response::new(convert::account_pb(&account)))
    }

    async fn get_account_at(
        &self,
        request: Request<pb::GetAccountAtRequest>,
    ) -> Result<Response<pb::AccountAt>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.get_ref();
        let mut v = Violations::new();
        let id = shared::id::<AccountId>(&request.account_id, "account_id", &mut v);
        let as_of = shared::required_as_of(request.as_of.as_ref(), &mut v);
        let (id, as_of) = finish(v, id.zip(as_of))?;
        let history = self.account_as_of(caller.project_id, id, as_of).await?;
        Ok(Response::new(convert::account_at_pb(&history)))
    }

    async fn list_accounts(
        &self,
        request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let (size, token) = (request.get_ref().page_size, &request.get_ref().page_token);
        let page = self
            .list_page(&request, size, token, async |read, project, page| {
                read.list_accounts(project, page).await
            })
            .await?;
        Ok(Response::new(pb::ListAccountsResponse {
            items: page.items.iter().map(convert::account_pb).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn update_account(
        &self,
        request: Request<pb::UpdateAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let caller = self.caller(&request).await?;
        let mut v = Violations::new();
        let magic = TransactionId::from_uuid(self.new_uuid());
        let command = convert::update_account(request.get_ref(), magic, &mut v);
        let command = finish(v, command)?;
        let state = self
            .execute(&caller, correlation_id(request.metadata()), None, command)
            .await?;
        let account = state.as_account().ok_or_else(|| unexpected("account", &state))?;
        Ok(Response::new(convert::account_pb(account)))
    }
}
