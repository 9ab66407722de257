//! `InstitutionService`'s proto ⇄ connector conversions and its filters.

use crate::pb;
use paycore_bank_connector::{Institution, Source};
use paycore_domain::Violations;
use paycore_domain::kernel::institution::InstitutionId;

/// What `ListInstitutions` keeps.
#[derive(Debug)]
pub struct Filter {
    query: String,
    country: Option<String>,
}

impl Filter {
    pub fn matches(&self, institution: &Institution) -> bool {
        let country = institution.country.to_string();
        self.country.as_ref().is_none_or(|wanted| *wanted == country)
            && (self.query.is_empty()
                || institution.name.to_lowercase().contains(&self.query)
                || institution.id.as_str().to_lowercase().contains(&self.query))
    }
}

/// The request's filters; `None` with a violation per bad field.
pub fn filter(request: &pb::ListInstitutionsRequest, v: &mut Violations) -> Option<Filter> {
    let query = request.query.trim().to_lowercase();
    let mut valid = true;
    if query.chars().count() > 100 {
        v.add("query", "must be at most 100 characters");
        valid = false;
    }
    let country = match request.country.trim() {
        "" => None,
        code if code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Some(code.to_ascii_uppercase())
        }
        _ => {
            v.add(
                "country",
                "must be an ISO 3166-1 alpha-2 country code, such as GB",
            );
            valid = false;
            None
        }
    };
    valid.then_some(Filter { query, country })
}

/// A request's `institution_id`, checked.
pub fn institution_id(text: &str, v: &mut Violations) -> Option<InstitutionId> {
    v.check("institution_id", InstitutionId::parse(text))
}

pub fn institution_pb(institution: &Institution, active: bool) -> pb::Institution {
    pb::Institution {
        id: institution.id.as_str().to_owned(),
        name: institution.name.clone(),
        country: institution.country.to_string(),
        sources: institution
            .sources
            .iter()
            .map(|source| match source {
                Source::Psd2 => pb::InstitutionSource::Psd2Api.into(),
                Source::Web => pb::InstitutionSource::Web.into(),
            })
            .collect(),
        max_refreshes_per_day: institution.max_refreshes_per_day,
        max_consent_days: institution.max_consent_days,
        max_history_days: institution.max_history_days,
        credit_cards: institution.credit_cards,
        active,
    }
}
