//! `paycore-bench import`: open banking imports through the real server.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use paycore_grpc::pb;
use paycore_grpc::{
    AggregatedAccountServiceClient, AggregationConnectionServiceClient, AggregationImportServiceClient,
    CustomerServiceClient, ProjectServiceClient,
};
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

use crate::grpc::{Server, authorized, connect};
use crate::report::{Machine, Table, thousands};

/// Measure default open banking imports through the real server.
///
/// Starts `<server-bin> serve` on a fresh data directory, activates
/// `--institution` for the bootstrap project (`paycore institutions
/// activate`), and for each of `--rounds` connections of a new customer:
/// signs in the sandbox user `--user`, lets the first import find the
/// accounts, enables them all (the end user's consent), then measures the
/// refresh that reads every account's 5 years of transactions, and a second
/// refresh that finds nothing new. The server's time is the import's own
/// `started_at` → `finished_at` (recorded by the server); the client's adds
/// the refresh call and the polling (every 5 ms).
///
/// Checks that the first refresh recorded transactions and the second none;
/// a failed check makes the command fail, a missed target does not.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The paycore binary to start.
    #[arg(long, default_value = "./target/release/paycore")]
    server_bin: PathBuf,
    /// Where the server's data directory goes.
    #[arg(long, default_value = "./target/bench-data")]
    dir: PathBuf,
    /// The sandbox test user to import.
    #[arg(long, default_value = "user_good")]
    user: String,
    /// The sandbox institution.
    #[arg(long, default_value = "sandbox_de_rheinbank")]
    institution: String,
    /// Connections imported, one after the other.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

struct Clients {
    connections: AggregationConnectionServiceClient<Channel>,
    imports: AggregationImportServiceClient<Channel>,
    accounts: AggregatedAccountServiceClient<Channel>,
    auth: AsciiMetadataValue,
}

/// What one import took.
struct Measured {
    server: Duration,
    client: Duration,
    import: pb::AggregationImport,
}

pub async fn run(args: ImportArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.rounds > 0, "--rounds must be positive");
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let data = tempfile::Builder::new()
        .prefix("import-")
        .tempdir_in(&args.dir)
        .with_context(|| format!("creating a directory in {}", args.dir.display()))?;
    let machine = Machine::describe(data.path()).await?;
    println!("paycore-bench import: open banking imports through the paycore server\n");
    println!("{}", machine.render());
    let mut server = Server::start(&args.server_bin, data.path(), None).await?;
    let result = measure(&args, &server, &data.path().join("data")).await;
    let stopped = server.stop().await?;
    let table = result?;
    println!("{table}");
    anyhow::ensure!(stopped.success(), "the server exited with {stopped}");
    Ok(())
}

async fn measure(args: &ImportArgs, server: &Server, data_dir: &std::path::Path) -> anyhow::Result<String> {
    let channel = connect(server).await?;
    let auth: AsciiMetadataValue = format!("Bearer {}", server.key).parse().context("the API key")?;
    let project = ProjectServiceClient::new(channel.clone())
        .get_project(authorized(pb::GetProjectRequest {}, &auth))
        .await
        .context("reading the project")?
        .into_inner()
        .id;
    activate(&args.server_bin, data_dir, &project, &args.institution)?;
    let customer = CustomerServiceClient::new(channel.clone())
        .create_customer(authorized(pb::CreateCustomerRequest::default(), &auth))
        .await
        .context("creating a customer")?
        .into_inner()
        .id;
    let mut clients = Clients {
        connections: AggregationConnectionServiceClient::new(channel.clone()),
        imports: AggregationImportServiceClient::new(channel.clone()),
        accounts: AggregatedAccountServiceClient::new(channel),
        auth,
    };
    let mut table = Table::new(&[
        "round",
        "accounts",
        "transactions recorded",
        "import, server",
        "import, client",
        "re-sync recorded",
        "re-sync, server",
    ]);
    for round in 1..=args.rounds {
        let connection = clients.signed_in(args, &customer).await?;
        let accounts = clients.enable_all(&connection).await?;
        let full = clients.refresh(&connection).await?;
        let recorded = full
            .import
            .progress
            .as_ref()
            .map_or(0, |p| p.transactions_recorded);
        let again = clients.refresh(&connection).await?;
        let recorded_again = again
            .import
            .progress
            .as_ref()
            .map_or(0, |p| p.transactions_recorded);
        if recorded == 0 || recorded_again != 0 {
            bail!(
                "round {round}: the import recorded {recorded}, the re-sync {recorded_again} (expected some, then none)"
            );
        }
        table.row(vec![
            round.to_string(),
            accounts.to_string(),
            thousands(recorded),
            seconds(full.server),
            seconds(full.client),
            recorded_again.to_string(),
            seconds(again.server),
        ]);
    }
    Ok(table.render())
}

fn seconds(duration: Duration) -> String {
    format!("{:.3} s", duration.as_secs_f64())
}

/// `paycore institutions activate` through the running server's admin socket.
fn activate(
    bin: &std::path::Path,
    data_dir: &std::path::Path,
    project: &str,
    institution: &str,
) -> anyhow::Result<()> {
    let output = std::process::Command::new(bin)
        .args([
            "institutions",
            "activate",
            "--project",
            project,
            institution,
            "--data-dir",
        ])
        .arg(data_dir)
        .output()
        .context("running paycore institutions activate")?;
    if !output.status.success() {
        bail!(
            "activating {institution}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

impl Clients {
    async fn signed_in(&mut self, args: &ImportArgs, customer: &str) -> anyhow::Result<String> {
        let request = pb::CreateAggregationConnectionRequest {
            customer_id: customer.into(),
            institution_id: Some(args.institution.clone()),
            redirect_url: None,
        };
        let connection = self
            .connections
            .create_aggregation_connection(authorized(request, &self.auth))
            .await
            .context("creating a connection")?
            .into_inner()
            .id;
        let request = pb::SubmitAggregationCredentialsRequest {
            connection_id: connection.clone(),
            username: args.user.clone(),
            password: "pass_good".into(),
        };
        let step = self
            .connections
            .submit_aggregation_credentials(authorized(request, &self.auth))
            .await
            .context("signing in")?
            .into_inner();
        let Some(pb::aggregation_sign_in_step::Next::SignedIn(signed_in)) = step.next else {
            bail!("{} did not sign in at once: {step:?}", args.user);
        };
        self.finished(&signed_in.import_id, Instant::now()).await?;
        Ok(connection)
    }

    async fn enable_all(&mut self, connection: &str) -> anyhow::Result<usize> {
        let request = pb::ListAggregatedAccountsRequest {
            of: Some(pb::list_aggregated_accounts_request::Of::ConnectionId(
                connection.into(),
            )),
            page_size: 100,
            ..Default::default()
        };
        let accounts = self
            .accounts
            .list_aggregated_accounts(authorized(request, &self.auth))
            .await?
            .into_inner()
            .items;
        for account in &accounts {
            let request = pb::EnableAggregatedAccountRequest {
                aggregated_account_id: account.id.clone(),
            };
            self.accounts
                .enable_aggregated_account(authorized(request, &self.auth))
                .await?;
        }
        Ok(accounts.len())
    }

    async fn refresh(&mut self, connection: &str) -> anyhow::Result<Measured> {
        let asked = Instant::now();
        let request = pb::RefreshAggregationConnectionRequest {
            connection_id: connection.into(),
        };
        let import = self
            .connections
            .refresh_aggregation_connection(authorized(request, &self.auth))
            .await
            .context("refreshing")?
            .into_inner();
        self.finished(&import.id, asked).await
    }

    /// Polls the import until it finished.
    async fn finished(&mut self, id: &str, asked: Instant) -> anyhow::Result<Measured> {
        let deadline = asked + Duration::from_secs(300);
        loop {
            let request = pb::GetAggregationImportRequest { import_id: id.into() };
            let import = self
                .imports
                .get_aggregation_import(authorized(request, &self.auth))
                .await?
                .into_inner();
            match import.status() {
                pb::AggregationImportStatus::Succeeded => {
                    let client = asked.elapsed();
                    let server = match (&import.started_at, &import.finished_at) {
                        (Some(start), Some(end)) => micros_between(start, end),
                        _ => bail!("a finished import without its times: {import:?}"),
                    };
                    return Ok(Measured {
                        server,
                        client,
                        import,
                    });
                }
                pb::AggregationImportStatus::Failed => bail!("import {id} failed: {import:?}"),
                _ => {}
            }
            anyhow::ensure!(Instant::now() < deadline, "import {id} did not finish in 300 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn micros_between(start: &prost_types::Timestamp, end: &prost_types::Timestamp) -> Duration {
    let nanos = |t: &prost_types::Timestamp| i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
    Duration::from_nanos(u64::try_from(nanos(end) - nanos(start)).unwrap_or(0))
}
