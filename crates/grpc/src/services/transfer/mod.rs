mod batch;
pub mod convert;

pub use batch::{MAX_BATCHED_TRANSFERS, check_batch_fields};

use paycore_domain::{Command, IdempotencyKey, TransactionId, TransferId, Violations};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::auth::Caller;

use super::{Handlers, correlation_id, finish, methods, unexpected};
use crate::pb::{self, transfer_service_server::TransferService};

#[tonic::async_trait]
impl TransferService for Handlers {
    async fn create_transfer(
        &self,
        request: Request<pb::CreateTransferRequest>,
    ) -> Result<Response<pb::Transfer>, Status> {
        let mut v = Violations::new();
        let (caller, key) = self
            .create_caller(&request, methods::CREATE_TRANSFER, &mut v)
            .await?;
        let ids = convert::TransferIds {
            transfer: TransferId::from_uuid(self.new_uuid()),
            source_transaction: TransactionId::from_uuid(self.new_uuid()),
            destination_transaction: TransactionId::from_uuid(self.new_uuid()),
        };
        let now = self.state.clock.now();
        let command = convert::create_transfer(request.get_ref(), ids, now, &mut v);
        let command = finish(v, command)?;
        let state = self
            .execute(&caller, correlation_id(request.metadata()), key, command)
            .await?;
        let transfer = state
            .as_transfer()
            .ok_or_else(|| unexpected("transfer", &state))?;
        Ok(Response::new(convert::transfer_pb(transfer)))
    }

    async fn create_transfers(
        &self,
        request: Request<pb::CreateTransfersRequest>,
    ) -> Result<Response<pb::CreateTransfersResponse>, Status> {
        self.create_transfers_batch(request).await.map(Response::new)
    }

    async fn post_pending_transfer(
        &self,
        request: Request<pb::PostPendingTransferRequest>,
    ) -> Result<Response<pb::Transfer>, Status> {
        let mut v = Violations::new();
        let (caller, key) = self
            .create_caller(&request, methods::POST_PENDING_TRANSFER, &mut v)
            .await?;
        let legs = (
            TransactionId::from_uuid(self.new_uuid()),
            TransactionId::from_uuid(self.new_uuid()),
        );
        let command = convert::post_pending_transfer(request.get_ref(), legs, &mut v);
        let command = finish(v, command)?;
        self.transfer_after(&caller, request.metadata(), key, command)
            .await
    }

    async fn void_pending_transfer(
        &self,
        request: Request<pb::VoidPendingTransferRequest>,
    ) -> Result<Response<pb::Transfer>, Status> {
        let mut v = Violations::new();
        let (caller, key) = self
            .create_caller(&request, methods::VOID_PENDING_TRANSFER, &mut v)
            .await?;
        let command = convert::void_pending_transfer(request.get_ref(), &mut v);
        let command = finish(v, command)?;
        self.transfer_after(&caller, request.metadata(), key, command)
            .await
    }

    async fn get_transfer(
        &self,
        request: Request<pb::GetTransferRequest>,
    ) -> Result<Response<pb::Transfer>, Status> {
        let id = &request.get_ref().transfer_id;
        let transfer = self
            .get_one(
                &request,
                "transfer_id",
                id,
                "transfer",
                async |read, project, id: TransferId| read.transfer(project, id).await,
            )
            .await?;
        Ok(Response::new(convert::transfer_pb(&transfer)))
    }

    async fn list_transfers(
        &self,
        request: Request<pb::ListTransfersRequest>,
    ) -> Result<Response<pb::ListTransfersResponse>, Status> {
        let (size, token) = (request.get_ref().page_size, &request.get_ref().page_token);
        let page = self
            .list_page(&request, size, token, async |read, project, page| {
                read.list_transfers(project, page).await
            })
            .await?;
        Ok(Response::new(pb::ListTransfersResponse {
            items: page.items.iter().map(convert::transfer_pb).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn update_transfer(
        &self,
        request: Request<pb::UpdateTransferRequest>,
    ) -> Result<Response<pb::Transfer>, Status> {
        let caller = self.caller(&request).await?;
        let mut v = Violations::new();
        let command = convert::update_transfer(request.get_ref(), &mut v);
        let command = finish(v, command)?;
        self.transfer_after(&caller, request.metadata(), None, command)
            .await
    }
}

impl Handlers {
    /// Runs a command on a transfer and answers the transfer as it left it.
    async fn transfer_after(
        &self,
        caller: &Caller,
        metadata: &MetadataMap,
        key: Option<IdempotencyKey>,
        command: Command,
    ) -> Result<Response<pb::Transfer>, Status> {
        let state = self
            .execute(caller, correlation_id(metadata), key, command)
            .await?;
        let transfer = state
            .as_transfer()
            .ok_or_else(|| unexpected("transfer", &state))?;
        Ok(Response::new(convert::transfer_pb(transfer)))
    }
}
