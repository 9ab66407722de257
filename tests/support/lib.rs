//! Harness for the end-to-end tests: the real `paycore` binary on loopback,
//! driven by the generated tonic clients.
//!
//! * [`Server`] starts `paycore serve --data-dir <root>/data --listen
//!   127.0.0.1:0` as a child process, reads the bootstrap key and the bound
//!   address from its stdout, and appends its stderr (the log) to
//!   `<root>/server.log`. It returns once the server answers a health check.
//!   Dropping it stops the child with SIGTERM; [`Server::kill9`] kills it
//!   without warning, for crash tests. [`Server::cli`] runs the admin
//!   commands (`projects create`, `keys create`, `keys revoke`) on its data
//!   directory, whether the server is stopped or running.
//! * [`Client`] holds the five paycore service clients over one channel, each
//!   call carrying `authorization: Bearer <key>`, plus helpers for the common
//!   steps and for reading whole lists.
//! * [`assert_bad_request`], [`assert_reason`] and [`assert_code`] check the
//!   error model (status code, `google.rpc.BadRequest`, `ErrorInfo`).
//!
//! Every test uses its own temporary directory and port 0, so tests run in
//! parallel. The binary is found next to the test executables
//! (`target/<profile>/paycore`); build it with `cargo build -p paycore-cli`
//! (`make test` does), or point `PAYCORE_BIN` at another one. Set
//! `PAYCORE_KEEP_TEST_DIRS=1` to keep each test's directory (data and log).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use paycore_grpc::pb;
use paycore_grpc::{
    AccountServiceClient, CustomerServiceClient, ProjectServiceClient, TransactionServiceClient,
    TransferServiceClient,
};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

/// How long a server may take to print its address.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful stop may take before the test fails.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

const LISTENING: &str = "paycore listening on ";
const CREATED_PROJECT: &str = "created sandbox project ";
const SECRET_KEY: &str = "secret API key (shown only once, keep it safe): ";

// ---------------------------------------------------------------- the binary

/// The `paycore` binary: `$PAYCORE_BIN`, or `paycore` in the target directory
/// the running test executable was built into (`target/debug/deps/..` →
/// `target/debug/paycore`).
pub fn paycore_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("PAYCORE_BIN") {
        let bin = PathBuf::from(path);
        assert!(bin.is_file(), "PAYCORE_BIN={} is not a file", bin.display());
        return bin;
    }
    let exe = std::env::current_exe().expect("the path of the test executable");
    let mut dir = exe
        .parent()
        .expect("the test executable's directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join(format!("paycore{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "the paycore server binary is missing at {}: run `cargo build -p paycore-cli` \
         before the end-to-end tests (`make test` does it), or set PAYCORE_BIN",
        bin.display()
    );
    bin
}

// ---------------------------------------------------------------- the server

/// A project made with `paycore projects create`.
#[derive(Clone, Debug)]
pub struct NewProject {
    pub id: String,
    pub key: String,
}

/// A `paycore serve` child process on a data directory under `root`.
#[derive(Debug)]
pub struct Server {
    root: PathBuf,
    child: Option<Child>,
    addr: SocketAddr,
    /// The bootstrap project's key, remembered across restarts.
    key: String,
    project_id: String,
    /// Bootstrap lines (project, key) printed by the latest start, if any.
    printed: Option<NewProject>,
    stdout: Arc<Mutex<Vec<String>>>,
    starts: usize,
    /// Extra environment for every start (e.g. `PAYCORE_STORE`).
    env: Vec<(String, String)>,
}

struct Started {
    child: Child,
    addr: SocketAddr,
    printed: Option<NewProject>,
    stdout: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts a server on a fresh `root` (its data directory is `root/data`):
    /// the first start creates the sandbox project and prints its key.
    pub fn start(root: &Path) -> Self {
        Self::first_start(root, true)
    }

    /// Like [`Server::start`], but returns as soon as the address is printed,
    /// without first checking that the server answers.
    pub fn start_without_readiness_check(root: &Path) -> Self {
        Self::first_start(root, false)
    }

    /// Starts a server on `root` with extra environment variables (kept for
    /// restarts), e.g. `PAYCORE_STORE=postgres://…` to share a database.
    pub fn start_with_env(root: &Path, env: &[(&str, &str)]) -> Self {
        Self::first_start_with(root, true, env)
    }

    /// [`Server::start_with_env`] without the plaintext readiness check
    /// (for a server that speaks TLS only).
    pub fn start_with_env_without_readiness_check(root: &Path, env: &[(&str, &str)]) -> Self {
        Self::first_start_with(root, false, env)
    }

    /// The process ID, for signals.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    fn first_start(root: &Path, check_ready: bool) -> Self {
        Self::first_start_with(root, check_ready, &[])
    }

    fn first_start_with(root: &Path, check_ready: bool, env: &[(&str, &str)]) -> Self {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let started = spawn(root, 1, check_ready, &env);
        // A server joining a shared store that already has projects prints
        // none; every other first start must.
        let printed = started.printed.clone();
        if printed.is_none() && env.is_empty() {
            panic!(
                "the first start on an empty data directory printed no project and key; stdout: {:?}",
                lines(&started.stdout)
            );
        }
        let (key, project_id) = printed
            .as_ref()
            .map_or_else(Default::default, |p| (p.key.clone(), p.id.clone()));
        Self {
            root: root.to_path_buf(),
            child: Some(started.child),
            addr: started.addr,
            key,
            project_id,
            printed,
            stdout: started.stdout,
            starts: 1,
            env,
        }
    }

    /// Starts a server on a data directory `root/data` that already holds a
    /// deployment (a restored backup, say): nothing is printed, so the
    /// sandbox project's key and ID are given.
    pub fn start_existing(root: &Path, key: &str, project_id: &str) -> Self {
        let started = spawn(root, 1, true, &[]);
        Self {
            root: root.to_path_buf(),
            child: Some(started.child),
            addr: started.addr,
            key: key.to_owned(),
            project_id: project_id.to_owned(),
            printed: started.printed,
            stdout: started.stdout,
            starts: 1,
            env: Vec::new(),
        }
    }

    /// Starts a server on `root` with a second sandbox project, made with
    /// `paycore projects create` while the server runs.
    pub fn start_with_second_project(root: &Path) -> (Self, NewProject) {
        let server = Self::start(root);
        let second = server.create_project("second", false);
        (server, second)
    }

    /// Starts the stopped server again on the same data directory.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        self.starts += 1;
        let started = spawn(&self.root, self.starts, true, &self.env);
        self.child = Some(started.child);
        self.addr = started.addr;
        self.printed = started.printed;
        self.stdout = started.stdout;
    }

    /// Like [`Server::start_again`], but returns as soon as the address is
    /// printed, without first checking that the server answers.
    pub fn start_again_without_readiness_check(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        self.starts += 1;
        let started = spawn(&self.root, self.starts, false, &self.env);
        self.child = Some(started.child);
        self.addr = started.addr;
        self.printed = started.printed;
        self.stdout = started.stdout;
    }

    /// Graceful stop (SIGTERM) and start again on the same data directory.
    pub fn restart(&mut self) {
        self.stop_ok();
        self.start_again();
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the server is not running");
        terminate(&mut child, STOP_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "paycore did not stop within {STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                self.log_tail()
            )
        })
    }

    /// Graceful stop that must exit with status 0.
    pub fn stop_ok(&mut self) {
        let status = self.stop();
        assert!(
            status.success(),
            "paycore exited with {status} after SIGTERM; log:\n{}",
            self.log_tail()
        );
    }

    /// Kills the process with SIGKILL: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("the server is not running");
        child.kill().expect("SIGKILL to paycore");
        child.wait().expect("waiting for the killed paycore");
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The secret key of the sandbox project created on the first start.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    /// The project and key printed by the latest start (only the first start
    /// on an empty directory prints them).
    pub fn printed_bootstrap(&self) -> Option<&NewProject> {
        self.printed.as_ref()
    }

    /// What the latest start printed on stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        lines(&self.stdout)
    }

    /// The whole stderr log of every start on this root.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        tail(&self.log())
    }

    /// A new channel (one HTTP/2 connection) to the server.
    pub fn channel(&self) -> Channel {
        channel(self.addr)
    }

    /// A client of the bootstrap project over a new channel.
    pub fn client(&self) -> Client {
        Client::new(self.channel(), &self.key)
    }

    /// A client using `key` over a new channel.
    pub fn client_with_key(&self, key: &str) -> Client {
        Client::new(self.channel(), key)
    }

    /// Runs `paycore --data-dir <data dir> <args>` and returns its output
    /// whatever the exit status. On a stopped server the command opens the
    /// data directory itself; on a running one it goes through the server's
    /// admin socket.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(paycore_bin())
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(args)
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("running the paycore CLI")
    }

    fn cli_ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "`paycore {}` failed with {}: {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("CLI output is UTF-8")
    }

    /// `paycore projects create --name <name> [--live]`.
    pub fn create_project(&self, name: &str, live: bool) -> NewProject {
        let mut args = vec!["projects", "create", "--name", name];
        if live {
            args.push("--live");
        }
        let out = self.cli_ok(&args);
        let field = |label: &str| {
            out.lines()
                .find_map(|line| line.strip_prefix(label))
                .map(|value| value.trim().to_owned())
                .unwrap_or_else(|| panic!("no `{label}` in the output of projects create: {out}"))
        };
        NewProject {
            id: field("project:"),
            key: field("secret key:"),
        }
    }

    /// `paycore keys create --project <project> [--kind public]`: the new key.
    pub fn create_key(&self, project: &str, public: bool) -> String {
        let mut args = vec!["keys", "create", "--project", project];
        if public {
            args.extend(["--kind", "public"]);
        }
        let out = self.cli_ok(&args);
        out.lines()
            .map(str::trim)
            .find(|line| line.starts_with("sandbox_") || line.starts_with("live_"))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no key in the output of keys create: {out}"))
    }

    /// `paycore keys revoke <key id>`.
    pub fn revoke_key(&self, key_id: &str) {
        self.cli_ok(&["keys", "revoke", key_id]);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take()
            && terminate(&mut child, Duration::from_secs(10)).is_none()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The key ID (`key_…`) of an API key `<env>_<kind>key_<id>_<secret>`.
pub fn key_id(key: &str) -> String {
    let id = key.split('_').nth(2).expect("an API key has four parts");
    format!("key_{id}")
}

fn spawn(root: &Path, start: usize, check_ready: bool, env: &[(String, String)]) -> Started {
    std::fs::create_dir_all(root).expect("creating the test directory");
    let log_path = root.join("server.log");
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .expect("opening the server log");
    writeln!(log, "===== paycore start #{start} =====").expect("writing the server log");
    let mut child = Command::new(paycore_bin())
        .arg("serve")
        .arg("--data-dir")
        .arg(root.join("data"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env("NO_COLOR", "1")
        .env("PAYCORE_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawning paycore serve");

    let stdout = child.stdout.take().expect("piped stdout");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    {
        let seen = seen.clone();
        // Keeps draining stdout for the life of the process, so it never
        // blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut seen) = seen.lock() {
                    seen.push(line.clone());
                }
                let _ = lines_tx.send(line);
            }
        });
    }

    let deadline = Instant::now() + START_TIMEOUT;
    let mut project = None;
    let mut key = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(id) = line.strip_prefix(CREATED_PROJECT) {
                    project = Some(id.trim().to_owned());
                } else if let Some(k) = line.strip_prefix(SECRET_KEY) {
                    key = Some(k.trim().to_owned());
                } else if let Some(addr) = line.strip_prefix(LISTENING) {
                    let addr: SocketAddr = addr
                        .trim()
                        .parse()
                        .expect("a socket address after `listening on`");
                    let ready = if check_ready {
                        wait_until_serving(addr, deadline)
                    } else {
                        Ok(())
                    };
                    if let Err(error) = ready {
                        let _ = child.kill();
                        let _ = child.wait();
                        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                        panic!(
                            "paycore printed its address but does not serve: {error}\nlog:\n{}",
                            tail(&log)
                        );
                    }
                    let printed = match (project, key) {
                        (Some(id), Some(key)) => Some(NewProject { id, key }),
                        (None, None) => None,
                        (id, key) => panic!("half a bootstrap printed: project {id:?}, key {key:?}"),
                    };
                    return Started {
                        child,
                        addr,
                        printed,
                        stdout: seen,
                    };
                }
            }
            Err(error) => {
                let status = child.try_wait().ok().flatten();
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!(
                    "paycore serve did not print its address ({error:?}, exit status {status:?}); \
                     stdout: {:?}\nlog:\n{}",
                    lines(&seen),
                    tail(&log)
                );
            }
        }
    }
}

/// Waits until the server answers a health check, so a test starts on a
/// server that is really serving (it prints its address just before).
/// Runs on its own thread and runtime: callers may or may not be async.
fn wait_until_serving(addr: SocketAddr, deadline: Instant) -> Result<(), String> {
    let checked = std::thread::spawn(move || -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async move {
            let mut last = String::new();
            while Instant::now() < deadline {
                match health_status(channel(addr), "").await {
                    Ok(tonic_health::pb::health_check_response::ServingStatus::Serving) => return Ok(()),
                    Ok(other) => last = format!("{other:?}"),
                    Err(status) => last = format!("{status:?}"),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(format!("not serving before the deadline; last answer: {last}"))
        })
    })
    .join();
    checked.unwrap_or_else(|_| Err("the readiness check panicked".into()))
}

/// SIGTERM, then wait up to `timeout`; `None` if it is still running.
fn terminate(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let pid = rustix::process::Pid::from_child(child);
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn lines(shared: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    shared.lock().map(|lines| lines.clone()).unwrap_or_default()
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A lazily connecting channel to `addr`.
pub fn channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("a valid endpoint URI")
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy()
}

// ---------------------------------------------------------------- the client

/// Adds `authorization` (if any) to every request.
#[derive(Clone, Debug)]
pub struct Auth(Option<AsciiMetadataValue>);

impl Interceptor for Auth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Authed = InterceptedService<Channel, Auth>;

/// Adds `authorization: Bearer <key>` to every request: for clients of
/// services [`Client`] does not hold (`XServiceClient::with_interceptor(channel,
/// bearer(key))`).
pub fn bearer(key: &str) -> Auth {
    Auth(Some(
        format!("Bearer {key}")
            .parse()
            .expect("an ASCII authorization value"),
    ))
}

/// The five paycore services over one channel, with one API key.
#[derive(Clone, Debug)]
pub struct Client {
    pub projects: ProjectServiceClient<Authed>,
    pub customers: CustomerServiceClient<Authed>,
    pub accounts: AccountServiceClient<Authed>,
    pub transactions: TransactionServiceClient<Authed>,
    pub transfers: TransferServiceClient<Authed>,
    pub channel: Channel,
}

/// Everything a project's key can list, for "nothing changed" checks.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub project: pb::Project,
    pub customers: Vec<pb::Customer>,
    pub accounts: Vec<pb::Account>,
    pub transfers: Vec<pb::Transfer>,
    pub transactions: Vec<pb::Transaction>,
}

impl Client {
    /// Calls carry `authorization: Bearer <key>`.
    pub fn new(channel: Channel, key: &str) -> Self {
        Self::with_authorization(channel, Some(&format!("Bearer {key}")))
    }

    /// Calls carry this exact `authorization` value, or none.
    pub fn with_authorization(channel: Channel, authorization: Option<&str>) -> Self {
        let value = authorization.map(|text| text.parse().expect("an ASCII authorization value"));
        let auth = Auth(value);
        Self {
            projects: ProjectServiceClient::with_interceptor(channel.clone(), auth.clone()),
            customers: CustomerServiceClient::with_interceptor(channel.clone(), auth.clone()),
            accounts: AccountServiceClient::with_interceptor(channel.clone(), auth.clone()),
            transactions: TransactionServiceClient::with_interceptor(channel.clone(), auth.clone()),
            transfers: TransferServiceClient::with_interceptor(channel.clone(), auth),
            channel,
        }
    }

    /// A harmless write (the project's meta becomes `{"e2e_barrier": tag}`).
    /// A command is answered once the read models have applied it, so after
    /// this returns every read sees at least everything the log held before.
    pub async fn write_barrier(&self, tag: &str) -> Result<(), Status> {
        let request = pb::UpdateProjectRequest {
            update_mask: Some(mask(&["meta"])),
            meta: meta(&[("e2e_barrier", tag)]),
        };
        self.projects.clone().update_project(request).await?;
        Ok(())
    }

    pub async fn create_account(&self, currency: &str, allow_negative: bool) -> Result<pb::Account, Status> {
        let request = pb::CreateAccountRequest {
            currency: currency.into(),
            allow_negative_balance: allow_negative,
            customer_id: None,
            meta: BTreeMap::new(),
        };
        Ok(self.accounts.clone().create_account(request).await?.into_inner())
    }

    /// Sandbox only: sets the balance directly (a magic transaction).
    pub async fn set_balance(
        &self,
        account_id: &str,
        currency: &str,
        amount: i64,
    ) -> Result<pb::Account, Status> {
        let request = pb::UpdateAccountRequest {
            account_id: account_id.into(),
            update_mask: Some(mask(&["balance"])),
            allow_negative_balance: false,
            balance: money(currency, amount),
            meta: BTreeMap::new(),
        };
        Ok(self.accounts.clone().update_account(request).await?.into_inner())
    }

    pub async fn transfer(
        &self,
        source: &str,
        destination: &str,
        currency: &str,
        amount: i64,
    ) -> Result<pb::Transfer, Status> {
        let request = transfer_request(source, destination, currency, amount);
        Ok(self
            .transfers
            .clone()
            .create_transfer(request)
            .await?
            .into_inner())
    }

    /// Two EUR accounts that do not allow a negative balance, the first
    /// holding `balance`.
    pub async fn funded_pair(&self, balance: i64) -> Result<(pb::Account, pb::Account), Status> {
        let a = self.create_account("EUR", false).await?;
        let b = self.create_account("EUR", false).await?;
        self.set_balance(&a.id, "EUR", balance).await?;
        Ok((a, b))
    }

    pub async fn get_transfer(&self, transfer_id: &str) -> Result<pb::Transfer, Status> {
        let request = pb::GetTransferRequest {
            transfer_id: transfer_id.to_owned(),
        };
        Ok(self.transfers.clone().get_transfer(request).await?.into_inner())
    }

    pub async fn account(&self, account_id: &str) -> Result<pb::Account, Status> {
        let request = pb::GetAccountRequest {
            account_id: account_id.into(),
        };
        Ok(self.accounts.clone().get_account(request).await?.into_inner())
    }

    /// The balance amount of an account.
    pub async fn balance(&self, account_id: &str) -> Result<i64, Status> {
        Ok(amount(&self.account(account_id).await?.balance))
    }

    pub async fn all_customers(&self) -> Result<Vec<pb::Customer>, Status> {
        let mut items = Vec::new();
        let mut token = String::new();
        loop {
            let request = pb::ListCustomersRequest {
                page_size: 100,
                page_token: token,
            };
            let page = self.customers.clone().list_customers(request).await?.into_inner();
            items.extend(page.items);
            if page.next_page_token.is_empty() {
                return Ok(items);
            }
            token = page.next_page_token;
        }
    }

    pub async fn all_accounts(&self) -> Result<Vec<pb::Account>, Status> {
        let mut items = Vec::new();
        let mut token = String::new();
        loop {
            let request = pb::ListAccountsRequest {
                page_size: 100,
                page_token: token,
            };
            let page = self.accounts.clone().list_accounts(request).await?.into_inner();
            items.extend(page.items);
            if page.next_page_token.is_empty() {
                return Ok(items);
            }
            token = page.next_page_token;
        }
    }

    pub async fn all_transfers(&self) -> Result<Vec<pb::Transfer>, Status> {
        let mut items = Vec::new();
        let mut token = String::new();
        loop {
            let request = pb::ListTransfersRequest {
                page_size: 100,
                page_token: token,
            };
            let page = self.transfers.clone().list_transfers(request).await?.into_inner();
            items.extend(page.items);
            if page.next_page_token.is_empty() {
                return Ok(items);
            }
            token = page.next_page_token;
        }
    }

    /// Every transaction of the project, or of one account, newest first.
    pub async fn all_transactions(&self, account_id: Option<&str>) -> Result<Vec<pb::Transaction>, Status> {
        let mut items = Vec::new();
        let mut token = String::new();
        loop {
            let request = pb::ListTransactionsRequest {
                page_size: 100,
                page_token: token,
                account_id: account_id.map(str::to_owned),
                as_of: None,
            };
            let page = self
                .transactions
                .clone()
                .list_transactions(request)
                .await?
                .into_inner();
            items.extend(page.items);
            if page.next_page_token.is_empty() {
                return Ok(items);
            }
            token = page.next_page_token;
        }
    }

    pub async fn snapshot(&self) -> Result<Snapshot, Status> {
        Ok(Snapshot {
            project: self
                .projects
                .clone()
                .get_project(pb::GetProjectRequest {})
                .await?
                .into_inner(),
            customers: self.all_customers().await?,
            accounts: self.all_accounts().await?,
            transfers: self.all_transfers().await?,
            transactions: self.all_transactions(None).await?,
        })
    }

    /// Checks an account's transaction history: listed newest first, each
    /// `balance_after` is the previous one plus the transaction's value
    /// (starting from zero), values are never zero, the currency is the
    /// account's, and the last `balance_after` is the current balance.
    /// Returns the transactions, oldest first.
    pub async fn check_transaction_chain(&self, account_id: &str) -> Result<Vec<pb::Transaction>, Status> {
        let account = self.account(account_id).await?;
        let currency = account
            .balance
            .as_ref()
            .map(|m| m.currency.clone())
            .unwrap_or_default();
        let mut history = self.all_transactions(Some(account_id)).await?;
        history.reverse();
        let mut balance: i64 = 0;
        for (index, tx) in history.iter().enumerate() {
            assert_eq!(
                tx.account_id, account_id,
                "transaction {} of another account",
                tx.id
            );
            let value = tx.value.as_ref().expect("a transaction has a value");
            let after = tx
                .balance_after
                .as_ref()
                .expect("a transaction has balance_after");
            assert_eq!(value.currency, currency, "currency of transaction {}", tx.id);
            assert_eq!(after.currency, currency, "currency of balance_after of {}", tx.id);
            assert_ne!(value.amount, 0, "transaction {} has a zero value", tx.id);
            balance = balance
                .checked_add(value.amount)
                .expect("the balance chain of an account overflows");
            assert_eq!(
                after.amount, balance,
                "account {account_id}: transaction #{index} ({}) has balance_after {} but the previous \
                 balance plus its value is {balance}",
                tx.id, after.amount
            );
        }
        assert_eq!(
            amount(&account.balance),
            balance,
            "account {account_id}: the balance is not the end of its transaction chain"
        );
        Ok(history)
    }
}

// ---------------------------------------------------------------- stock services

/// `grpc.health.v1.Health/Check` of `service` ("" for the whole server),
/// without any API key.
pub async fn health_status(
    channel: Channel,
    service: &str,
) -> Result<tonic_health::pb::health_check_response::ServingStatus, Status> {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let response = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        })
        .await?
        .into_inner();
    Ok(response.status())
}

/// One `grpc.reflection.v1` request, without any API key.
pub async fn reflect(
    channel: Channel,
    request: tonic_reflection::pb::v1::server_reflection_request::MessageRequest,
) -> Result<tonic_reflection::pb::v1::server_reflection_response::MessageResponse, Status> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut responses = client
        .server_reflection_info(futures::stream::iter([request]))
        .await?
        .into_inner();
    let response = responses
        .message()
        .await?
        .ok_or_else(|| Status::internal("the reflection stream ended without an answer"))?;
    response
        .message_response
        .ok_or_else(|| Status::internal("a reflection answer without a message"))
}

/// The services listed by server reflection.
pub async fn reflected_services(channel: Channel) -> Result<Vec<String>, Status> {
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    match reflect(channel, MessageRequest::ListServices(String::new())).await? {
        MessageResponse::ListServicesResponse(list) => Ok(list.service.into_iter().map(|s| s.name).collect()),
        other => Err(Status::internal(format!(
            "unexpected reflection answer {other:?}"
        ))),
    }
}

// ---------------------------------------------------------------- builders

pub fn money(currency: &str, amount: i64) -> Option<pb::Money> {
    Some(pb::Money {
        currency: currency.into(),
        amount,
    })
}

/// The amount of an optional money field (0 if absent).
pub fn amount(money: &Option<pb::Money>) -> i64 {
    money.as_ref().map_or(0, |m| m.amount)
}

/// A timestamp in microseconds since the epoch, for ordering (0 if absent).
pub fn micros(at: &Option<prost_types::Timestamp>) -> i64 {
    at.as_ref()
        .map_or(0, |t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000)
}

pub fn meta(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub fn mask(paths: &[&str]) -> prost_types::FieldMask {
    prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    }
}

pub fn transfer_request(
    source: &str,
    destination: &str,
    currency: &str,
    amount: i64,
) -> pb::CreateTransferRequest {
    pb::CreateTransferRequest {
        source_account_id: source.into(),
        destination_account_id: destination.into(),
        value: money(currency, amount),
        meta: BTreeMap::new(),
        pending_timeout: None,
    }
}

/// A request carrying `idempotency-key: <key>`.
pub fn with_idempotency_key<T>(message: T, key: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("idempotency-key", key.parse().expect("an ASCII idempotency key"));
    request
}

/// A well-formed ID of the same kind that names nothing: `id` with its last
/// base32 digit changed.
pub fn sibling_id(id: &str) -> String {
    let mut text = id.to_owned();
    let last = text.pop().expect("a non-empty ID");
    text.push(if last == '0' { '1' } else { '0' });
    text
}

/// `id` with its prefix (`acc`, `cus`, …) replaced by `prefix`.
pub fn with_prefix(id: &str, prefix: &str) -> String {
    let (_, body) = id.split_once('_').expect("a prefixed ID");
    format!("{prefix}_{body}")
}

/// A complete, valid identity.
pub fn identity() -> pb::Identity {
    pb::Identity {
        first_name: "John".into(),
        last_name: "McJohn".into(),
        email_address: Some("john@example.com".into()),
        phone_number: Some("+34600111222".into()),
        nationality: Some("ES".into()),
        employment_status: pb::EmploymentStatus::SelfEmployed.into(),
        address: Some(pb::Address {
            line_1: "Calle Ejemplo, 31".into(),
            line_2: "2o 1a".into(),
            postal_code: "08102".into(),
            city: "L'Hospitalet de Llobregat".into(),
            region: "Barcelona".into(),
            country: "ES".into(),
        }),
        document: Some(pb::IdentityDocument {
            r#type: pb::DocumentType::Passport.into(),
            country: "ES".into(),
            number: "12345678R".into(),
            expiration_date: Some(pb::Date {
                year: 2030,
                month: 2,
                day: 28,
            }),
            front_file_id: None,
            back_file_id: None,
            selfie_file_id: None,
        }),
    }
}

// ---------------------------------------------------------------- assertions

/// The fields of the `google.rpc.BadRequest` violations of `status`.
pub fn bad_request_fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|bad| bad.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// `ErrorInfo.reason` of `status`, if it has one.
pub fn error_reason(status: &Status) -> Option<String> {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
}

#[track_caller]
pub fn assert_code(status: &Status, code: Code) {
    assert_eq!(
        status.code(),
        code,
        "expected {code:?}, got {:?}: {}",
        status.code(),
        status.message()
    );
}

/// INVALID_ARGUMENT with a `BadRequest` violation on exactly `field` (other
/// violations may be listed too).
#[track_caller]
pub fn assert_bad_request(status: &Status, field: &str) {
    assert_code(status, Code::InvalidArgument);
    let fields = bad_request_fields(status);
    assert!(
        fields.iter().any(|f| f == field),
        "expected a BadRequest violation on `{field}`, got {fields:?} ({})",
        status.message()
    );
}

/// INVALID_ARGUMENT whose violations are exactly `fields`, in any order.
#[track_caller]
pub fn assert_bad_request_fields(status: &Status, fields: &[&str]) {
    assert_code(status, Code::InvalidArgument);
    let mut found = bad_request_fields(status);
    found.sort();
    let mut expected: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
    expected.sort();
    assert_eq!(found, expected, "violations of: {}", status.message());
}

/// `code` with an `ErrorInfo` of domain `paycore` and reason `reason`.
#[track_caller]
pub fn assert_reason(status: &Status, code: Code, reason: &str) {
    assert_code(status, code);
    let details = status.get_error_details();
    let info = details
        .error_info()
        .unwrap_or_else(|| panic!("expected ErrorInfo {reason}, got none: {}", status.message()));
    assert_eq!(info.reason, reason, "ErrorInfo.reason ({})", status.message());
    assert_eq!(info.domain, "paycore", "ErrorInfo.domain");
}

/// Unwraps an expected error.
#[track_caller]
pub fn expect_err<T: std::fmt::Debug>(result: Result<T, Status>) -> Status {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(status) => status,
    }
}

/// A temporary directory for one test, removed at the end unless
/// `PAYCORE_KEEP_TEST_DIRS` is set (then its path is printed, to read the
/// server log and data afterwards).
pub fn test_dir() -> tempfile::TempDir {
    let mut dir = tempfile::Builder::new()
        .prefix("paycore-e2e-")
        .tempdir()
        .expect("creating a temporary directory");
    if std::env::var_os("PAYCORE_KEEP_TEST_DIRS").is_some() {
        eprintln!("test directory: {}", dir.path().display());
        dir.disable_cleanup(true);
    }
    dir
}

// ---------------------------------------------------------------- redaction

/// Every file under `dir`, recursively, with its bytes. Trailing zero bytes
/// are cut off: log segments are preallocated (128 MiB of zeros), and zeros
/// hold no digits, so the search stays quick without missing anything.
pub fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a readable test directory") {
        let path = entry.expect("a readable directory entry").path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else if path.is_file() {
            let mut bytes = std::fs::read(&path).expect("a readable test file");
            let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1);
            bytes.truncate(end);
            found.push((path.display().to_string(), bytes));
        }
    }
    found
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// The embedded log's segment files under `data_dir`, oldest first.
pub fn segment_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data_dir.join("log/segments"))
        .expect("segments directory")
        .map(|entry| entry.expect("segment entry").path())
        .collect();
    files.sort();
    files
}

// ---------------------------------------------------------------- raw calls

/// Calls `path` (`/package.Service/Method`) with `messages` as the request
/// bodies, byte for byte, whatever the method's type: the bytes go into
/// gRPC frames unchanged, so a test can send what no generated client would.
/// Answers the response messages' bytes, or the call's status.
pub async fn raw_call(
    channel: Channel,
    path: &str,
    metadata: &[(String, String)],
    messages: Vec<Vec<u8>>,
) -> Result<Vec<Vec<u8>>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|error| Status::unavailable(error.to_string()))?;
    let mut request = Request::new(futures::stream::iter(messages));
    for (name, value) in metadata {
        let name = tonic::metadata::AsciiMetadataKey::from_bytes(name.as_bytes())
            .map_err(|_| Status::invalid_argument("not a metadata name"))?;
        let value = value
            .parse()
            .map_err(|_| Status::invalid_argument("metadata value is not ASCII"))?;
        request.metadata_mut().append(name, value);
    }
    let path = tonic::codegen::http::uri::PathAndQuery::try_from(path)
        .map_err(|_| Status::invalid_argument("not a method path"))?;
    let mut responses = grpc.streaming(request, path, RawCodec).await?.into_inner();
    let mut bodies = Vec::new();
    while let Some(body) = responses.message().await? {
        bodies.push(body);
    }
    Ok(bodies)
}

/// Message bytes in and out, unexamined.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), Status> {
        bytes::BufMut::put_slice(buf, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, buf: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let len = bytes::Buf::remaining(buf);
        Ok(Some(bytes::Buf::copy_to_bytes(buf, len).to_vec()))
    }
}

/// Fixtures of the tests that run servers on PostgreSQL.
pub mod postgres {
    use std::process::Command;

    use crate::paycore_bin;

    /// The database the suite uses: `PAYCORE_TEST_DATABASE_URL`, or the local
    /// server the project's CI provides.
    pub fn database_url() -> String {
        std::env::var("PAYCORE_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
    }

    /// A schema of its own for this test run, dropped at the end.
    #[derive(Debug)]
    pub struct Schema {
        pub name: String,
    }

    impl Schema {
        pub fn create() -> Self {
            let name = format!("paycore_e2e_{}", uuid::Uuid::now_v7().simple());
            let migrated = Command::new(paycore_bin())
                .args(["db", "migrate", "--store", &database_url(), "--pg-schema", &name])
                .output()
                .expect("running paycore db migrate");
            assert!(
                migrated.status.success(),
                "paycore db migrate failed: {}",
                String::from_utf8_lossy(&migrated.stderr)
            );
            // Twice is a no-op.
            let again = Command::new(paycore_bin())
                .args(["db", "migrate", "--store", &database_url(), "--pg-schema", &name])
                .output()
                .expect("running paycore db migrate");
            assert!(again.status.success());
            assert!(String::from_utf8_lossy(&again.stdout).contains("up to date"));
            Self { name }
        }
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            let _ = Command::new("psql")
                .args([
                    &database_url(),
                    "-q",
                    "-c",
                    &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
                ])
                .output();
        }
    }

    /// The card vault key every server of one database shares.
    #[derive(Debug)]
    pub struct VaultKeyFile {
        _dir: tempfile::TempDir,
        path: String,
    }

    impl Default for VaultKeyFile {
        fn default() -> Self {
            Self::new()
        }
    }

    impl VaultKeyFile {
        pub fn new() -> Self {
            let dir = tempfile::tempdir().expect("a directory for the vault key");
            let path = dir.path().join("vault.key");
            std::fs::write(&path, "7".repeat(64)).expect("writing the vault key");
            Self {
                path: path.to_str().expect("a UTF-8 temporary path").to_owned(),
                _dir: dir,
            }
        }

        pub fn path(&self) -> &str {
            &self.path
        }
    }

    /// The environment of a server on `schema` of the database at `url`,
    /// sealing card numbers with `key` (the same for every server).
    pub fn server_env<'a>(
        url: &'a str,
        schema: &'a Schema,
        key: &'a VaultKeyFile,
    ) -> [(&'static str, &'a str); 3] {
        [
            ("PAYCORE_STORE", url),
            ("PAYCORE_PG_SCHEMA", schema.name.as_str()),
            ("PAYCORE_VAULT_KEY_FILE", key.path()),
        ]
    }

    /// The rows `sql` returns, one string per row (columns joined by `|`).
    pub fn query(sql: &str) -> Vec<String> {
        let output = Command::new("psql")
            .args([&database_url(), "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("running psql");
        assert!(
            output.status.success(),
            "psql failed on {sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}
