//! `paycore institutions`: which banks of the bank connector's catalogue a
//! project's customers may connect to (open banking).
//!
//! Like `paycore fx`, each command opens the store itself when no server
//! holds the data directory (and always with PostgreSQL), and otherwise
//! goes through the running server's admin socket.

use std::path::Path;
use std::sync::Arc;

use clap::Subcommand;
use paycore_bank_connector::{BankConnector, SandboxBank};
use paycore_domain::ProjectId;
use paycore_domain::kernel::institution::InstitutionId;
use paycore_grpc::admin;

use crate::serve::{self, StoreChoice};

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

/// The catalogue the server reads from (the same default as `serve`).
fn bank() -> Arc<dyn BankConnector> {
    Arc::new(SandboxBank::new())
}

pub async fn run(data_dir: &Path, store: &StoreChoice, command: InstitutionsCommand) -> anyhow::Result<()> {
    match command {
        InstitutionsCommand::List => {
            let mut institutions = bank().institutions().await?;
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
            set(data_dir, store, project, institution.clone(), true).await?;
            println!("activated {institution} for {project}");
            Ok(())
        }
        InstitutionsCommand::Deactivate { project, institution } => {
            set(data_dir, store, project, institution.clone(), false).await?;
            println!("deactivated {institution} for {project}");
            Ok(())
        }
    }
}

async fn set(
    data_dir: &Path,
    store: &StoreChoice,
    project: ProjectId,
    institution: InstitutionId,
    active: bool,
) -> anyhow::Result<()> {
    let direct_institution = institution.clone();
    let direct = serve::with_engine(data_dir, store, |engine| async move {
        admin::set_institution_active(&engine, bank().as_ref(), project, direct_institution, active).await?;
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
