//! Administrative commands: projects and API keys. Used by `serve` on first
//! start and by the `projects`/`keys` subcommands.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use paycore_domain::api_key::{ApiKeyToken, KeyKind};
use paycore_domain::{ApiKeyId, Command, CommandEnvelope, Environment, Meta, ProjectId, Timestamp};
use paycore_engine::{CommandMeta, Engine};
use uuid::Uuid;

pub fn now() -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX));
    Timestamp::from_micros(micros)
}

fn system() -> CommandMeta {
    CommandMeta {
        actor: Some("system:cli".into()),
        correlation_id: Some(Uuid::now_v7()),
    }
}

async fn run(engine: &Engine, project_id: ProjectId, command: Command) -> anyhow::Result<()> {
    let envelope = CommandEnvelope {
        project_id,
        now: now(),
        idempotency: None,
        command,
    };
    engine.execute_with(envelope, system()).await?;
    Ok(())
}

pub async fn create_project(engine: &Engine, name: &str, environment: Environment) -> anyhow::Result<ProjectId> {
    let id = ProjectId::from_uuid(Uuid::now_v7());
    let command = Command::CreateProject {
        id,
        name: name.to_owned(),
        environment,
        meta: Meta::default(),
    };
    run(engine, id, command).await.context("creating the project")?;
    Ok(id)
}

/// Creates a key and returns it in full: the only time it is ever visible.
pub async fn create_key(engine: &Engine, project_id: ProjectId, kind: KeyKind) -> anyhow::Result<ApiKeyToken> {
    let project = engine
        .load(&paycore_domain::StreamRef::Project(project_id))
        .await?
        .as_project()
        .cloned()
        .with_context(|| format!("project {project_id} not found"))?;
    let id = ApiKeyId::from_uuid(Uuid::now_v7());
    let token = ApiKeyToken::new(project.environment, kind, id, rand::random());
    let command = Command::CreateApiKey {
        id,
        kind,
        secret_hash: token.secret_hash(),
    };
    run(engine, project_id, command).await.context("creating the API key")?;
    Ok(token)
}

/// Revokes a key of whichever project owns it.
pub async fn revoke_key(engine: &Engine, id: ApiKeyId) -> anyhow::Result<ProjectId> {
    let key = engine
        .load(&paycore_domain::StreamRef::ApiKey(id))
        .await?
        .as_api_key()
        .cloned()
        .with_context(|| format!("API key {id} not found"))?;
    run(engine, key.project_id, Command::RevokeApiKey { id })
        .await
        .with_context(|| format!("revoking {id}"))?;
    Ok(key.project_id)
}
