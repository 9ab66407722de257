//! The aggregated account family's commands.

use super::decide::{FoundAccount, ImportedTransaction};
use super::events::{AggregatedAccountEvent, BankId};
use crate::aggregation_connection::AggregationConnectionEvent;
use crate::context::{Context, Decided, FamilyCommand};
use crate::kernel::error::DomainError;
use crate::kernel::id::{AggregatedAccountId, AggregationConnectionId, AggregationImportId, ProjectId};
use crate::kernel::stream::StreamRef;

#[derive(Clone, Debug, PartialEq, Eq, strum::IntoStaticStr)]
pub enum AggregatedAccountCommand {
    /// Every account the bank lists now (one sync of the connection).
    SyncAggregatedAccounts {
        connection_id: AggregationConnectionId,
        import_id: Option<AggregationImportId>,
        accounts: Vec<FoundAccount>,
    },
    EnableAggregatedAccount {
        id: AggregatedAccountId,
    },
    /// One sync page of one account's transactions.
    RecordAggregatedTransactions {
        account_id: AggregatedAccountId,
        import_id: Option<AggregationImportId>,
        transactions: Vec<ImportedTransaction>,
        /// Bank IDs of transactions the bank no longer lists.
        removed: Vec<BankId>,
    },
}

impl<E> FamilyCommand<E> for AggregatedAccountCommand
where
    E: From<AggregatedAccountEvent> + From<AggregationConnectionEvent>,
{
    fn streams(&self, _project: ProjectId, streams: &mut Vec<StreamRef>) {
        match self {
            Self::SyncAggregatedAccounts {
                connection_id,
                import_id,
                accounts,
            } => {
                streams.push(StreamRef::AggregationConnection(*connection_id));
                streams.extend(import_id.map(StreamRef::AggregationImport));
                streams.extend(accounts.iter().map(|a| StreamRef::AggregatedAccount(a.new_id)));
            }
            Self::EnableAggregatedAccount { id } => streams.push(StreamRef::AggregatedAccount(*id)),
            Self::RecordAggregatedTransactions {
                account_id,
                import_id,
                ..
            } => {
                streams.push(StreamRef::AggregatedAccount(*account_id));
                streams.extend(import_id.map(StreamRef::AggregationImport));
            }
        }
    }

    fn dependent_streams(&self, ctx: &Context<'_>) -> Vec<StreamRef> {
        match self {
            Self::SyncAggregatedAccounts { connection_id, .. } => {
                ctx.dependent_streams_of_sync(*connection_id)
            }
            Self::EnableAggregatedAccount { id: account_id }
            | Self::RecordAggregatedTransactions { account_id, .. } => {
                ctx.dependent_streams_of_aggregated_account(*account_id)
            }
        }
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Decided<E>, DomainError> {
        match self {
            Self::SyncAggregatedAccounts {
                connection_id,
                import_id,
                accounts,
            } => ctx.sync_aggregated_accounts(*connection_id, *import_id, accounts),
            Self::EnableAggregatedAccount { id } => ctx.enable_aggregated_account(*id),
            Self::RecordAggregatedTransactions {
                account_id,
                import_id,
                transactions,
                removed,
            } => ctx.record_aggregated_transactions(*account_id, *import_id, transactions, removed),
        }
    }
}
