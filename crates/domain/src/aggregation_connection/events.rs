//! The aggregation connection family's events and the values they carry.
//! A connection holds no personal data: the customer is named by ID, the
//! institution by its catalogue code, and what the bank says about the
//! person lives on the aggregated accounts' `personal` fields.

use serde::{Deserialize, Serialize};

use crate::kernel::id::{AggregatedAccountId, AggregationConnectionId, CustomerId, ProjectId};
use crate::kernel::institution::InstitutionId;
use crate::kernel::time::Timestamp;

/// Why the end user must act before the connection can sync again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ActionRequiredReason {
    /// Strong customer authentication at the bank (PSD2 `SCARequired`).
    ScaRequired,
    /// A redirect to the bank's own web page (`webauthRequired`).
    WebAuthenticationRequired,
    /// The bank refused the credentials (wrong password).
    CredentialsInvalid,
    /// The bank asks for a one-time code (SMS, app).
    OneTimeCodeRequired,
    /// The end user's consent ran out (180 days) and must be renewed.
    ConsentExpired,
}

impl ActionRequiredReason {
    pub fn name(self) -> &'static str {
        match self {
            Self::ScaRequired => "SCA_REQUIRED",
            Self::WebAuthenticationRequired => "WEB_AUTHENTICATION_REQUIRED",
            Self::CredentialsInvalid => "CREDENTIALS_INVALID",
            Self::OneTimeCodeRequired => "ONE_TIME_CODE_REQUIRED",
            Self::ConsentExpired => "CONSENT_EXPIRED",
        }
    }
}

/// Where a connection is in its lifecycle. The transitions allowed are the
/// diagram's ([`ConnectionStatus::may_become`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectionStatus {
    /// The end user has to sign in (first time, or again after the first
    /// sign-in failed: then `reason` says why).
    InitialActionRequired { reason: Option<ActionRequiredReason> },
    /// Signing in at the bank.
    Connecting,
    /// Syncing with the bank.
    Updating,
    /// Synced; waiting for the next refresh.
    Connected,
    /// The end user must act (`reason`) before the next sync.
    ActionRequired { reason: ActionRequiredReason },
    /// The bank asked to wait (rate limit, unavailable): the next try is at
    /// `next_try_at`.
    RefreshDelayed { next_try_at: Timestamp },
}

impl ConnectionStatus {
    /// The status's name, as the lifecycle diagram writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::InitialActionRequired { .. } => "INITIAL_ACTION_REQUIRED",
            Self::Connecting => "CONNECTING",
            Self::Updating => "UPDATING",
            Self::Connected => "CONNECTED",
            Self::ActionRequired { .. } => "ACTION_REQUIRED",
            Self::RefreshDelayed { .. } => "REFRESH_DELAYED",
        }
    }

    /// Whether the lifecycle diagram (kernel-financial-aggregation-guide)
    /// has an arrow from `self` to `next`:
    ///
    /// ```text
    /// INITIAL_ACTION_REQUIRED → CONNECTING     CONNECTING → UPDATING
    /// CONNECTING → INITIAL_ACTION_REQUIRED     UPDATING → CONNECTED
    /// UPDATING → ACTION_REQUIRED               ACTION_REQUIRED → UPDATING
    /// UPDATING → REFRESH_DELAYED               REFRESH_DELAYED → UPDATING
    /// CONNECTED → UPDATING
    /// ```
    ///
    /// The one other edge, consent expiry (→ `ACTION_REQUIRED` with
    /// `CONSENT_EXPIRED`, [`ConnectionStatus::may_expire_consent`]), is a
    /// separate event. Deletion is not a status: any connection can be
    /// deleted, and a deleted one accepts nothing.
    pub fn may_become(&self, next: &ConnectionStatus) -> bool {
        use ConnectionStatus::*;
        matches!(
            (self, next),
            (InitialActionRequired { .. }, Connecting)
                | (Connecting, Updating)
                | (Connecting, InitialActionRequired { .. })
                | (Updating, ActionRequired { .. })
                | (ActionRequired { .. }, Updating)
                | (Connected, Updating)
                | (Updating, Connected)
                | (Updating, RefreshDelayed { .. })
                | (RefreshDelayed { .. }, Updating)
        )
    }

    /// Whether the consent's expiry may move the connection to
    /// `ACTION_REQUIRED` (`CONSENT_EXPIRED`) from here: from every status a
    /// signed-in connection can be in. The diagram draws syncs only; the
    /// 180-day renewal (bank-aggregation-integration-guide) happens at a
    /// time, whatever the connection is doing.
    pub fn may_expire_consent(&self) -> bool {
        matches!(
            self,
            Self::Updating | Self::Connected | Self::ActionRequired { .. } | Self::RefreshDelayed { .. }
        )
    }
}

/// A way the connector reaches the bank.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SourceKind {
    /// The bank's web interface (screen scraping).
    Web,
    /// The bank's PSD2 (Berlin Group XS2A) API.
    Psd2Api,
}

/// A source's own sync state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceState {
    NotSynced,
    Synced,
    ActionRequired {
        reason: ActionRequiredReason,
    },
    /// The bank could not be reached through this source at the last try.
    Unavailable,
}

/// One source of a connection: its state, last successful sync, whether it
/// is disabled, and the order in which sources are tried (lower first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionSource {
    pub kind: SourceKind,
    pub state: SourceState,
    pub last_update: Option<Timestamp>,
    pub disabled: bool,
    pub priority: u8,
}

/// The end user's consent to read their accounts (PSD2 AIS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub granted_at: Timestamp,
    pub expires_at: Timestamp,
}

impl Consent {
    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.expires_at
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregationConnectionCreated {
    pub id: AggregationConnectionId,
    pub project_id: ProjectId,
    pub customer_id: CustomerId,
    /// `None` for a connection created for the bank-selection page: the end
    /// user chooses there (`AggregationInstitutionChosen`).
    pub institution_id: Option<InstitutionId>,
    pub sources: Vec<ConnectionSource>,
    /// Where the hosted pages send the end user back to.
    pub redirect_url: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregationInstitutionChosen {
    pub institution_id: InstitutionId,
    pub sources: Vec<ConnectionSource>,
    pub chosen_at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregationConnectionStatusChanged {
    pub status: ConnectionStatus,
    pub changed_at: Timestamp,
}

/// One source's new state (`last_update` is the time of its last
/// successful sync).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregationSourceUpdated {
    pub source: ConnectionSource,
    pub updated_at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregationConsentGranted {
    pub consent: Consent,
}

/// The consent ran out: the connection is `ACTION_REQUIRED`
/// (`CONSENT_EXPIRED`) and keeps no consent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregationConsentExpired {
    pub expired_at: Timestamp,
}

/// Accounts a sync found for the first time (written by the aggregated
/// account family's sync, with the accounts' own events).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregationConnectionAccountsFound {
    pub account_ids: Vec<AggregatedAccountId>,
    pub found_at: Timestamp,
}

/// Terminal: the connection, its accounts and their transactions leave
/// every query and subscription; commands on them answer not found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregationConnectionDeleted {
    pub deleted_at: Timestamp,
}

/// The aggregation connection family's events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AggregationConnectionEvent {
    AggregationConnectionCreated(AggregationConnectionCreated),
    AggregationInstitutionChosen(AggregationInstitutionChosen),
    AggregationConnectionStatusChanged(AggregationConnectionStatusChanged),
    AggregationSourceUpdated(AggregationSourceUpdated),
    AggregationConsentGranted(AggregationConsentGranted),
    AggregationConsentExpired(AggregationConsentExpired),
    AggregationConnectionAccountsFound(AggregationConnectionAccountsFound),
    AggregationConnectionDeleted(AggregationConnectionDeleted),
}
