//! Point-in-time reads of an account, straight from its stream in the store
//! (the fold itself is the domain's [`paycore_domain::history`]).

use paycore_domain::history::{AccountHistory, AccountHistoryFold, AsOf};
use paycore_domain::{AccountId, Event, StreamRef, Timestamp};
use paycore_store::{EventStore, ReadDirection, StreamName};

use crate::EngineError;

/// Events read per `read_stream` while folding.
const CHUNK: usize = 1_024;

/// The account `id` as it was at `as_of`, with its transactions up to then
/// (oldest first); `None` if it did not exist yet (or does not exist at
/// all). Reads the account's stream only as far as the point. Checks no
/// project: the caller decides who may see the account.
pub async fn account_as_of(
    store: &dyn EventStore,
    id: AccountId,
    as_of: AsOf,
) -> Result<Option<AccountHistory>, EngineError> {
    let name = StreamName::from(StreamRef::Account(id).name());
    let mut fold = AccountHistoryFold::new(as_of);
    let mut from = 0;
    loop {
        let chunk = store
            .read_stream(&name, from, ReadDirection::Forward, CHUNK)
            .await?;
        for recorded in &chunk {
            let event = Event::decode(&recorded.event_type, recorded.schema_version, &recorded.payload)?;
            let at = Timestamp::from_micros(recorded.recorded_at_micros);
            if !fold.push(recorded.position, at, &event) {
                return Ok(fold.finish());
            }
        }
        match chunk.last() {
            Some(last) if chunk.len() == CHUNK => from = last.version + 1,
            _ => return Ok(fold.finish()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paycore_domain::events::AccountOpened;
    use paycore_domain::{Currency, Meta, ProjectId};
    use paycore_store::{AppendRequest, ExpectedVersion, MemoryStore, NewEvent, StreamWrite};
    use std::sync::Arc;
    use uuid::Uuid;

    #[tokio::test]
    async fn reads_the_stream_up_to_the_point() {
        let store = MemoryStore::new();
        let id = AccountId::from_uuid(Uuid::from_u128(3));
        let opened = Event::AccountOpened(AccountOpened {
            id,
            project_id: ProjectId::from_uuid(Uuid::from_u128(1)),
            customer_id: None,
            currency: Currency::EUR,
            allow_negative_balance: false,
            meta: Meta::default(),
            created_at: Timestamp::from_micros(1),
        })
        .encode();
        let event = NewEvent {
            event_type: opened.event_type.into(),
            schema_version: opened.schema_version,
            metadata: Arc::default(),
            payload: opened.payload.into(),
        };
        // Another stream first, so the account's first event is at position 1.
        for stream in ["other-1".to_owned(), StreamRef::Account(id).name()] {
            store
                .append(AppendRequest {
                    writes: vec![StreamWrite {
                        stream: stream.into(),
                        expected: ExpectedVersion::NoStream,
                        events: vec![event.clone()],
                    }],
                })
                .await
                .unwrap();
        }
        assert_eq!(account_as_of(&store, id, AsOf::Position(0)).await.unwrap(), None);
        let now = account_as_of(&store, id, AsOf::Position(u64::MAX))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((now.account.id, now.position), (id, 1));
        let other = AccountId::from_uuid(Uuid::from_u128(4));
        assert_eq!(
            account_as_of(&store, other, AsOf::Position(9)).await.unwrap(),
            None
        );
    }
}
