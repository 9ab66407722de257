#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

//! The facade against the real engine, read models and in-memory store, over
//! loopback with the generated clients: wiring, auth, idempotency, the error
//! model and read-your-writes. (The full end-to-end suite lives in `tests/`.)

use std::sync::Arc;

use paycore_domain::project::ProjectCommand;
use paycore_domain::project::api_key::{ApiKeyToken, KeyKind};
use paycore_domain::{ApiKeyId, Command, CommandEnvelope, Environment, Meta, ProjectId, Timestamp};
use paycore_engine::{Engine, EngineConfig};
use paycore_grpc::{
    AccountServiceClient, Api, AppState, CustomerServiceClient, ProjectServiceClient,
    TransactionServiceClient, TransferServiceClient, pb,
};
use paycore_projections::{ModelStorage, ReadModels};
use paycore_store::{EventStore, MemoryStore};
use tonic::transport::Channel;
use tonic::{Code, Request};
use tonic_types::StatusExt;
use uuid::Uuid;

struct Server {
    channel: Channel,
    engine: Engine,
    project: ProjectId,
    key: String,
}

async fn run(engine: &Engine, project: ProjectId, command: Command) {
    let envelope = CommandEnvelope {
        project_id: project,
        now: Timestamp::from_micros(1_700_000_000_000_000),
        idempotency: None,
        command,
    };
    engine.execute(envelope).await.unwrap();
}

async fn create_key(
    engine: &Engine,
    project: ProjectId,
    environment: Environment,
    kind: KeyKind,
) -> ApiKeyToken {
    let id = ApiKeyId::from_uuid(Uuid::now_v7());
    let token = ApiKeyToken::new(
        environment,
        kind,
        id,
        *Uuid::now_v7().as_bytes().repeat(2).first_chunk().unwrap(),
    );
    run(
        engine,
        project,
        ProjectCommand::CreateApiKey {
            id,
            kind,
            secret_hash: token.secret_hash(),
        }
        .into(),
    )
    .await;
    token
}

async fn start(environment: Environment) -> Server {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let engine = Engine::start(store.clone(), EngineConfig::default());
    let read = ReadModels::start(store, ModelStorage::in_memory()).await.unwrap();
    let project = ProjectId::from_uuid(Uuid::now_v7());
    run(
        &engine,
        project,
        ProjectCommand::CreateProject {
            id: project,
            name: "Test".into(),
            environment,
            meta: Meta::default(),
        }
        .into(),
    )
    .await;
    let key = create_key(&engine, project, environment, KeyKind::Secret)
        .await
        .to_string();

    let api = Api::build(AppState::new(
        engine.clone(),
        read,
        paycore_grpc::SideStorage::in_memory().unwrap(),
    ))
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = api.routes();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Server {
        channel,
        engine,
        project,
        key,
    }
}

impl Server {
    fn req<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {}", self.key).parse().unwrap());
        request
    }

    fn idem<T>(&self, message: T, key: &str) -> Request<T> {
        let mut request = self.req(message);
        request
            .metadata_mut()
            .insert("idempotency-key", key.parse().unwrap());
        request
    }
}

fn eur(amount: i64) -> Option<pb::Money> {
    Some(pb::Money {
        currency: "EUR".into(),
        amount,
    })
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

fn fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn accounts_transfers_and_transactions() {
    let s = start(Environment::Sandbox).await;
    let mut accounts = AccountServiceClient::new(s.channel.clone());
    let mut transfers = TransferServiceClient::new(s.channel.clone());
    let mut transactions = TransactionServiceClient::new(s.channel.clone());
    let mut customers = CustomerServiceClient::new(s.channel.clone());

    let customer = customers
        .create_customer(s.req(pb::CreateCustomerRequest {
            identity: Some(pb::Identity {
                first_name: "Ana".into(),
                last_name: "Ruiz".into(),
                ..Default::default()
            }),
            meta: [("crm".to_owned(), "7".to_owned())].into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(customer.id.starts_with("cus_"));
    let got = customers
        .get_customer(s.req(pb::GetCustomerRequest {
            customer_id: customer.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, customer);

    let create = |customer_id: Option<String>| pb::CreateAccountRequest {
        currency: "EUR".into(),
        allow_negative_balance: false,
        customer_id,
        meta: Default::default(),
    };
    let a = accounts
        .create_account(s.req(create(Some(customer.id.clone()))))
        .await
        .unwrap()
        .into_inner();
    let b = accounts
        .create_account(s.req(create(None)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.balance, eur(0));
    assert_eq!(a.project_id, s.project.to_string());
    assert_eq!(a.customer_id.as_deref(), Some(customer.id.as_str()));

    // Sandbox magic balance, then read-your-writes on Get.
    let funded = accounts
        .update_account(s.req(pb::UpdateAccountRequest {
            account_id: a.id.clone(),
            update_mask: mask(&["balance"]),
            balance: eur(1_000),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(funded.balance, eur(1_000));

    // Transfer with an idempotency key, retried: one effect.
    let request = pb::CreateTransferRequest {
        source_account_id: a.id.clone(),
        destination_account_id: b.id.clone(),
        value: eur(300),
        meta: [("order".to_owned(), "42".to_owned())].into(),
        pending_timeout: None,
    };
    let first = transfers
        .create_transfer(s.idem(request.clone(), "t-1"))
        .await
        .unwrap()
        .into_inner();
    let again = transfers
        .create_transfer(s.idem(request.clone(), "t-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    let reused = transfers
        .create_transfer(s.idem(
            pb::CreateTransferRequest {
                value: eur(301),
                ..request.clone()
            },
            "t-1",
        ))
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument);
    assert_eq!(fields(&reused), ["idempotency-key"]);
    assert_eq!(
        reused.get_error_details().error_info().unwrap().reason,
        "IDEMPOTENCY_KEY_REUSED"
    );

    let a_now = accounts
        .get_account(s.req(pb::GetAccountRequest {
            account_id: a.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    let b_now = accounts
        .get_account(s.req(pb::GetAccountRequest {
            account_id: b.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((a_now.balance, b_now.balance), (eur(700), eur(300)));

    let too_much = transfers
        .create_transfer(s.req(pb::CreateTransferRequest {
            value: eur(10_000),
            ..request.clone()
        }))
        .await
        .unwrap_err();
    assert_eq!(too_much.code(), Code::FailedPrecondition);
    assert_eq!(
        too_much.get_error_details().error_info().unwrap().reason,
        "INSUFFICIENT_FUNDS"
    );

    // Transactions: newest first, with type and cause.
    let listed = transactions
        .list_transactions(s.req(pb::ListTransactionsRequest {
            account_id: Some(a.id.clone()),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let types: Vec<_> = listed.items.iter().map(|t| t.r#type()).collect();
    assert_eq!(
        types,
        [pb::TransactionType::TransferSource, pb::TransactionType::Magic]
    );
    assert_eq!(listed.items[0].transfer_id.as_deref(), Some(first.id.as_str()));
    assert_eq!(listed.items[0].balance_after, eur(700));
    assert_eq!(listed.next_page_token, "");
    let tx = transactions
        .get_transaction(s.req(pb::GetTransactionRequest {
            transaction_id: first.destination_transaction_id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((tx.value, tx.account_id), (eur(300), b.id.clone()));

    // Pagination over all of the project's transactions (3).
    let page = transactions
        .list_transactions(s.req(pb::ListTransactionsRequest {
            page_size: 2,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.items.len(), 2);
    assert!(!page.next_page_token.is_empty());
    let rest = transactions
        .list_transactions(s.req(pb::ListTransactionsRequest {
            page_size: 2,
            page_token: page.next_page_token.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((rest.items.len(), rest.next_page_token.as_str()), (1, ""));

    let listed = transfers
        .list_transfers(s.req(pb::ListTransfersRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0], first);
    let updated = transfers
        .update_transfer(s.req(pb::UpdateTransferRequest {
            transfer_id: first.id.clone(),
            update_mask: mask(&["meta"]),
            meta: [("order".to_owned(), "43".to_owned())].into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.meta.get("order").map(String::as_str), Some("43"));
}

#[tokio::test]
async fn errors_auth_and_projects() {
    let s = start(Environment::Live).await;
    let mut accounts = AccountServiceClient::new(s.channel.clone());
    let mut projects = ProjectServiceClient::new(s.channel.clone());
    let mut transactions = TransactionServiceClient::new(s.channel.clone());

    let project = projects
        .get_project(s.req(pb::GetProjectRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(project.id, s.project.to_string());
    assert_eq!(project.environment(), pb::Environment::Live);
    let project = projects
        .update_project(s.req(pb::UpdateProjectRequest {
            update_mask: mask(&["meta"]),
            meta: [("_name".to_owned(), "Main".to_owned())].into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(project.meta.get("_name").map(String::as_str), Some("Main"));

    // Every bad field at once.
    let bad = accounts
        .create_account(s.idem(
            pb::CreateAccountRequest {
                currency: "EURO".into(),
                customer_id: Some("acc_x".into()),
                meta: [("_x".to_owned(), String::new())].into(),
                ..Default::default()
            },
            "has space",
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        fields(&bad),
        ["idempotency-key", "currency", "customer_id", "meta._x"]
    );

    let missing = accounts
        .get_account(s.req(pb::GetAccountRequest {
            account_id: paycore_domain::AccountId::from_uuid(Uuid::now_v7()).to_string(),
        }))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let a = accounts
        .create_account(s.req(pb::CreateAccountRequest {
            currency: "EUR".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let live_magic = accounts
        .update_account(s.req(pb::UpdateAccountRequest {
            account_id: a.id.clone(),
            update_mask: mask(&["balance"]),
            balance: eur(5),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(live_magic.code(), Code::FailedPrecondition);
    assert_eq!(
        live_magic.get_error_details().error_info().unwrap().reason,
        "SANDBOX_ONLY"
    );

    let bad_mask = accounts
        .update_account(s.req(pb::UpdateAccountRequest {
            account_id: a.id.clone(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(fields(&bad_mask), ["update_mask"]);

    let page = accounts
        .list_accounts(s.req(pb::ListAccountsRequest {
            page_size: 101,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(fields(&page), ["page_size"]);
    let token = accounts
        .list_accounts(s.req(pb::ListAccountsRequest {
            page_token: "garbage".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(fields(&token), ["page_token"]);
    let idem_on_get = accounts
        .get_account(s.idem(
            pb::GetAccountRequest {
                account_id: a.id.clone(),
            },
            "k",
        ))
        .await
        .unwrap_err();
    assert_eq!(fields(&idem_on_get), ["idempotency-key"]);
    let unknown_account = transactions
        .list_transactions(s.req(pb::ListTransactionsRequest {
            account_id: Some(paycore_domain::AccountId::from_uuid(Uuid::now_v7()).to_string()),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(unknown_account.code(), Code::NotFound);

    // Authentication.
    let none = accounts
        .get_account(Request::new(pb::GetAccountRequest {
            account_id: a.id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(none.code(), Code::Unauthenticated);
    let mut wrong = Request::new(pb::GetAccountRequest {
        account_id: a.id.clone(),
    });
    let forged = format!("{}00", &s.key[..s.key.len() - 2]);
    wrong
        .metadata_mut()
        .insert("authorization", format!("Bearer {forged}").parse().unwrap());
    let wrong = accounts.get_account(wrong).await.unwrap_err();
    assert_eq!(
        (wrong.code(), wrong.message()),
        (Code::Unauthenticated, "invalid API key")
    );

    let public = create_key(&s.engine, s.project, Environment::Live, KeyKind::Public).await;
    let mut request = Request::new(pb::GetAccountRequest {
        account_id: a.id.clone(),
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {public}").parse().unwrap());
    assert_eq!(
        accounts.get_account(request).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    let token = ApiKeyToken::parse(&s.key).unwrap();
    run(
        &s.engine,
        s.project,
        ProjectCommand::RevokeApiKey { id: token.key_id }.into(),
    )
    .await;
    let revoked = accounts
        .get_account(s.req(pb::GetAccountRequest {
            account_id: a.id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(
        (revoked.code(), revoked.message()),
        (Code::Unauthenticated, "API key revoked")
    );
}
