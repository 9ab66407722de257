//! The `idempotency-key` metadata: accepted on `Create*` methods only, bound to
//! a hash of the exact request so a retry with other parameters is refused.
//! The key itself is never kept: only its keyed digest
//! (`paycore_domain::kernel::idempotency`).

use paycore_domain::{IdempotencyKey, ProjectId, Timestamp, Violations};
use sha2::{Digest, Sha256};
use tonic::metadata::MetadataMap;

use crate::errors::{IDEMPOTENCY_KEY_FIELD, invalid_argument};

/// SHA-256 of the full gRPC method name (`/paycore.v1.TransferService/CreateTransfer`),
/// a zero byte, and the request's protobuf encoding. Maps are encoded in key
/// order (`btree_map` in the build), so equal requests hash equally.
pub fn request_hash(method: &str, request: &impl prost::Message) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update([0]);
    hasher.update(request.encode_to_vec());
    hasher.finalize().into()
}

/// Where a caller's keys are kept: their project, the deployment's secret
/// the digest is keyed with, and whether records kept under the key as sent
/// may still be live.
#[derive(Clone, Copy)]
pub struct KeyScope {
    pub project: ProjectId,
    pub server_secret: [u8; 32],
    pub look_up_verbatim: bool,
}

impl std::fmt::Debug for KeyScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyScope")
            .field("project", &self.project)
            .field("look_up_verbatim", &self.look_up_verbatim)
            .finish_non_exhaustive()
    }
}

impl KeyScope {
    /// `verbatim_until`: the end of the window of the newest record kept
    /// under the key as sent (`ReadModels::verbatim_idempotency_until`).
    pub fn new(
        project: ProjectId,
        server_secret: [u8; 32],
        verbatim_until: Option<Timestamp>,
        now: Timestamp,
    ) -> Self {
        Self {
            project,
            server_secret,
            look_up_verbatim: verbatim_until.is_some_and(|until| now < until),
        }
    }
}

/// The idempotency key of a `Create*` request, if it has one. A malformed key
/// is recorded as a violation of `idempotency-key`.
pub fn key(
    scope: &KeyScope,
    metadata: &MetadataMap,
    method: &str,
    request: &impl prost::Message,
    v: &mut Violations,
) -> Option<IdempotencyKey> {
    let value = metadata.get(IDEMPOTENCY_KEY_FIELD)?;
    let Ok(text) = value.to_str() else {
        v.add(IDEMPOTENCY_KEY_FIELD, "must be printable ASCII");
        return None;
    };
    let hash = request_hash(method, request);
    match IdempotencyKey::new(
        text,
        scope.project,
        &scope.server_secret,
        hash,
        scope.look_up_verbatim,
    ) {
        Ok(key) => Some(key),
        Err(paycore_domain::DomainError::Invalid(violations)) => {
            for violation in violations {
                v.add(violation.field, violation.description);
            }
            None
        }
        Err(other) => {
            v.add(IDEMPOTENCY_KEY_FIELD, other.to_string());
            None
        }
    }
}

/// The idempotency key one item of a batch carries in its own field
/// (`field`), bound to `request_hash` (the item's). A malformed key is
/// recorded as a violation of `field`.
pub fn item_key(
    scope: &KeyScope,
    text: &str,
    field: &str,
    request_hash: [u8; 32],
    v: &mut Violations,
) -> Option<IdempotencyKey> {
    match IdempotencyKey::new(
        text,
        scope.project,
        &scope.server_secret,
        request_hash,
        scope.look_up_verbatim,
    ) {
        Ok(key) => Some(key),
        Err(paycore_domain::DomainError::Invalid(violations)) => {
            for violation in violations {
                v.add(field, violation.description);
            }
            None
        }
        Err(other) => {
            v.add(field, other.to_string());
            None
        }
    }
}

/// Reads and `Update*` methods are idempotent already and refuse the key;
/// it is accepted on `Create*` and on the calls that change a resource's
/// state (settle, complete, fail, return, simulate).
pub fn reject(metadata: &MetadataMap) -> Result<(), tonic::Status> {
    if metadata.contains_key(IDEMPOTENCY_KEY_FIELD) {
        return Err(invalid_argument(&[paycore_domain::FieldViolation::new(
            IDEMPOTENCY_KEY_FIELD,
            "is only accepted on methods that create or change the state of a resource; this method is idempotent already",
        )]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    fn transfer(meta: &[(&str, &str)]) -> pb::CreateTransferRequest {
        pb::CreateTransferRequest {
            source_account_id: "acc_a".into(),
            destination_account_id: "acc_b".into(),
            value: Some(pb::Money {
                currency: "EUR".into(),
                amount: 100,
            }),
            meta: meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            pending_timeout: None,
        }
    }

    #[test]
    fn hash_depends_on_method_and_content_not_map_order() {
        let a = transfer(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let b = transfer(&[("c", "3"), ("a", "1"), ("b", "2")]);
        let m = "/paycore.v1.TransferService/CreateTransfer";
        assert_eq!(request_hash(m, &a), request_hash(m, &b));
        assert_ne!(request_hash(m, &a), request_hash("/x/CreateTransfer", &a));
        assert_ne!(request_hash(m, &a), request_hash(m, &transfer(&[])));
    }

    fn scope() -> KeyScope {
        let project = ProjectId::from_uuid(uuid::Uuid::from_u128(1));
        KeyScope::new(project, [5; 32], None, Timestamp::from_micros(0))
    }

    #[test]
    fn reads_validates_and_rejects_the_key() {
        let request = transfer(&[]);
        let m = "/m";
        let mut metadata = MetadataMap::new();
        let mut v = Violations::new();
        assert_eq!(key(&scope(), &metadata, m, &request, &mut v), None);
        assert!(v.is_empty());
        assert!(reject(&metadata).is_ok());

        metadata.insert(IDEMPOTENCY_KEY_FIELD, "order-42".parse().unwrap());
        let found = key(&scope(), &metadata, m, &request, &mut v).unwrap();
        assert!(found.stored.starts_with("h1-") && !found.stored.contains("order"));
        assert_eq!(found.verbatim, None);
        assert_eq!(found.request_hash, request_hash(m, &request));
        assert!(v.is_empty());
        assert_eq!(
            reject(&metadata).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );

        metadata.insert(IDEMPOTENCY_KEY_FIELD, "x".repeat(256).parse().unwrap());
        assert_eq!(key(&scope(), &metadata, m, &request, &mut v), None);
        let Err(paycore_domain::DomainError::Invalid(fields)) = v.into_result() else {
            panic!("expected a violation");
        };
        assert_eq!(fields[0].field, IDEMPOTENCY_KEY_FIELD);
    }
}
