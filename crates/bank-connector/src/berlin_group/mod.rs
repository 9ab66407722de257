//! The Berlin Group NextGenPSD2 XS2A interface (account information): the
//! protocol most European banks expose for PSD2 AIS.
//!
//! - [`server`]: the interface served over any [`BankConnector`](crate::BankConnector)
//!   (with [`SandboxBank`](crate::SandboxBank): a real bank API in the
//!   repository, `cargo run -p paycore-bank-connector --example berlin_group_bank`).
//! - [`client`]: [`BerlinGroupClient`], a `BankConnector` against any
//!   compliant bank URL.
//! - [`wire`]: the JSON both speak.
//!
//! # How the trait maps onto the standard
//!
//! | trait | Berlin Group |
//! |---|---|
//! | `start_sign_in` | `POST /v1/consents` (`access`, `recurringIndicator`, `validUntil`, `frequencyPerDay`; `PSU-ID`, `TPP-Redirect-URI`, `TPP-Explicit-Authorisation-Preferred: true`), then `POST /v1/consents/{id}/authorisations` with `psuData.password` |
//! | `OneTimeCodeRequired` | embedded approach: `chosenScaMethod`, `challengeData`, `_links.authoriseTransaction`; `submit_one_time_code` is `PUT …/authorisations/{authorisationId}` with `scaAuthenticationData` |
//! | `ScaRequired` | decoupled approach; `poll_sca` reads `GET …/authorisations/{authorisationId}` (`scaStatus`) |
//! | `RedirectRequired` | redirect approach: `_links.scaRedirect`; the bank sends the PSU back to `TPP-Redirect-URI` (which carries the client's `state`), `complete_redirect` reads the authorisation's `scaStatus` |
//! | `Connected` | `scaStatus` `finalised`/`exempted`: the consent is `valid` |
//! | `grant_consent` | `GET /v1/consents/{id}`: what the bank granted |
//! | `accounts` | `GET /v1/accounts?withBalance=true` |
//! | `transactions` | `GET /v1/accounts/{id}/transactions?bookingStatus=&dateFrom=&dateTo=`, then `_links.next` |
//! | `credit_cards`, `card_transactions` | `/v1/card-accounts`, `/v1/card-accounts/{id}/transactions` |
//! | `owners` | the accounts' `ownerNames` (the standard has no owners endpoint) |
//! | errors | `tppMessages` codes: `CONSENT_EXPIRED`, `CONSENT_INVALID`, `CONSENT_UNKNOWN`, `ACCESS_EXCEEDED` (429), `RESOURCE_UNKNOWN`, `SERVICE_INVALID`, `SERVICE_UNAVAILABLE` (503), `PSU_CREDENTIALS_INVALID`, `FORMAT_ERROR`, `PARAMETER_NOT_SUPPORTED`, `STATUS_INVALID` |
//!
//! Where the standard carries less than the trait:
//!
//! - **Time.** The trait passes `now` and the previous sync's time; a real
//!   bank uses its own clock and remembers. So that the sandbox answers
//!   deterministically over HTTP too, the client can send them as
//!   `X-Sandbox-Now` and `X-Sandbox-Previous-Sync` (RFC 3339;
//!   [`ClientConfig::sandbox_clock`], off by default). The server reads them
//!   when present, and otherwise takes the wall clock and a first sync.
//! - **Owners**: only names (`ownerNames`, holder first, under a consent
//!   covering owners: `allAccountsWithOwnerName` or
//!   `additionalInformation.ownerName`); the client gives owners IDs of its
//!   own (`bg-owner-` and a digest of the name) and no e-mail or address,
//!   and accounts read under a consent without owners have none.
//! - **History days**: a BG consent has none; the server grants the
//!   bank's whole history, and the client keeps the days asked for (capped
//!   by the institution's) in its tokens and the granted `Consent`, and
//!   clamps `dateFrom` to them itself.
//! - **Scope**: BG addresses card accounts only through `allPsd2` (or by
//!   naming them), so the client asks `allPsd2` when the scope covers
//!   accounts, balances, transactions and cards, and the bank-offered lists
//!   (`accounts`, `balances`, `transactions`, `additionalInformation.ownerName`
//!   as empty lists) otherwise; a BG scope always includes the accounts.
//! - **Original amounts and card countries** of account transactions: the
//!   standard's account transaction has only `currencyExchange` (a rate);
//!   the server also sends `originalAmount` and `cardAcceptorAddress`, the
//!   card transaction's fields, and the client reads them where present.
//! - **Page size**: the standard has no page-size parameter; the bank
//!   pages as it likes and the client cuts its pages to the trait's
//!   `page_size` (the cursor is the bank's `next` link and how many of
//!   that page were already returned).

pub mod client;
mod http;
pub mod server;
pub mod wire;

pub use client::{BankEndpoint, BerlinGroupClient, ClientConfig};
pub use http::RetryPolicy;
pub use server::{ServerConfig, router};

pub const HEADER_REQUEST_ID: &str = "x-request-id";
pub const HEADER_CONSENT_ID: &str = "consent-id";
pub const HEADER_PSU_ID: &str = "psu-id";
/// Present when the PSU asked for the call (not counted in `frequencyPerDay`).
pub const HEADER_PSU_IP_ADDRESS: &str = "psu-ip-address";
pub const HEADER_TPP_REDIRECT_URI: &str = "tpp-redirect-uri";
pub const HEADER_TPP_NOK_REDIRECT_URI: &str = "tpp-nok-redirect-uri";
pub const HEADER_TPP_REDIRECT_PREFERRED: &str = "tpp-redirect-preferred";
pub const HEADER_TPP_EXPLICIT_AUTHORISATION_PREFERRED: &str = "tpp-explicit-authorisation-preferred";
/// The sandbox's clock (not part of the standard): the call's `now`.
pub const HEADER_SANDBOX_NOW: &str = "x-sandbox-now";
/// The sandbox's clock: the previous sync's time (absent on a first sync).
pub const HEADER_SANDBOX_PREVIOUS_SYNC: &str = "x-sandbox-previous-sync";
