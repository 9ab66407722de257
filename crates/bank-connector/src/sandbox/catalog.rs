//! The sandbox's fixed catalogue: its institutions and its test users.

use crate::model::{Institution, Source};
use crate::types::{CountryCode, CurrencyCode, InstitutionId};

/// The password of every test user.
pub const SANDBOX_PASSWORD: &str = "pass_good";
/// The one-time code `user_otp` is asked for.
pub const SANDBOX_ONE_TIME_CODE: &str = "123456";
/// How long after the challenge `user_sca` approves in the bank's app.
pub const SANDBOX_SCA_APPROVAL_SECONDS: i64 = 2;

/// What a test user does (see the crate docs' table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Good,
    OneTimeCode,
    Sca,
    Redirect,
    BankDown,
    RateLimited,
    ConsentExpired,
    AccountCloses,
    PendingPosts,
    Joint,
}

/// The kinds of accounts a test user holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Salary, rent, groceries, card payments, subscriptions.
    Current,
    /// Daily automatic savings, a monthly standing order, interest.
    Savings,
    /// Shared with a co-holder: household spending and both contributions.
    Joint,
    /// An account in another currency (0: USD, 1: the second foreign
    /// currency): trips abroad, freelance income, online purchases.
    Foreign(u8),
    /// A savings account closed after the connection's first sync.
    Closing,
    /// A credit card (listed by `credit_cards`, not `accounts`).
    CreditCard,
}

/// A documented test user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestUser {
    pub username: &'static str,
    pub name: &'static str,
    pub behaviour: Behaviour,
    pub roles: &'static [Role],
}

/// Every test user; all sign in with [`SANDBOX_PASSWORD`] at any sandbox
/// institution (another password answers `InvalidCredentials`).
pub const TEST_USERS: &[TestUser] = &[
    TestUser {
        username: "user_good",
        name: "Alex Morgan",
        behaviour: Behaviour::Good,
        roles: &[
            Role::Current,
            Role::Savings,
            Role::Joint,
            Role::Foreign(0),
            Role::Foreign(1),
            Role::CreditCard,
        ],
    },
    TestUser {
        username: "user_otp",
        name: "Robin Otto",
        behaviour: Behaviour::OneTimeCode,
        roles: &[Role::Current, Role::Savings],
    },
    TestUser {
        username: "user_sca",
        name: "Kim Schmidt",
        behaviour: Behaviour::Sca,
        roles: &[Role::Current, Role::Savings],
    },
    TestUser {
        username: "user_redirect",
        name: "Sasha Rivera",
        behaviour: Behaviour::Redirect,
        roles: &[Role::Current, Role::Savings],
    },
    TestUser {
        username: "user_bank_down",
        name: "Dana Down",
        behaviour: Behaviour::BankDown,
        roles: &[Role::Current],
    },
    TestUser {
        username: "user_rate_limited",
        name: "Lee Quota",
        behaviour: Behaviour::RateLimited,
        roles: &[Role::Current, Role::Savings],
    },
    TestUser {
        username: "user_consent_expired",
        name: "Chris Expiry",
        behaviour: Behaviour::ConsentExpired,
        roles: &[Role::Current, Role::Savings],
    },
    TestUser {
        username: "user_account_closes",
        name: "Jamie Close",
        behaviour: Behaviour::AccountCloses,
        roles: &[Role::Current, Role::Savings, Role::Closing],
    },
    TestUser {
        username: "user_pending",
        name: "Pat Pending",
        behaviour: Behaviour::PendingPosts,
        roles: &[Role::Current, Role::Savings],
    },
    TestUser {
        username: "user_joint",
        name: "Noor Haddad",
        behaviour: Behaviour::Joint,
        roles: &[Role::Current, Role::Joint],
    },
];

/// The co-holder of every joint account.
pub const CO_HOLDER_NAME: &str = "Sam Taylor";

pub fn test_user(username: &str) -> Option<&'static TestUser> {
    TEST_USERS.iter().find(|u| u.username == username)
}

/// A sandbox institution and what the generator needs of it.
#[derive(Clone, Copy, Debug)]
pub struct SandboxInstitution {
    pub id: &'static str,
    pub name: &'static str,
    pub country: CountryCode,
    pub currency: CurrencyCode,
    /// The second foreign currency of its users (the first is USD).
    pub second_foreign: CurrencyCode,
    pub sources: &'static [Source],
    pub credit_cards: bool,
    /// Bank code part of the BBAN (letters for GB, digits elsewhere).
    pub bank_code: &'static str,
}

pub const GBP: CurrencyCode = CurrencyCode::from_static("GBP");
pub const EUR: CurrencyCode = CurrencyCode::from_static("EUR");
pub const USD: CurrencyCode = CurrencyCode::from_static("USD");
pub const PLN: CurrencyCode = CurrencyCode::from_static("PLN");
pub const CHF: CurrencyCode = CurrencyCode::from_static("CHF");

pub const MAX_REFRESHES_PER_DAY: u32 = 4;
pub const MAX_CONSENT_DAYS: u32 = 180;
/// Five years (one leap day included).
pub const MAX_HISTORY_DAYS: u32 = 1_826;

pub const INSTITUTIONS: &[SandboxInstitution] = &[
    SandboxInstitution {
        id: "sandbox_gb_albion",
        name: "Albion Sandbox Bank",
        country: CountryCode::from_static("GB"),
        currency: GBP,
        second_foreign: EUR,
        sources: &[Source::Psd2],
        credit_cards: false,
        bank_code: "ALBN",
    },
    SandboxInstitution {
        id: "sandbox_de_rheinbank",
        name: "Rheinbank Sandbox",
        country: CountryCode::from_static("DE"),
        currency: EUR,
        second_foreign: CHF,
        sources: &[Source::Psd2, Source::Web],
        credit_cards: false,
        bank_code: "37040044",
    },
    SandboxInstitution {
        id: "sandbox_fr_lumiere",
        name: "Banque Lumière Sandbox",
        country: CountryCode::from_static("FR"),
        currency: EUR,
        second_foreign: GBP,
        sources: &[Source::Web, Source::Psd2],
        credit_cards: false,
        bank_code: "30004",
    },
    SandboxInstitution {
        id: "sandbox_pl_wisla",
        name: "Bank Wisła Sandbox",
        country: CountryCode::from_static("PL"),
        currency: PLN,
        second_foreign: EUR,
        sources: &[Source::Psd2, Source::Web],
        credit_cards: true,
        bank_code: "10901014",
    },
    SandboxInstitution {
        id: "sandbox_es_sol",
        name: "Banco del Sol Sandbox",
        country: CountryCode::from_static("ES"),
        currency: EUR,
        second_foreign: GBP,
        sources: &[Source::Psd2],
        credit_cards: true,
        bank_code: "2100",
    },
];

pub fn sandbox_institution(id: &str) -> Option<&'static SandboxInstitution> {
    INSTITUTIONS.iter().find(|i| i.id == id)
}

impl SandboxInstitution {
    pub fn describe(&self) -> Institution {
        Institution {
            id: InstitutionId::new(self.id),
            name: self.name.to_owned(),
            country: self.country,
            sources: self.sources.to_vec(),
            max_refreshes_per_day: MAX_REFRESHES_PER_DAY,
            max_consent_days: MAX_CONSENT_DAYS,
            max_history_days: MAX_HISTORY_DAYS,
            credit_cards: self.credit_cards,
        }
    }
}
