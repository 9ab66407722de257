//! `resources`: cards, card payins and their refunds, bank accounts,
//! payouts, payin references, bank payins and files, each kept as its
//! aggregate state (the domain's own fold), in one list per project and
//! kind; a card payin's refunds also in a list of their own.

use paycore_domain::Aggregate;

use super::{Applied, Projection, ResourceKind, resource_of};
use crate::db::ModelError;
use crate::rows::{Key, RowsMut};

pub(crate) struct Resources;

impl Projection for Resources {
    const NAME: &'static str = "resources";
    const VERSION: u32 = 4;
    /// 4: new IDs stored as runs (`id_runs.rs`); rows of 3 read as they are.
    const CONTINUES: Option<u32> = Some(3);
    const DESCRIPTION: &'static str =
        "cards, card payins, refunds, bank accounts, payouts, payin references, bank payins, files";

    fn apply(rows: &mut RowsMut<'_>, applied: &Applied<'_>) -> Result<(), ModelError> {
        // Most of the log is transactions and transfers: skip them before
        // parsing the stream name.
        if !is_resource_category(applied.category) {
            return Ok(());
        }
        let Some(resource) = applied.stream().as_ref().and_then(resource_of) else {
            return Ok(());
        };
        let Some(kind) = ResourceKind::of(resource) else {
            return Ok(());
        };
        let event = applied.event;
        let key = Key::Resource(resource);
        if rows.get::<Aggregate>(key)?.is_some() {
            return rows.update(key, |state: Aggregate| state.evolve(event));
        }
        let state = Aggregate::Empty.evolve(event);
        let Some(project) = state.project_id() else {
            return Ok(());
        };
        let payin = state.as_card_payin_refund().map(|refund| refund.card_payin_id);
        if let Some(seq) = rows.insert(Key::Resources(project, kind), key, &state)?
            && let Some(payin) = payin
        {
            rows.push_index(Key::PayinRefunds(payin), seq)?;
        }
        Ok(())
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
