//! The read models themselves: plain data folded from events, no I/O.

use std::collections::HashMap;
use std::hash::Hash;

use paycore_domain::aggregate::{Account, Customer, Project, Transfer};
use paycore_domain::banking::FxRateEntry;
use paycore_domain::money::Currency;
use paycore_domain::{
    AccountId, Aggregate, CardPayinId, CustomerId, Event, ProjectId, ResourceRef, StreamRef, Transaction,
    TransactionId, TransferId,
};
use paycore_store::{ChainHash, Position};
use serde::{Deserialize, Serialize};

/// Items in the order they were created, addressable by ID. Lists page over
/// them backwards (newest first); indices never change because nothing is
/// ever removed, which keeps page tokens stable while new items arrive.
///
/// Items live in fixed-size chunks and the ID map holds only indices, so
/// growing a large list never copies its items (no stall while it grows).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct CreationOrdered<K: Eq + Hash, V> {
    chunks: Vec<Vec<V>>,
    len: usize,
    index: HashMap<K, u32>,
}

const CHUNK: usize = 4_096;

impl<K: Eq + Hash, V> Default for CreationOrdered<K, V> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
            index: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash + Copy, V> CreationOrdered<K, V> {
    /// Appends a new item; an ID seen before is ignored (events are applied
    /// once, so this only guards against a log that repeats a creation).
    fn insert(&mut self, id: K, value: V) -> Option<usize> {
        if self.index.contains_key(&id) {
            return None;
        }
        let position = self.len;
        let slot = u32::try_from(position).ok()?;
        if position.is_multiple_of(CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks.last_mut()?.push(value);
        self.index.insert(id, slot);
        self.len += 1;
        Some(position)
    }

    pub fn get(&self, id: &K) -> Option<&V> {
        self.at(*self.index.get(id)? as usize)
    }

    fn get_mut(&mut self, id: &K) -> Option<&mut V> {
        let position = *self.index.get(id)? as usize;
        self.chunks.get_mut(position / CHUNK)?.get_mut(position % CHUNK)
    }

    /// Replaces an item by a function of its old value, keeping its place.
    fn update(&mut self, id: &K, change: impl FnOnce(&V) -> V) {
        if let Some(item) = self.get_mut(id) {
            *item = change(item);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The item created `index`-th (0 = oldest).
    pub fn at(&self, index: usize) -> Option<&V> {
        self.chunks.get(index / CHUNK)?.get(index % CHUNK)
    }
}

/// Everything one project sees.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct ProjectModels {
    pub project: Option<Project>,
    pub customers: CreationOrdered<CustomerId, Customer>,
    pub accounts: CreationOrdered<AccountId, Account>,
    pub transfers: CreationOrdered<TransferId, Transfer>,
    pub transactions: CreationOrdered<TransactionId, Transaction>,
    /// Per account: indices into `transactions`, oldest first.
    pub account_transactions: HashMap<AccountId, Vec<u32>>,
    /// Cards, payins, refunds, bank resources and files, each kept as its
    /// aggregate state (the domain's own fold).
    pub resources: HashMap<ResourceKind, CreationOrdered<ResourceRef, Aggregate>>,
    /// Per card payin: indices of its refunds in `resources[CardPayinRefund]`.
    pub payin_refunds: HashMap<CardPayinId, Vec<u32>>,
}

/// The resources kept as aggregate states, one list each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResourceKind {
    CardToken,
    Card,
    CardPayin,
    CardPayinRefund,
    BankAccount,
    BankPayout,
    BankPayinReference,
    BankPayin,
    File,
}

impl ResourceKind {
    /// The kind of a resource, if it is one of these.
    pub fn of(resource: ResourceRef) -> Option<Self> {
        Some(match resource {
            ResourceRef::CardToken(_) => Self::CardToken,
            ResourceRef::Card(_) => Self::Card,
            ResourceRef::CardPayin(_) => Self::CardPayin,
            ResourceRef::CardPayinRefund(_) => Self::CardPayinRefund,
            ResourceRef::BankAccount(_) => Self::BankAccount,
            ResourceRef::BankPayout(_) => Self::BankPayout,
            ResourceRef::BankPayinReference(_) => Self::BankPayinReference,
            ResourceRef::BankPayin(_) => Self::BankPayin,
            ResourceRef::File(_) => Self::File,
            ResourceRef::Project(_)
            | ResourceRef::ApiKey(_)
            | ResourceRef::Customer(_)
            | ResourceRef::Account(_)
            | ResourceRef::Transfer(_)
            | ResourceRef::FxRate(..) => return None,
        })
    }
}

/// The resource a stream holds, for the kinds kept as aggregate states.
fn resource_of(stream: &StreamRef) -> Option<ResourceRef> {
    let resource = match stream {
        StreamRef::CardToken(id) => ResourceRef::CardToken(*id),
        StreamRef::Card(id) => ResourceRef::Card(*id),
        StreamRef::CardPayin(id) => ResourceRef::CardPayin(*id),
        StreamRef::CardPayinRefund(id) => ResourceRef::CardPayinRefund(*id),
        StreamRef::BankAccount(id) => ResourceRef::BankAccount(*id),
        StreamRef::BankPayout(id) => ResourceRef::BankPayout(*id),
        StreamRef::BankPayinReference(id) => ResourceRef::BankPayinReference(*id),
        StreamRef::BankPayin(id) => ResourceRef::BankPayin(*id),
        StreamRef::File(id) => ResourceRef::File(*id),
        _ => return None,
    };
    Some(resource)
}

/// All read models and how far into `$all` they are.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Models {
    /// Events at positions below this are applied.
    pub next_position: Position,
    /// Chain hash of the event at `next_position - 1`: proves, on load, that
    /// the models were built from the log they are about to follow.
    pub last_hash: Option<ChainHash>,
    pub projects: HashMap<ProjectId, ProjectModels>,
    /// Which project owns each account, for events that name only the account.
    account_projects: HashMap<AccountId, ProjectId>,
    customer_projects: HashMap<CustomerId, ProjectId>,
    transfer_projects: HashMap<TransferId, ProjectId>,
    resource_projects: HashMap<ResourceRef, ProjectId>,
    /// The platform's exchange rates, by ordered pair.
    pub fx_rates: std::collections::BTreeMap<(Currency, Currency), FxRateEntry>,
}

impl Models {
    /// Applies the event at `position` of stream `category`-`stream_id`.
    pub fn apply(
        &mut self,
        position: Position,
        hash: ChainHash,
        category: &str,
        stream_id: &str,
        event: &Event,
    ) {
        debug_assert_eq!(position, self.next_position, "events are applied in order, once");
        self.next_position = position + 1;
        self.last_hash = Some(hash);
        match event {
            Event::ProjectCreated(_) | Event::ProjectMetaUpdated(_) => {
                if let Ok(id) = stream_id.parse::<ProjectId>() {
                    let models = self.projects.entry(id).or_default();
                    models.project =
                        evolve(models.project.take().map(Aggregate::Project), event).and_then(|state| {
                            match state {
                                Aggregate::Project(project) => Some(project),
                                _ => None,
                            }
                        });
                }
            }
            Event::CustomerCreated(created) => {
                self.customer_projects.insert(created.id, created.project_id);
                if let Some(Aggregate::Customer(customer)) = evolve(None, event) {
                    self.project(created.project_id)
                        .customers
                        .insert(created.id, customer);
                }
            }
            Event::CustomerIdentityUpdated(_) | Event::CustomerMetaUpdated(_) => {
                let Ok(id) = stream_id.parse::<CustomerId>() else {
                    return;
                };
                let Some(project) = self.customer_projects.get(&id).copied() else {
                    return;
                };
                self.project(project).customers.update(&id, |customer| {
                    match Aggregate::Customer(customer.clone()).evolve(event) {
                        Aggregate::Customer(customer) => customer,
                        _ => unreachable_state(),
                    }
                });
            }
            Event::AccountOpened(opened) => {
                self.account_projects.insert(opened.id, opened.project_id);
                if let Some(Aggregate::Account(account)) = evolve(None, event) {
                    self.project(opened.project_id)
                        .accounts
                        .insert(opened.id, account);
                }
            }
            Event::NegativeBalanceAllowanceChanged(_) | Event::AccountMetaUpdated(_) => {
                let Ok(id) = stream_id.parse::<AccountId>() else {
                    return;
                };
                self.update_account(id, event);
            }
            Event::TransactionRecorded(recorded) => {
                let transaction = recorded.transaction;
                self.update_account(transaction.account_id, event);
                let models = self.project(transaction.project_id);
                if let Some(index) = models.transactions.insert(transaction.id, transaction) {
                    let index = u32::try_from(index).unwrap_or(u32::MAX);
                    models
                        .account_transactions
                        .entry(transaction.account_id)
                        .or_default()
                        .push(index);
                }
            }
            Event::TransferCreated(created) => {
                self.transfer_projects.insert(created.id, created.project_id);
                if let Some(Aggregate::Transfer(transfer)) = evolve(None, event) {
                    self.project(created.project_id)
                        .transfers
                        .insert(created.id, transfer);
                }
            }
            Event::TransferMetaUpdated(_) => {
                let Ok(id) = stream_id.parse::<TransferId>() else {
                    return;
                };
                let Some(project) = self.transfer_projects.get(&id).copied() else {
                    return;
                };
                self.project(project).transfers.update(&id, |transfer| {
                    match Aggregate::Transfer(transfer.clone()).evolve(event) {
                        Aggregate::Transfer(transfer) => transfer,
                        _ => unreachable_state(),
                    }
                });
            }
            Event::FxRateSet(_) | Event::FxRateRemoved(_) => {
                if let Some(StreamRef::FxRate(from, to)) =
                    StreamRef::parse(&format!("{category}-{stream_id}"))
                {
                    let state = self.fx_rates.remove(&(from, to)).map(Aggregate::FxRate);
                    if let Some(Aggregate::FxRate(entry)) = evolve(state, event) {
                        self.fx_rates.insert((from, to), entry);
                    }
                }
            }
            // Not part of any read model: keys are served by the engine,
            // totals, idempotency records, minirefs and reference codes are
            // write-side guards.
            Event::ApiKeyCreated(_)
            | Event::ApiKeyRevoked(_)
            | Event::ProjectBalanceChanged(_)
            | Event::IdempotencyKeyUsed(_)
            | Event::MinirefAssigned(_)
            | Event::PayinReferenceCodeClaimed(_) => {}
            _ => {
                if let Some(resource) = StreamRef::parse(&format!("{category}-{stream_id}"))
                    .as_ref()
                    .and_then(resource_of)
                {
                    self.apply_to_resource(resource, event);
                }
            }
        }
    }

    /// Folds an event of a card, bank or file resource into its state.
    fn apply_to_resource(&mut self, resource: ResourceRef, event: &Event) {
        let Some(kind) = ResourceKind::of(resource) else {
            return;
        };
        if let Some(project) = self.resource_projects.get(&resource).copied() {
            if let Some(list) = self.project(project).resources.get_mut(&kind) {
                list.update(&resource, |state| state.clone().evolve(event));
            }
            return;
        }
        let state = Aggregate::Empty.evolve(event);
        let Some(project) = state.project_id() else { return };
        let payin = state.as_card_payin_refund().map(|refund| refund.card_payin_id);
        self.resource_projects.insert(resource, project);
        let models = self.project(project);
        let list = models.resources.entry(kind).or_default();
        if let Some(index) = list.insert(resource, state)
            && let Some(payin) = payin
        {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            models.payin_refunds.entry(payin).or_default().push(index);
        }
    }

    fn project(&mut self, id: ProjectId) -> &mut ProjectModels {
        self.projects.entry(id).or_default()
    }

    fn update_account(&mut self, id: AccountId, event: &Event) {
        let Some(project) = self.account_projects.get(&id).copied() else {
            return;
        };
        self.project(project).accounts.update(&id, |account| {
            match Aggregate::Account(account.clone()).evolve(event) {
                Aggregate::Account(account) => account,
                _ => unreachable_state(),
            }
        });
    }

    pub fn models(&self, project: ProjectId) -> Option<&ProjectModels> {
        self.projects.get(&project)
    }
}

/// The read model of an aggregate is its state: reuse the domain's `evolve`
/// so the two can never disagree.
fn evolve(state: Option<Aggregate>, event: &Event) -> Option<Aggregate> {
    Some(state.unwrap_or_default().evolve(event))
}

/// `Aggregate::evolve` keeps an aggregate's kind for the events of its own
/// stream, which are the only ones routed to it.
fn unreachable_state<T>() -> T {
    unreachable!("an aggregate's own events never change its kind")
}
