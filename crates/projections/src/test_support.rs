//! A ledger written through the real engine, for the projections' tests
//! (unit tests use it as a module, integration tests include the file).
#![allow(clippy::unwrap_used, dead_code)] // test fixtures: a failure is the test failing

use std::sync::Arc;

use paycore_domain::account::AccountCommand;
use paycore_domain::project::ProjectCommand;
use paycore_domain::transfer::TransferCommand;
use paycore_domain::{
    AccountId, Command, CommandEnvelope, Currency, Environment, Meta, Money, ProjectId, Timestamp,
    TransactionId, TransferId,
};
use paycore_engine::{Engine, EngineConfig};
use paycore_store::{EventStore, Position};
use uuid::Uuid;

/// What the first account is funded with.
pub const FUNDING: i64 = 1_000_000;

/// A sandbox project with two EUR accounts, the first one funded.
pub struct Ledger {
    pub engine: Engine,
    pub project: ProjectId,
    pub a: AccountId,
    pub b: AccountId,
    /// Position of the last event written.
    pub last: Position,
}

impl Ledger {
    pub async fn execute(&mut self, command: Command) -> Position {
        let envelope = CommandEnvelope {
            project_id: self.project,
            now: Timestamp::from_micros(1_700_000_000_000_000),
            idempotency: None,
            command,
        };
        self.last = self.engine.execute(envelope).await.unwrap().position;
        self.last
    }

    /// Moves 1 from the first account to the second.
    pub async fn transfer(&mut self) -> Position {
        self.execute(
            TransferCommand::CreateTransfer {
                id: TransferId::from_uuid(Uuid::now_v7()),
                source_account_id: self.a,
                destination_account_id: self.b,
                value: Money::new(1, Currency::EUR),
                meta: Meta::default(),
                source_transaction_id: TransactionId::from_uuid(Uuid::now_v7()),
                destination_transaction_id: TransactionId::from_uuid(Uuid::now_v7()),
                pending: None,
            }
            .into(),
        )
        .await
    }
}

/// A funded ledger with `transfers` transfers of 1 from `a` to `b`.
pub async fn ledger(store: Arc<dyn EventStore>, transfers: usize) -> Ledger {
    let project = ProjectId::from_uuid(Uuid::now_v7());
    let mut ledger = Ledger {
        engine: Engine::start(store, EngineConfig::default()),
        project,
        a: AccountId::from_uuid(Uuid::now_v7()),
        b: AccountId::from_uuid(Uuid::now_v7()),
        last: 0,
    };
    ledger
        .execute(
            ProjectCommand::CreateProject {
                id: project,
                name: "P".into(),
                environment: Environment::Sandbox,
                meta: Meta::default(),
            }
            .into(),
        )
        .await;
    for id in [ledger.a, ledger.b] {
        ledger
            .execute(
                AccountCommand::CreateAccount {
                    id,
                    currency: Currency::EUR,
                    customer_id: None,
                    allow_negative_balance: false,
                    meta: Meta::default(),
                }
                .into(),
            )
            .await;
    }
    ledger
        .execute(
            AccountCommand::UpdateAccount {
                id: ledger.a,
                allow_negative_balance: None,
                meta: None,
                balance: Some((
                    Money::new(FUNDING, Currency::EUR),
                    TransactionId::from_uuid(Uuid::now_v7()),
                )),
            }
            .into(),
        )
        .await;
    for _ in 0..transfers {
        ledger.transfer().await;
    }
    ledger
}
