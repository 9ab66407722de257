pub mod convert;

use paycore_domain::{CustomerId, Violations};
use tonic::{Request, Response, Status};

use super::{Handlers, correlation_id, finish, methods, unexpected};
use crate::pb::{self, customer_service_server::CustomerService};

#[tonic::async_trait]
impl CustomerService for Handlers {
    async fn create_customer(
        &self,
        request: Request<pb::CreateCustomerRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        let mut v = Violations::new();
        let (caller, key) = self
            .create_caller(&request, methods::CREATE_CUSTOMER, &mut v)
            .await?;
        let id = CustomerId::from_uuid(self.new_uuid());
        let command = convert::create_customer(request.get_ref(), id, &mut v);
        let command = finish(v, command)?;
        let state = self
            .execute(&caller, correlation_id(request.metadata()), key, command)
            .await?;
        let customer = state
            .as_customer()
            .ok_or_else(|| unexpected("customer", &state))?;
        Ok(Response::new(convert::customer_pb(customer)))
    }

    async fn get_customer(
        &self,
        request: Request<pb::GetCustomerRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        let id = &request.get_ref().customer_id;
        let customer = self
            .get_one(
                &request,
                "customer_id",
                id,
                "customer",
                async |read, project, id: CustomerId| read.customer(project, id).await,
            )
            .await?;
        Ok(Response::new(convert::customer_pb(&customer)))
    }

    async fn list_customers(
        &self,
        request: Request<pb::ListCustomersRequest>,
    ) -> Result<Response<pb::ListCustomersResponse>, Status> {
        let (size, token) = (request.get_ref().page_size, &request.get_ref().page_token);
        let page = self
            .list_page(&request, size, token, async |read, project, page| {
                read.list_customers(project, page).await
            })
            .await?;
        Ok(Response::new(pb::ListCustomersResponse {
            items: page.items.iter().map(convert::customer_pb).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn update_customer(
        &self,
        request: Request<pb::UpdateCustomerRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        let caller = self.caller(&request).await?;
        let mut v = Violations::new();
        let command = convert::update_customer(request.get_ref(), &mut v);
        let command = finish(v, command)?;
        let state = self
            .execute(&caller, correlation_id(request.metadata()), None, command)
            .await?;
        let customer = state
            .as_customer()
            .ok_or_else(|| unexpected("customer", &state))?;
        Ok(Response::new(convert::customer_pb(customer)))
    }
}
