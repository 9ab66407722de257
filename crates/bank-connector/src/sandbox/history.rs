//! The sandbox's history generator.
//!
//! Every day of every account is generated on its own, from a ChaCha8
//! stream keyed by the user, the institution and the account and numbered
//! by the day (its Julian day number). So a day's transactions do not depend
//! on which range was asked, on `now`, or on the order of calls: the same
//! user always has the same history, any page can be generated without the
//! ones before it, and a transaction keeps its bank ID forever. Transfers
//! between a user's own accounts, and trips abroad, come from a stream keyed
//! by the user alone, so both accounts of a transfer see it.
//!
//! A day first produces [`Raw`] transactions (no strings, `Copy`): enough to
//! sum balances over years quickly; [`Generator::materialize`] turns the
//! ones returned into [`Transaction`]s.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use time::{Date, Duration, Month, Weekday};

use super::catalog::{CO_HOLDER_NAME, Role, SandboxInstitution, TestUser, USD};
use super::iban::make_iban;
use super::markets::{self, Market, convert, countries_of, from_eur, market};
use crate::model::{AccountIdentifier, AccountType, Counterparty, Transaction, TransactionStatus};
use crate::types::{Amount, BankTransactionId, CountryCode, CurrencyCode};

/// Which generator the data comes from; a new one gets a new number so
/// that old and new sandbox data never share IDs.
const GENERATOR_VERSION: &str = "paycore-sandbox-bank/1";

/// A deterministic random stream.
struct Rng(ChaCha8Rng);

impl Rng {
    fn new(key: &[u8; 32], stream: u64) -> Self {
        let mut rng = ChaCha8Rng::from_seed(*key);
        rng.set_stream(stream);
        Self(rng)
    }

    /// Uniform in `0..n` (`n` > 0), by multiply-shift: no bias worth
    /// mentioning for the small `n` used here, and stable forever.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.0.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1).max(1) as u64) as i64
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick(&mut self, items: &[&str]) -> u8 {
        self.below(items.len() as u64) as u8
    }
}

fn sha(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

fn tag_of(key: &[u8; 32]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&key[..8]);
    u64::from_be_bytes(bytes)
}

/// SplitMix64's finaliser: a bijection, so distinct inputs give distinct
/// transaction IDs.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Card merchant categories (with their ISO 18245 codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    Grocery,
    Restaurant,
    Cafe,
    Transport,
    Shop,
    Pharmacy,
    Fuel,
    Hotel,
    Online,
    /// Apps, games, cloud services.
    Digital,
}

impl Category {
    fn mcc(self) -> u16 {
        match self {
            Category::Grocery => 5411,
            Category::Restaurant => 5812,
            Category::Cafe => 5814,
            Category::Transport => 4111,
            Category::Shop => 5311,
            Category::Pharmacy => 5912,
            Category::Fuel => 5541,
            Category::Hotel => 7011,
            Category::Online => 5964,
            Category::Digital => 5818,
        }
    }

    fn names(self, market: &'static Market) -> &'static [&'static str] {
        match self {
            Category::Grocery => market.groceries,
            Category::Restaurant => market.restaurants,
            Category::Cafe => market.cafes,
            Category::Transport => market.transport,
            Category::Shop => market.shops,
            Category::Pharmacy => market.pharmacies,
            Category::Fuel => market.fuel,
            Category::Hotel => market.hotels,
            Category::Online => market.online,
            Category::Digital => DIGITAL,
        }
    }

    /// The usual range of one payment, in euro cents.
    fn eur_range(self) -> (i64, i64) {
        match self {
            Category::Grocery => (650, 6_000),
            Category::Restaurant => (1_400, 6_800),
            Category::Cafe => (250, 900),
            Category::Transport => (180, 3_500),
            Category::Shop => (900, 12_000),
            Category::Pharmacy => (350, 3_200),
            Category::Fuel => (3_500, 8_500),
            Category::Hotel => (9_000, 26_000),
            Category::Online => (299, 6_000),
            Category::Digital => (99, 1_500),
        }
    }
}

/// Digital merchants, the same everywhere.
const DIGITAL: &[&str] = &["APPLE.COM/BILL", "GOOGLE PLAY", "STEAM PURCHASE", "OPENAI"];

/// Subscriptions of current accounts: name, day of the month, euro cents,
/// merchant category.
const SUBSCRIPTIONS: &[(&str, u8, i64, u16)] = &[
    ("NETFLIX.COM", 7, 1_399, 4899),
    ("SPOTIFY", 12, 1_099, 5815),
    ("PUREGYM MEMBERSHIP", 3, 3_490, 7997),
    ("MOBILE PHONE PLAN", 20, 2_500, 4814),
    ("ICLOUD STORAGE", 27, 299, 5815),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferKind {
    AutoSave,
    StandingOrder,
    Withdrawal,
    Household,
    TopUp,
    CardRepayment,
}

impl TransferKind {
    fn label(self) -> &'static str {
        match self {
            TransferKind::AutoSave => "Auto-save",
            TransferKind::StandingOrder => "Standing order",
            TransferKind::Withdrawal => "Withdrawal",
            TransferKind::Household => "Household contribution",
            TransferKind::TopUp => "Top-up",
            TransferKind::CardRepayment => "Credit card repayment",
        }
    }
}

/// What a raw transaction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    Opening,
    Salary,
    Rent,
    Subscription(u8),
    Card {
        category: Category,
        merchant: u8,
    },
    Atm,
    Refund {
        merchant: u8,
    },
    FxFee,
    Interest,
    Own {
        other: u8,
        kind: TransferKind,
        incoming: bool,
    },
    Partner,
    Utility(u8),
    Freelance,
}

/// One generated transaction, before its strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raw {
    pub date: Date,
    pub seq: u16,
    /// Days from the transaction to its booking.
    pub lag: u8,
    /// In the account's currency.
    pub amount: i64,
    pub original: Option<(CurrencyCode, i64)>,
    pub what: What,
    /// The country whose merchants it names (card payments, abroad).
    pub country: Option<CountryCode>,
}

impl Raw {
    pub fn booking_date(&self) -> Date {
        self.date
            .checked_add(Duration::days(i64::from(self.lag)))
            .unwrap_or(self.date)
    }

    /// What the bank shows while the transaction is pending: a restaurant
    /// authorises the bill and books it with the tip (10 % more), as card
    /// networks do; everything else is booked for what was authorised.
    pub fn pending_amount(&self) -> i64 {
        match self.what {
            What::Card {
                category: Category::Restaurant,
                ..
            } => self.amount * 10 / 11,
            _ => self.amount,
        }
    }

    /// The amount as seen with `status`, and the original amount likewise.
    pub fn amounts(&self, status: TransactionStatus) -> (i64, Option<(CurrencyCode, i64)>) {
        if status == TransactionStatus::Booked || self.pending_amount() == self.amount {
            return (self.amount, self.original);
        }
        (
            self.pending_amount(),
            self.original.map(|(currency, minor)| (currency, minor * 10 / 11)),
        )
    }
}

/// One of a user's accounts (or credit cards).
#[derive(Clone, Debug)]
pub struct AccountPlan {
    pub index: u8,
    pub role: Role,
    pub currency: CurrencyCode,
    pub opened: Date,
    pub id: String,
    pub identifier: AccountIdentifier,
    pub name: String,
    /// A credit card at an institution that offers none: the user holds
    /// it at another issuer, so only its repayments are seen.
    pub hidden: bool,
    key: [u8; 32],
    tag: u64,
}

impl AccountPlan {
    pub fn kind(&self) -> AccountType {
        match self.role {
            Role::Current | Role::Joint => AccountType::Current,
            Role::Savings | Role::Closing => AccountType::Savings,
            Role::Foreign(_) => AccountType::ForeignCurrency,
            Role::CreditCard => AccountType::Loan,
        }
    }

    pub fn is_joint(&self) -> bool {
        self.role == Role::Joint
    }

    fn iban(&self) -> Option<&str> {
        match &self.identifier {
            AccountIdentifier::Iban(iban) => Some(iban),
            AccountIdentifier::Other { .. } => None,
        }
    }

    /// The overdraft (current accounts) or credit limit (cards), in the
    /// account's minor units.
    pub fn credit_line(&self) -> i64 {
        match self.role {
            Role::Current => from_eur(100_000, self.currency),
            Role::CreditCard => from_eur(500_000, self.currency),
            _ => 0,
        }
    }
}

/// A trip abroad: spending on a foreign-currency account (and the credit
/// card), a top-up the day before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Trip {
    start: Date,
    days: u8,
    /// Which foreign account pays.
    slot: u8,
    country: CountryCode,
}

/// The generator for one user at one institution.
#[derive(Debug)]
pub struct Generator {
    pub user: &'static TestUser,
    pub institution: &'static SandboxInstitution,
    pub accounts: Vec<AccountPlan>,
    key: [u8; 32],
    home: &'static Market,
}

impl std::fmt::Debug for Rng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rng")
    }
}

const EPOCH: Date = time::macros::date!(2020 - 01 - 01);

impl Generator {
    pub fn new(user: &'static TestUser, institution: &'static SandboxInstitution) -> Self {
        let key = sha(&[
            GENERATOR_VERSION.as_bytes(),
            user.username.as_bytes(),
            institution.id.as_bytes(),
        ]);
        let home = market(institution.country);
        let accounts = user
            .roles
            .iter()
            .enumerate()
            .map(|(index, role)| {
                let index = index as u8;
                let key = sha(&[&key, b"account", &[index]]);
                let tag = tag_of(&key);
                let mut rng = Rng::new(&key, u64::MAX);
                let opened = EPOCH
                    .checked_add(Duration::days(rng.range(0, 300)))
                    .unwrap_or(EPOCH);
                let currency = match role {
                    Role::Foreign(0) => USD,
                    Role::Foreign(_) => institution.second_foreign,
                    _ => institution.currency,
                };
                let number = rng.0.next_u64();
                let identifier = if *role == Role::CreditCard {
                    AccountIdentifier::Other {
                        scheme: "MaskedPan".into(),
                        identification: format!("•••• {:04}", number % 10_000),
                    }
                } else if institution.country.as_str() == "GB" && currency == institution.currency {
                    AccountIdentifier::Other {
                        scheme: "UK.OBIE.SortCodeAccountNumber".into(),
                        identification: format!("400012{:08}", number % 100_000_000),
                    }
                } else {
                    make_iban(institution.country.as_str(), Some(institution.bank_code), number).map_or_else(
                        || AccountIdentifier::Other {
                            scheme: "BBAN".into(),
                            identification: format!("{number:020}"),
                        },
                        AccountIdentifier::Iban,
                    )
                };
                let name = match role {
                    Role::Current => "Current account".to_owned(),
                    Role::Savings => "Savings".to_owned(),
                    Role::Joint => "Joint account".to_owned(),
                    Role::Foreign(_) => format!("{currency} account"),
                    Role::Closing => "Old savings".to_owned(),
                    Role::CreditCard => "Visa Gold".to_owned(),
                };
                let prefix = if *role == Role::CreditCard { "card" } else { "acc" };
                AccountPlan {
                    index,
                    role: *role,
                    currency,
                    opened,
                    id: format!("sbx-{prefix}-{tag:016x}"),
                    identifier,
                    name,
                    hidden: *role == Role::CreditCard && !institution.credit_cards,
                    key,
                    tag,
                }
            })
            .collect();
        Self {
            user,
            institution,
            accounts,
            key,
            home,
        }
    }

    fn index_of(&self, role: Role) -> Option<u8> {
        self.accounts.iter().find(|a| a.role == role).map(|a| a.index)
    }

    fn account(&self, index: u8) -> Option<&AccountPlan> {
        self.accounts.get(usize::from(index))
    }

    /// The two trips of a year (only for users with foreign accounts).
    fn trips(&self, year: i32) -> [Option<Trip>; 2] {
        let mut trips = [None, None];
        let slots: Vec<u8> = self
            .accounts
            .iter()
            .filter_map(|a| match a.role {
                Role::Foreign(slot) => Some(slot),
                _ => None,
            })
            .collect();
        if slots.is_empty() {
            return trips;
        }
        let mut rng = Rng::new(&self.key, (1 << 40) | year.unsigned_abs() as u64);
        for (k, trip) in trips.iter_mut().enumerate() {
            let slot = slots[k % slots.len()];
            let currency = self
                .accounts
                .iter()
                .find(|a| a.role == Role::Foreign(slot))
                .map_or(USD, |a| a.currency);
            let countries = countries_of(currency);
            let country = countries[rng.below(countries.len() as u64) as usize];
            let start_ordinal = 20 + 170 * k as i64 + rng.range(0, 140);
            let start = Date::from_ordinal_date(year, 1)
                .ok()
                .and_then(|d| d.checked_add(Duration::days(start_ordinal)));
            if let (Some(start), Ok(country)) = (start, country.parse()) {
                *trip = Some(Trip {
                    start,
                    days: rng.range(5, 12) as u8,
                    slot,
                    country,
                });
            }
        }
        trips
    }

    fn trip_on(&self, date: Date) -> Option<Trip> {
        self.trips(date.year()).into_iter().flatten().find(|t| {
            let end = t.start.saturating_add(Duration::days(i64::from(t.days)));
            t.start <= date && date < end
        })
    }

    fn trip_starting_tomorrow(&self, date: Date) -> Option<Trip> {
        let tomorrow = date.next_day()?;
        self.trips(tomorrow.year())
            .into_iter()
            .flatten()
            .find(|t| t.start == tomorrow)
    }

    /// Transfers between the user's own accounts on `date`: (from, to,
    /// euro cents, kind), the same whichever account asks.
    fn own_transfers(&self, date: Date, out: &mut Vec<(u8, u8, i64, TransferKind)>) {
        out.clear();
        let Some(current) = self.index_of(Role::Current) else {
            return;
        };
        let mut rng = Rng::new(&self.key, date.to_julian_day() as u64);
        let day = date.day();
        if let Some(savings) = self.index_of(Role::Savings) {
            if rng.chance(92) {
                out.push((current, savings, rng.range(100, 1_000), TransferKind::AutoSave));
            }
            if day == 2 {
                out.push((current, savings, 30_000, TransferKind::StandingOrder));
            }
            if day == 10 && rng.chance(12) {
                out.push((
                    savings,
                    current,
                    rng.range(20, 150) * 1_000,
                    TransferKind::Withdrawal,
                ));
            }
        }
        if let Some(closing) = self.index_of(Role::Closing)
            && date.weekday() == Weekday::Monday
        {
            out.push((current, closing, rng.range(20, 60) * 100, TransferKind::AutoSave));
        }
        if let Some(joint) = self.index_of(Role::Joint)
            && day == 1
        {
            out.push((current, joint, 60_000, TransferKind::Household));
        }
        if let Some(card) = self.index_of(Role::CreditCard)
            && day == 5
        {
            out.push((
                current,
                card,
                rng.range(700, 1_100) * 100,
                TransferKind::CardRepayment,
            ));
        }
        if let Some(trip) = self.trip_starting_tomorrow(date)
            && let Some(foreign) = self.index_of(Role::Foreign(trip.slot))
        {
            out.push((current, foreign, rng.range(30, 80) * 1_000, TransferKind::TopUp));
        }
    }

    /// The raw transactions of one account on one day, in order.
    pub fn day(
        &self,
        account: &AccountPlan,
        date: Date,
        transfers: &mut Vec<(u8, u8, i64, TransferKind)>,
        out: &mut Vec<Raw>,
    ) {
        out.clear();
        if date < account.opened {
            return;
        }
        let currency = account.currency;
        let mut rng = Rng::new(&account.key, date.to_julian_day() as u64);
        let push = |out: &mut Vec<Raw>, lag: u8, amount: i64, what: What| {
            out.push(Raw {
                date,
                seq: 0,
                lag,
                amount,
                original: None,
                what,
                country: None,
            });
        };
        if date == account.opened {
            let eur = match account.role {
                Role::Current => 150_000,
                Role::Savings => 500_000,
                Role::Joint => 100_000,
                Role::Foreign(_) => 50_000,
                Role::Closing => 200_000,
                Role::CreditCard => 0,
            };
            if eur > 0 {
                push(out, 0, from_eur(eur, currency), What::Opening);
            }
        }
        let growth = 1_000 + 30 * i64::from(date.year() - 2020);
        let home = self.home;
        let card = |rng: &mut Rng, out: &mut Vec<Raw>, category: Category, market: &'static Market| {
            let (lo, hi) = category.eur_range();
            let eur = rng.range(lo, hi);
            let merchant = rng.pick(category.names(market));
            let lag = 1 + rng.below(3) as u8;
            let (amount, original) = if market.currency == currency {
                (-from_eur(eur, currency), None)
            } else {
                let original = -from_eur(eur, market.currency);
                (
                    convert(original, market.currency, currency),
                    Some((market.currency, original)),
                )
            };
            out.push(Raw {
                date,
                seq: 0,
                lag,
                amount,
                original,
                what: What::Card { category, merchant },
                country: Some(market.country),
            });
            original.is_some().then_some(amount)
        };
        match account.role {
            Role::Current => {
                if is_last_business_day(date) {
                    let bonus = if date.month() == Month::December {
                        1_500
                    } else {
                        1_000
                    };
                    let eur = 440_000 * growth / 1_000 * bonus / 1_000;
                    push(out, 0, from_eur(eur, currency), What::Salary);
                }
                if is_first_business_day(date) {
                    push(out, 0, -from_eur(105_000 * growth / 1_000, currency), What::Rent);
                }
                for (i, (_, day, eur, _)) in SUBSCRIPTIONS.iter().enumerate() {
                    if date.day() == *day {
                        push(out, 1, -from_eur(*eur, currency), What::Subscription(i as u8));
                    }
                }
                let groceries = match date.weekday() {
                    Weekday::Saturday => 1 + u8::from(rng.chance(50)),
                    Weekday::Sunday => u8::from(rng.chance(15)),
                    _ => u8::from(rng.chance(40)),
                };
                for _ in 0..groceries {
                    card(&mut rng, out, Category::Grocery, home);
                }
                let payments = 1 + u8::from(rng.chance(40)) + u8::from(rng.chance(15));
                for _ in 0..payments {
                    let category = match rng.below(10) {
                        0..=4 => Category::Cafe,
                        5..=6 => Category::Transport,
                        7 => Category::Restaurant,
                        8 => Category::Pharmacy,
                        _ => Category::Shop,
                    };
                    card(&mut rng, out, category, home);
                }
                if let Some(trip) = self.trip_on(date)
                    && rng.chance(40)
                {
                    let abroad = market(trip.country);
                    if let Some(spent) = card(&mut rng, out, Category::Restaurant, abroad) {
                        push(out, 1, spent * 275 / 10_000, What::FxFee);
                    }
                }
                if rng.chance(3) {
                    let eur = [2_000, 5_000, 10_000, 20_000][rng.below(4) as usize];
                    push(out, 0, -from_eur(eur, currency), What::Atm);
                }
                if rng.chance(1) {
                    let merchant = rng.pick(home.shops);
                    push(
                        out,
                        2,
                        from_eur(rng.range(900, 8_000), currency),
                        What::Refund { merchant },
                    );
                }
            }
            Role::Savings | Role::Closing => {
                if is_last_day_of_month(date) {
                    let months = i64::from(date.year() - account.opened.year()) * 12
                        + i64::from(u8::from(date.month()));
                    let eur = (200 + months * 35 + rng.range(0, 150))
                        / if account.role == Role::Closing { 4 } else { 1 };
                    push(out, 0, from_eur(eur, currency), What::Interest);
                }
            }
            Role::Joint => {
                if date.day() == 1 {
                    push(out, 0, from_eur(60_000, currency), What::Partner);
                }
                let utility = match (date.day(), u8::from(date.month())) {
                    (14, _) => Some((0, rng.range(6_000, 14_000))),
                    (22, _) => Some((1, 3_500)),
                    (8, 1 | 4 | 7 | 10) => Some((2, rng.range(8_000, 12_000))),
                    (3, 3) => Some((3, 32_000)),
                    _ => None,
                };
                if let Some((which, eur)) = utility {
                    push(out, 0, -from_eur(eur, currency), What::Utility(which));
                }
                let groceries = match date.weekday() {
                    Weekday::Saturday => 1 + u8::from(rng.chance(60)),
                    Weekday::Sunday => 0,
                    _ => u8::from(rng.chance(45)),
                };
                for _ in 0..groceries {
                    card(&mut rng, out, Category::Grocery, home);
                }
                if rng.chance(30) {
                    let category =
                        [Category::Shop, Category::Pharmacy, Category::Restaurant][rng.below(3) as usize];
                    card(&mut rng, out, category, home);
                }
            }
            Role::Foreign(slot) => {
                let local = market(
                    countries_of(currency)
                        .first()
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(home.country),
                );
                if date.day() == 15 {
                    push(
                        out,
                        0,
                        from_eur(rng.range(400, 900) * 100, currency),
                        What::Freelance,
                    );
                }
                if rng.chance(50) {
                    card(&mut rng, out, Category::Digital, local);
                }
                if rng.chance(25) {
                    card(&mut rng, out, Category::Online, local);
                }
                if let Some(trip) = self.trip_on(date)
                    && trip.slot == slot
                {
                    let abroad = market(trip.country);
                    if date == trip.start {
                        card(&mut rng, out, Category::Hotel, abroad);
                    }
                    for _ in 0..rng.range(2, 5) {
                        let category = [
                            Category::Restaurant,
                            Category::Cafe,
                            Category::Transport,
                            Category::Shop,
                        ][rng.below(4) as usize];
                        card(&mut rng, out, category, abroad);
                    }
                }
            }
            Role::CreditCard => {
                for _ in 0..u8::from(rng.chance(45)) + u8::from(rng.chance(15)) {
                    let category = [
                        Category::Shop,
                        Category::Online,
                        Category::Restaurant,
                        Category::Fuel,
                    ][rng.below(4) as usize];
                    card(&mut rng, out, category, home);
                }
                if let Some(trip) = self.trip_on(date)
                    && rng.chance(60)
                {
                    card(&mut rng, out, Category::Restaurant, market(trip.country));
                }
            }
        }
        self.own_transfers(date, transfers);
        for &(from, to, eur, kind) in transfers.iter() {
            let (incoming, other) = if from == account.index {
                (false, to)
            } else if to == account.index {
                (true, from)
            } else {
                continue;
            };
            let Some(other_account) = self.account(other) else {
                continue;
            };
            let mine = from_eur(eur, currency);
            let theirs = from_eur(eur, other_account.currency);
            out.push(Raw {
                date,
                seq: 0,
                lag: 0,
                amount: if incoming { mine } else { -mine },
                original: (other_account.currency != currency)
                    .then_some((other_account.currency, if incoming { theirs } else { -theirs })),
                what: What::Own {
                    other,
                    kind,
                    incoming,
                },
                country: None,
            });
        }
        for (seq, raw) in out.iter_mut().enumerate() {
            raw.seq = seq as u16;
        }
    }

    /// The bank's transaction ID of a raw transaction.
    pub fn transaction_id(&self, account: &AccountPlan, raw: &Raw) -> BankTransactionId {
        let position = ((raw.date.to_julian_day() as u64) << 16) | u64::from(raw.seq);
        BankTransactionId(format!("{:016x}", mix(account.tag.wrapping_add(position))))
    }

    /// The full transaction of a raw one, as seen with `status`.
    pub fn materialize(&self, account: &AccountPlan, raw: &Raw, status: TransactionStatus) -> Transaction {
        let currency = account.currency;
        let home = self.home;
        let month = month_name(raw.date);
        let counter_iban = |what: &str| {
            make_iban(
                home.country.as_str(),
                None,
                tag_of(&sha(&[&self.key, what.as_bytes()])),
            )
        };
        let named = |name: &str, iban: Option<String>| {
            Some(Counterparty {
                name: name.to_owned(),
                iban,
            })
        };
        let mut mcc = None;
        let (description, counterparty) = match raw.what {
            What::Opening => ("Opening deposit".to_owned(), None),
            What::Salary => (
                format!("SALARY {month} {}", home.employer.to_uppercase()),
                named(home.employer, counter_iban("employer")),
            ),
            What::Rent => (
                format!("Rent {month}"),
                named(home.landlord, counter_iban("landlord")),
            ),
            What::Subscription(i) => {
                let (name, _, _, code) = SUBSCRIPTIONS[usize::from(i) % SUBSCRIPTIONS.len()];
                mcc = Some(code);
                (name.to_owned(), named(name, None))
            }
            What::Card { category, merchant } => {
                let market = market(raw.country.unwrap_or(home.country));
                let names = category.names(market);
                let name = names[usize::from(merchant) % names.len()];
                let city =
                    market.cities[(usize::from(merchant) + raw.date.day() as usize) % market.cities.len()];
                mcc = Some(category.mcc());
                let description = if matches!(category, Category::Online | Category::Digital) {
                    name.to_owned()
                } else {
                    format!("{name} {city}")
                };
                (description, named(name, None))
            }
            What::Atm => {
                mcc = Some(6011);
                (format!("ATM WITHDRAWAL {}", home.cities[0]), None)
            }
            What::Refund { merchant } => {
                let name = home.shops[usize::from(merchant) % home.shops.len()];
                (format!("REFUND {name}"), named(name, None))
            }
            What::FxFee => (format!("Non-{currency} transaction fee"), None),
            What::Interest => ("Interest".to_owned(), None),
            What::Own { other, .. } if self.account(other).is_some_and(|a| a.hidden) => (
                // The user's card at another issuer.
                "CARD SERVICES REPAYMENT".to_owned(),
                named("Card Services", None),
            ),
            What::Own {
                other,
                kind,
                incoming,
            } => {
                let other = self.account(other);
                let other_name = other.map_or("own account", |a| a.name.as_str());
                let direction = if incoming { "from" } else { "to" };
                (
                    format!("{} {direction} {other_name}", kind.label()),
                    named(self.user.name, other.and_then(|a| a.iban().map(str::to_owned))),
                )
            }
            What::Partner => (
                "Household contribution".to_owned(),
                named(CO_HOLDER_NAME, counter_iban("partner")),
            ),
            What::Utility(which) => {
                let name = home.utilities[usize::from(which) % home.utilities.len()];
                (format!("{name} {month}"), named(name, counter_iban(name)))
            }
            What::Freelance => {
                let local = markets::MARKETS
                    .iter()
                    .find(|m| m.currency == currency)
                    .unwrap_or(home);
                (
                    format!("Invoice {}-{:02}", raw.date.year(), u8::from(raw.date.month())),
                    named(
                        local.client,
                        make_iban(local.country.as_str(), None, account.tag ^ 0x5eed),
                    ),
                )
            }
        };
        let (amount, original) = raw.amounts(status);
        Transaction {
            id: self.transaction_id(account, raw),
            status,
            booking_date: (status == TransactionStatus::Booked).then(|| raw.booking_date()),
            value_date: raw.date,
            amount: Amount::new(amount, currency),
            original_amount: original.map(|(c, minor)| Amount::new(minor, c)),
            counterparty,
            description,
            merchant_category_code: mcc,
            country: raw.country,
        }
    }
}

fn month_name(date: Date) -> String {
    let name = match date.month() {
        Month::January => "JAN",
        Month::February => "FEB",
        Month::March => "MAR",
        Month::April => "APR",
        Month::May => "MAY",
        Month::June => "JUN",
        Month::July => "JUL",
        Month::August => "AUG",
        Month::September => "SEP",
        Month::October => "OCT",
        Month::November => "NOV",
        Month::December => "DEC",
    };
    format!("{name} {}", date.year())
}

fn is_weekend(date: Date) -> bool {
    matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
}

fn is_last_day_of_month(date: Date) -> bool {
    date.next_day().is_none_or(|next| next.month() != date.month())
}

/// The last weekday of the month (salaries are paid then).
fn is_last_business_day(date: Date) -> bool {
    if is_weekend(date) {
        return false;
    }
    let mut next = date.next_day();
    while let Some(day) = next {
        if day.month() != date.month() {
            return true;
        }
        if !is_weekend(day) {
            return false;
        }
        next = day.next_day();
    }
    true
}

/// The first weekday of the month (rent is due then).
fn is_first_business_day(date: Date) -> bool {
    if is_weekend(date) {
        return false;
    }
    let mut previous = date.previous_day();
    while let Some(day) = previous {
        if day.month() != date.month() {
            return true;
        }
        if !is_weekend(day) {
            return false;
        }
        previous = day.previous_day();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn business_days() {
        // 2026-01-31 is a Saturday: salary on Friday the 30th.
        assert!(is_last_business_day(date!(2026 - 01 - 30)));
        assert!(!is_last_business_day(date!(2026 - 01 - 31)));
        // 2026-02-01 is a Sunday: rent on Monday the 2nd.
        assert!(is_first_business_day(date!(2026 - 02 - 02)));
        assert!(!is_first_business_day(date!(2026 - 02 - 03)));
        assert!(is_last_day_of_month(date!(2024 - 02 - 29)));
    }

    #[test]
    fn transaction_ids_are_distinct_within_a_day_and_across_days() {
        let mut seen = std::collections::HashSet::new();
        for day in 0..400u64 {
            for seq in 0..20u64 {
                assert!(seen.insert(mix(7u64.wrapping_add((day << 16) | seq))));
            }
        }
    }
}
