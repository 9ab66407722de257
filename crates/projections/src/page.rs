//! Cursor pagination: newest first, opaque tokens bound to one list.

use std::ops::Range;

use paycore_domain::{AccountId, ProjectId};
use serde::{Deserialize, Serialize};

use crate::db::ModelError;

/// A page request, already validated at the edge (`size` is 1–100).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub size: usize,
    pub token: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// `None` on the last page.
    pub next_token: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("invalid page token")]
    InvalidToken,
    #[error("account not found")]
    AccountNotFound,
    /// The resource whose sub-list was asked for does not exist.
    #[error("not found")]
    ParentNotFound,
    #[error(transparent)]
    Storage(#[from] ModelError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ListKind {
    Customers,
    Accounts,
    Transfers,
    Transactions,
    AccountTransactions(AccountId),
    /// An account's transactions as of a point of the history.
    AccountTransactionsAsOf(AccountId),
    // New lists go at the end: page tokens record the variant's index.
    Resources(crate::models::ResourceKind),
    CardPayinRefunds(paycore_domain::CardPayinId),
    AggregationConnections(paycore_domain::CustomerId),
    AggregationImports(paycore_domain::AggregationConnectionId),
    ConnectionAggregatedAccounts {
        connection: paycore_domain::AggregationConnectionId,
        include_archived: bool,
    },
    CustomerAggregatedAccounts {
        customer: paycore_domain::CustomerId,
        include_archived: bool,
    },
    /// Keyset tokens (the last key read), bound to the filter.
    AggregatedTransactions {
        account: paycore_domain::AggregatedAccountId,
        filter: crate::AggregatedTransactionFilter,
    },
}

/// What a page token says: the next page holds the items created before the
/// `before`-th one of this list of this project.
#[derive(Serialize, Deserialize)]
struct Cursor {
    project: ProjectId,
    list: ListKind,
    before: u64,
}

fn encode(cursor: &Cursor) -> String {
    hex::encode(postcard::to_stdvec(cursor).unwrap_or_default())
}

fn decode(token: &str) -> Option<Cursor> {
    postcard::from_bytes(&hex::decode(token).ok()?).ok()
}

/// The page of a list of `len` items (oldest at index 0) that `request`
/// asks for, keeping only the items `keep` accepts: `fetch` answers the
/// items of a range of indices, newest first, and is called until the page
/// is full or the list ends, so a page is short only at the end of the
/// list.
pub(crate) fn filtered<T>(
    project: ProjectId,
    list: ListKind,
    request: &PageRequest,
    len: u64,
    fetch: impl Fn(Range<u64>) -> Result<Vec<T>, ModelError>,
    keep: impl Fn(&T) -> Result<bool, ModelError>,
) -> Result<Page<T>, PageError> {
    let size = request.size.max(1);
    let mut end = before(project, list, request, len)?;
    let mut items = Vec::with_capacity(size);
    while end > 0 && items.len() < size {
        let start = end.saturating_sub(size as u64);
        let fetched = fetch(start..end)?;
        debug_assert_eq!(
            fetched.len() as u64,
            end - start,
            "a fetch answers its whole range"
        );
        for item in fetched {
            end -= 1;
            if keep(&item)? {
                items.push(item);
                if items.len() == size {
                    break;
                }
            }
        }
    }
    let next_token = (end > 0).then(|| {
        encode(&Cursor {
            project,
            list,
            before: end,
        })
    });
    Ok(Page { items, next_token })
}

/// Where the page `request` asks for of a list of `len` items ends.
fn before(project: ProjectId, list: ListKind, request: &PageRequest, len: u64) -> Result<u64, PageError> {
    match request.token.as_deref().filter(|token| !token.is_empty()) {
        None => Ok(len),
        Some(token) => {
            let cursor = decode(token).ok_or(PageError::InvalidToken)?;
            if cursor.project != project || cursor.list != list || cursor.before > len || cursor.before == 0 {
                return Err(PageError::InvalidToken);
            }
            Ok(cursor.before)
        }
    }
}

/// What a keyset page token says: the next page holds the rows after the
/// key `after` (in the list's order) of this list of this project.
#[derive(Serialize, Deserialize)]
struct KeyCursor {
    project: ProjectId,
    list: ListKind,
    after: Vec<u8>,
}

/// The key a keyset page `request` continues after (`None` for the first
/// page).
pub(crate) fn key_after(
    project: ProjectId,
    list: ListKind,
    request: &PageRequest,
) -> Result<Option<Vec<u8>>, PageError> {
    let Some(token) = request.token.as_deref().filter(|token| !token.is_empty()) else {
        return Ok(None);
    };
    let cursor: KeyCursor = hex::decode(token)
        .ok()
        .and_then(|bytes| postcard::from_bytes(&bytes).ok())
        .ok_or(PageError::InvalidToken)?;
    if cursor.project != project || cursor.list != list {
        return Err(PageError::InvalidToken);
    }
    Ok(Some(cursor.after))
}

/// The token of the keyset page after the key `after`.
pub(crate) fn key_token(project: ProjectId, list: ListKind, after: Vec<u8>) -> String {
    hex::encode(postcard::to_stdvec(&KeyCursor { project, list, after }).unwrap_or_default())
}

/// The page of a list of `len` items (oldest at index 0) that `request`
/// asks for; `fetch` answers the items of a range of indices, newest first.
pub(crate) fn slice<T>(
    project: ProjectId,
    list: ListKind,
    request: &PageRequest,
    len: u64,
    fetch: impl FnOnce(Range<u64>) -> Result<Vec<T>, ModelError>,
) -> Result<Page<T>, PageError> {
    debug_assert!(
        (1..=100).contains(&request.size),
        "page size is validated at the edge"
    );
    let before = before(project, list, request, len)?;
    let start = before.saturating_sub(request.size.max(1) as u64);
    let items = fetch(start..before)?;
    let next_token = (start > 0).then(|| {
        encode(&Cursor {
            project,
            list,
            before: start,
        })
    });
    Ok(Page { items, next_token })
}

/// The page `request` asks for of an account's transactions as of a point
/// of the history (`items` oldest first, as folded from the log). Tokens
/// index the account's append-only history, so a next page continues the
/// same list; they are bound to the project and account.
pub fn account_transactions_as_of<T: Clone>(
    project: ProjectId,
    account: AccountId,
    request: &PageRequest,
    items: &[T],
) -> Result<Page<T>, PageError> {
    let list = ListKind::AccountTransactionsAsOf(account);
    slice(project, list, request, items.len() as u64, |range| {
        let range = usize::try_from(range.start).unwrap_or(usize::MAX)
            ..usize::try_from(range.end).unwrap_or(usize::MAX);
        Ok(items
            .get(range)
            .unwrap_or_default()
            .iter()
            .rev()
            .cloned()
            .collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn project(n: u128) -> ProjectId {
        ProjectId::from_uuid(Uuid::from_u128(n))
    }

    fn page(size: usize, token: Option<String>) -> PageRequest {
        PageRequest { size, token }
    }

    #[test]
    fn pages_newest_first_until_the_end() {
        let get = |range: Range<u64>| Ok(range.rev().collect::<Vec<u64>>());
        let first = slice(project(1), ListKind::Accounts, &page(10, None), 25, get).unwrap();
        assert_eq!(first.items, (15..25).rev().collect::<Vec<_>>());
        let second = slice(
            project(1),
            ListKind::Accounts,
            &page(10, first.next_token),
            25,
            get,
        )
        .unwrap();
        assert_eq!(second.items, (5..15).rev().collect::<Vec<_>>());
        let third = slice(
            project(1),
            ListKind::Accounts,
            &page(10, second.next_token.clone()),
            25,
            get,
        )
        .unwrap();
        assert_eq!(third.items, (0..5).rev().collect::<Vec<_>>());
        assert_eq!(third.next_token, None);
        // New items do not shift pages already handed out.
        let later = slice(
            project(1),
            ListKind::Accounts,
            &page(10, second.next_token),
            30,
            get,
        )
        .unwrap();
        assert_eq!(later.items, (0..5).rev().collect::<Vec<_>>());
    }

    #[test]
    fn tokens_are_bound_to_their_list_and_project() {
        let get = |range: Range<u64>| Ok(range.rev().collect::<Vec<u64>>());
        let first = slice(project(1), ListKind::Accounts, &page(1, None), 3, get).unwrap();
        let token = first.next_token.unwrap();
        for (p, list) in [(2, ListKind::Accounts), (1, ListKind::Transfers)] {
            assert_eq!(
                slice(project(p), list, &page(1, Some(token.clone())), 3, get),
                Err(PageError::InvalidToken)
            );
        }
        for bad in ["zz", "00", "deadbeef"] {
            assert_eq!(
                slice(project(1), ListKind::Accounts, &page(1, Some(bad.into())), 3, get),
                Err(PageError::InvalidToken)
            );
        }
    }
}
