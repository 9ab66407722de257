pub mod convert;

use tonic::{Request, Response, Status};

use super::Handlers;
use crate::errors::model_status;
use crate::pb::{self, fx_rate_service_server::FxRateService};

#[tonic::async_trait]
impl FxRateService for Handlers {
    /// Read-only and platform-wide: any authenticated project may see the
    /// rates its transfers would convert at.
    async fn list_fx_rates(
        &self,
        request: Request<pb::ListFxRatesRequest>,
    ) -> Result<Response<pb::ListFxRatesResponse>, Status> {
        self.caller(&request).await?;
        // The read models keep the pairs ordered by (source, destination).
        let rates = self
            .queries()
            .fx_rates()
            .await
            .map_err(|error| model_status(&error))?
            .iter()
            .filter_map(convert::fx_rate_pb)
            .collect();
        Ok(Response::new(pb::ListFxRatesResponse { rates }))
    }
}
