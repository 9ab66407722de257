//! `AggregatedAccountService`: customers' accounts at other banks and their
//! transactions (`proto/paycore/v1/aggregation.proto`), read from the
//! `open-banking` read model; enabling an account records the end user's
//! consent.

pub mod convert;

use paycore_domain::aggregated_account::AggregatedAccountCommand;
use paycore_domain::{AggregatedAccountId, AggregatedTransactionId, DomainError, Violations};
use paycore_projections::{AggregatedAccountsOf, PageError};
use tonic::{Request, Response, Status};

use super::{Handlers, correlation_id, finish, unexpected};
use crate::convert as shared;
use crate::errors::{domain_status, model_status, page_status};
use crate::pb::{self, aggregated_account_service_server::AggregatedAccountService};

#[tonic::async_trait]
impl AggregatedAccountService for Handlers {
    async fn get_aggregated_account(
        &self,
        request: Request<pb::GetAggregatedAccountRequest>,
    ) -> Result<Response<pb::AggregatedAccount>, Status> {
        let id = &request.get_ref().aggregated_account_id;
        let account = self
            .get_one(
                &request,
                "aggregated_account_id",
                id,
                "aggregated account",
                async |read, project, id: AggregatedAccountId| read.local().aggregated_account(project, id),
            )
            .await?;
        Ok(Response::new(convert::aggregated_account_pb(&account)))
    }

    async fn list_aggregated_accounts(
        &self,
        request: Request<pb::ListAggregatedAccountsRequest>,
    ) -> Result<Response<pb::ListAggregatedAccountsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let body = request.get_ref();
        let mut v = Violations::new();
        let of = convert::accounts_of(body.of.as_ref(), &mut v);
        let page = shared::page_request(body.page_size, &body.page_token, &mut v);
        let (of, page) = finish(v, of.zip(page))?;
        let page = self
            .state
            .read
            .list_aggregated_accounts(caller.project_id, of, body.include_archived, &page)
            .map_err(|e| match e {
                PageError::ParentNotFound => domain_status(&match of {
                    AggregatedAccountsOf::Connection(id) => {
                        DomainError::not_found("aggregation connection", id)
                    }
                    AggregatedAccountsOf::Customer(id) => DomainError::not_found("customer", id),
                }),
                other => page_status(&other, None),
            })?;
        Ok(Response::new(pb::ListAggregatedAccountsResponse {
            items: page.items.iter().map(convert::aggregated_account_pb).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn enable_aggregated_account(
        &self,
        request: Request<pb::EnableAggregatedAccountRequest>,
    ) -> Result<Response<pb::AggregatedAccount>, Status> {
        let caller = self.caller(&request).await?;
        let mut v = Violations::new();
        let id = shared::id::<AggregatedAccountId>(
            &request.get_ref().aggregated_account_id,
            "aggregated_account_id",
            &mut v,
        );
        let id = finish(v, id)?;
        let command = AggregatedAccountCommand::EnableAggregatedAccount { id };
        let state = self
            .execute(&caller, correlation_id(request.metadata()), None, command.into())
            .await?;
        let account = state
            .as_aggregated_account()
            .ok_or_else(|| unexpected("aggregated account", &state))?;
        Ok(Response::new(convert::aggregated_account_pb(account)))
    }

    async fn list_aggregated_transactions(
        &self,
        request: Request<pb::ListAggregatedTransactionsRequest>,
    ) -> Result<Response<pb::ListAggregatedTransactionsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let body = request.get_ref();
        let mut v = Violations::new();
        let account =
            shared::id::<AggregatedAccountId>(&body.aggregated_account_id, "aggregated_account_id", &mut v);
        let filter = convert::transaction_filter(body, &mut v);
        let page = shared::page_request(body.page_size, &body.page_token, &mut v);
        let ((account, filter), page) = finish(v, account.zip(filter).zip(page))?;
        let page = self
            .state
            .read
            .list_aggregated_transactions(caller.project_id, account, filter, &page)
            .map_err(|e| match e {
                PageError::AccountNotFound => {
                    domain_status(&DomainError::not_found("aggregated account", account))
                }
                other => page_status(&other, None),
            })?;
        Ok(Response::new(pb::ListAggregatedTransactionsResponse {
            items: page
                .items
                .iter()
                .map(convert::aggregated_transaction_pb)
                .collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn get_aggregated_transaction(
        &self,
        request: Request<pb::GetAggregatedTransactionRequest>,
    ) -> Result<Response<pb::GetAggregatedTransactionResponse>, Status> {
        let caller = self.caller(&request).await?;
        let mut v = Violations::new();
        let id = shared::id::<AggregatedTransactionId>(
            &request.get_ref().aggregated_transaction_id,
            "aggregated_transaction_id",
            &mut v,
        );
        let id = finish(v, id)?;
        let (account, transaction) = self
            .state
            .read
            .aggregated_transaction(caller.project_id, id)
            .map_err(|error| model_status(&error))?
            .ok_or_else(|| domain_status(&DomainError::not_found("aggregated transaction", id)))?;
        Ok(Response::new(pb::GetAggregatedTransactionResponse {
            aggregated_account_id: account.to_string(),
            transaction: Some(convert::aggregated_transaction_pb(&transaction)),
        }))
    }
}
