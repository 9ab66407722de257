//! `paycore institutions`: which banks of the bank connector's catalogue a
//! project's customers may connect to (open banking).
//!
//! Like `paycore fx`, each command opens the store itself when no server
//! holds the data directory (and always with PostgreSQL), and otherwise
//! goes through the running server's admin socket.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use paycore_domain::ProjectId;
use paycore_domain::kernel::institution::InstitutionId;
use paycore_grpc::admin;

use crate::serve::{self, StoreChoice};

#[derive(Debug, Args)]
pub struct InstitutionsArgs {
    /// The catalogue is the Berlin Group banks of this file, as with `serve
    /// --berlin-group-banks` (else the sandbox bank's). Through a running
    /// server's admin socket, activation checks the server's own catalogue.
    #[arg(long, global = true, env = "PAYCORE_BERLIN_GROUP_BANKS", value_name = "FILE")]
    berlin_group_banks: Option<PathBuf>,
    #[command(subcommand)]
    command: InstitutionsCommand,
}

#[derive(Debug, Subcommand)]
pub enum InstitutionsCommand {
    /// Print the bank connector's catalogue (ID, country, name).
    List,
    /// Let a project's customers connect to an institution of the catalogue.
    Activate {
        /// The project (prj_…).
        #[arg(long)]
        project: ProjectId,
        /// The institution's ID in the catalogue (`paycore institutions list`).
        institution: InstitutionId,
    },
    /// No new connection to the institution for the project (existing
    /// connections keep working).
    Deactivate {
        /// The project (prj_…).
        #[arg(long)]
        project: ProjectId,
        /// The institution's ID in the catalogue.
        institution: InstitutionId,
    },
}

pub async fn run(data_dir: &Path, store: &StoreChoice, args: InstitutionsArgs) -> anyhow::Result<()> {
    let banks = args.berlin_group_banks.as_deref();
    match args.command {
        InstitutionsCommand::List => {
            let mut institutions = crate::banks::connector(banks)?.institutions().await?;
            institutions
                .sort_by(|a, b| (a.country.to_string(), &a.name).cmp(&(b.country.to_string(), &b.name)));
            for institution in institutions {
                println!(
                    "{:<24} {}  {}",
                    institution.id.as_str(),
                    institution.country,
                    institution.name
                );
            }
            Ok(())
        }
        InstitutionsCommand::Activate { project, institution } => {
            set(data_dir, store, banks, project, institution.clone(), true).await?;
            println!("activated {institution} for {project}");
            Ok(())
        }
        InstitutionsCommand::Deactivate { project, institution } => {
            set(data_dir, store, banks, project, institution.clone(), false).await?;
            println!("deactivated {institution} for {project}");
            Ok(())
        }
    }
}

/// Opens the store itself with the catalogue of `banks` (checked first, so
/// a bad file is reported whichever path is taken), or asks the running
/// server, which checks against its own.
async fn set(
    data_dir: &Path,
    store: &StoreChoice,
    banks: Option<&Path>,
    project: ProjectId,
    institution: InstitutionId,
    active: bool,
) -> anyhow::Result<()> {
    let bank = crate::banks::connector(banks)?;
    let direct_institution = institution.clone();
    let direct = serve::with_engine(data_dir, store, |engine| async move {
        admin::set_institution_active(&engine, bank.as_ref(), project, direct_institution, active).await?;
        Ok(())
    });
    if direct.await?.is_some() {
        return Ok(());
    }
    let request = admin::pb::InstitutionActivationRequest {
        project_id: project.to_string(),
        institution_id: institution.to_string(),
    };
    let mut client = crate::admin_client(data_dir).await?;
    if active {
        client.activate_institution(request).await
    } else {
        client.deactivate_institution(request).await
    }
    .map_err(crate::refused)?;
    Ok(())
}
