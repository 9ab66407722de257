//! `CreateTransfers`: up to [`MAX_BATCHED_TRANSFERS`] transfers in one call,
//! decided in order inside one append, each with its own result.
//!
//! A transfer the server can refuse before deciding (a malformed field, a
//! bad idempotency key) is answered at once and never reaches the engine;
//! if it belongs to a linked chain, the chain's other transfers are not
//! sent either, and answer that the chain failed at it, exactly as the
//! engine answers a chain broken by a refusal.

use std::ops::Range;

use paycore_domain::{
    CommandEnvelope, DomainError, FieldViolation, Refusal, TransactionId, TransferId, Violations,
};
use paycore_engine::{BatchCommand, EngineError, Executed};
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Status};

use super::convert;
use crate::auth;
use crate::convert::{money_pb, timestamp};
use crate::errors::{
    IDEMPOTENCY_KEY_FIELD, REASON_LINKED_TRANSFER_FAILED, domain_code, engine_status, invalid_argument,
};
use crate::idempotency::{self, KeyScope};
use crate::pb;
use crate::services::{Handlers, correlation_id, methods, unexpected};

/// The most transfers one `CreateTransfers` call may carry (TigerBeetle's
/// batch size, so clients moving from it need not re-chunk).
pub const MAX_BATCHED_TRANSFERS: usize = 8_190;

/// Field of a batched transfer's own idempotency key.
const ITEM_KEY_FIELD: &str = "idempotency_key";

impl Handlers {
    pub(super) async fn create_transfers_batch(
        &self,
        request: Request<pb::CreateTransfersRequest>,
    ) -> Result<pb::CreateTransfersResponse, Status> {
        let caller = auth::authenticate(&self.state.engine, request.metadata()).await?;
        refuse_batch_key(request.metadata())?;
        let items = &request.get_ref().transfers;
        check_batch(items)?;
        let scope = if items.iter().any(|item| !item.idempotency_key.is_empty()) {
            Some(self.key_scope(&caller)?)
        } else {
            None
        };
        let now = self.state.clock.now();
        let mut results = vec![pb::CreateTransfersResult::default(); items.len()];
        let mut commands = Vec::with_capacity(items.len());
        // For each command sent, its transfer's index in the request.
        let mut sent = Vec::with_capacity(items.len());
        let mut prepared: Vec<Option<BatchCommand>> = items
            .iter()
            .zip(&mut results)
            .map(|(item, result)| {
                let envelope = |idempotency, command| CommandEnvelope {
                    project_id: caller.project_id,
                    now,
                    idempotency,
                    command,
                };
                match self.batched_command(item, scope.as_ref(), now, envelope) {
                    Ok(command) => Some(command),
                    Err(violations) => {
                        result.error = Some(invalid(violations));
                        None
                    }
                }
            })
            .collect();
        for chain in chains(items) {
            break_chain_at_first_refusal(chain, &mut prepared, &mut results);
        }
        for (index, command) in prepared.into_iter().enumerate() {
            if let Some(command) = command {
                sent.push(index);
                commands.push(command);
            }
        }
        for (index, item) in items.iter().enumerate() {
            // A transfer of yours is named in its result whatever became of it.
            results[index].transfer_id = item.transfer_id.clone();
        }
        let answers = self
            .execute_batch(&caller, correlation_id(request.metadata()), commands)
            .await?;
        for (answer, &index) in answers.into_iter().zip(&sent) {
            let result = &mut results[index];
            match answer {
                Ok(executed) => *result = created(&executed)?,
                Err(error) => result.error = Some(transfer_error(&error, |sent_index| sent[sent_index])),
            }
        }
        Ok(pb::CreateTransfersResponse { results })
    }

    /// The command of one batched transfer, or why it cannot be sent.
    fn batched_command(
        &self,
        item: &pb::BatchedTransfer,
        scope: Option<&KeyScope>,
        now: paycore_domain::Timestamp,
        envelope: impl FnOnce(Option<paycore_domain::IdempotencyKey>, paycore_domain::Command) -> CommandEnvelope,
    ) -> Result<BatchCommand, Vec<FieldViolation>> {
        let mut outer = Violations::new();
        let chosen = !item.transfer_id.is_empty();
        let id = if chosen {
            outer.check("transfer_id", item.transfer_id.parse::<TransferId>())
        } else {
            Some(TransferId::from_uuid(self.new_uuid()))
        };
        let key = match scope {
            Some(scope) if !item.idempotency_key.is_empty() => {
                let unkeyed = pb::BatchedTransfer {
                    idempotency_key: String::new(),
                    ..item.clone()
                };
                let hash = idempotency::request_hash(methods::CREATE_TRANSFERS, &unkeyed);
                idempotency::item_key(scope, &item.idempotency_key, ITEM_KEY_FIELD, hash, &mut outer)
            }
            _ => None,
        };
        let mut inner = Violations::new();
        let command = match (&item.transfer, id) {
            (Some(transfer), Some(id)) => {
                let ids = convert::TransferIds {
                    transfer: id,
                    source_transaction: TransactionId::from_uuid(self.new_uuid()),
                    destination_transaction: TransactionId::from_uuid(self.new_uuid()),
                };
                convert::create_transfer(transfer, ids, now, &mut inner)
            }
            (None, _) => {
                outer.add("transfer", "is required");
                None
            }
            (Some(_), None) => None,
        };
        let mut violations = violations_of(outer, "");
        violations.extend(violations_of(inner, "transfer."));
        match command {
            Some(command) if violations.is_empty() => Ok(BatchCommand {
                envelope: envelope(key, command),
                linked: item.linked,
                id_chosen_by_caller: chosen,
            }),
            _ => Err(violations),
        }
    }
}

/// The batch itself: 1 to [`MAX_BATCHED_TRANSFERS`] transfers, its last one
/// closing its chain.
fn check_batch(items: &[pb::BatchedTransfer]) -> Result<(), Status> {
    let mut v = Violations::new();
    check_batch_fields(items, &mut v);
    v.into_result().map_err(|e| crate::errors::domain_status(&e))
}

/// [`check_batch`]'s rules as violations (also for the fuzz harness).
pub fn check_batch_fields(items: &[pb::BatchedTransfer], v: &mut Violations) {
    if items.is_empty() {
        v.add("transfers", "must hold at least one transfer");
    } else if items.len() > MAX_BATCHED_TRANSFERS {
        v.add(
            "transfers",
            format!(
                "holds {} transfers; at most {MAX_BATCHED_TRANSFERS} are accepted in one call",
                items.len()
            ),
        );
    } else if items.last().is_some_and(|last| last.linked) {
        v.add(
            format!("transfers[{}].linked", items.len() - 1),
            "must be false: the batch's last transfer closes its chain",
        );
    }
}

/// A batch's idempotency is per transfer: the header would leave unclear
/// which transfers a retry may skip.
fn refuse_batch_key(metadata: &MetadataMap) -> Result<(), Status> {
    if metadata.contains_key(IDEMPOTENCY_KEY_FIELD) {
        return Err(invalid_argument(&[FieldViolation::new(
            IDEMPOTENCY_KEY_FIELD,
            "is not accepted on CreateTransfers: give each transfer its own `idempotency_key`",
        )]));
    }
    Ok(())
}

/// The request's linked chains: each from a linked transfer up to the first
/// transfer after it that is not linked.
fn chains(items: &[pb::BatchedTransfer]) -> Vec<Range<usize>> {
    let mut chains = Vec::new();
    let mut start = None;
    for (index, item) in items.iter().enumerate() {
        match (item.linked, start) {
            (true, None) => start = Some(index),
            (false, Some(first)) => {
                chains.push(first..index + 1);
                start = None;
            }
            _ => {}
        }
    }
    chains
}

/// When a transfer of `chain` is refused before reaching the engine, the
/// chain's others are not sent and answer that the chain failed there.
fn break_chain_at_first_refusal(
    chain: Range<usize>,
    prepared: &mut [Option<BatchCommand>],
    results: &mut [pb::CreateTransfersResult],
) {
    let Some(failed) = chain.clone().find(|&index| prepared[index].is_none()) else {
        return;
    };
    for index in chain.filter(|&index| index != failed) {
        prepared[index] = None;
        results[index].error = Some(linked_failed(failed));
    }
}

fn violations_of(v: Violations, prefix: &str) -> Vec<FieldViolation> {
    match v.into_result() {
        Ok(()) => Vec::new(),
        Err(DomainError::Invalid(violations)) => violations
            .into_iter()
            .map(|violation| {
                FieldViolation::new(format!("{prefix}{}", violation.field), violation.description)
            })
            .collect(),
        Err(other) => vec![FieldViolation::new(
            prefix.trim_end_matches('.'),
            other.to_string(),
        )],
    }
}

fn invalid(violations: Vec<FieldViolation>) -> pb::TransferError {
    let message = DomainError::Invalid(violations.clone()).to_string();
    pb::TransferError {
        code: Code::InvalidArgument as i32,
        message,
        reason: String::new(),
        field_violations: violations
            .into_iter()
            .map(|violation| pb::TransferFieldViolation {
                field: violation.field,
                description: violation.description,
            })
            .collect(),
        failed_index: None,
    }
}

fn linked_failed(failed: usize) -> pb::TransferError {
    pb::TransferError {
        code: Code::Aborted as i32,
        message: format!("not carried out: the linked transfer at index {failed} was refused"),
        reason: REASON_LINKED_TRANSFER_FAILED.to_owned(),
        field_violations: Vec::new(),
        failed_index: u32::try_from(failed).ok(),
    }
}

/// What the engine's refusal of one transfer answers, `request_index`
/// mapping an index among the commands sent to the request's.
fn transfer_error(error: &EngineError, request_index: impl Fn(usize) -> usize) -> pb::TransferError {
    match error {
        EngineError::Domain(DomainError::Invalid(violations)) => invalid(
            violations
                .iter()
                .map(|violation| {
                    FieldViolation::new(format!("transfer.{}", violation.field), &violation.description)
                })
                .collect(),
        ),
        EngineError::Domain(
            domain @ DomainError::Refused {
                refusal: Refusal::IdempotencyKeyReused,
                message,
            },
        ) => pb::TransferError {
            reason: domain_code(domain).1.unwrap_or_default().to_owned(),
            ..invalid(vec![FieldViolation::new(ITEM_KEY_FIELD, message)])
        },
        EngineError::Domain(domain) => {
            let (code, reason) = domain_code(domain);
            pb::TransferError {
                code: code as i32,
                message: domain.to_string(),
                reason: reason.unwrap_or_default().to_owned(),
                field_violations: Vec::new(),
                failed_index: None,
            }
        }
        EngineError::LinkedCommandFailed { failed_index } => linked_failed(request_index(*failed_index)),
        other => {
            let status = engine_status(other);
            pb::TransferError {
                code: status.code() as i32,
                message: status.message().to_owned(),
                reason: String::new(),
                field_violations: Vec::new(),
                failed_index: None,
            }
        }
    }
}

/// The result of a transfer the engine created (or replayed).
fn created(executed: &Executed) -> Result<pb::CreateTransfersResult, Status> {
    let transfer = executed
        .state
        .as_transfer()
        .ok_or_else(|| unexpected("transfer", &executed.state))?;
    Ok(pb::CreateTransfersResult {
        transfer_id: transfer.id.to_string(),
        source_transaction_id: transfer.source_transaction_id.to_string(),
        destination_transaction_id: transfer.destination_transaction_id.to_string(),
        created_at: Some(timestamp(transfer.created_at)),
        destination_value: Some(money_pb(transfer.destination_value())),
        replayed: executed.replayed,
        error: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(linked: bool) -> pb::BatchedTransfer {
        pb::BatchedTransfer {
            linked,
            ..Default::default()
        }
    }

    #[test]
    fn chains_run_from_a_linked_transfer_to_the_first_not_linked() {
        let items: Vec<_> = [false, true, true, false, false, true, false]
            .into_iter()
            .map(item)
            .collect();
        assert_eq!(chains(&items), vec![1..4, 5..7]);
        assert!(chains(&[item(false), item(false)]).is_empty());
    }

    #[test]
    fn a_batch_is_one_to_8190_transfers_and_closes_its_last_chain() {
        assert_eq!(check_batch(&[]).unwrap_err().code(), Code::InvalidArgument);
        let full = vec![item(false); MAX_BATCHED_TRANSFERS];
        assert!(check_batch(&full).is_ok());
        let over = vec![item(false); MAX_BATCHED_TRANSFERS + 1];
        let status = check_batch(&over).unwrap_err();
        assert!(status.message().contains("8191"), "{}", status.message());
        let open = check_batch(&[item(false), item(true)]).unwrap_err();
        assert!(
            open.message().contains("transfers[1].linked"),
            "{}",
            open.message()
        );
    }

    #[test]
    fn a_refusal_before_the_engine_breaks_its_chain_only() {
        let mut prepared: Vec<Option<BatchCommand>> = vec![None, None, None, None];
        // Stand-ins: only whether a command is there matters.
        let envelope = CommandEnvelope {
            project_id: paycore_domain::ProjectId::from_uuid(uuid::Uuid::nil()),
            now: paycore_domain::Timestamp::from_micros(0),
            idempotency: None,
            command: paycore_domain::transfer::TransferCommand::UpdateTransfer {
                id: TransferId::from_uuid(uuid::Uuid::nil()),
                meta: Default::default(),
            }
            .into(),
        };
        prepared[0] = Some(BatchCommand::new(envelope.clone()));
        prepared[2] = Some(BatchCommand::new(envelope.clone()));
        prepared[3] = Some(BatchCommand::new(envelope));
        let mut results = vec![pb::CreateTransfersResult::default(); 4];
        break_chain_at_first_refusal(0..3, &mut prepared, &mut results);
        assert!(prepared[0].is_none() && prepared[2].is_none() && prepared[3].is_some());
        for index in [0, 2] {
            let error = results[index].error.as_ref().unwrap();
            assert_eq!(error.reason, REASON_LINKED_TRANSFER_FAILED);
            assert_eq!(error.failed_index, Some(1));
        }
        assert!(results[1].error.is_none() && results[3].error.is_none());
    }
}
