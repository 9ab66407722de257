//! Proto ⇄ domain for customers and their identity, collecting every
//! invalid field (`identity.document.type`).

use paycore_domain::customer::CustomerCommand;
use paycore_domain::{Command, CustomerId, FileId, Violations};

use crate::convert::*;
use crate::pb;
use paycore_domain::aggregate::Customer;
use paycore_domain::customer::identity::{
    Address, Date, DocumentType, EmploymentStatus, Identity, IdentityDocument,
};

fn employment_status(value: i32, field: &str, v: &mut Violations) -> Option<Option<EmploymentStatus>> {
    use pb::EmploymentStatus as P;
    match P::try_from(value) {
        Ok(P::Unspecified) => Some(None),
        Ok(P::Student) => Some(Some(EmploymentStatus::Student)),
        Ok(P::Employed) => Some(Some(EmploymentStatus::Employed)),
        Ok(P::SelfEmployed) => Some(Some(EmploymentStatus::SelfEmployed)),
        Ok(P::Searching) => Some(Some(EmploymentStatus::Searching)),
        Ok(P::NotEmployed) => Some(Some(EmploymentStatus::NotEmployed)),
        Err(_) => {
            v.add(field, format!("unknown employment status {value}"));
            None
        }
    }
}

fn document_type(value: i32, field: &str, v: &mut Violations) -> Option<DocumentType> {
    use pb::DocumentType as P;
    match P::try_from(value) {
        Ok(P::NationalId) => Some(DocumentType::NationalId),
        Ok(P::Passport) => Some(DocumentType::Passport),
        Ok(P::Unspecified) => {
            v.add(field, "is required");
            None
        }
        Err(_) => {
            v.add(field, format!("unknown document type {value}"));
            None
        }
    }
}

pub fn date(date: &pb::Date, field: &str, v: &mut Violations) -> Option<Date> {
    let parsed = match (
        u16::try_from(date.year),
        u8::try_from(date.month),
        u8::try_from(date.day),
    ) {
        (Ok(year), Ok(month), Ok(day)) if year <= 9999 => Date::new(year, month, day),
        _ => None,
    };
    if parsed.is_none() {
        v.add(
            field,
            format!(
                "{:04}-{:02}-{:02} is not a valid date (year 1-9999, month 1-12, day of the month)",
                date.year, date.month, date.day
            ),
        );
    }
    parsed
}

fn document(document: &pb::IdentityDocument, field: &str, v: &mut Violations) -> Option<IdentityDocument> {
    let document_type = document_type(document.r#type, &format!("{field}.type"), v);
    let expiration_date = match &document.expiration_date {
        None => Some(None),
        Some(d) => date(d, &format!("{field}.expiration_date"), v).map(Some),
    };
    let file = |text: &Option<String>, name: &str, v: &mut Violations| {
        optional_id::<FileId>(text.as_deref(), &format!("{field}.{name}"), v)
    };
    let front_file_id = file(&document.front_file_id, "front_file_id", v);
    let back_file_id = file(&document.back_file_id, "back_file_id", v);
    let selfie_file_id = file(&document.selfie_file_id, "selfie_file_id", v);
    Some(IdentityDocument {
        document_type: document_type?,
        country: document.country.clone(),
        number: document.number.clone(),
        expiration_date: expiration_date?,
        front_file_id: front_file_id?,
        back_file_id: back_file_id?,
        selfie_file_id: selfie_file_id?,
    })
}

/// An identity, checked in full (enums, dates, file IDs and the domain's own
/// rules on names, email, phone and countries).
pub fn identity(identity: &pb::Identity, field: &str, v: &mut Violations) -> Option<Identity> {
    let employment_status = employment_status(
        identity.employment_status,
        &format!("{field}.employment_status"),
        v,
    );
    let document = match &identity.document {
        None => Some(None),
        Some(d) => document(d, &format!("{field}.document"), v).map(Some),
    };
    let address = identity.address.as_ref().map(|a| Address {
        line_1: a.line_1.clone(),
        line_2: a.line_2.clone(),
        postal_code: a.postal_code.clone(),
        city: a.city.clone(),
        region: a.region.clone(),
        country: a.country.clone(),
    });
    let parsed = Identity {
        first_name: identity.first_name.clone(),
        last_name: identity.last_name.clone(),
        email_address: identity.email_address.clone(),
        phone_number: identity.phone_number.clone(),
        nationality: identity.nationality.clone(),
        employment_status: employment_status.flatten(),
        address,
        document: document.clone().flatten(),
    };
    // The decider validates again; doing it here reports these problems
    // together with the ones only the edge can see.
    let mut rules = Violations::new();
    parsed.validate(field, &mut rules);
    let valid = rules.is_empty();
    v.extend(rules);
    (valid && employment_status.is_some() && document.is_some()).then_some(parsed)
}

pub fn create_customer(
    request: &pb::CreateCustomerRequest,
    id: CustomerId,
    v: &mut Violations,
) -> Option<Command> {
    let identity = match &request.identity {
        None => Some(None),
        Some(i) => identity(i, "identity", v).map(Some),
    };
    let meta = meta(&request.meta, "meta", v);
    Some(
        CustomerCommand::CreateCustomer {
            id,
            identity: identity?,
            meta: meta?,
        }
        .into(),
    )
}

pub fn update_customer(request: &pb::UpdateCustomerRequest, v: &mut Violations) -> Option<Command> {
    let id = id::<CustomerId>(&request.customer_id, "customer_id", v);
    let mask = Mask::parse(request.update_mask.as_ref(), &["identity", "meta"], v)?;
    let identity = if mask.has("identity") {
        match &request.identity {
            None => Some(Some(None)),
            Some(i) => identity(i, "identity", v).map(|i| Some(Some(i))),
        }
    } else {
        Some(None)
    };
    let meta = if mask.has("meta") {
        meta(&request.meta, "meta", v).map(Some)
    } else {
        Some(None)
    };
    Some(
        CustomerCommand::UpdateCustomer {
            id: id?,
            identity: identity?,
            meta: meta?,
        }
        .into(),
    )
}

fn employment_status_pb(status: EmploymentStatus) -> pb::EmploymentStatus {
    match status {
        EmploymentStatus::Student => pb::EmploymentStatus::Student,
        EmploymentStatus::Employed => pb::EmploymentStatus::Employed,
        EmploymentStatus::SelfEmployed => pb::EmploymentStatus::SelfEmployed,
        EmploymentStatus::Searching => pb::EmploymentStatus::Searching,
        EmploymentStatus::NotEmployed => pb::EmploymentStatus::NotEmployed,
    }
}

fn document_type_pb(document_type: DocumentType) -> pb::DocumentType {
    match document_type {
        DocumentType::NationalId => pb::DocumentType::NationalId,
        DocumentType::Passport => pb::DocumentType::Passport,
    }
}

pub fn identity_pb(identity: &Identity) -> pb::Identity {
    pb::Identity {
        first_name: identity.first_name.clone(),
        last_name: identity.last_name.clone(),
        email_address: identity.email_address.clone(),
        phone_number: identity.phone_number.clone(),
        nationality: identity.nationality.clone(),
        employment_status: identity
            .employment_status
            .map_or(pb::EmploymentStatus::Unspecified, employment_status_pb)
            .into(),
        address: identity.address.as_ref().map(|a| pb::Address {
            line_1: a.line_1.clone(),
            line_2: a.line_2.clone(),
            postal_code: a.postal_code.clone(),
            city: a.city.clone(),
            region: a.region.clone(),
            country: a.country.clone(),
        }),
        document: identity.document.as_ref().map(|d| pb::IdentityDocument {
            r#type: document_type_pb(d.document_type).into(),
            country: d.country.clone(),
            number: d.number.clone(),
            expiration_date: d.expiration_date.map(|date| pb::Date {
                year: date.year.into(),
                month: date.month.into(),
                day: date.day.into(),
            }),
            front_file_id: d.front_file_id.map(|id| id.to_string()),
            back_file_id: d.back_file_id.map(|id| id.to_string()),
            selfie_file_id: d.selfie_file_id.map(|id| id.to_string()),
        }),
    }
}

pub fn customer_pb(customer: &Customer) -> pb::Customer {
    pb::Customer {
        id: customer.id.to_string(),
        created_at: Some(timestamp(customer.created_at)),
        project_id: customer.project_id.to_string(),
        identity: customer.identity.as_ref().map(identity_pb),
        meta: meta_pb(&customer.meta),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::*;
    use paycore_domain::Meta;

    use crate::convert::tests::{fields, mask};

    fn full_identity() -> pb::Identity {
        pb::Identity {
            first_name: "John".into(),
            last_name: "McJohn".into(),
            email_address: Some("john@example.com".into()),
            phone_number: Some("+34600111222".into()),
            nationality: Some("ES".into()),
            employment_status: pb::EmploymentStatus::SelfEmployed.into(),
            address: Some(pb::Address {
                line_1: "Calle Ejemplo, 31".into(),
                line_2: "2o 1a".into(),
                postal_code: "08102".into(),
                city: "L'Hospitalet de Llobregat".into(),
                region: "Barcelona".into(),
                country: "ES".into(),
            }),
            document: Some(pb::IdentityDocument {
                r#type: pb::DocumentType::Passport.into(),
                country: "ES".into(),
                number: "12345678R".into(),
                expiration_date: Some(pb::Date {
                    year: 2030,
                    month: 2,
                    day: 28,
                }),
                front_file_id: Some(FileId::from_uuid(Uuid::from_u128(5)).to_string()),
                back_file_id: None,
                selfie_file_id: None,
            }),
        }
    }

    #[test]
    fn identity_round_trips() {
        let mut v = Violations::new();
        let parsed = identity(&full_identity(), "identity", &mut v).unwrap();
        assert!(v.is_empty());
        assert_eq!(parsed.employment_status, Some(EmploymentStatus::SelfEmployed));
        let document = parsed.document.clone().unwrap();
        assert_eq!(document.document_type, DocumentType::Passport);
        assert_eq!(document.expiration_date, Date::new(2030, 2, 28));
        assert_eq!(identity_pb(&parsed), full_identity());
    }

    #[test]
    fn identity_reports_enums_dates_files_and_domain_rules() {
        let mut bad = full_identity();
        bad.first_name = String::new();
        bad.email_address = Some("nope".into());
        bad.employment_status = 42;
        if let Some(document) = bad.document.as_mut() {
            document.r#type = pb::DocumentType::Unspecified.into();
            document.expiration_date = Some(pb::Date {
                year: 2023,
                month: 2,
                day: 29,
            });
            document.selfie_file_id = Some("acc_x".into());
        }
        let mut v = Violations::new();
        assert!(identity(&bad, "identity", &mut v).is_none());
        assert_eq!(
            fields(v),
            [
                "identity.employment_status",
                "identity.document.type",
                "identity.document.expiration_date",
                "identity.document.selfie_file_id",
                "identity.first_name",
                "identity.email_address",
            ]
        );
        let mut unspecified = full_identity();
        unspecified.employment_status = 0;
        let mut v = Violations::new();
        assert_eq!(
            identity(&unspecified, "identity", &mut v)
                .unwrap()
                .employment_status,
            None
        );
    }

    #[test]
    fn update_customer_can_clear_identity() {
        let id = CustomerId::from_uuid(Uuid::from_u128(6));
        let request = pb::UpdateCustomerRequest {
            customer_id: id.to_string(),
            update_mask: mask(&["identity"]),
            identity: None,
            meta: BTreeMap::new(),
        };
        let mut v = Violations::new();
        assert_eq!(
            update_customer(&request, &mut v),
            Some(
                CustomerCommand::UpdateCustomer {
                    id,
                    identity: Some(None),
                    meta: None
                }
                .into()
            )
        );
        let request = pb::UpdateCustomerRequest {
            update_mask: mask(&["meta"]),
            identity: Some(full_identity()),
            ..request
        };
        let mut v = Violations::new();
        assert_eq!(
            update_customer(&request, &mut v),
            Some(
                CustomerCommand::UpdateCustomer {
                    id,
                    identity: None,
                    meta: Some(Meta::default())
                }
                .into()
            )
        );
    }
}
