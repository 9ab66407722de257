//! The `BankConnector` trait: what a server needs of a bank to drive a
//! connection (sign-in, consent) and an import (owners, accounts,
//! transactions, credit cards).

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::ConnectorError;
use crate::model::{
    Account, Consent, CreditCard, Institution, Owner, RedirectCallback, Session, SignInOutcome,
    SignInRequest, SyncPoint, TransactionPage, TransactionQuery,
};
use crate::types::{AccountId, CardId};

/// A way to read accounts at banks. Held as `Arc<dyn BankConnector>`.
///
/// The flow, and how a Berlin Group NextGenPSD2 client maps onto it:
///
/// 1. [`institutions`](Self::institutions): the banks (a BG client has one,
///    or reads a directory).
/// 2. [`start_sign_in`](Self::start_sign_in) with the user's credentials
///    and the consent to ask for (BG `POST /v1/consents` with `validUntil`,
///    `frequencyPerDay`, `recurringIndicator`, then `POST …/authorisations`),
///    then, as the outcome asks, [`submit_one_time_code`](Self::submit_one_time_code),
///    [`complete_redirect`](Self::complete_redirect) (BG SCA redirect
///    approach) or [`poll_sca`](Self::poll_sca) (BG decoupled approach,
///    polling the authorisation's `scaStatus`), until `Connected`.
/// 3. [`grant_consent`](Self::grant_consent) under the session: the consent
///    as the bank granted it (BG `GET /v1/consents/{id}`, `consentStatus`
///    `valid`). Renewing a consent (PSD2: every 180 days) is a new sign-in
///    with a new request: the bank requires SCA for it.
/// 4. Data calls under the consent, each given the [`SyncPoint`]:
///    [`owners`](Self::owners), [`accounts`](Self::accounts) (BG
///    `GET /v1/accounts?withBalance=true`), [`transactions`](Self::transactions)
///    (BG `GET /v1/accounts/{id}/transactions?bookingStatus=&dateFrom=&dateTo=`,
///    the `_links.next` as the cursor), [`credit_cards`](Self::credit_cards)
///    and [`card_transactions`](Self::card_transactions) (BG
///    `/v1/card-accounts`). HTTP 429 and a used-up `frequencyPerDay` are
///    [`ConnectorError::RateLimited`] with the time to retry; the server
///    itself keeps to the consent's `frequency_per_day` (a bank that counts
///    answers `RateLimited` when it is exceeded).
///
/// Connectors never read the wall clock to decide an answer: the time comes
/// in (`now`, [`SyncPoint`]), so the sandbox answers the same way in every
/// test and after every restart.
#[async_trait]
pub trait BankConnector: Send + Sync + std::fmt::Debug {
    /// The institutions this connector reaches.
    async fn institutions(&self) -> Result<Vec<Institution>, ConnectorError>;

    /// Signs in with the user's credentials. Failures the user or the
    /// server acts on (wrong password, bank down, …) are outcomes; errors
    /// are for calls that cannot be answered (unknown institution, …).
    async fn start_sign_in(&self, request: SignInRequest) -> Result<SignInOutcome, ConnectorError>;

    /// Answers a `OneTimeCodeRequired` challenge.
    async fn submit_one_time_code(
        &self,
        challenge: &str,
        code: &str,
        now: OffsetDateTime,
    ) -> Result<SignInOutcome, ConnectorError>;

    /// Finishes a `RedirectRequired` step with what the bank sent back.
    async fn complete_redirect(
        &self,
        callback: &RedirectCallback,
        now: OffsetDateTime,
    ) -> Result<SignInOutcome, ConnectorError>;

    /// Asks whether the user approved an `ScaRequired` challenge in the
    /// bank's app: `Connected`, the same `ScaRequired` while waiting, or
    /// `AuthenticationFailed`.
    async fn poll_sca(&self, challenge: &str, now: OffsetDateTime) -> Result<SignInOutcome, ConnectorError>;

    /// The consent the sign-in asked for, as the bank granted it (it may
    /// grant less than asked: a shorter validity, fewer syncs a day, a
    /// narrower scope). Data calls are made under it.
    async fn grant_consent(&self, session: &Session, now: OffsetDateTime) -> Result<Consent, ConnectorError>;

    /// The holders of the consent's accounts.
    async fn owners(&self, consent: &Consent, at: SyncPoint) -> Result<Vec<Owner>, ConnectorError>;

    /// The accounts the consent covers, with balances if it covers them.
    async fn accounts(&self, consent: &Consent, at: SyncPoint) -> Result<Vec<Account>, ConnectorError>;

    /// One page of an account's transactions. Pages cover the query's
    /// range once each while the same [`SyncPoint`] is passed; a cursor
    /// stays valid as the bank adds transactions. The sandbox pages oldest
    /// first; other banks may not, so callers do not rely on the order.
    async fn transactions(
        &self,
        consent: &Consent,
        account: &AccountId,
        query: &TransactionQuery,
        at: SyncPoint,
    ) -> Result<TransactionPage, ConnectorError>;

    /// The credit cards the consent covers; `Unsupported` where the
    /// institution offers none.
    async fn credit_cards(&self, consent: &Consent, at: SyncPoint)
    -> Result<Vec<CreditCard>, ConnectorError>;

    /// One page of a credit card's transactions, as [`transactions`](Self::transactions).
    async fn card_transactions(
        &self,
        consent: &Consent,
        card: &CardId,
        query: &TransactionQuery,
        at: SyncPoint,
    ) -> Result<TransactionPage, ConnectorError>;
}
