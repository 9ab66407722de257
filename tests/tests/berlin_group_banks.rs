//! `paycore serve --berlin-group-banks`: the real server reading banks over
//! HTTP through the Berlin Group NextGenPSD2 client, against the
//! repository's Berlin Group server (over the sandbox bank) on a loopback
//! port in the test. The banks file renames the institutions (`bg_…`), so
//! the catalogue the server, its admin socket and the offline CLI accept can
//! only have come from the file, and a sign-in can only have gone over HTTP.
//! Also: a banks file that does not check stops the start, naming the field.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use paycore_bank_connector::berlin_group::{ServerConfig, router, server};
use paycore_bank_connector::{BankConnector, Institution, SandboxBank, Source};
use paycore_e2e::{Authed, Server, assert_reason, bearer, paycore_bin, test_dir};
use paycore_grpc::pb;
use paycore_grpc::{
    AggregatedAccountServiceClient, AggregationConnectionServiceClient, AggregationImportServiceClient,
    InstitutionServiceClient,
};
use tonic::Code;
use tonic_types::StatusExt;

const BANKS_ENV: &str = "PAYCORE_BERLIN_GROUP_BANKS";
/// The file's name for the sandbox's `sandbox_de_rheinbank`.
const BANK: &str = "bg_rheinbank";
/// Another bank of the file, not activated by the main test.
const OTHER_BANK: &str = "bg_wisla";
/// Transactions per page of the Berlin Group server.
const PAGE_SIZE: u32 = 500;

/// The Berlin Group server over the sandbox bank on a loopback port, and
/// how many requests reached it.
struct BerlinGroupBank {
    address: SocketAddr,
    requests: Arc<AtomicUsize>,
}

impl BerlinGroupBank {
    async fn start() -> Self {
        let requests: Arc<AtomicUsize> = Arc::default();
        let counted = requests.clone();
        let config = ServerConfig {
            page_size: PAGE_SIZE,
            ..ServerConfig::default()
        };
        let app = router(Arc::new(SandboxBank::new()), config).layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                counted.fetch_add(1, Ordering::SeqCst);
                next.run(request)
            },
        ));
        let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(server::serve(listener, app, std::future::pending()));
        Self { address, requests }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// A banks file naming two of the sandbox's institutions `bg_…`, each
    /// at its path on this server, with their limits as the sandbox has them.
    async fn write_banks_file(&self, dir: &Path) -> PathBuf {
        let sandbox = SandboxBank::new().institutions().await.unwrap();
        let entry = |name: &str, sandbox_id: &str| {
            let institution = sandbox.iter().find(|i| i.id.as_str() == sandbox_id).unwrap();
            bank_entry(
                name,
                institution,
                &format!("http://{}/{sandbox_id}", self.address),
            )
        };
        let file = serde_json::json!({
            "sandbox_clock": true,
            "banks": [entry(BANK, "sandbox_de_rheinbank"), entry(OTHER_BANK, "sandbox_pl_wisla")],
        });
        let path = dir.join("banks.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&file).unwrap()).unwrap();
        path
    }
}

fn bank_entry(id: &str, institution: &Institution, base_url: &str) -> serde_json::Value {
    let sources: Vec<_> = institution
        .sources
        .iter()
        .map(|source| match source {
            Source::Psd2 => "psd2",
            Source::Web => "web",
        })
        .collect();
    serde_json::json!({
        "id": id,
        "name": format!("{} (Berlin Group)", institution.name),
        "country": institution.country.as_str(),
        "sources": sources,
        "max_refreshes_per_day": institution.max_refreshes_per_day,
        "max_consent_days": institution.max_consent_days,
        "max_history_days": institution.max_history_days,
        "credit_cards": institution.credit_cards,
        "base_url": base_url,
    })
}

/// `paycore --data-dir <data> <args>`, with the banks file in the
/// environment only when given (`Server::cli` always passes the server's).
fn paycore(data_dir: &Path, args: &[&str], banks: Option<&Path>) -> Output {
    let mut command = Command::new(paycore_bin());
    command
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("NO_COLOR", "1");
    if let Some(banks) = banks {
        command.env(BANKS_ENV, banks);
    }
    command.output().unwrap()
}

/// Runs `paycore serve` with the banks file and waits for it to exit (a
/// server that starts anyway is killed after a while, failing the test).
fn serve_until_exit(data_dir: &Path, banks: &Path, dir: &Path) -> (std::process::ExitStatus, String) {
    let log = dir.join("serve.log");
    let mut child = Command::new(paycore_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env(BANKS_ENV, banks)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "paycore serve started on a bad banks file: {}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, std::fs::read_to_string(&log).unwrap())
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

struct OpenBanking {
    institutions: InstitutionServiceClient<Authed>,
    connections: AggregationConnectionServiceClient<Authed>,
    imports: AggregationImportServiceClient<Authed>,
    accounts: AggregatedAccountServiceClient<Authed>,
    customer: String,
}

impl OpenBanking {
    async fn new(server: &Server) -> Self {
        let customer = server
            .client()
            .customers
            .create_customer(pb::CreateCustomerRequest::default())
            .await
            .unwrap()
            .into_inner()
            .id;
        let key = server.key();
        Self {
            institutions: InstitutionServiceClient::with_interceptor(server.channel(), bearer(key)),
            connections: AggregationConnectionServiceClient::with_interceptor(server.channel(), bearer(key)),
            imports: AggregationImportServiceClient::with_interceptor(server.channel(), bearer(key)),
            accounts: AggregatedAccountServiceClient::with_interceptor(server.channel(), bearer(key)),
            customer,
        }
    }

    async fn connection(&mut self) -> String {
        let request = pb::CreateAggregationConnectionRequest {
            customer_id: self.customer.clone(),
            institution_id: Some(BANK.into()),
            redirect_url: None,
        };
        let connection = self.connections.create_aggregation_connection(request).await;
        connection.unwrap().into_inner().id
    }

    async fn sign_in(
        &mut self,
        connection: &str,
        username: &str,
        password: &str,
    ) -> Result<pb::AggregationSignInStep, tonic::Status> {
        let request = pb::SubmitAggregationCredentialsRequest {
            connection_id: connection.into(),
            username: username.into(),
            password: password.into(),
        };
        Ok(self
            .connections
            .submit_aggregation_credentials(request)
            .await?
            .into_inner())
    }

    async fn connection_status(&mut self, id: &str) -> pb::AggregationConnectionStatus {
        let request = pb::GetAggregationConnectionRequest {
            connection_id: id.into(),
        };
        let connection = self.connections.get_aggregation_connection(request).await;
        connection.unwrap().into_inner().status()
    }

    /// Polls the import until it has finished.
    async fn finished(&mut self, id: &str) -> pb::AggregationImport {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let request = pb::GetAggregationImportRequest { import_id: id.into() };
            let import = self
                .imports
                .get_aggregation_import(request)
                .await
                .unwrap()
                .into_inner();
            if matches!(
                import.status(),
                pb::AggregationImportStatus::Succeeded | pb::AggregationImportStatus::Failed
            ) {
                return import;
            }
            assert!(
                Instant::now() < deadline,
                "import {id} still {:?}",
                import.status()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn accounts(&mut self, connection: &str) -> Vec<pb::AggregatedAccount> {
        let request = pb::ListAggregatedAccountsRequest {
            of: Some(pb::list_aggregated_accounts_request::Of::ConnectionId(
                connection.into(),
            )),
            include_archived: false,
            page_size: 100,
            page_token: String::new(),
        };
        let accounts = self.accounts.list_aggregated_accounts(request).await;
        accounts.unwrap().into_inner().items
    }

    async fn enable(&mut self, account: &str) {
        let request = pb::EnableAggregatedAccountRequest {
            aggregated_account_id: account.into(),
        };
        let enabled = self.accounts.enable_aggregated_account(request).await;
        assert!(!enabled.unwrap().into_inner().disabled);
    }

    async fn refresh(&mut self, connection: &str) -> String {
        let request = pb::RefreshAggregationConnectionRequest {
            connection_id: connection.into(),
        };
        let import = self.connections.refresh_aggregation_connection(request).await;
        import.unwrap().into_inner().id
    }

    /// Every transaction of an account, page by page.
    async fn transactions(&mut self, account: &str) -> Vec<pb::AggregatedTransaction> {
        let (mut all, mut token) = (Vec::new(), String::new());
        loop {
            let request = pb::ListAggregatedTransactionsRequest {
                aggregated_account_id: account.into(),
                page_size: 100,
                page_token: token,
                ..Default::default()
            };
            let page = self.accounts.list_aggregated_transactions(request).await;
            let page = page.unwrap().into_inner();
            all.extend(page.items);
            if page.next_page_token.is_empty() {
                return all;
            }
            token = page.next_page_token;
        }
    }

    /// The catalogue as the project sees it: (ID, active).
    async fn catalogue(&mut self) -> Vec<(String, bool)> {
        let request = pb::ListInstitutionsRequest::default();
        let listed = self.institutions.list_institutions(request).await;
        let listed = listed.unwrap().into_inner().institutions;
        listed.into_iter().map(|i| (i.id, i.active)).collect()
    }
}

fn signed_in(step: &pb::AggregationSignInStep) -> String {
    match &step.next {
        Some(pb::aggregation_sign_in_step::Next::SignedIn(signed_in)) => signed_in.import_id.clone(),
        other => panic!("not signed in: {other:?}"),
    }
}

// Multi-threaded: the bank serves while the test blocks on the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_reads_berlin_group_banks_over_http() {
    let bank = BerlinGroupBank::start().await;
    let root = test_dir();
    let banks = bank.write_banks_file(root.path()).await;
    let mut server = Server::start_with_env(root.path(), &[(BANKS_ENV, banks.to_str().unwrap())]);
    let project = server.project_id().to_owned();

    // Through the admin socket (the CLI given no file): the server's own
    // catalogue decides, which is the file's and nothing else.
    let activated = paycore(
        &server.data_dir(),
        &["institutions", "activate", "--project", &project, BANK],
        None,
    );
    assert!(activated.status.success(), "{}", stderr(&activated));
    let sandbox_id = [
        "institutions",
        "activate",
        "--project",
        &project,
        "sandbox_de_rheinbank",
    ];
    let refused = paycore(&server.data_dir(), &sandbox_id, None);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("not in the bank connector's catalogue"),
        "{}",
        stderr(&refused)
    );
    let mut ob = OpenBanking::new(&server).await;
    assert_eq!(
        ob.catalogue().await,
        [(BANK.to_owned(), true), (OTHER_BANK.to_owned(), false)],
        "the file's banks, by country"
    );

    // user_good signs in over HTTP; the first import lists 5 accounts.
    assert_eq!(bank.requests(), 0);
    let connection = ob.connection().await;
    let step = ob.sign_in(&connection, "user_good", "pass_good").await.unwrap();
    let first = ob.finished(&signed_in(&step)).await;
    assert_eq!(
        first.status(),
        pb::AggregationImportStatus::Succeeded,
        "{first:?}"
    );
    assert!(bank.requests() > 0);
    let accounts = ob.accounts(&connection).await;
    assert_eq!(accounts.len(), 5, "{accounts:?}");
    assert_eq!(
        ob.connection_status(&connection).await,
        pb::AggregationConnectionStatus::Connected
    );

    // Consented to, the accounts' 5 years come page by page over HTTP.
    for account in &accounts {
        ob.enable(&account.id).await;
    }
    let before = bank.requests();
    let refresh = ob.refresh(&connection).await;
    let imported = ob.finished(&refresh).await;
    assert_eq!(
        imported.status(),
        pb::AggregationImportStatus::Succeeded,
        "{imported:?}"
    );
    let recorded = imported.progress.as_ref().unwrap().transactions_recorded;
    assert!(recorded > 5_000, "{imported:?}");
    let pages = usize::try_from(recorded).unwrap() / PAGE_SIZE as usize;
    assert!(
        bank.requests() - before >= pages,
        "{recorded} transactions in pages of {PAGE_SIZE}, {} requests",
        bank.requests() - before
    );
    let mut listed = 0;
    for account in ob.accounts(&connection).await {
        let all = ob.transactions(&account.id).await;
        let ids: BTreeSet<_> = all.iter().map(|t| t.bank_transaction_id.clone()).collect();
        assert_eq!(ids.len(), all.len(), "each bank transaction once");
        listed += all.len();
    }
    assert_eq!(listed as u64, recorded, "every recorded transaction listed once");

    failures_over_http(&mut ob).await;

    // Offline (no server holds the data directory), the CLI needs the file
    // to know the catalogue.
    server.stop_ok();
    let data_dir = server.data_dir();
    let activate_other = ["institutions", "activate", "--project", &project, OTHER_BANK];
    let without = paycore(&data_dir, &activate_other, None);
    assert!(!without.status.success());
    assert!(
        stderr(&without).contains("not in the bank connector's catalogue"),
        "{}",
        stderr(&without)
    );
    let with_flag = [
        &activate_other[..],
        &["--berlin-group-banks", banks.to_str().unwrap()],
    ]
    .concat();
    let with = paycore(&data_dir, &with_flag, None);
    assert!(with.status.success(), "{}", stderr(&with));
    let list = paycore(&data_dir, &["institutions", "list"], Some(&banks));
    let list = String::from_utf8(list.stdout).unwrap();
    let ids: Vec<_> = list
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(ids, [BANK, OTHER_BANK], "{list}");
}

/// A wrong password and a bank that is down, as the Berlin Group server
/// answers them (401 `PSU_CREDENTIALS_INVALID`, 503 with `Retry-After`).
async fn failures_over_http(ob: &mut OpenBanking) {
    let wrong = ob.connection().await;
    let step = ob.sign_in(&wrong, "user_good", "pass_bad").await.unwrap();
    let Some(pb::aggregation_sign_in_step::Next::Failed(failed)) = &step.next else {
        panic!("{step:?}")
    };
    assert_eq!(
        failed.reason(),
        pb::AggregationActionRequiredReason::CredentialsInvalid
    );
    assert_eq!(
        ob.connection_status(&wrong).await,
        pb::AggregationConnectionStatus::InitialActionRequired
    );

    let down = ob.connection().await;
    let unavailable = ob
        .sign_in(&down, "user_bank_down", "pass_good")
        .await
        .unwrap_err();
    assert_reason(&unavailable, Code::Unavailable, "BANK_UNAVAILABLE");
    assert!(unavailable.get_details_retry_info().is_some(), "{unavailable:?}");
    assert_eq!(
        ob.connection_status(&down).await,
        pb::AggregationConnectionStatus::InitialActionRequired
    );
}

/// A banks file that does not check stops `paycore serve` before it opens
/// the data directory, with the file and the field in the message.
#[test]
fn a_bad_banks_file_stops_the_start() {
    let sandbox = SandboxBank::new();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let institutions = runtime.block_on(sandbox.institutions()).unwrap();
    let good = bank_entry(
        BANK,
        &institutions[0],
        "http://127.0.0.1:8090/sandbox_de_rheinbank",
    );
    let cases = [
        ("country", serde_json::json!("Germany"), "banks[0].country"),
        (
            "base_url",
            serde_json::json!("ftp://bank.example"),
            "banks[0].base_url",
        ),
    ];
    for (field, value, named) in cases {
        let root = test_dir();
        let mut entry = good.clone();
        entry[field] = value;
        let banks = root.path().join("banks.json");
        std::fs::write(&banks, serde_json::json!({ "banks": [entry] }).to_string()).unwrap();
        let data_dir = root.path().join("data");
        let (status, message) = serve_until_exit(&data_dir, &banks, root.path());
        assert!(!status.success(), "{field}: {message}");
        assert!(
            message.contains(&banks.display().to_string()),
            "{field}: {message}"
        );
        assert!(message.contains(named), "{field}: {message}");
        assert!(!data_dir.exists(), "{field}: the start went no further");
    }
}
