use paycore_domain::{AccountId, TransactionId, Violations};
use tonic::{Request, Response, Status};

use super::convert;
use crate::convert as shared;
use crate::errors::page_status;
use crate::pb::{self, transaction_service_server::TransactionService};
use crate::services::{Handlers, finish};

#[tonic::async_trait]
impl TransactionService for Handlers {
    async fn get_transaction(
        &self,
        request: Request<pb::GetTransactionRequest>,
    ) -> Result<Response<pb::Transaction>, Status> {
        let id = &request.get_ref().transaction_id;
        let transaction = self
            .get_one(
                &request,
                "transaction_id",
                id,
                "transaction",
                async |read, project, id: TransactionId| read.transaction(project, id).await,
            )
            .await?;
        Ok(Response::new(convert::transaction_pb(&transaction)))
    }

    async fn list_transactions(
        &self,
        request: Request<pb::ListTransactionsRequest>,
    ) -> Result<Response<pb::ListTransactionsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.get_ref();
        let mut v = Violations::new();
        let page = shared::page_request(request.page_size, &request.page_token, &mut v);
        let account = shared::optional_id::<AccountId>(request.account_id.as_deref(), "account_id", &mut v);
        let as_of = shared::as_of(request.as_of.as_ref(), &mut v);
        if matches!(as_of, Some(Some(_))) && matches!(account, Some(None)) {
            v.add(
                "as_of",
                "needs account_id: only one account's history can be read as of a point",
            );
        }
        let ((page, account), as_of) = finish(v, page.zip(account).zip(as_of))?;
        if let (Some(id), Some(as_of)) = (account, as_of) {
            let history = self.account_as_of(caller.project_id, id, as_of).await?;
            let page = paycore_projections::account_transactions_as_of(
                caller.project_id,
                id,
                &page,
                &history.transactions,
            )
            .map_err(|e| page_status(&e, account))?;
            return Ok(Response::new(pb::ListTransactionsResponse {
                items: page.items.iter().map(convert::transaction_pb).collect(),
                next_page_token: page.next_token.unwrap_or_default(),
            }));
        }
        let page = self
            .queries()
            .list_transactions(caller.project_id, account, &page)
            .await
            .map_err(|e| page_status(&e, account))?;
        Ok(Response::new(pb::ListTransactionsResponse {
            items: page.items.iter().map(convert::transaction_pb).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }
}
