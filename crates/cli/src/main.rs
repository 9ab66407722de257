//! `paycore`: the server and its administration commands.

mod admin;
mod serve;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use paycore_domain::api_key::KeyKind;
use paycore_domain::{ApiKeyId, Environment, ProjectId};

/// paycore: an event-sourced payments core.
///
/// Money lives in accounts and moves by transfers; every change is an event
/// in an append-only log under the data directory. `paycore serve` answers
/// gRPC (package paycore.v1) with health checking and reflection, so grpcurl
/// works out of the box.
#[derive(Debug, Parser)]
#[command(name = "paycore", version, propagate_version = true)]
struct Cli {
    /// Where the event log and the read models live.
    #[arg(long, global = true, env = "PAYCORE_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gRPC server on the embedded event store.
    ///
    /// On the first start against an empty data directory it creates a
    /// sandbox project and prints its secret API key once.
    Serve(ServeArgs),
    /// Create projects.
    #[command(subcommand)]
    Projects(ProjectsCommand),
    /// Create and revoke API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on (use port 0 for any free port; the chosen address
    /// is printed on stdout).
    #[arg(long, env = "PAYCORE_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
}

#[derive(Debug, Subcommand)]
enum ProjectsCommand {
    /// Create a project and print its first secret API key.
    Create {
        /// A name for people to recognise it by.
        #[arg(long)]
        name: String,
        /// Create a live project (real money; sandbox-only calls refused).
        #[arg(long)]
        live: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create an API key for a project and print it (it is shown only once).
    Create {
        /// The project the key gives access to (prj_…).
        #[arg(long)]
        project: ProjectId,
        /// Secret keys can do everything; public keys only create card tokens.
        #[arg(long, value_enum, default_value_t = KindArg::Secret)]
        kind: KindArg,
    },
    /// Revoke an API key (key_…, the third part of the key): it stops working at once.
    Revoke {
        /// The key ID.
        key_id: ApiKeyId,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum KindArg {
    Secret,
    Public,
}

impl From<KindArg> for KeyKind {
    fn from(kind: KindArg) -> Self {
        match kind {
            KindArg::Secret => Self::Secret,
            KindArg::Public => Self::Public,
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::serve(&cli.data_dir, args.listen).await,
        Command::Projects(ProjectsCommand::Create { name, live }) => {
            let environment = if live { Environment::Live } else { Environment::Sandbox };
            serve::with_engine(&cli.data_dir, |engine| async move {
                let project = admin::create_project(&engine, &name, environment).await?;
                let key = admin::create_key(&engine, project, KeyKind::Secret).await?;
                println!("project:    {project}");
                println!("secret key: {key}");
                println!("(the key is shown only this once: keep it somewhere safe)");
                Ok(())
            })
            .await
        }
        Command::Keys(KeysCommand::Create { project, kind }) => {
            serve::with_engine(&cli.data_dir, |engine| async move {
                let key = admin::create_key(&engine, project, kind.into()).await?;
                println!("{key}");
                Ok(())
            })
            .await
        }
        Command::Keys(KeysCommand::Revoke { key_id }) => {
            serve::with_engine(&cli.data_dir, |engine| async move {
                let project = admin::revoke_key(&engine, key_id).await?;
                println!("revoked {key_id} of project {project}");
                Ok(())
            })
            .await
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PAYCORE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
