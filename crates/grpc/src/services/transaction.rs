use paycore_domain::{AccountId, DomainError, TransactionId, Violations};
use tonic::{Request, Response, Status};

use super::{Handlers, finish};
use crate::convert;
use crate::errors::{domain_status, page_status};
use crate::pb::{self, transaction_service_server::TransactionService};

#[tonic::async_trait]
impl TransactionService for Handlers {
    async fn get_transaction(
        &self,
        request: Request<pb::GetTransactionRequest>,
    ) -> Result<Response<pb::Transaction>, Status> {
        let caller = self.caller(&request).await?;
        let mut v = Violations::new();
        let id = convert::id::<TransactionId>(&request.get_ref().transaction_id, "transaction_id", &mut v);
        let id = finish(v, id)?;
        let transaction = self
            .state
            .read
            .transaction(caller.project_id, id)
            .ok_or_else(|| domain_status(&DomainError::not_found("transaction", id)))?;
        Ok(Response::new(convert::transaction_pb(&transaction)))
    }

    async fn list_transactions(
        &self,
        request: Request<pb::ListTransactionsRequest>,
    ) -> Result<Response<pb::ListTransactionsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.get_ref();
        let mut v = Violations::new();
        let page = convert::page_request(request.page_size, &request.page_token, &mut v);
        let account = convert::optional_id::<AccountId>(request.account_id.as_deref(), "account_id", &mut v);
        let (page, account) = finish(v, page.zip(account))?;
        let page = self
            .state
            .read
            .list_transactions(caller.project_id, account, &page)
            .map_err(|e| page_status(&e, account))?;
        Ok(Response::new(pb::ListTransactionsResponse {
            items: page.items.iter().map(convert::transaction_pb).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }
}
