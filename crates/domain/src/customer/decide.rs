//! Deciding the customer family's commands, and [`Context::customer`], by
//! which other families find a customer of the caller's project.

use super::events::{CustomerCreated, CustomerEvent, CustomerIdentityUpdated};
use super::identity::{Identity, IdentityDocument};
use super::state::Customer;
use crate::context::{Context, Decided};
use crate::kernel::error::{DomainError, Violations};
use crate::kernel::id::{CustomerId, FileId};
use crate::kernel::meta::{Meta, MetaUpdated};
use crate::kernel::stream::{ResourceRef, StreamRef};

impl Context<'_> {
    pub(crate) fn customer(&self, id: CustomerId) -> Result<&Customer, DomainError> {
        self.owned::<Customer>(&StreamRef::Customer(id))
            .ok_or_else(|| DomainError::not_found("customer", id))
    }

    pub(crate) fn create_customer<E: From<CustomerEvent>>(
        &self,
        id: CustomerId,
        identity: &Option<Identity>,
        meta: &Meta,
    ) -> Result<Decided<E>, DomainError> {
        let project = self.project()?;
        let stream = StreamRef::Customer(id);
        self.must_be_new(&stream, "customer", id)?;
        validate_identity(identity)?;
        self.identity_files_exist(identity.as_ref())?;
        let event = CustomerEvent::CustomerCreated(CustomerCreated {
            id,
            project_id: project.id,
            identity: identity.clone(),
            meta: meta.clone(),
            created_at: self.now,
        });
        Ok((vec![(stream, event.into())], ResourceRef::Customer(id)))
    }

    pub(crate) fn update_customer<E: From<CustomerEvent>>(
        &self,
        id: CustomerId,
        identity: &Option<Option<Identity>>,
        meta: &Option<Meta>,
    ) -> Result<Decided<E>, DomainError> {
        let stream = StreamRef::Customer(id);
        self.customer(id)?;
        let mut events = Vec::new();
        if let Some(identity) = identity {
            validate_identity(identity)?;
            self.identity_files_exist(identity.as_ref())?;
            events.push((
                stream.clone(),
                CustomerEvent::CustomerIdentityUpdated(CustomerIdentityUpdated {
                    identity: identity.clone(),
                })
                .into(),
            ));
        }
        if let Some(meta) = meta {
            events.push((
                stream,
                CustomerEvent::CustomerMetaUpdated(MetaUpdated { meta: meta.clone() }).into(),
            ));
        }
        Ok((events, ResourceRef::Customer(id)))
    }

    /// Every file an identity document refers to is an upload of this
    /// project: another project's file is not found, like a missing one.
    fn identity_files_exist(&self, identity: Option<&Identity>) -> Result<(), DomainError> {
        for file in identity_files(identity) {
            self.file(file)?;
        }
        Ok(())
    }
}

/// The files an identity's document refers to, if any.
pub(crate) fn identity_files(identity: Option<&Identity>) -> impl Iterator<Item = FileId> + '_ {
    identity
        .and_then(|identity| identity.document.as_ref())
        .into_iter()
        .flat_map(IdentityDocument::file_ids)
}

fn validate_identity(identity: &Option<Identity>) -> Result<(), DomainError> {
    let mut violations = Violations::new();
    if let Some(identity) = identity {
        identity.validate("identity", &mut violations);
    }
    violations.into_result()
}
