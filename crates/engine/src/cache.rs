//! Committed aggregate state kept in memory under a budget in bytes, and
//! loading it from the store (from a snapshot and the events after it, when
//! there is one).
//!
//! # What the cache holds, and why eviction changes no answer
//!
//! **For every stream the cache holds nothing, or a state committed in the
//! store that is no older than any state of that stream it has published or
//! folded in.** The decider decides on these states (with the overlay of the
//! batches not yet durable on top) and readers answer from them, so that is
//! what keeps answers right. Nothing in it depends on *which* streams are
//! present: any entry may go at any moment (evicted for the budget, an
//! idempotency record whose window ended, [`StateCache::forget`]), and the
//! next reader of the stream loads it from the store (and its snapshot),
//! which holds every committed event. Removals therefore need no
//! coordination.
//!
//! Putting a state *in* is what could break it: once a newer state has been
//! evicted, nothing is left to win a version comparison against an older
//! one. So every way in is guarded:
//!
//! - **Loads from the store** (a miss of the decider or of a reader, the
//!   catch-up before a retry after a conflict) read committed state, but
//!   while the read is in flight the decider may publish a newer version
//!   (its append became durable), or the follower fold in another server's
//!   event, and the cache may evict it again before the load is done. A load
//!   therefore registers before it reads ([`StateCache::begin_load`]); every
//!   change to a stream being loaded notes the version it brought, and the
//!   load's state goes in only if it is not older than any version noted
//!   ([`LoadTicket::fill`]). A stream with no events is never put in.
//! - **The decider publishes** a batch's states after its append is durable
//!   ([`StateCache::publish`]). This server has nothing newer: one task
//!   decides, one append is in flight at a time, and a batch decided on top
//!   of the one in flight is only sent after it. Another server's later
//!   event on such a stream comes after the batch in `$all`, so if the
//!   follower has not gone past the batch's last position it cannot have
//!   seen one; if it has, a state whose entry is absent is not put in (it may
//!   be older than what the follower saw and did not keep) and is loaded
//!   when next needed. By these rules a present entry holds the newest
//!   version the cache saw, so comparing with it is enough. A failed
//!   append publishes nothing; its streams are forgotten, in case it was
//!   written after all (an unknown outcome on PostgreSQL).
//! - **Another server's event** ([`StateCache::apply_other_write`]) is
//!   folded only into the state right before it, else the entry is dropped.
//!
//! The pipelining of the decider never reads around this: a batch decided on
//! top of the one in flight takes that batch's states from its overlay, not
//! from the cache or the store; a stream the batch in flight does not touch
//! has no write of this server pending, so its committed state is its
//! latest; a batch built on an append that failed is decided again from
//! committed state, and one whose append conflicted is retried command by
//! command after a (registered) catch-up. Every change to the cache takes
//! one mutex (reads take none), so a load's check and insert, a publish's
//! comparison and insert, and a fold are each atomic with respect to the
//! others.
//!
//! # Idempotency records
//!
//! A record whose 24-hour window has ended decides nothing any more (a
//! reuse of its key is a first use, `IdempotencyKey::live_record`), so it is
//! not put in, is dropped when read, and [`StateCache::drop_ended_windows`]
//! sweeps out the ones nobody reads. It stays in the log: a command that
//! names its key loads it from the store and decides exactly as before.
//! The cache reads the server's clock, the decider the command's time (the
//! facade's reading of the same clock); a record dropped a little early or
//! late is only read from the store instead of memory, or the other way.

use std::collections::HashMap;
use std::mem::size_of;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use paycore_domain::{Aggregate, Event, StreamRef, Timestamp};
use paycore_store::{EventStore, Position, ReadDirection, RecordedEvent, StreamName, Version};
use quick_cache::Lifecycle;
use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Weighter};

use crate::error::EngineError;
use crate::snapshot::{Restored, Snapshotter};

/// An aggregate's state and the version of the last event folded into it.
/// The state is shared: the cache, a batch's overlay and answers hold the
/// same allocation, and the cache's table stays small when it grows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Cached {
    pub state: Arc<Aggregate>,
    pub version: Option<Version>,
}

impl Cached {
    /// Folds one more event of the stream into the state.
    pub fn evolve(&mut self, event: &Event) {
        let state = Arc::unwrap_or_clone(std::mem::take(&mut self.state));
        self.state = Arc::new(state.evolve(event));
        self.version = Some(self.version.map_or(0, |version| version + 1));
    }
}

/// What an entry costs beyond its stream name's text and its state: the
/// cache's slot for it (name and `Cached` inline, the eviction policy's
/// links and counters, the hash table's index and control byte) and the
/// `Arc`'s two counters. Checked against `quick_cache`'s own accounting by
/// `the_entry_overhead_covers_the_policys_slot`.
const ENTRY_OVERHEAD_BYTES: usize =
    size_of::<StreamRef>() + size_of::<Cached>() + 32 + 2 * size_of::<usize>();

/// A typical entry (an account or a transfer without meta: 568 bytes on
/// x86-64, most of it the `Aggregate` enum), to size the eviction policy's
/// memory of recently evicted names (half as many as entries of this size
/// fit the budget; each is a slot holding one hash).
const TYPICAL_ENTRY_BYTES: u64 = 512;

/// How much memory an entry holds: its weight against the budget.
pub(crate) fn entry_bytes(stream: &StreamRef, cached: &Cached) -> usize {
    ENTRY_OVERHEAD_BYTES + stream.approx_heap_bytes() + cached.state.approx_bytes()
}

#[derive(Clone, Copy, Debug, Default)]
struct EntryBytes;

impl Weighter<StreamRef, Cached> for EntryBytes {
    fn weight(&self, stream: &StreamRef, cached: &Cached) -> u64 {
        entry_bytes(stream, cached) as u64
    }
}

/// How full the state cache is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateCacheUsage {
    /// Streams whose state is in memory.
    pub entries: usize,
    /// Their estimated memory, in bytes (never above `budget`).
    pub bytes: u64,
    /// `EngineConfig::state_cache_bytes`.
    pub budget: u64,
}

/// States as of the last commit, under a budget in bytes (see the module
/// docs for what it may hold and why). Only the decider publishes; loads
/// put in what they read when nothing newer went by meanwhile.
#[derive(Debug)]
pub(crate) struct StateCache {
    states: Cache<StreamRef, Cached, EntryBytes, DefaultHashBuilder, CountEvictions>,
    /// Taken by every change (not by reads), with what changes must know.
    changes: Mutex<Changes>,
    budget: u64,
    clock: fn() -> Timestamp,
}

#[derive(Debug, Default)]
struct Changes {
    /// Streams being loaded from the store right now.
    loading: HashMap<StreamRef, Loading>,
    /// The position of the last event of `$all` the follower of other
    /// writers handed in (`None` without a follower, or before its first).
    followed_through: Option<Position>,
}

#[derive(Debug)]
struct Loading {
    /// Loads of the stream in progress.
    loads: usize,
    /// The newest version published, folded in or forgotten while they ran
    /// (forgetting notes `Version::MAX`: the state is unknown); a load that
    /// read an older one was overtaken and is not put in.
    newest_seen: Option<Version>,
}

impl Changes {
    /// Notes that `stream` reached `version`, for the loads of it under way.
    fn saw(&mut self, stream: &StreamRef, version: Option<Version>) {
        if self.loading.is_empty() {
            // Nearly always while the decider publishes: no hashing.
            return;
        }
        if let Some(loading) = self.loading.get_mut(stream) {
            loading.newest_seen = loading.newest_seen.max(version);
        }
    }

    fn end_load(&mut self, stream: &StreamRef) {
        if let Some(loading) = self.loading.get_mut(stream) {
            loading.loads -= 1;
            if loading.loads == 0 {
                self.loading.remove(stream);
            }
        }
    }
}

/// Counts the states evicted for the budget (a metric).
#[derive(Clone, Copy, Debug, Default)]
struct CountEvictions;

impl Lifecycle<StreamRef, Cached> for CountEvictions {
    type RequestState = ();

    fn on_evict(&self, _: &mut (), _: StreamRef, _: Cached) {
        metrics::counter!(crate::metrics::CACHE_EVICTIONS).increment(1);
    }
}

impl StateCache {
    /// A cache holding at most `budget` bytes of states (0: none at all).
    pub fn new(budget: u64) -> Self {
        Self::with_clock(budget, system_clock)
    }

    fn with_clock(budget: u64, clock: fn() -> Timestamp) -> Self {
        let typical_entries = usize::try_from(budget / TYPICAL_ENTRY_BYTES).unwrap_or(usize::MAX);
        Self {
            states: Cache::with(
                typical_entries.max(1),
                budget,
                EntryBytes,
                DefaultHashBuilder::default(),
                CountEvictions,
            ),
            changes: Mutex::default(),
            budget,
            clock,
        }
    }

    /// The stream's committed state, if it is in memory.
    pub fn get(&self, stream: &StreamRef) -> Option<Cached> {
        let Some(cached) = self.states.get(stream) else {
            metrics::counter!(crate::metrics::CACHE_MISSES).increment(1);
            return None;
        };
        metrics::counter!(crate::metrics::CACHE_HITS).increment(1);
        if window_ended(&cached.state, self.clock) {
            self.states
                .remove_if(stream, |current| current.version == cached.version);
            return None;
        }
        Some(cached)
    }

    /// Registers a load of `stream` from the store, before it reads: the
    /// ticket puts the state in unless a newer one went by meanwhile.
    pub fn begin_load(&self, stream: &StreamRef) -> LoadTicket<'_> {
        self.changes
            .lock()
            .loading
            .entry(stream.clone())
            .or_insert(Loading {
                loads: 0,
                newest_seen: None,
            })
            .loads += 1;
        LoadTicket {
            cache: self,
            stream: Some(stream.clone()),
        }
    }

    /// Stores the states a batch committed, its last event at
    /// `last_position`, unless the cache holds a later version of a stream
    /// (folded in from another writer meanwhile) or may have seen one.
    pub fn publish(&self, committed: impl IntoIterator<Item = (StreamRef, Cached)>, last_position: Position) {
        let mut changes = self.changes.lock();
        let follower_went_past = changes.followed_through.is_some_and(|seen| seen > last_position);
        for (stream, cached) in committed {
            changes.saw(&stream, cached.version);
            match self.states.peek(&stream) {
                Some(existing) if existing.version >= cached.version => {}
                None if follower_went_past => {}
                _ => self.put(stream, cached),
            }
        }
    }

    /// Folds an event another writer appended at `position` into the cached
    /// state, if the cache holds the stream right before it; drops the entry
    /// if the cache is further behind (it is reloaded when next needed).
    pub fn apply_other_write(
        &self,
        stream: &StreamRef,
        position: Position,
        version: Version,
        event: impl FnOnce() -> Option<Event>,
    ) {
        let mut changes = self.changes.lock();
        changes.followed_through = changes.followed_through.max(Some(position));
        changes.saw(stream, Some(version));
        let Some(mut cached) = self.states.peek(stream) else {
            return;
        };
        if cached.version >= Some(version) {
            return;
        }
        if cached.version.map_or(0, |v| v + 1) == version
            && let Some(event) = event()
        {
            cached.evolve(&event);
            self.put(stream.clone(), cached);
        } else {
            self.states.remove(stream);
        }
    }

    /// Drops the streams of a batch whose append failed in a way that leaves
    /// unknown whether it was written; loads under way are not put in.
    pub fn forget<'a>(&self, streams: impl IntoIterator<Item = &'a StreamRef>) {
        let mut changes = self.changes.lock();
        for stream in streams {
            changes.saw(stream, Some(Version::MAX));
            self.states.remove(stream);
        }
    }

    /// Drops the idempotency records whose window has ended, read or not.
    pub fn drop_ended_windows(&self) {
        let now = (self.clock)();
        self.states
            .retain(|_, cached| !window_ended_at(&cached.state, now));
    }

    pub fn usage(&self) -> StateCacheUsage {
        StateCacheUsage {
            entries: self.states.len(),
            bytes: self.states.weight(),
            budget: self.budget,
        }
    }

    /// Whether the stream's state is in memory (for tests), without
    /// counting as a use.
    pub fn holds(&self, stream: &StreamRef) -> bool {
        self.states.peek(stream).is_some()
    }

    /// Puts a state in, the caller holding `changes` and having checked that
    /// it is the newest known. A record whose window has ended is not kept,
    /// nor any older entry of its stream.
    fn put(&self, stream: StreamRef, cached: Cached) {
        if window_ended(&cached.state, self.clock) {
            self.states.remove(&stream);
        } else {
            self.states.insert(stream, cached);
        }
    }
}

/// A load of one stream from the store, registered with the cache before it
/// read (see [`StateCache::begin_load`]). Dropping it without
/// [`LoadTicket::fill`] (an error, a cancelled request) just unregisters.
#[derive(Debug)]
pub(crate) struct LoadTicket<'a> {
    cache: &'a StateCache,
    /// `None` once unregistered.
    stream: Option<StreamRef>,
}

impl LoadTicket<'_> {
    /// Puts the loaded state in, unless a newer version of the stream was
    /// published, folded in or forgotten while it was read, the cache
    /// already holds one as new, or the stream has no events (anyone can
    /// name IDs that do not exist, and they must not grow the cache).
    pub fn fill(mut self, loaded: &Cached) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        let mut changes = self.cache.changes.lock();
        let overtaken = changes
            .loading
            .get(&stream)
            .is_some_and(|loading| loading.newest_seen > loaded.version);
        changes.end_load(&stream);
        if overtaken || loaded.version.is_none() {
            return;
        }
        match self.cache.states.peek(&stream) {
            Some(existing) if existing.version >= loaded.version => {}
            _ => self.cache.put(stream, loaded.clone()),
        }
    }
}

impl Drop for LoadTicket<'_> {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            self.cache.changes.lock().end_load(&stream);
        }
    }
}

fn window_ended(state: &Aggregate, clock: fn() -> Timestamp) -> bool {
    // The clock is read only for idempotency records.
    matches!(state, Aggregate::Idempotency(_)) && window_ended_at(state, clock())
}

fn window_ended_at(state: &Aggregate, now: Timestamp) -> bool {
    matches!(state, Aggregate::Idempotency(record) if record.window_ends_at() <= now)
}

fn system_clock() -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| i64::try_from(since.as_micros()).unwrap_or(i64::MAX));
    Timestamp::from_micros(micros)
}

const LOAD_CHUNK: usize = 1_024;

/// Folds a stream's events from the store into its current state, starting
/// from its snapshot when there is a usable one.
pub(crate) async fn load_stream(
    store: &dyn EventStore,
    snapshots: Option<&Snapshotter>,
    stream: &StreamRef,
) -> Result<Cached, EngineError> {
    let Some(snapshots) = snapshots else {
        return catch_up(store, stream, Cached::default()).await;
    };
    let name = StreamName::from(stream.name());
    // Ask for the snapshot while reading the first events: most streams are
    // short, have none and are read whole by this one read, so looking for
    // a snapshot costs them no extra round trip to the store.
    let (restored, first) = tokio::join!(
        snapshots.restore(&name),
        store.read_stream(&name, 0, ReadDirection::Forward, LOAD_CHUNK)
    );
    let first = first?;
    let long = first.len() == LOAD_CHUNK;
    if long && let Some(restored) = restored {
        let started = restored.cached.version;
        match from_snapshot(store, stream, &name, restored).await? {
            Some(cached) => {
                snapshots.after_load(stream, started, &cached);
                return Ok(cached);
            }
            None => {
                tracing::warn!(
                    stream = %name,
                    "aggregate snapshot does not match the log (another log, or damaged); \
                     folding the stream from the start"
                );
                snapshots.remove(name.clone());
            }
        }
    }
    let mut cached = Cached::default();
    fold(&mut cached, &first)?;
    if long {
        cached = catch_up(store, stream, cached).await?;
    }
    snapshots.after_load(stream, None, &cached);
    Ok(cached)
}

/// The stream's state folded from a snapshot, or `None` if the snapshot does
/// not belong to this log: the event at its version must exist and carry
/// the hash recorded with it.
async fn from_snapshot(
    store: &dyn EventStore,
    stream: &StreamRef,
    name: &StreamName,
    restored: Restored,
) -> Result<Option<Cached>, EngineError> {
    let Restored {
        mut cached,
        event_hash,
    } = restored;
    let Some(version) = cached.version else {
        return Ok(None);
    };
    let chunk = store
        .read_stream(name, version, ReadDirection::Forward, LOAD_CHUNK)
        .await?;
    match chunk.first() {
        Some(first) if first.version == version && first.hash == event_hash => {}
        _ => return Ok(None),
    }
    fold(&mut cached, &chunk[1..])?;
    if chunk.len() == LOAD_CHUNK {
        cached = catch_up(store, stream, cached).await?;
    }
    Ok(Some(cached))
}

/// Brings `cached` (a committed state of `stream`) up to the end of the
/// stream, reading only the events after it.
pub(crate) async fn catch_up(
    store: &dyn EventStore,
    stream: &StreamRef,
    mut cached: Cached,
) -> Result<Cached, EngineError> {
    let name = StreamName::from(stream.name());
    loop {
        let from = cached.version.map_or(0, |version| version + 1);
        let chunk = store
            .read_stream(&name, from, ReadDirection::Forward, LOAD_CHUNK)
            .await?;
        fold(&mut cached, &chunk)?;
        if chunk.len() < LOAD_CHUNK {
            return Ok(cached);
        }
    }
}

/// Folds the next events of the stream into `cached`.
fn fold(cached: &mut Cached, events: &[RecordedEvent]) -> Result<(), EngineError> {
    for recorded in events {
        let event = Event::decode(&recorded.event_type, recorded.schema_version, &recorded.payload)?;
        debug_assert_eq!(
            recorded.version,
            cached.version.map_or(0, |v| v + 1),
            "stream versions are contiguous"
        );
        cached.evolve(&event);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::cell::Cell;

    use paycore_domain::aggregate::{Account, IdempotencyRecord};
    use paycore_domain::kernel::idempotency::IDEMPOTENCY_WINDOW_SECONDS;
    use paycore_domain::{AccountId, Currency, Meta, Money, ProjectId, ResourceRef};
    use uuid::Uuid;

    use super::*;

    thread_local! {
        /// The time the cache's clock reads in these tests (each test runs
        /// on its own thread).
        static NOW: Cell<Timestamp> = const { Cell::new(Timestamp::from_micros(1_800_000_000_000_000)) };
    }

    fn test_clock() -> Timestamp {
        NOW.with(Cell::get)
    }

    fn cache(budget: u64) -> StateCache {
        StateCache::with_clock(budget, test_clock)
    }

    fn account_stream(n: u128) -> StreamRef {
        StreamRef::Account(AccountId::from_uuid(Uuid::from_u128(n)))
    }

    /// An account whose balance tells which version it is.
    fn account_at(version: Version) -> Cached {
        let balance = i64::try_from(version).unwrap();
        Cached {
            state: Arc::new(Aggregate::Account(Account {
                id: AccountId::from_uuid(Uuid::from_u128(1)),
                project_id: ProjectId::from_uuid(Uuid::from_u128(2)),
                customer_id: None,
                balance: Money::new(balance, Currency::EUR),
                pending_debits: Money::zero(Currency::EUR),
                pending_credits: Money::zero(Currency::EUR),
                allow_negative_balance: false,
                meta: Meta::default(),
                created_at: Timestamp::from_micros(0),
                last_transaction: None,
            })),
            version: Some(version),
        }
    }

    fn record_used_at(used_at: Timestamp) -> (StreamRef, Cached) {
        let project = ProjectId::from_uuid(Uuid::from_u128(2));
        let stream = StreamRef::Idempotency(project, "h1-00112233445566778899aabbccddeeff".into());
        let record = Aggregate::Idempotency(IdempotencyRecord {
            request_hash: [1; 32],
            resource: ResourceRef::Account(AccountId::from_uuid(Uuid::from_u128(1))),
            used_at,
        });
        (
            stream,
            Cached {
                state: Arc::new(record),
                version: Some(0),
            },
        )
    }

    fn version_held(cache: &StateCache, stream: &StreamRef) -> Option<Version> {
        cache.states.peek(stream).and_then(|cached| cached.version)
    }

    #[test]
    fn a_load_overtaken_by_a_publish_is_not_put_in_even_once_that_is_evicted() {
        let cache = cache(1 << 20);
        let stream = account_stream(1);
        let load = cache.begin_load(&stream);
        // While the load reads version 4, the decider commits version 5 …
        cache.publish([(stream.clone(), account_at(5))], 100);
        // … which the budget evicts before the load is done.
        cache.states.remove(&stream);
        load.fill(&account_at(4));
        assert_eq!(version_held(&cache, &stream), None);
        // A load that started after the publish read it, and goes in.
        let load = cache.begin_load(&stream);
        load.fill(&account_at(5));
        assert_eq!(version_held(&cache, &stream), Some(5));
    }

    #[test]
    fn a_load_overtaken_by_another_writer_is_not_put_in() {
        let cache = cache(1 << 20);
        let stream = account_stream(1);
        let load = cache.begin_load(&stream);
        // The follower hands in version 5 while the stream is not cached.
        cache.apply_other_write(&stream, 100, 5, || None);
        load.fill(&account_at(4));
        assert_eq!(version_held(&cache, &stream), None);
        assert!(cache.changes.lock().loading.is_empty(), "the load unregistered");
    }

    #[test]
    fn a_load_that_is_dropped_unregisters() {
        let cache = cache(1 << 20);
        let stream = account_stream(1);
        let first = cache.begin_load(&stream);
        let second = cache.begin_load(&stream);
        drop(first);
        assert_eq!(
            cache.changes.lock().loading.get(&stream).map(|l| l.loads),
            Some(1)
        );
        second.fill(&account_at(0));
        assert!(cache.changes.lock().loading.is_empty());
        assert_eq!(version_held(&cache, &stream), Some(0));
    }

    #[test]
    fn a_load_during_a_forget_is_not_put_in() {
        let cache = cache(1 << 20);
        let stream = account_stream(1);
        let load = cache.begin_load(&stream);
        cache.forget([&stream]);
        load.fill(&account_at(7));
        assert_eq!(version_held(&cache, &stream), None);
    }

    #[test]
    fn streams_without_events_are_never_remembered() {
        let cache = cache(1 << 20);
        let stream = account_stream(1);
        cache.begin_load(&stream).fill(&Cached::default());
        assert_eq!(cache.usage().entries, 0);
    }

    #[test]
    fn a_publish_never_replaces_a_newer_state_nor_revives_one_the_follower_passed() {
        let cache = cache(1 << 20);
        let (ours, theirs) = (account_stream(1), account_stream(2));
        cache.publish([(ours.clone(), account_at(3))], 10);
        // Another server's version 4 is folded in; then our (older) publish.
        cache.apply_other_write(&ours, 20, 4, || None);
        assert_eq!(version_held(&cache, &ours), None, "no event to fold: dropped");
        cache.publish([(ours.clone(), account_at(3))], 15);
        assert_eq!(
            version_held(&cache, &ours),
            None,
            "the follower went past position 15 and may have seen a newer version"
        );
        // Until the follower has gone past a batch, its states go in.
        cache.publish([(theirs.clone(), account_at(0))], 25);
        assert_eq!(version_held(&cache, &theirs), Some(0));
        cache.publish([(theirs.clone(), account_at(1))], 26);
        assert_eq!(version_held(&cache, &theirs), Some(1));
        cache.publish([(theirs.clone(), account_at(0))], 27);
        assert_eq!(version_held(&cache, &theirs), Some(1), "never back");
    }

    #[test]
    fn idempotency_records_leave_memory_when_their_window_ends() {
        let cache = cache(1 << 20);
        let now = test_clock();
        let (stream, live) = record_used_at(now.plus_seconds(-60));
        cache.publish([(stream.clone(), live)], 1);
        assert!(cache.holds(&stream));
        assert!(cache.get(&stream).is_some());

        // A day later the sweep takes it out, read or not.
        NOW.with(|clock| clock.set(now.plus_seconds(IDEMPOTENCY_WINDOW_SECONDS)));
        cache.drop_ended_windows();
        assert!(!cache.holds(&stream));

        // One whose window already ended is not put in, and a read drops one.
        let (stream, ended) = record_used_at(now.plus_seconds(-60));
        cache.begin_load(&stream).fill(&ended);
        assert!(!cache.holds(&stream));
        NOW.with(|clock| clock.set(now));
        cache.begin_load(&stream).fill(&ended);
        assert!(cache.holds(&stream));
        NOW.with(|clock| clock.set(now.plus_seconds(IDEMPOTENCY_WINDOW_SECONDS)));
        assert!(cache.get(&stream).is_none());
        assert!(!cache.holds(&stream));
    }

    #[test]
    fn the_cache_stays_within_its_budget() {
        for budget in [0, 1, 4 << 10, 64 << 10] {
            let cache = cache(budget);
            for n in 0..2_000 {
                cache.publish([(account_stream(n), account_at(0))], 1);
                assert!(cache.usage().bytes <= budget, "{:?}", cache.usage());
            }
            let weight = entry_bytes(&account_stream(0), &account_at(0)) as u64;
            assert!(
                cache.usage().entries as u64 <= budget / weight,
                "{:?}",
                cache.usage()
            );
        }
    }

    #[test]
    fn the_entry_overhead_covers_the_policys_slot() {
        let cache = cache(1 << 30);
        let entries = 100_000;
        for n in 0..entries {
            cache.publish([(account_stream(n), account_at(0))], 1);
        }
        // The slab of entries and the hash table, as `quick_cache` counts
        // them (the slab's spare capacity included: about 94 bytes an entry
        // with 0.7.0).
        let per_entry = cache.states.memory_used().total() / entries as usize;
        assert!(
            per_entry + 2 * size_of::<usize>() <= ENTRY_OVERHEAD_BYTES,
            "{per_entry} bytes per entry"
        );
    }
}
