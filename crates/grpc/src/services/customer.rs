use paycore_domain::{CustomerId, DomainError, Violations};
use tonic::{Request, Response, Status};

use super::{Handlers, correlation_id, finish, methods, unexpected};
use crate::convert;
use crate::errors::{domain_status, page_status};
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
        let caller = self.caller(&request).await?;
        let mut v = Violations::new();
        let id = convert::id::<CustomerId>(&request.get_ref().customer_id, "customer_id", &mut v);
        let id = finish(v, id)?;
        let customer = self
            .state
            .read
            .customer(caller.project_id, id)
            .ok_or_else(|| domain_status(&DomainError::not_found("customer", id)))?;
        Ok(Response::new(convert::customer_pb(&customer)))
    }

    async fn list_customers(
        &self,
        request: Request<pb::ListCustomersRequest>,
    ) -> Result<Response<pb::ListCustomersResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.get_ref();
        let mut v = Violations::new();
        let page = convert::page_request(request.page_size, &request.page_token, &mut v);
        let page = finish(v, page)?;
        let page = self
            .state
            .read
            .list_customers(caller.project_id, &page)
            .map_err(|e| page_status(&e, None))?;
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
