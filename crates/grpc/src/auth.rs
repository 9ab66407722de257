//! Authentication: `authorization: Bearer <API key>` metadata, checked against
//! the key's stream in the log. The key is never logged; every failure but a
//! revoked key answers the same message, so a caller learns nothing about
//! which part was wrong.

use paycore_domain::aggregate::{ApiKey, Project};
use paycore_domain::project::api_key::{ApiKeyToken, KeyKind};
use paycore_domain::{Aggregate, ApiKeyId, Environment, ProjectId, StreamRef};
use paycore_engine::Engine;
use subtle::ConstantTimeEq;
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::errors::engine_status;

/// Who is calling: the project and key a request acts for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub project_id: ProjectId,
    pub key_id: ApiKeyId,
    pub environment: Environment,
}

/// Why a request is not let in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing authorization metadata: expected `authorization: Bearer <API key>`")]
    Missing,
    /// Malformed, unknown or wrong key: deliberately one case.
    #[error("invalid API key")]
    Invalid,
    #[error("API key revoked")]
    Revoked,
    #[error("public API keys may only create card tokens; use a secret key")]
    PublicKey,
}

impl From<AuthError> for Status {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::PublicKey => Status::permission_denied(error.to_string()),
            AuthError::Missing | AuthError::Invalid | AuthError::Revoked => {
                Status::unauthenticated(error.to_string())
            }
        }
    }
}

/// The key presented in `authorization`, parsed but not yet verified.
pub fn bearer_token(metadata: &MetadataMap) -> Result<ApiKeyToken, AuthError> {
    let value = metadata.get("authorization").ok_or(AuthError::Missing)?;
    let text = value.to_str().map_err(|_| AuthError::Invalid)?.trim();
    let (scheme, key) = text.split_once(' ').ok_or(AuthError::Invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Invalid);
    }
    ApiKeyToken::parse(key.trim()).map_err(|_| AuthError::Invalid)
}

/// Which kinds of API key a method lets in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAccess {
    /// Every method but one: public keys answer PERMISSION_DENIED.
    SecretOnly,
    /// `CardTokenService.CreateCardToken` only: public keys are meant to be
    /// shipped in browsers and apps, so that card data reaches paycore
    /// without passing through the project's servers.
    PublicOrSecret,
}

/// Checks a presented secret key against the stored key and its project.
/// `key` and `project` are whatever the log holds for the key's ID (`None`
/// if nothing).
pub fn verify(
    token: &ApiKeyToken,
    key: Option<&ApiKey>,
    project: Option<&Project>,
) -> Result<Caller, AuthError> {
    verify_for(token, key, project, KeyAccess::SecretOnly)
}

/// [`verify`] for a method that lets in the keys of `access`.
pub fn verify_for(
    token: &ApiKeyToken,
    key: Option<&ApiKey>,
    project: Option<&Project>,
    access: KeyAccess,
) -> Result<Caller, AuthError> {
    let key = key.ok_or(AuthError::Invalid)?;
    let secret_matches: bool = token.secret_hash().ct_eq(&key.secret_hash).into();
    if !secret_matches || key.id != token.key_id || key.kind != token.kind {
        return Err(AuthError::Invalid);
    }
    let project = project
        .filter(|project| project.id == key.project_id)
        .ok_or(AuthError::Invalid)?;
    if project.environment != token.environment {
        return Err(AuthError::Invalid);
    }
    if key.revoked_at.is_some() {
        return Err(AuthError::Revoked);
    }
    if key.kind == KeyKind::Public && access == KeyAccess::SecretOnly {
        return Err(AuthError::PublicKey);
    }
    Ok(Caller {
        project_id: project.id,
        key_id: key.id,
        environment: project.environment,
    })
}

/// Authenticates a request with a secret key.
pub async fn authenticate(engine: &Engine, metadata: &MetadataMap) -> Result<Caller, Status> {
    authenticate_for(engine, metadata, KeyAccess::SecretOnly).await
}

/// Authenticates a request with a public or a secret key (only for
/// `CreateCardToken`).
pub async fn authenticate_allowing_public(engine: &Engine, metadata: &MetadataMap) -> Result<Caller, Status> {
    authenticate_for(engine, metadata, KeyAccess::PublicOrSecret).await
}

async fn authenticate_for(
    engine: &Engine,
    metadata: &MetadataMap,
    access: KeyAccess,
) -> Result<Caller, Status> {
    let token = bearer_token(metadata)?;
    let key = engine
        .load(&StreamRef::ApiKey(token.key_id))
        .await
        .map_err(|e| engine_status(&e))?;
    let Aggregate::ApiKey(key) = key else {
        return Err(AuthError::Invalid.into());
    };
    let project = engine
        .load(&StreamRef::Project(key.project_id))
        .await
        .map_err(|e| engine_status(&e))?;
    verify_for(&token, Some(&key), project.as_project(), access).map_err(|error| {
        tracing::debug!(key_id = %token.key_id, %error, "authentication failed");
        Status::from(error)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use paycore_domain::Timestamp;
    use paycore_domain::kernel::meta::Meta;
    use paycore_domain::project::api_key::hash_secret;
    use uuid::Uuid;

    const SECRET: [u8; 32] = [7; 32];

    fn key(kind: KeyKind) -> ApiKey {
        ApiKey {
            id: ApiKeyId::from_uuid(Uuid::from_u128(1)),
            project_id: ProjectId::from_uuid(Uuid::from_u128(2)),
            kind,
            secret_hash: hash_secret(&SECRET),
            created_at: Timestamp::from_micros(0),
            revoked_at: None,
        }
    }

    fn project(environment: Environment) -> Project {
        Project {
            id: ProjectId::from_uuid(Uuid::from_u128(2)),
            name: "p".into(),
            environment,
            meta: Meta::default(),
            created_at: Timestamp::from_micros(0),
        }
    }

    fn token(kind: KeyKind, secret: [u8; 32]) -> ApiKeyToken {
        ApiKeyToken::new(
            Environment::Sandbox,
            kind,
            ApiKeyId::from_uuid(Uuid::from_u128(1)),
            secret,
        )
    }

    fn metadata(value: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert("authorization", value.parse().unwrap());
        metadata
    }

    #[test]
    fn parses_bearer_tokens() {
        let token = token(KeyKind::Secret, SECRET);
        assert_eq!(bearer_token(&MetadataMap::new()), Err(AuthError::Missing));
        assert_eq!(
            bearer_token(&metadata(&format!("Bearer {token}"))),
            Ok(token.clone())
        );
        assert_eq!(
            bearer_token(&metadata(&format!("bearer  {token} "))),
            Ok(token.clone())
        );
        for bad in [
            format!("Basic {token}"),
            token.to_string(),
            "Bearer".to_owned(),
            "Bearer sandbox_secretkey_x_y".to_owned(),
        ] {
            assert_eq!(bearer_token(&metadata(&bad)), Err(AuthError::Invalid), "{bad}");
        }
    }

    #[test]
    fn verifies_secret_kind_environment_and_revocation() {
        let secret = key(KeyKind::Secret);
        let sandbox = project(Environment::Sandbox);
        let caller = verify(&token(KeyKind::Secret, SECRET), Some(&secret), Some(&sandbox)).unwrap();
        assert_eq!(caller.project_id, sandbox.id);
        assert_eq!(caller.environment, Environment::Sandbox);

        let wrong = token(KeyKind::Secret, [8; 32]);
        assert_eq!(
            verify(&wrong, Some(&secret), Some(&sandbox)),
            Err(AuthError::Invalid)
        );
        let good = token(KeyKind::Secret, SECRET);
        assert_eq!(verify(&good, None, Some(&sandbox)), Err(AuthError::Invalid));
        assert_eq!(verify(&good, Some(&secret), None), Err(AuthError::Invalid));
        let live = project(Environment::Live);
        assert_eq!(verify(&good, Some(&secret), Some(&live)), Err(AuthError::Invalid));
        assert_eq!(
            verify(&token(KeyKind::Public, SECRET), Some(&secret), Some(&sandbox)),
            Err(AuthError::Invalid)
        );

        let revoked = ApiKey {
            revoked_at: Some(Timestamp::from_micros(5)),
            ..secret
        };
        assert_eq!(
            verify(&good, Some(&revoked), Some(&sandbox)),
            Err(AuthError::Revoked)
        );
        let public = key(KeyKind::Public);
        assert_eq!(
            verify(&token(KeyKind::Public, SECRET), Some(&public), Some(&sandbox)),
            Err(AuthError::PublicKey)
        );
    }

    #[test]
    fn public_keys_only_where_allowed() {
        let sandbox = project(Environment::Sandbox);
        let public = key(KeyKind::Public);
        let public_token = token(KeyKind::Public, SECRET);
        for access in [KeyAccess::SecretOnly, KeyAccess::PublicOrSecret] {
            let allowed = verify_for(&public_token, Some(&public), Some(&sandbox), access);
            if access == KeyAccess::SecretOnly {
                assert_eq!(allowed, Err(AuthError::PublicKey));
            } else {
                assert_eq!(allowed.map(|caller| caller.key_id), Ok(public.id));
            }
            // A secret key is welcome everywhere.
            let secret = key(KeyKind::Secret);
            let caller = verify_for(
                &token(KeyKind::Secret, SECRET),
                Some(&secret),
                Some(&sandbox),
                access,
            );
            assert_eq!(caller.map(|caller| caller.project_id), Ok(sandbox.id));
        }
        // Letting public keys in relaxes nothing else: wrong secrets, kinds
        // and revoked keys stay out.
        let open = KeyAccess::PublicOrSecret;
        assert_eq!(
            verify_for(
                &token(KeyKind::Public, [8; 32]),
                Some(&public),
                Some(&sandbox),
                open
            ),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            verify_for(
                &token(KeyKind::Secret, SECRET),
                Some(&public),
                Some(&sandbox),
                open
            ),
            Err(AuthError::Invalid)
        );
        let revoked = ApiKey {
            revoked_at: Some(Timestamp::from_micros(5)),
            ..public
        };
        assert_eq!(
            verify_for(&public_token, Some(&revoked), Some(&sandbox), open),
            Err(AuthError::Revoked)
        );
    }

    #[test]
    fn statuses() {
        assert_eq!(
            Status::from(AuthError::Missing).code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            Status::from(AuthError::Invalid).code(),
            tonic::Code::Unauthenticated
        );
        let revoked = Status::from(AuthError::Revoked);
        assert_eq!(revoked.code(), tonic::Code::Unauthenticated);
        assert_eq!(revoked.message(), "API key revoked");
        assert_eq!(
            Status::from(AuthError::PublicKey).code(),
            tonic::Code::PermissionDenied
        );
    }
}
