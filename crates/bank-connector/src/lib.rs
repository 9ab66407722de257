//! The connector boundary of open banking: how paycore reads a customer's
//! accounts at other banks (PSD2 account information, "AIS").
//!
//! Like the card network, the banks sit outside the domain: the server asks
//! a [`BankConnector`] and records what it answered as events. The trait
//! speaks its own types ([`model`], [`types`]), which the server converts
//! to the domain's, so a bank protocol can change without touching the
//! event log.
//!
//! Implementations:
//!
//! - [`SandboxBank`]: deterministic institutions and test users, one per
//!   behaviour (below). No clock, no randomness at run time: the same user
//!   at the same institution always has the same history, and every answer
//!   depends only on the arguments (`now`, the [`SyncPoint`]).
//! - [`BerlinGroupClient`]: any Berlin Group NextGenPSD2 (AIS) bank over
//!   HTTP: consents with `validUntil`/`frequencyPerDay`/`recurringIndicator`,
//!   embedded, decoupled and redirect SCA, transaction paging through
//!   `_links.next`, `frequencyPerDay` kept client-side, HTTP 429, timeouts
//!   and retries ([`berlin_group`]; its [`server`](berlin_group::server)
//!   serves any connector, the sandbox included, over that protocol).
//!
//! # The sandbox bank's test users
//!
//! Every user signs in with the password `pass_good` at any sandbox
//! institution (`sandbox_gb_albion` GBP, `sandbox_de_rheinbank` EUR,
//! `sandbox_fr_lumiere` EUR, `sandbox_pl_wisla` PLN with credit cards,
//! `sandbox_es_sol` EUR with credit cards); any other password, or an
//! unknown user, is `InvalidCredentials`. "First sync" is a data call whose
//! [`SyncPoint::previous_sync`] is `None`.
//!
//! | username | sign-in | then |
//! |---|---|---|
//! | `user_good` | `Connected` | 5 accounts (current, savings, joint with a co-holder, USD, a second foreign currency) and, where the bank has them, a credit card; 5 years of history: salary, rent, groceries, card payments, subscriptions, transfers between own accounts, trips abroad in other currencies; about 13,000–14,000 transactions |
//! | `user_otp` | `OneTimeCodeRequired`; code `123456` → `Connected`, another → `AuthenticationFailed` | 2 accounts |
//! | `user_sca` | `ScaRequired` (approve in the app); `poll_sca` answers `ScaRequired` for 2 s, then `Connected` | 2 accounts |
//! | `user_redirect` | `RedirectRequired { url, state }`; `complete_redirect` with the state → `Connected` (with an `error` → `AuthenticationFailed`) | 2 accounts |
//! | `user_bank_down` | `BankDown` (retry in 15 minutes), always | — |
//! | `user_rate_limited` | `Connected` | a sync on the same UTC day as the previous one: `RateLimited`, retry at the next midnight UTC |
//! | `user_consent_expired` | `Connected` | the first sync under a consent works; any later one: `ConsentExpired` (grant a new consent to go on) |
//! | `user_account_closes` | `Connected` | 3 accounts at the first sync; "Old savings" is gone from the next one (`UnknownAccount` for its transactions) |
//! | `user_pending` | `Connected` | at the first sync the last 7 days are pending; at the next they are booked with the same bank transaction IDs |
//! | `user_joint` | `Connected` | a current account and a joint account with a co-holder (two owners) |
//!
//! For every user, a card payment is pending from its day until it is
//! booked 1–3 days later (same bank transaction ID; a restaurant's is
//! authorised without the tip and booked 10 % higher), so a later `now`
//! books it; consents end after `valid_until` (`ConsentExpired`); a session lasts
//! 15 minutes and a challenge 5.
//!
//! # Driving a connector
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! use std::sync::Arc;
//! use paycore_bank_connector::*;
//! use time::macros::datetime;
//!
//! let bank: Arc<dyn BankConnector> = Arc::new(SandboxBank::new());
//! let now = datetime!(2026-12-06 12:00 UTC);
//! let institutions = bank.institutions().await?;
//! let rheinbank = institutions.iter().find(|i| i.country.as_str() == "DE").unwrap();
//! let outcome = bank
//!     .start_sign_in(SignInRequest {
//!         institution: rheinbank.id.clone(),
//!         credentials: Credentials { username: "user_good".into(), password: "pass_good".into() },
//!         consent: ConsentRequest::everything(rheinbank, now.date()),
//!         redirect_uri: "https://client.example/back".into(),
//!         now,
//!     })
//!     .await?;
//! let SignInOutcome::Connected { session } = outcome else { panic!("{outcome:?}") };
//! let consent = bank.grant_consent(&session, now).await?;
//! let at = SyncPoint::first(now);
//! let accounts = bank.accounts(&consent, at).await?;
//! assert_eq!(accounts.len(), 5);
//! let page = bank
//!     .transactions(
//!         &consent,
//!         &accounts[0].id,
//!         &TransactionQuery {
//!             from: now.date() - time::Duration::days(30),
//!             to: now.date(),
//!             status: BookingStatus::Both,
//!             cursor: None,
//!             page_size: 100,
//!         },
//!         at,
//!     )
//!     .await?;
//! assert!(!page.transactions.is_empty());
//! # Ok::<(), ConnectorError>(())
//! # })?;
//! # Ok(())
//! # }
//! ```

pub mod berlin_group;
pub mod connector;
pub mod error;
pub mod model;
pub mod sandbox;
pub mod types;

pub use berlin_group::BerlinGroupClient;
pub use connector::BankConnector;
pub use error::ConnectorError;
pub use model::*;
pub use sandbox::SandboxBank;
pub use types::*;
