//! The event codec: what the log stores must decode back to the same event,
//! forever. Unknown types, future schema versions and corrupt payloads are
//! typed errors, never panics or silently wrong events.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use paycore_domain::aggregated_account::{
    AccountIdentifier, AccountOwner, AccountPersonal, AggregatedAccountType, AggregatedTransaction, Balance,
    BalanceType, BankId, Counterparty, OwnerRole, TransactionPersonal, TransactionStatus,
};
use paycore_domain::aggregation_connection::{
    ActionRequiredReason, ConnectionSource, ConnectionStatus, Consent, SourceKind, SourceState,
};
use paycore_domain::aggregation_import::{ImportFailure, ImportKind, ImportParts, ImportProgress};
use paycore_domain::card::{CardBrand, CardInfo, CardNumber, Expiry};
use paycore_domain::card_payin::{AuthenticationType, DeclineReason};
use paycore_domain::customer::identity::{
    Address, Date, DocumentType, EmploymentStatus, Identity, IdentityDocument,
};
use paycore_domain::events::*;
use paycore_domain::kernel::bank::{Concept, Miniref, PayinReferenceCode};
use paycore_domain::kernel::fx::Rate;
use paycore_domain::kernel::iban::Iban;
use paycore_domain::kernel::institution::InstitutionId;
use paycore_domain::project::api_key::KeyKind;
use paycore_domain::*;
use uuid::Uuid;

const T: Timestamp = Timestamp::from_micros(1_750_000_000_123_456);

fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x0197_0000_0000_7000_8000_0000_0000_0000 | n)
}

fn meta() -> Meta {
    let mut violations = Violations::new();
    Meta::parse(
        [
            ("_name".to_owned(), "Main €".to_owned()),
            ("order".to_owned(), "42".to_owned()),
        ],
        "meta",
        &mut violations,
    )
    .expect("valid meta")
}

fn identity() -> Identity {
    Identity {
        first_name: "Zoë".into(),
        last_name: "O'Brien".into(),
        email_address: Some("zoe@example.com".into()),
        phone_number: Some("+353871234567".into()),
        nationality: Some("IE".into()),
        employment_status: Some(EmploymentStatus::SelfEmployed),
        address: Some(Address {
            line_1: "1 Main St".into(),
            line_2: "Apt 2".into(),
            postal_code: "D02".into(),
            city: "Dublin".into(),
            region: "Leinster".into(),
            country: "IE".into(),
        }),
        document: Some(IdentityDocument {
            document_type: DocumentType::Passport,
            country: "IE".into(),
            number: "P1234567".into(),
            expiration_date: Date::new(2031, 2, 28),
            front_file_id: Some(FileId::from_uuid(id(90))),
            back_file_id: None,
            selfie_file_id: Some(FileId::from_uuid(id(91))),
        }),
    }
}

/// One test number per brand, `Unknown` included.
const CARD_NUMBERS: [(&str, CardBrand); 9] = [
    ("4242424242424242", CardBrand::Visa),
    ("5555555555554444", CardBrand::Mastercard),
    ("378282246310005", CardBrand::AmericanExpress),
    ("6011111111111117", CardBrand::Discover),
    ("36227206271667", CardBrand::DinersClub),
    ("3566002020360505", CardBrand::Jcb),
    ("6759649826438453", CardBrand::Maestro),
    ("6200000000000005", CardBrand::Unionpay),
    ("9999999999999995", CardBrand::Unknown),
];

fn card_info(number: &str) -> CardInfo {
    let number = CardNumber::parse(number).expect("valid card number");
    let expiry = Expiry::new(12, 2030, 2025, 6).expect("valid expiry");
    CardInfo::new(&number, expiry, &[0x42; 32])
}

fn iban() -> Iban {
    Iban::parse("ES9121000418450200051332").expect("valid IBAN")
}

fn bank_account_info() -> BankAccountInfo {
    BankAccountInfo {
        iban: iban(),
        beneficiary_name: "Zoë O'Brien".into(),
    }
}

fn concept() -> Concept {
    Concept::parse("Invoice 42 ref FHKM-RTWX").expect("valid concept")
}

fn rate(text: &str) -> Rate {
    Rate::parse(text).expect("valid rate")
}

fn transaction(kind: TransactionKind, value: i64, after: i64) -> Transaction {
    Transaction {
        id: TransactionId::from_uuid(id(40)),
        account_id: AccountId::from_uuid(id(30)),
        project_id: ProjectId::from_uuid(id(1)),
        kind,
        value: Money::new(value, Currency::EUR),
        balance_after: Money::new(after, Currency::EUR),
        created_at: T,
    }
}

/// At least one event of every type, with every enum variant inside.
fn samples() -> Vec<Event> {
    let project = ProjectId::from_uuid(id(1));
    let transfer = TransferId::from_uuid(id(50));
    let account = AccountId::from_uuid(id(30));
    let mut events = vec![
        Event::ProjectCreated(ProjectCreated {
            id: project,
            name: "Acme".into(),
            environment: Environment::Sandbox,
            meta: meta(),
            created_at: T,
        }),
        Event::ProjectCreated(ProjectCreated {
            id: project,
            name: String::new(),
            environment: Environment::Live,
            meta: Meta::default(),
            created_at: Timestamp::from_micros(i64::MIN),
        }),
        Event::ProjectMetaUpdated(MetaUpdated { meta: meta() }),
        Event::ApiKeyCreated(ApiKeyCreated {
            id: ApiKeyId::from_uuid(id(10)),
            project_id: project,
            kind: KeyKind::Secret,
            secret_hash: [0xa5; 32],
            created_at: T,
        }),
        Event::ApiKeyCreated(ApiKeyCreated {
            id: ApiKeyId::from_uuid(id(11)),
            project_id: project,
            kind: KeyKind::Public,
            secret_hash: [0; 32],
            created_at: T,
        }),
        Event::ApiKeyRevoked(ApiKeyRevoked { revoked_at: T }),
        Event::CustomerCreated(CustomerCreated {
            id: CustomerId::from_uuid(id(20)),
            project_id: project,
            identity: Some(identity()),
            meta: meta(),
            created_at: T,
        }),
        Event::CustomerCreated(CustomerCreated {
            id: CustomerId::from_uuid(id(21)),
            project_id: project,
            identity: None,
            meta: Meta::default(),
            created_at: T,
        }),
        Event::CustomerIdentityUpdated(CustomerIdentityUpdated {
            identity: Some(identity()),
        }),
        Event::CustomerIdentityUpdated(CustomerIdentityUpdated { identity: None }),
        Event::CustomerMetaUpdated(MetaUpdated {
            meta: Meta::default(),
        }),
        Event::AccountOpened(AccountOpened {
            id: account,
            project_id: project,
            customer_id: Some(CustomerId::from_uuid(id(20))),
            currency: "JPY".parse().expect("JPY"),
            allow_negative_balance: true,
            meta: meta(),
            created_at: T,
        }),
        Event::NegativeBalanceAllowanceChanged(NegativeBalanceAllowanceChanged {
            allow_negative_balance: false,
        }),
        Event::AccountMetaUpdated(MetaUpdated { meta: meta() }),
        Event::TransactionRecorded(TransactionRecorded {
            transaction: transaction(TransactionKind::Magic, i64::MAX, i64::MAX),
        }),
        Event::TransactionRecorded(TransactionRecorded {
            transaction: transaction(TransactionKind::TransferSource(transfer), -250, i64::MIN),
        }),
        Event::TransactionRecorded(TransactionRecorded {
            transaction: transaction(TransactionKind::TransferDestination(transfer), 250, 0),
        }),
        Event::TransferCreated(TransferCreated {
            id: transfer,
            project_id: project,
            source_account_id: account,
            destination_account_id: AccountId::from_uuid(id(31)),
            source_transaction_id: TransactionId::from_uuid(id(41)),
            destination_transaction_id: TransactionId::from_uuid(id(42)),
            value: Money::new(250, Currency::USD),
            meta: meta(),
            created_at: T,
            exchange: Some(Exchange {
                destination_value: Money::new(269, "JPY".parse().expect("JPY")),
                mid_rate: rate("108.2"),
                spread_bps: 50,
                rate_used: rate("107.659"),
            }),
        }),
        Event::TransferCreated(TransferCreated {
            id: transfer,
            project_id: project,
            source_account_id: account,
            destination_account_id: AccountId::from_uuid(id(31)),
            source_transaction_id: TransactionId::from_uuid(id(41)),
            destination_transaction_id: TransactionId::from_uuid(id(42)),
            value: Money::new(250, Currency::USD),
            meta: Meta::default(),
            created_at: T,
            exchange: None,
        }),
        Event::TransferMetaUpdated(MetaUpdated { meta: meta() }),
        Event::ProjectBalanceChanged(ProjectBalanceChanged {
            project_id: project,
            delta: Money::new(-5, Currency::EUR),
            total_after: Money::new(0, Currency::EUR),
            account_id: account,
            transaction_id: TransactionId::from_uuid(id(40)),
        }),
    ];
    events.extend(money_in_and_out_samples());
    for resource in [
        ResourceRef::Project(project),
        ResourceRef::ApiKey(ApiKeyId::from_uuid(id(10))),
        ResourceRef::Customer(CustomerId::from_uuid(id(20))),
        ResourceRef::Account(account),
        ResourceRef::Transfer(transfer),
        ResourceRef::CardToken(CardTokenId::from_uuid(id(60))),
        ResourceRef::Card(CardId::from_uuid(id(61))),
        ResourceRef::CardPayin(CardPayinId::from_uuid(id(62))),
        ResourceRef::CardPayinRefund(CardPayinRefundId::from_uuid(id(63))),
        ResourceRef::BankAccount(BankAccountId::from_uuid(id(70))),
        ResourceRef::BankPayout(BankPayoutId::from_uuid(id(71))),
        ResourceRef::BankPayinReference(BankPayinReferenceId::from_uuid(id(72))),
        ResourceRef::BankPayin(BankPayinId::from_uuid(id(73))),
        ResourceRef::File(FileId::from_uuid(id(90))),
        ResourceRef::FxRate(Currency::EUR, Currency::USD),
        ResourceRef::AggregationConnection(AggregationConnectionId::from_uuid(id(100))),
        ResourceRef::AggregationImport(AggregationImportId::from_uuid(id(101))),
        ResourceRef::AggregatedAccount(AggregatedAccountId::from_uuid(id(102))),
    ] {
        events.push(Event::IdempotencyKeyUsed(IdempotencyKeyUsed {
            project_id: project,
            verbatim_key: None,
            request_hash: [0x5a; 32],
            resource,
            used_at: T,
        }));
    }
    events.extend(open_banking_samples());
    events.extend(two_phase_samples());
    events
}

/// Cards, payins, refunds, bank accounts, payouts, payin references, bank
/// payins, files and exchange rates, with every enum variant inside.
fn money_in_and_out_samples() -> Vec<Event> {
    let project = ProjectId::from_uuid(id(1));
    let account = AccountId::from_uuid(id(30));
    let customer = CustomerId::from_uuid(id(20));
    let token = CardTokenId::from_uuid(id(60));
    let card = CardId::from_uuid(id(61));
    let payin = CardPayinId::from_uuid(id(62));
    let refund = CardPayinRefundId::from_uuid(id(63));
    let bank_account = BankAccountId::from_uuid(id(70));
    let payout = BankPayoutId::from_uuid(id(71));
    let reference = BankPayinReferenceId::from_uuid(id(72));
    let bank_payin = BankPayinId::from_uuid(id(73));
    let tx = TransactionId::from_uuid(id(40));
    let later = Timestamp::from_micros(T.micros() + 600_000_000);
    let mut events = vec![
        Event::CardTokenCreated(CardTokenCreated {
            id: token,
            project_id: project,
            card_info: card_info(CARD_NUMBERS[0].0),
            created_at: T,
            expires_at: later,
        }),
        Event::CardTokenUsed(CardTokenUsed {
            used_by: TokenUse::Card(card),
            used_at: T,
        }),
        Event::CardTokenUsed(CardTokenUsed {
            used_by: TokenUse::CardPayin(payin),
            used_at: later,
        }),
    ];
    for (index, (number, brand)) in CARD_NUMBERS.iter().enumerate() {
        let info = card_info(number);
        assert_eq!(info.brand(), *brand, "{number}");
        let even = index % 2 == 0;
        events.push(Event::CardCreated(CardCreated {
            id: card,
            project_id: project,
            customer_id: even.then_some(customer),
            card_info: info,
            card_token_id: even.then_some(token),
            meta: if even { meta() } else { Meta::default() },
            created_at: T,
        }));
    }
    events.extend([
        Event::CardMetaUpdated(MetaUpdated { meta: meta() }),
        Event::CardPayinCreated(CardPayinCreated {
            id: payin,
            project_id: project,
            account_id: account,
            card_id: Some(card),
            card_token_id: None,
            card_info: card_info(CARD_NUMBERS[1].0),
            value: Money::new(12_345, Currency::EUR),
            authentication_type: AuthenticationType::ThreeDSecure,
            authentication_redirect_url: Some("https://shop.example/back?order=42".into()),
            meta: meta(),
            created_at: T,
        }),
        Event::CardPayinCreated(CardPayinCreated {
            id: payin,
            project_id: project,
            account_id: account,
            card_id: None,
            card_token_id: Some(token),
            card_info: card_info(CARD_NUMBERS[2].0),
            value: Money::new(1, Currency::USD),
            authentication_type: AuthenticationType::None,
            authentication_redirect_url: None,
            meta: Meta::default(),
            created_at: T,
        }),
        Event::CardPayinAuthenticationRequested(CardPayinAuthenticationRequested {
            authentication_url: "https://sandbox.paycore.example/3ds/cpi_x".into(),
        }),
        Event::CardPayinAuthorized(CardPayinAuthorized { authorized_at: T }),
    ]);
    for reason in DeclineReason::ALL {
        events.push(Event::CardPayinDeclined(CardPayinDeclined {
            reason,
            declined_at: T,
        }));
    }
    events.extend([
        Event::CardPayinSettled(CardPayinSettled {
            transaction_id: tx,
            settled_at: T,
        }),
        Event::CardPayinRefundChanged(CardPayinRefundChanged {
            refund_id: refund,
            delta: Money::new(2_000, Currency::EUR),
            refunded_value_after: Money::new(2_500, Currency::EUR),
        }),
        Event::CardPayinRefundChanged(CardPayinRefundChanged {
            refund_id: refund,
            delta: Money::new(-2_000, Currency::EUR),
            refunded_value_after: Money::new(500, Currency::EUR),
        }),
        Event::CardPayinMetaUpdated(MetaUpdated { meta: meta() }),
        Event::CardPayinRefundCreated(CardPayinRefundCreated {
            id: refund,
            project_id: project,
            card_payin_id: payin,
            account_id: account,
            transaction_id: tx,
            value: Money::new(2_000, Currency::EUR),
            meta: meta(),
            created_at: T,
        }),
        Event::CardPayinRefundCompleted(CardPayinRefundCompleted { completed_at: T }),
        Event::CardPayinRefundFailed(CardPayinRefundFailed {
            failure_transaction_id: TransactionId::from_uuid(id(43)),
            failed_at: T,
        }),
        Event::CardPayinRefundMetaUpdated(MetaUpdated { meta: meta() }),
        Event::BankAccountCreated(BankAccountCreated {
            id: bank_account,
            project_id: project,
            customer_id: Some(customer),
            bank_account_info: bank_account_info(),
            meta: meta(),
            created_at: T,
        }),
        Event::BankAccountCreated(BankAccountCreated {
            id: bank_account,
            project_id: project,
            customer_id: None,
            bank_account_info: BankAccountInfo {
                iban: Iban::parse("DE89370400440532013000").expect("valid IBAN"),
                beneficiary_name: "ACME GmbH".into(),
            },
            meta: Meta::default(),
            created_at: T,
        }),
        Event::BankAccountMetaUpdated(MetaUpdated { meta: meta() }),
        Event::BankPayoutCreated(BankPayoutCreated {
            id: payout,
            project_id: project,
            account_id: account,
            bank_account_id: Some(bank_account),
            bank_account_info: bank_account_info(),
            transaction_id: tx,
            concept: concept(),
            miniref: Miniref::from_index(123_456),
            value: Money::new(99_999, Currency::EUR),
            meta: meta(),
            created_at: T,
        }),
        Event::BankPayoutCreated(BankPayoutCreated {
            id: payout,
            project_id: project,
            account_id: account,
            bank_account_id: None,
            bank_account_info: bank_account_info(),
            transaction_id: tx,
            concept: Concept::parse("Rent").expect("valid concept"),
            miniref: Miniref::parse("AB12").expect("valid miniref"),
            value: Money::new(1, Currency::EUR),
            meta: Meta::default(),
            created_at: T,
        }),
        Event::BankPayoutCompleted(BankPayoutCompleted { completed_at: T }),
        Event::BankPayoutFailed(BankPayoutReversed {
            failure_transaction_id: TransactionId::from_uuid(id(44)),
            reversed_at: T,
        }),
        Event::BankPayoutReturned(BankPayoutReversed {
            failure_transaction_id: TransactionId::from_uuid(id(45)),
            reversed_at: later,
        }),
        Event::BankPayoutMetaUpdated(MetaUpdated { meta: meta() }),
        Event::MinirefAssigned(MinirefAssigned {
            project_id: project,
            bank_payout_id: payout,
            miniref: Miniref::from_index(123_456),
            assigned_at: T,
        }),
        Event::BankPayinReferenceCreated(BankPayinReferenceCreated {
            id: reference,
            project_id: project,
            account_id: account,
            reference: PayinReferenceCode::parse("FHKMRTWX").expect("valid code"),
            meta: meta(),
            created_at: T,
        }),
        Event::BankPayinReferenceAccountChanged(BankPayinReferenceAccountChanged {
            account_id: AccountId::from_uuid(id(31)),
        }),
        Event::BankPayinReferenceMetaUpdated(MetaUpdated { meta: meta() }),
        Event::PayinReferenceCodeClaimed(PayinReferenceCodeClaimed {
            project_id: project,
            bank_payin_reference_id: reference,
        }),
        Event::BankPayinReceived(BankPayinReceived {
            id: bank_payin,
            project_id: project,
            bank_payin_reference_id: reference,
            account_id: account,
            transaction_id: tx,
            concept: concept(),
            value: Money::new(4_200, Currency::EUR),
            meta: meta(),
            created_at: T,
        }),
        Event::BankPayinMetaUpdated(MetaUpdated { meta: meta() }),
        Event::FileUploaded(FileUploaded {
            id: FileId::from_uuid(id(90)),
            project_id: project,
            sha256: [0x3c; 32],
            name: "passport front.jpg".into(),
            size: 1_234_567,
            created_at: T,
        }),
        Event::FxRateSet(FxRateSet {
            from: Currency::EUR,
            to: Currency::USD,
            mid_rate: rate("1.0842"),
            spread_bps: 30,
            set_at: T,
        }),
        Event::FxRateRemoved(FxRateRemoved { removed_at: T }),
        Event::ConsumerPositionCommitted(ConsumerPositionCommitted {
            project_id: project,
            consumer: paycore_domain::consumer::ConsumerName::parse("billing-v2_eu").expect("valid name"),
            position: 1_234_567_890,
            committed_at: T,
        }),
        Event::DeploymentBootstrapped(DeploymentBootstrapped {
            sandbox_project_id: project,
            bootstrapped_at: T,
        }),
    ]);
    // Every kind of transaction.
    let kinds = [
        TransactionKind::CardPayin(payin),
        TransactionKind::CardPayinRefund(refund),
        TransactionKind::CardPayinRefundFailure(refund),
        TransactionKind::BankPayout(payout),
        TransactionKind::BankPayoutFailure(payout),
        TransactionKind::BankPayin(bank_payin),
    ];
    for kind in kinds {
        events.push(Event::TransactionRecorded(TransactionRecorded {
            transaction: transaction(kind, 100, 100),
        }));
    }
    events
}

/// Pending transfers, their phases, and the holds on accounts, with every
/// phase inside.
fn two_phase_samples() -> Vec<Event> {
    let project = ProjectId::from_uuid(id(1));
    let transfer = TransferId::from_uuid(id(51));
    let account = AccountId::from_uuid(id(30));
    let later = Timestamp::from_micros(T.micros() + 3_600_000_000);
    let mut events = vec![
        Event::PendingTransferCreated(PendingTransferCreated {
            id: transfer,
            project_id: project,
            source_account_id: account,
            destination_account_id: AccountId::from_uuid(id(31)),
            source_transaction_id: TransactionId::from_uuid(id(43)),
            destination_transaction_id: TransactionId::from_uuid(id(44)),
            value: Money::new(250, Currency::EUR),
            meta: meta(),
            created_at: T,
            expires_at: later,
        }),
        Event::PendingTransferPosted(PendingTransferPosted {
            value: Money::new(200, Currency::EUR),
            source_transaction_id: TransactionId::from_uuid(id(45)),
            destination_transaction_id: TransactionId::from_uuid(id(46)),
            posted_at: T,
        }),
        Event::PendingTransferVoided(PendingTransferVoided { voided_at: T }),
        Event::PendingTransferExpired(PendingTransferExpired { expired_at: later }),
    ];
    let phases = [
        (PendingPhase::Reserved, -250, 250, 0),
        (PendingPhase::Posted, -250, 0, 0),
        (PendingPhase::Voided, 250, 0, 0),
        (PendingPhase::Expired, 250, 0, i64::MAX),
    ];
    for (phase, value, debits_after, credits_after) in phases {
        events.push(Event::PendingTransactionRecorded(PendingTransactionRecorded {
            pending: PendingTransaction {
                id: TransactionId::from_uuid(id(43)),
                transfer_id: transfer,
                account_id: account,
                project_id: project,
                phase,
                value: Money::new(value, Currency::EUR),
                pending_debits_after: Money::new(debits_after, Currency::EUR),
                pending_credits_after: Money::new(credits_after, Currency::EUR),
                created_at: T,
            },
        }));
    }
    for kind in [
        TransactionKind::PostedTransferSource(transfer),
        TransactionKind::PostedTransferDestination(transfer),
    ] {
        events.push(Event::TransactionRecorded(TransactionRecorded {
            transaction: transaction(kind, -200, 50),
        }));
    }
    events
}

/// Institutions, aggregation connections, imports, aggregated accounts and
/// their transactions, with every enum variant inside.
fn open_banking_samples() -> Vec<Event> {
    let project = ProjectId::from_uuid(id(1));
    let customer = CustomerId::from_uuid(id(20));
    let connection = AggregationConnectionId::from_uuid(id(100));
    let import = AggregationImportId::from_uuid(id(101));
    let account = AggregatedAccountId::from_uuid(id(102));
    let institution = InstitutionId::parse("SANDBOX_GB_BANK").unwrap();
    let date = Date::new(2026, 12, 6).unwrap();
    let bank_id = |text: &str| BankId::parse(text).unwrap();
    let reasons = [
        ActionRequiredReason::ScaRequired,
        ActionRequiredReason::WebAuthenticationRequired,
        ActionRequiredReason::CredentialsInvalid,
        ActionRequiredReason::OneTimeCodeRequired,
        ActionRequiredReason::ConsentExpired,
    ];
    let sources = vec![
        ConnectionSource {
            kind: SourceKind::Psd2Api,
            state: SourceState::NotSynced,
            last_update: None,
            disabled: false,
            priority: 0,
        },
        ConnectionSource {
            kind: SourceKind::Web,
            state: SourceState::Unavailable,
            last_update: Some(T),
            disabled: true,
            priority: 1,
        },
    ];
    let personal = AccountPersonal {
        bank_account_id: bank_id("acc-7f3a"),
        name: "Cuenta Nómina".into(),
        identifier: Some(AccountIdentifier::Iban(iban())),
        owners: vec![
            AccountOwner {
                name: "Zoë O'Brien".into(),
                role: OwnerRole::Owner,
            },
            AccountOwner {
                name: "Ann O'Brien".into(),
                role: OwnerRole::CoOwner,
            },
            AccountOwner {
                name: "Acme Ltd".into(),
                role: OwnerRole::Representative,
            },
        ],
    };
    let mut events = vec![
        Event::InstitutionActivated(InstitutionActivated {
            project_id: project,
            institution_id: institution.clone(),
            activated_at: T,
        }),
        Event::InstitutionDeactivated(InstitutionDeactivated {
            project_id: project,
            institution_id: institution.clone(),
            deactivated_at: T,
        }),
        Event::AggregationConnectionCreated(AggregationConnectionCreated {
            id: connection,
            project_id: project,
            customer_id: customer,
            institution_id: Some(institution.clone()),
            sources: sources.clone(),
            redirect_url: Some("https://example.com/back".into()),
            created_at: T,
        }),
        Event::AggregationConnectionCreated(AggregationConnectionCreated {
            id: connection,
            project_id: project,
            customer_id: customer,
            institution_id: None,
            sources: Vec::new(),
            redirect_url: None,
            created_at: T,
        }),
        Event::AggregationInstitutionChosen(AggregationInstitutionChosen {
            institution_id: institution,
            sources: sources.clone(),
            chosen_at: T,
        }),
    ];
    let mut statuses = vec![
        ConnectionStatus::InitialActionRequired { reason: None },
        ConnectionStatus::Connecting,
        ConnectionStatus::Updating,
        ConnectionStatus::Connected,
        ConnectionStatus::RefreshDelayed {
            next_try_at: T.plus_seconds(60),
        },
    ];
    for reason in reasons {
        statuses.push(ConnectionStatus::InitialActionRequired { reason: Some(reason) });
        statuses.push(ConnectionStatus::ActionRequired { reason });
    }
    for status in statuses {
        events.push(Event::AggregationConnectionStatusChanged(
            AggregationConnectionStatusChanged {
                status,
                changed_at: T,
            },
        ));
    }
    let mut source_states = vec![SourceState::Synced];
    source_states.extend(reasons.map(|reason| SourceState::ActionRequired { reason }));
    for state in source_states {
        events.push(Event::AggregationSourceUpdated(AggregationSourceUpdated {
            source: ConnectionSource { state, ..sources[0] },
            updated_at: T,
        }));
    }
    let progress = ImportProgress {
        accounts_found: 5,
        accounts_done: 3,
        transactions_seen: 40_000,
        transactions_recorded: 39_000,
    };
    events.extend([
        Event::AggregationConsentGranted(AggregationConsentGranted {
            consent: Consent {
                granted_at: T,
                expires_at: T.plus_seconds(180 * 86_400),
            },
        }),
        Event::AggregationConsentExpired(AggregationConsentExpired { expired_at: T }),
        Event::AggregationConnectionAccountsFound(AggregationConnectionAccountsFound {
            account_ids: vec![account],
            found_at: T,
        }),
        Event::AggregationConnectionDeleted(AggregationConnectionDeleted { deleted_at: T }),
        Event::AggregationImportCreated(AggregationImportCreated {
            id: import,
            project_id: project,
            connection_id: connection,
            kind: ImportKind::Default,
            parts: ImportParts::ALL,
            history_from: date,
            created_at: T,
        }),
        Event::AggregationImportCreated(AggregationImportCreated {
            id: import,
            project_id: project,
            connection_id: connection,
            kind: ImportKind::Advanced,
            parts: ImportParts {
                owners: false,
                accounts: true,
                transactions: true,
                credit_cards: false,
            },
            history_from: date,
            created_at: T,
        }),
        Event::AggregationImportStarted(AggregationImportStarted { started_at: T }),
        Event::AggregationImportProgressed(AggregationImportProgressed {
            progress,
            progressed_at: T,
        }),
        Event::AggregationImportSucceeded(AggregationImportSucceeded {
            progress,
            finished_at: T,
        }),
    ]);
    let mut failures = vec![
        ImportFailure::BankUnavailable,
        ImportFailure::RateLimited {
            next_try_at: T.plus_seconds(3_600),
        },
        ImportFailure::ConnectionDeleted,
        ImportFailure::Internal,
    ];
    failures.extend(reasons.map(|reason| ImportFailure::ActionRequired { reason }));
    for reason in failures {
        events.push(Event::AggregationImportFailed(AggregationImportFailed {
            reason,
            detail: "bank answered 503".into(),
            finished_at: T,
        }));
    }
    events.push(Event::AggregatedAccountDiscovered(AggregatedAccountDiscovered {
        id: account,
        project_id: project,
        connection_id: connection,
        customer_id: customer,
        account_type: AggregatedAccountType::Current,
        currency: Currency::EUR,
        personal: personal.before_consent(),
        discovered_at: T,
    }));
    let balance_types = [
        BalanceType::ClosingBooked,
        BalanceType::Expected,
        BalanceType::InterimAvailable,
        BalanceType::InterimBooked,
        BalanceType::OpeningBooked,
        BalanceType::ForwardAvailable,
        BalanceType::CreditLimit,
    ];
    let account_types = [
        AggregatedAccountType::Savings,
        AggregatedAccountType::CreditCard,
        AggregatedAccountType::Loan,
        AggregatedAccountType::Investment,
        AggregatedAccountType::Other,
    ];
    let mut other = personal.clone();
    other.identifier = Some(AccountIdentifier::Other {
        scheme: "MASKED_PAN".into(),
        value: "****4242".into(),
    });
    for (i, account_type) in account_types.into_iter().enumerate() {
        events.push(Event::AggregatedAccountUpdated(AggregatedAccountUpdated {
            account_type,
            personal: if i == 0 { personal.clone() } else { other.clone() },
            balances: balance_types
                .iter()
                .map(|balance_type| Balance {
                    balance_type: *balance_type,
                    amount: Money::new(-1_234, Currency::EUR),
                    date,
                })
                .collect(),
            updated_at: T,
        }));
    }
    let transaction =
        |n: u128, status: TransactionStatus, personal: TransactionPersonal| AggregatedTransaction {
            id: AggregatedTransactionId::from_uuid(id(110 + n)),
            bank_transaction_id: bank_id("TX-0001"),
            status,
            booking_date: date,
            value_date: Some(date),
            amount: Money::new(-4_250, Currency::EUR),
            replaces: (n == 1).then(|| AggregatedTransactionId::from_uuid(id(110))),
            personal,
        };
    events.extend([
        Event::AggregatedAccountEnabled(AggregatedAccountEnabled { enabled_at: T }),
        Event::AggregatedAccountArchived(AggregatedAccountArchived { archived_at: T }),
        Event::AggregatedAccountUnarchived(AggregatedAccountUnarchived { unarchived_at: T }),
        Event::AggregatedTransactionsRecorded(AggregatedTransactionsRecorded {
            import_id: Some(import),
            transactions: vec![
                transaction(
                    0,
                    TransactionStatus::Pending,
                    TransactionPersonal {
                        counterparty: Some(Counterparty {
                            name: Some("Grocer".into()),
                            identifier: Some(AccountIdentifier::Iban(iban())),
                        }),
                        description: "Card payment".into(),
                    },
                ),
                transaction(1, TransactionStatus::Booked, TransactionPersonal::default()),
            ],
            recorded_at: T,
        }),
        Event::AggregatedTransactionsRemoved(AggregatedTransactionsRemoved {
            import_id: None,
            transaction_ids: vec![AggregatedTransactionId::from_uuid(id(110))],
            removed_at: T,
        }),
    ]);
    events
}

/// The schema version this build writes for an event type.
fn current_version(event_type: &str) -> u16 {
    match event_type {
        "TransferCreated" | "IdempotencyKeyUsed" => 2,
        _ => 1,
    }
}

#[test]
fn samples_cover_every_event_type() {
    let covered: BTreeSet<&str> = samples().iter().map(Event::event_type).collect();
    let known: BTreeSet<&str> = Event::TYPES.iter().copied().collect();
    assert_eq!(
        covered, known,
        "add a sample (and a golden payload) for every new event type"
    );
    assert_eq!(known.len(), Event::TYPES.len(), "event type names are unique");
}

#[test]
fn every_event_decodes_what_it_encodes() {
    for event in samples() {
        let encoded = event.encode();
        assert_eq!(encoded.event_type, event.event_type());
        assert_eq!(
            encoded.schema_version,
            current_version(encoded.event_type),
            "{}",
            encoded.event_type
        );
        assert!(!encoded.payload.is_empty() || matches!(event, Event::CustomerMetaUpdated(_)));
        let decoded = Event::decode(encoded.event_type, encoded.schema_version, &encoded.payload);
        assert_eq!(decoded.as_ref(), Ok(&event), "{}", encoded.event_type);
        // Decoding is deterministic: encoding again gives the same bytes.
        assert_eq!(decoded.expect("decoded").encode(), encoded);
    }
}

#[test]
fn unknown_type_is_a_typed_error() {
    for name in ["", "AccountClosed", "accountopened", "AccountOpened ", "Event"] {
        assert_eq!(
            Event::decode(name, 1, &[]),
            Err(DecodeError::UnknownType(name.to_owned())),
            "{name:?}"
        );
    }
}

#[test]
fn future_schema_version_is_a_typed_error() {
    for event in samples() {
        let encoded = event.encode();
        let known = current_version(encoded.event_type);
        for version in [known + 1, 7, u16::MAX] {
            assert_eq!(
                Event::decode(encoded.event_type, version, &encoded.payload),
                Err(DecodeError::FutureVersion {
                    event_type: encoded.event_type.to_owned(),
                    found: version,
                    known,
                }),
            );
        }
    }
}

#[test]
fn garbage_payload_is_a_typed_error() {
    let is_version_payload_error =
        |result: Result<Event, DecodeError>, event_type: &str, expected_version: u16| match result {
            Err(DecodeError::Payload {
                event_type: t,
                version,
                reason,
            }) => {
                assert_eq!((t.as_str(), version), (event_type, expected_version));
                assert!(!reason.is_empty());
            }
            other => panic!("{event_type} v{expected_version}: expected a payload error, got {other:?}"),
        };
    let is_payload_error = |result: Result<Event, DecodeError>, event_type: &str| {
        is_version_payload_error(result, event_type, 1)
    };
    for event in samples() {
        let encoded = event.encode();
        let name = encoded.event_type;
        let version = encoded.schema_version;
        // Cut short anywhere: never a panic, never a wrong event.
        for len in 0..encoded.payload.len() {
            let result = Event::decode(name, version, &encoded.payload[..len]);
            is_version_payload_error(result, name, version);
        }
        // Bytes that are not a varint at all, at every version this build reads.
        for version in 1..=version {
            is_version_payload_error(Event::decode(name, version, &[0xff; 11]), name, version);
        }
    }
    // A v1 TransferCreated cut short fails in the upcaster, as version 1.
    let v1 = hex::decode(TRANSFER_CREATED_V1).expect("hex");
    for len in 0..v1.len() {
        is_version_payload_error(
            Event::decode("TransferCreated", 1, &v1[..len]),
            "TransferCreated",
            1,
        );
    }
    // Version 0 never existed.
    is_version_payload_error(Event::decode("TransferCreated", 0, &v1), "TransferCreated", 0);
    // An enum discriminant out of range (environment 9).
    let mut bytes = samples()[0].encode().payload;
    // The ID is a length byte and 16 bytes, the name a length byte and text.
    let environment_at = 1 + 16 + 1 + "Acme".len();
    assert_eq!(bytes[environment_at], 0, "Sandbox is variant 0");
    bytes[environment_at] = 9;
    is_payload_error(Event::decode("ProjectCreated", 1, &bytes), "ProjectCreated");
    // Text that is not UTF-8 (the name's first byte starts a 2-byte sequence).
    let mut bytes = samples()[0].encode().payload;
    bytes[1 + 16 + 1] = 0xc3;
    is_payload_error(Event::decode("ProjectCreated", 1, &bytes), "ProjectCreated");
}

/// The stored bytes of one event per type. If this fails, a payload's shape
/// changed: old logs would no longer decode. Bump the type's schema version,
/// keep the old struct and upcast it in `Event::decode` (see events.rs), then
/// update the bytes here.
#[test]
fn payload_bytes_are_stable() {
    let golden: &[(&str, &str)] = &[
        (
            "ProjectCreated",
            "10019700000000700080000000000000010441636d650002055f6e616d65084d61696e20e282ac056f726465720234328089ea85b4e79b06",
        ),
        (
            "ProjectMetaUpdated",
            "02055f6e616d65084d61696e20e282ac056f72646572023432",
        ),
        (
            "ApiKeyCreated",
            "100197000000007000800000000000000a100197000000007000800000000000000100a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a58089ea85b4e79b06",
        ),
        ("ApiKeyRevoked", "8089ea85b4e79b06"),
        (
            "CustomerCreated",
            "1001970000000070008000000000000014100197000000007000800000000000000101045a6fc3ab074f27427269656e010f7a6f65406578616d706c652e636f6d010d2b333533383731323334353637010249450102010931204d61696e20537405417074203203443032064475626c696e084c65696e73746572024945010102494508503132333435363701ef0f021c01100197000000007000800000000000005a0001100197000000007000800000000000005b02055f6e616d65084d61696e20e282ac056f726465720234328089ea85b4e79b06",
        ),
        (
            "CustomerIdentityUpdated",
            "01045a6fc3ab074f27427269656e010f7a6f65406578616d706c652e636f6d010d2b333533383731323334353637010249450102010931204d61696e20537405417074203203443032064475626c696e084c65696e73746572024945010102494508503132333435363701ef0f021c01100197000000007000800000000000005a0001100197000000007000800000000000005b",
        ),
        ("CustomerMetaUpdated", "00"),
        (
            "AccountOpened",
            "100197000000007000800000000000001e10019700000000700080000000000000010110019700000000700080000000000000144a50590102055f6e616d65084d61696e20e282ac056f726465720234328089ea85b4e79b06",
        ),
        ("NegativeBalanceAllowanceChanged", "00"),
        (
            "AccountMetaUpdated",
            "02055f6e616d65084d61696e20e282ac056f72646572023432",
        ),
        (
            "TransactionRecorded",
            "1001970000000070008000000000000028100197000000007000800000000000001e100197000000007000800000000000000100feffffffffffffffff01455552feffffffffffffffff014555528089ea85b4e79b06",
        ),
        (
            "TransferCreated",
            "10019700000000700080000000000000321001970000000070008000000000000001100197000000007000800000000000001e100197000000007000800000000000001f1001970000000070008000000000000029100197000000007000800000000000002af40355534402055f6e616d65084d61696e20e282ac056f726465720234328089ea85b4e79b06019a044a505980f4e389930332c0f1e7879103",
        ),
        (
            "TransferMetaUpdated",
            "02055f6e616d65084d61696e20e282ac056f72646572023432",
        ),
        (
            "ProjectBalanceChanged",
            "10019700000000700080000000000000010945555200455552100197000000007000800000000000001e1001970000000070008000000000000028",
        ),
        (
            "CardTokenCreated",
            "100197000000007000800000000000003c1001970000000070008000000000000001103432343234322a2a2a2a2a2a34323432000cee0f10496f735149364539357966726e5963748089ea85b4e79b0680a184c2b8e79b06",
        ),
        (
            "CardTokenUsed",
            "00100197000000007000800000000000003d8089ea85b4e79b06",
        ),
        (
            "CardCreated",
            "100197000000007000800000000000003d1001970000000070008000000000000001011001970000000070008000000000000014103432343234322a2a2a2a2a2a34323432000cee0f10496f735149364539357966726e59637401100197000000007000800000000000003c02055f6e616d65084d61696e20e282ac056f726465720234328089ea85b4e79b06",
        ),
        (
            "CardMetaUpdated",
            "02055f6e616d65084d61696e20e282ac056f72646572023432",
        ),
        (
            "CardPayinCreated",
            "100197000000007000800000000000003e1001970000000070008000000000000001100197000000007000800000000000001e01100197000000007000800000000000003d00103535353535352a2a2a2a2a2a34343434010cee0f10753732334f6a6e6b4c59364b6972467af2c00145555201012268747470733a2f2f73686f702e6578616d706c652f6261636b3f6f726465723d343202055f6e616d65084d61696e20e282ac056f726465720234328089ea85b4e79b06",
        ),
        (
            "CardPayinAuthenticationRequested",
            "2968747470733a2f2f73616e64626f782e706179636f72652e6578616d706c652f3364732f6370695f78",
        ),
        ("CardPayinAuthorized", "8089ea85b4e79b06"),
        ("CardPayinDeclined", "008089ea85b4e79b06"),
        (
            "CardPayinSettled",
            "10019700000000700080000000000000288089ea85b4e79b06",
        ),
        (
            "CardPayinRefundChanged",
            "100197000000007000800000000000003fa01f4555528827455552",
        ),
        (
            "CardPayinMetaUpdated",
            "02055f6e616d65084d61696e20e282ac056f72646572023432",
        ),
        (
            "CardPayinRefundCreated",
            "100197000000007000800000000000003f1001970000000070008000000000000001100197000000007000800000000000003e100197000000007000800000000000001e1001970000000070008000000000000028a01f45555202055f6e616d65084d61696e20e282ac056f726465720234328089ea85b4e79b06",
        ),
        ("CardPayinRefundCompleted", "8089ea85b4e79b06"),
        (
            "CardPayinRefundFailed",
            "100197000000007000800000000000002b8089ea85b4e79b06",
        ),
        (
            "CardPayinRefundMetaUpdated",
            "02055f6e616d65084d61696e20e282ac056f72646572023432",
        ),
        (
            "BankAccountCreated",
            "10019700000000700080000000000000461001970000000070008000000000000001011001970000000070008000000000000014184553393132313030303431383435303230303035313333320c5a6fc3ab204f27427269656e02055f6e616d65084d61696e20e282ac056f726465720234328089ea85b4e79b06",
        ),
        (
            "BankAccountMetaUpdated",
            "02055f6e616d65084d61696e20e282ac056f72646572023432",
        ),
        (
            "BankPayoutCreated",
            "10019700000000700080000000000000471001970000000070008000000000000001100197000000007000800000000000001e011001970000000070008000000000000046184553393132313030303431383435303230303035313333320c5a6fc3ab204f27427269656e100197000000007000800000000000002818496e766f696365203432207265662046484b4d2d5254575806333736595839be9a0c45555202055f6e616d65084d61696e20e282ac056f726465720234328089ea85b4e79b06",
        ),
        ("BankPayoutCompleted", "8089ea85b4e79b06"),
        (
            "BankPayoutFailed",
            "100197000000007000800000000000002c8089ea85b4e79b06",
        ),
        (
            "BankPayoutReturned",
            "100197000000007000800000000000002d80a184c2b8e79b06",
        ),
        (
            "BankPayoutMetaUpdated",
            "02055f6e616d65084d61696e20e282ac056f72646572023432",
        ),
        (
            "MinirefAssigned",
            "10019700000000700080000000000000011001970000000070008000000000000047063337365958398089ea85b4e79b06",
        ),
        (
            "BankPayinReferenceCreated",
            "10019700000000700080000000000000481001970000000070008000000000000001100197000000007000800000000000001e0846484b4d5254575802055f6e616d65084d61696e20e282ac056f726465720234328089ea85b4e79b06",
        ),
        (
            "BankPayinReferenceAccountChanged",
            "100197000000007000800000000000001f",
        ),
        (
            "BankPayinReferenceMetaUpdated",
            "02055f6e616d65084d61696e20e282ac056f72646572023432",
        ),
        (
            "PayinReferenceCodeClaimed",
            "10019700000000700080000000000000011001970000000070008000000000000048",
        ),
        (
            "BankPayinReceived",
            "100197000000007000800000000000004910019700000000700080000000000000011001970000000070008000000000000048100197000000007000800000000000001e100197000000007000800000000000002818496e766f696365203432207265662046484b4d2d52545758d04145555202055f6e616d65084d61696e20e282ac056f726465720234328089ea85b4e79b06",
        ),
        (
            "BankPayinMetaUpdated",
            "02055f6e616d65084d61696e20e282ac056f72646572023432",
        ),
        (
            "FileUploaded",
            "100197000000007000800000000000005a10019700000000700080000000000000013c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c1270617373706f72742066726f6e742e6a706787ad4b8089ea85b4e79b06",
        ),
        ("FxRateSet", "455552555344c0a8fe84041e8089ea85b4e79b06"),
        ("FxRateRemoved", "8089ea85b4e79b06"),
        (
            "ConsumerPositionCommitted",
            "10019700000000700080000000000000010d62696c6c696e672d76325f6575d285d8cc048089ea85b4e79b06",
        ),
        (
            "DeploymentBootstrapped",
            "10019700000000700080000000000000018089ea85b4e79b06",
        ),
        (
            "IdempotencyKeyUsed",
            "1001970000000070008000000000000001005a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a0010019700000000700080000000000000018089ea85b4e79b06",
        ),
        (
            "InstitutionActivated",
            "10019700000000700080000000000000010f53414e44424f585f47425f42414e4b8089ea85b4e79b06",
        ),
        (
            "InstitutionDeactivated",
            "10019700000000700080000000000000010f53414e44424f585f47425f42414e4b8089ea85b4e79b06",
        ),
        (
            "AggregationConnectionCreated",
            "100197000000007000800000000000006410019700000000700080000000000000011001970000000070008000000000000014010f53414e44424f585f47425f42414e4b0201000000000003018089ea85b4e79b060101011868747470733a2f2f6578616d706c652e636f6d2f6261636b8089ea85b4e79b06",
        ),
        (
            "AggregationInstitutionChosen",
            "0f53414e44424f585f47425f42414e4b0201000000000003018089ea85b4e79b0601018089ea85b4e79b06",
        ),
        ("AggregationConnectionStatusChanged", "00008089ea85b4e79b06"),
        ("AggregationSourceUpdated", "01010000008089ea85b4e79b06"),
        ("AggregationConsentGranted", "8089ea85b4e79b068089e6bcd3f0a206"),
        ("AggregationConsentExpired", "8089ea85b4e79b06"),
        (
            "AggregationConnectionAccountsFound",
            "0110019700000000700080000000000000668089ea85b4e79b06",
        ),
        ("AggregationConnectionDeleted", "8089ea85b4e79b06"),
        (
            "AggregationImportCreated",
            "1001970000000070008000000000000065100197000000007000800000000000000110019700000000700080000000000000640001010101ea0f0c068089ea85b4e79b06",
        ),
        ("AggregationImportStarted", "8089ea85b4e79b06"),
        ("AggregationImportProgressed", "0503c0b802d8b0028089ea85b4e79b06"),
        ("AggregationImportSucceeded", "0503c0b802d8b0028089ea85b4e79b06"),
        (
            "AggregationImportFailed",
            "011162616e6b20616e737765726564203530338089ea85b4e79b06",
        ),
        (
            "AggregatedAccountDiscovered",
            "100197000000007000800000000000006610019700000000700080000000000000011001970000000070008000000000000064100197000000007000800000000000001400455552086163632d376633610e4375656e7461204ec3b36d696e6100008089ea85b4e79b06",
        ),
        (
            "AggregatedAccountUpdated",
            "01086163632d376633610e4375656e7461204ec3b36d696e61010018455339313231303030343138343530323030303531333332030c5a6fc3ab204f27427269656e000b416e6e204f27427269656e010841636d65204c7464020700a313455552ea0f0c0601a313455552ea0f0c0602a313455552ea0f0c0603a313455552ea0f0c0604a313455552ea0f0c0605a313455552ea0f0c0606a313455552ea0f0c068089ea85b4e79b06",
        ),
        ("AggregatedAccountEnabled", "8089ea85b4e79b06"),
        ("AggregatedAccountArchived", "8089ea85b4e79b06"),
        ("AggregatedAccountUnarchived", "8089ea85b4e79b06"),
        (
            "AggregatedTransactionsRecorded",
            "01100197000000007000800000000000006502100197000000007000800000000000006e0754582d3030303100ea0f0c0601ea0f0c06b3424555520001010647726f6365720100184553393132313030303431383435303230303035313333320c43617264207061796d656e74100197000000007000800000000000006f0754582d3030303101ea0f0c0601ea0f0c06b34245555201100197000000007000800000000000006e00008089ea85b4e79b06",
        ),
        (
            "AggregatedTransactionsRemoved",
            "0001100197000000007000800000000000006e8089ea85b4e79b06",
        ),
        (
            "PendingTransferCreated",
            "10019700000000700080000000000000331001970000000070008000000000000001100197000000007000800000000000001e100197000000007000800000000000001f100197000000007000800000000000002b100197000000007000800000000000002cf40345555202055f6e616d65084d61696e20e282ac056f726465720234328089ea85b4e79b06809987efcee79b06",
        ),
        (
            "PendingTransferPosted",
            "9003455552100197000000007000800000000000002d100197000000007000800000000000002e8089ea85b4e79b06",
        ),
        ("PendingTransferVoided", "8089ea85b4e79b06"),
        ("PendingTransferExpired", "809987efcee79b06"),
        (
            "PendingTransactionRecorded",
            "100197000000007000800000000000002b1001970000000070008000000000000033100197000000007000800000000000001e100197000000007000800000000000000100f303455552f403455552004555528089ea85b4e79b06",
        ),
    ];
    let mut actual: Vec<(&str, String)> = Vec::new();
    for event in samples() {
        let encoded = event.encode();
        if actual.iter().all(|(name, _)| *name != encoded.event_type) {
            actual.push((encoded.event_type, hex::encode(&encoded.payload)));
        }
    }
    let expected: Vec<(&str, String)> = golden
        .iter()
        .map(|(name, hex)| (*name, (*hex).to_owned()))
        .collect();
    if actual != expected {
        let table: String = actual
            .iter()
            .map(|(name, hex)| format!("        (\"{name}\", \"{hex}\"),\n"))
            .collect();
        panic!("stored payload bytes changed; the current table is:\n{table}");
    }
}

/// An `IdempotencyKeyUsed` as schema version 1 stored it, with the key as
/// the client sent it: the golden bytes of its first sample before v2.
const IDEMPOTENCY_KEY_USED_V1: &str = "1001970000000070008000000000000001097265712d30314a7e785a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a0010019700000000700080000000000000018089ea85b4e79b06";

#[test]
fn idempotency_key_used_v1_keeps_its_verbatim_key() {
    let bytes = hex::decode(IDEMPOTENCY_KEY_USED_V1).expect("hex");
    let decoded = Event::decode("IdempotencyKeyUsed", 1, &bytes).expect("v1 decodes");
    let project = ProjectId::from_uuid(id(1));
    let Event::IdempotencyKeyUsed(used) = &decoded else {
        panic!("{decoded:?}");
    };
    assert_eq!(used.project_id, project);
    assert_eq!(used.verbatim_key.as_deref(), Some("req-01J~x"));
    assert_eq!(used.request_hash, [0x5a; 32]);
    assert_eq!(used.used_at, T);
    // Written today, it is version 2 and keeps no key.
    assert_eq!(decoded.encode().schema_version, 2);
}

/// A `TransferCreated` as schema version 1 stored it (before `exchange`):
/// the golden bytes of the first sample before v2.
const TRANSFER_CREATED_V1: &str = "10019700000000700080000000000000321001970000000070008000000000000001100197000000007000800000000000001e100197000000007000800000000000001f1001970000000070008000000000000029100197000000007000800000000000002af40355534402055f6e616d65084d61696e20e282ac056f726465720234328089ea85b4e79b06";

#[test]
fn transfer_created_v1_is_upcast_without_exchange() {
    let old = TransferCreatedV1 {
        id: TransferId::from_uuid(id(50)),
        project_id: ProjectId::from_uuid(id(1)),
        source_account_id: AccountId::from_uuid(id(30)),
        destination_account_id: AccountId::from_uuid(id(31)),
        source_transaction_id: TransactionId::from_uuid(id(41)),
        destination_transaction_id: TransactionId::from_uuid(id(42)),
        value: Money::new(250, Currency::USD),
        meta: meta(),
        created_at: T,
    };
    // The golden bytes are the old shape, as the old build wrote it.
    assert_eq!(
        hex::encode(postcard::to_stdvec(&old).expect("encodes")),
        TRANSFER_CREATED_V1
    );
    let bytes = hex::decode(TRANSFER_CREATED_V1).expect("hex");
    let decoded = Event::decode("TransferCreated", 1, &bytes).expect("v1 decodes");
    let expected = TransferCreated {
        id: old.id,
        project_id: old.project_id,
        source_account_id: old.source_account_id,
        destination_account_id: old.destination_account_id,
        source_transaction_id: old.source_transaction_id,
        destination_transaction_id: old.destination_transaction_id,
        value: old.value,
        meta: old.meta.clone(),
        created_at: old.created_at,
        exchange: None,
    };
    assert_eq!(decoded, Event::TransferCreated(expected.clone()));
    assert_eq!(TransferCreated::from(old), expected);
    if let Event::TransferCreated(created) = &decoded {
        assert_eq!(created.destination_value(), created.value);
    }
    // Re-encoded, it is written as v2: the old bytes plus "no exchange".
    let encoded = decoded.encode();
    assert_eq!(encoded.schema_version, 2);
    assert_eq!(hex::encode(&encoded.payload), format!("{TRANSFER_CREATED_V1}00"));
    assert_eq!(Event::decode("TransferCreated", 2, &encoded.payload), Ok(decoded));
}

#[test]
fn a_state_folded_from_v1_transfers_has_no_exchange() {
    let bytes = hex::decode(TRANSFER_CREATED_V1).expect("hex");
    let event = Event::decode("TransferCreated", 1, &bytes).expect("v1 decodes");
    let state = Aggregate::replay([&event]);
    let transfer = state.as_transfer().expect("a transfer");
    assert_eq!(transfer.exchange, None);
    assert_eq!(transfer.value, Money::new(250, Currency::USD));
}

/// The upcasting path, exercised with a payload that changed shape: version
/// 1 had only `amount`; version 2 added `note`. Old events decode into the
/// new shape through the same function the event codec uses.
mod upcasting {
    use paycore_domain::events::{DecodeError, Versioned, decode_payload};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct WidgetV1 {
        amount: i64,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Widget {
        amount: i64,
        note: String,
    }

    impl Versioned for Widget {
        const VERSION: u16 = 2;

        fn upcast(version: u16, payload: &[u8]) -> Option<Result<Self, postcard::Error>> {
            (version == 1).then(|| {
                postcard::from_bytes::<WidgetV1>(payload).map(|old| Widget {
                    amount: old.amount,
                    note: String::new(),
                })
            })
        }
    }

    #[test]
    fn an_old_version_is_upcast_and_the_current_one_read_as_is() {
        let v1 = postcard::to_stdvec(&WidgetV1 { amount: 42 }).unwrap();
        assert_eq!(
            decode_payload::<Widget>("Widget", 1, &v1),
            Ok(Widget {
                amount: 42,
                note: String::new()
            })
        );
        let v2 = postcard::to_stdvec(&Widget {
            amount: 7,
            note: "x".into(),
        })
        .unwrap();
        assert_eq!(
            decode_payload::<Widget>("Widget", 2, &v2),
            Ok(Widget {
                amount: 7,
                note: "x".into()
            })
        );
        assert!(matches!(
            decode_payload::<Widget>("Widget", 3, &v2),
            Err(DecodeError::FutureVersion {
                found: 3,
                known: 2,
                ..
            })
        ));
        assert!(matches!(
            decode_payload::<Widget>("Widget", 0, &v1),
            Err(DecodeError::Payload { version: 0, .. })
        ));
    }
}

/// Catalogue and bank IDs are checked when decoded, as when parsed: a
/// payload naming `SANDBOX.GB_BANK` (a `.` would split its stream name) is
/// a typed error.
#[test]
fn institution_and_bank_ids_are_checked_when_decoded() {
    let good =
        hex::decode("10019700000000700080000000000000010f53414e44424f585f47425f42414e4b8089ea85b4e79b06")
            .unwrap();
    assert!(Event::decode("InstitutionActivated", 1, &good).is_ok());
    let bad: Vec<u8> = hex::encode(&good)
        .replace("53414e44424f585f", "53414e44424f582e")
        .as_bytes()
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect();
    assert!(matches!(
        Event::decode("InstitutionActivated", 1, &bad),
        Err(DecodeError::Payload { .. })
    ));
}
