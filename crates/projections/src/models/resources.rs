//! `resources`: cards, card payins and their refunds, bank accounts,
//! payouts, payin references, bank payins and files, each kept as its
//! aggregate state (the domain's own fold).

use paycore_domain::{Aggregate, CardPayinId, ProjectId, ResourceRef};
use serde::{Deserialize, Serialize};

use super::{Applied, CreationOrdered, Map, Projection, ResourceKind, resource_of};

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Resources {
    pub projects: Map<ProjectId, ProjectResources>,
    /// Which project owns each resource, for events that name only the resource.
    owners: Map<ResourceRef, ProjectId>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct ProjectResources {
    pub lists: Map<ResourceKind, CreationOrdered<ResourceRef, Aggregate>>,
    /// Per card payin: indices of its refunds in `lists[CardPayinRefund]`.
    pub payin_refunds: Map<CardPayinId, Vec<u32>>,
}

impl Resources {
    pub fn get(&self, project: ProjectId, resource: ResourceRef) -> Option<&Aggregate> {
        let kind = ResourceKind::of(resource)?;
        self.projects.get(&project)?.lists.get(&kind)?.get(&resource)
    }
}

impl Projection for Resources {
    const NAME: &'static str = "resources";
    const VERSION: u32 = 2;
    const DESCRIPTION: &'static str =
        "cards, card payins, refunds, bank accounts, payouts, payin references, bank payins, files";

    fn apply(&mut self, applied: &Applied<'_>) {
        // Most of the log is transactions and transfers: skip them before
        // parsing the stream name.
        if !is_resource_category(applied.category) {
            return;
        }
        let Some(resource) = applied.stream().as_ref().and_then(resource_of) else {
            return;
        };
        let Some(kind) = ResourceKind::of(resource) else {
            return;
        };
        let event = applied.event;
        if let Some(project) = self.owners.get(&resource).copied() {
            if let Some(list) = self
                .projects
                .get_mut(&project)
                .and_then(|p| p.lists.get_mut(&kind))
            {
                list.update(&resource, |state| state.clone().evolve(event));
            }
            return;
        }
        let state = Aggregate::Empty.evolve(event);
        let Some(project) = state.project_id() else { return };
        let payin = state.as_card_payin_refund().map(|refund| refund.card_payin_id);
        self.owners.insert(resource, project);
        let resources = self.projects.entry(project).or_default();
        let list = resources.lists.entry(kind).or_default();
        if let Some(index) = list.insert(resource, state)
            && let Some(payin) = payin
        {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            resources.payin_refunds.entry(payin).or_default().push(index);
        }
    }
}

fn is_resource_category(category: &str) -> bool {
    matches!(
        category,
        "cardtoken"
            | "card"
            | "cardpayin"
            | "cardpayinrefund"
            | "bankaccount"
            | "bankpayout"
            | "bankpayinreference"
            | "bankpayin"
            | "file"
    )
}
