//! Import jobs: one import's run, from `StartAggregationImport` to its
//! success or failure, and how jobs are started (bounded, one per
//! connection at a time).
//!
//! A run reads the bank at one [`SyncPoint`] (`now` = the import's start,
//! `previous_sync` = the connection's last successful sync), the same
//! again when a job resumes after a crash, so every page is consistent and
//! the pages read again are the same; the domain records each transaction
//! once, so repeating them writes nothing. The end is recorded in an order
//! that tells a resumed job where it was: the final progress, the source's
//! last update (then the data is all recorded: a resumed job only finishes
//! the bookkeeping), `CONNECTED`, the import's success.

use paycore_bank_connector::{
    BookingStatus, ConnectorError, Consent, MAX_PAGE_SIZE, SyncPoint, TransactionPage, TransactionQuery,
};
use paycore_domain::aggregated_account::AggregatedAccountType;
use paycore_domain::aggregated_account::{AccountOwner, AggregatedAccountCommand, ImportedTransaction};
use paycore_domain::aggregation_connection::{
    ActionRequiredReason, AggregationConnection, AggregationConnectionCommand, ConnectionStatus, SourceState,
};
use paycore_domain::aggregation_import::{
    AdvancedScope, AggregationImport, AggregationImportCommand, ImportFailure, ImportProgress,
    MAX_FAILURE_DETAIL_CHARS,
};
use paycore_domain::{
    AggregatedAccountId, AggregationConnectionId, AggregationImportId, ProjectId, StreamRef, Timestamp,
};
use paycore_engine::EngineError;

use crate::Syncer;
use crate::clock::{from_domain_date, from_offset, plus, to_offset};
use crate::convert::{self, BankAccountRef, StoredConsent};
use crate::error::{SyncError, connector_text};
use crate::secrets::consent_key;

/// Why a run stopped.
enum Stop {
    /// The bank answered an error (after retries for a bank that is down).
    Bank(ConnectorError),
    Sync(SyncError),
}

impl From<SyncError> for Stop {
    fn from(error: SyncError) -> Self {
        Self::Sync(error)
    }
}

impl From<EngineError> for Stop {
    fn from(error: EngineError) -> Self {
        Self::Sync(error.into())
    }
}

/// What a run needs of a known account (not its transactions' digests).
struct Known {
    id: AggregatedAccountId,
    bank_ref: String,
    owners: Vec<AccountOwner>,
    readable: bool,
    card: bool,
}

/// What one run counted; merged with the progress recorded before it (a
/// resumed job counts from the start again).
struct Counts {
    base: ImportProgress,
    run: ImportProgress,
}

impl Counts {
    fn progress(&self) -> ImportProgress {
        ImportProgress {
            accounts_found: self.base.accounts_found.max(self.run.accounts_found),
            accounts_done: self.base.accounts_done.max(self.run.accounts_done),
            transactions_seen: self.base.transactions_seen.max(self.run.transactions_seen),
            transactions_recorded: self.base.transactions_recorded + self.run.transactions_recorded,
        }
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(MAX_FAILURE_DETAIL_CHARS).collect()
}

/// The connection's last successful sync (any source's).
fn last_sync(connection: &AggregationConnection) -> Option<Timestamp> {
    connection.sources.iter().filter_map(|s| s.last_update).max()
}

impl Syncer {
    /// Starts an import of a connection (`scope` `None`: default, every
    /// part, 5 years); the job runs in the background.
    pub async fn start_import(
        &self,
        project: ProjectId,
        connection: AggregationConnectionId,
        scope: Option<AdvancedScope>,
    ) -> Result<AggregationImportId, SyncError> {
        let state = self.connection(project, connection).await?;
        self.may_import(&state)?;
        self.create_import(project, connection, scope, self.now()).await
    }

    /// Refreshes a connection now: a default import.
    pub async fn refresh(
        &self,
        project: ProjectId,
        connection: AggregationConnectionId,
    ) -> Result<AggregationImportId, SyncError> {
        self.start_import(project, connection, None).await
    }

    fn may_import(&self, connection: &AggregationConnection) -> Result<(), SyncError> {
        if let Some(import) = self.running_import(connection.id) {
            return Err(SyncError::AlreadyUpdating {
                connection: connection.id,
                import: Some(import),
            });
        }
        match connection.status {
            ConnectionStatus::Connected | ConnectionStatus::RefreshDelayed { .. } => Ok(()),
            ConnectionStatus::Updating => Err(SyncError::AlreadyUpdating {
                connection: connection.id,
                import: None,
            }),
            ConnectionStatus::ActionRequired { reason } => Err(SyncError::ActionRequired {
                connection: connection.id,
                reason,
            }),
            ConnectionStatus::InitialActionRequired { .. } | ConnectionStatus::Connecting => {
                Err(SyncError::WrongStep {
                    connection: connection.id,
                    status: connection.status.name(),
                    expected: "signed in at the bank first",
                })
            }
        }
    }

    pub(crate) fn running_import(&self, connection: AggregationConnectionId) -> Option<AggregationImportId> {
        let running = self
            .inner
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        running.get(&connection).copied()
    }

    /// Runs the import in the background unless this syncer already runs
    /// one for the connection (then the import waits for a resume).
    pub(crate) fn spawn_job(
        &self,
        project: ProjectId,
        connection: AggregationConnectionId,
        import: AggregationImportId,
    ) {
        {
            let mut running = self
                .inner
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if running.contains_key(&connection) {
                tracing::info!(target: "paycore::aggregation", %connection, %import, "an import already runs for the connection");
                return;
            }
            running.insert(connection, import);
        }
        self.inner.jobs.send_modify(|n| *n += 1);
        let syncer = self.clone();
        tokio::spawn(async move {
            // Dropped however the task ends (finished, failed, aborted).
            let _job = JobGuard {
                syncer: syncer.clone(),
                connection,
            };
            let Ok(_permit) = syncer.inner.permits.clone().acquire_owned().await else {
                return;
            };
            if let Err(error) = syncer.run_import(project, import).await {
                tracing::warn!(target: "paycore::aggregation", %import, %error, "import job stopped; it resumes at the next start");
            }
        });
    }

    /// Runs one import to its end in the caller's task: what the background
    /// jobs do. An import already finished is left alone. Returns an error
    /// only when nothing could be recorded (the store unavailable): the
    /// import then stays unfinished and is resumed at the next start.
    pub async fn run_import(&self, project: ProjectId, id: AggregationImportId) -> Result<(), SyncError> {
        let import = self.import_state(project, id).await?;
        if import.status.is_finished() {
            return Ok(());
        }
        let now = self.now();
        let connection = match self.connection(project, import.connection_id).await {
            Ok(connection) => connection,
            Err(SyncError::ConnectionNotFound(_)) => {
                return self
                    .fail(
                        project,
                        id,
                        ImportFailure::ConnectionDeleted,
                        "the connection was deleted",
                    )
                    .await;
            }
            Err(error) => return Err(error),
        };
        self.exec(
            project,
            now,
            AggregationImportCommand::StartAggregationImport { id }.into(),
        )
        .await?;
        let import = self.import_state(project, id).await?;
        let started_at = import.started_at.unwrap_or(now);
        if last_sync(&connection).is_some_and(|last| last >= started_at) {
            // Resumed after its data was all recorded.
            return self.finish(project, &import, import.progress).await;
        }
        let Some(consent) = self.prepare(project, &import, &connection).await? else {
            return Ok(());
        };
        let at = SyncPoint {
            now: to_offset(started_at)?,
            previous_sync: last_sync(&connection).map(to_offset).transpose()?,
        };
        match self.import_data(project, &import, &consent, at).await {
            Ok(progress) => self.finish(project, &import, progress).await,
            Err(Stop::Bank(error)) => self.bank_failed(project, &import, &error).await,
            Err(Stop::Sync(error)) => self.run_failed(project, &import, error).await,
        }
    }

    /// Moves the connection to `UPDATING` and opens its consent; `None`
    /// when the import cannot run (then it is recorded failed).
    async fn prepare(
        &self,
        project: ProjectId,
        import: &AggregationImport,
        connection: &AggregationConnection,
    ) -> Result<Option<Consent>, SyncError> {
        let now = self.now();
        let id = connection.id;
        if connection.consent.is_some_and(|c| c.expires_at <= now) && connection.status.may_expire_consent() {
            self.exec(
                project,
                now,
                AggregationConnectionCommand::ExpireAggregationConsent { id }.into(),
            )
            .await?;
            let reason = ImportFailure::ActionRequired {
                reason: ActionRequiredReason::ConsentExpired,
            };
            self.fail(project, import.id, reason, "the consent expired")
                .await?;
            return Ok(None);
        }
        // A sign-in records the consent, then creates its import, then
        // moves to UPDATING: a consent granted since the import's creation
        // is that sign-in, interrupted before its last step.
        let signed_in_for_it = connection
            .consent
            .is_some_and(|c| c.granted_at >= import.created_at);
        match connection.status {
            ConnectionStatus::Updating => {}
            ConnectionStatus::Connected | ConnectionStatus::RefreshDelayed { .. } => {
                self.set_status(project, id, ConnectionStatus::Updating).await?;
            }
            ConnectionStatus::Connecting | ConnectionStatus::ActionRequired { .. } if signed_in_for_it => {
                self.set_status(project, id, ConnectionStatus::Updating).await?;
            }
            ConnectionStatus::ActionRequired { reason } => {
                let reason = ImportFailure::ActionRequired { reason };
                self.fail(project, import.id, reason, "the end user must act at the bank")
                    .await?;
                return Ok(None);
            }
            ConnectionStatus::InitialActionRequired { .. } | ConnectionStatus::Connecting => {
                self.fail(
                    project,
                    import.id,
                    ImportFailure::Internal,
                    "the connection is not signed in",
                )
                .await?;
                return Ok(None);
            }
        }
        let sealed = match connection.consent {
            Some(consent) => {
                let key = consent_key(id, consent.granted_at);
                self.inner.secrets.get::<StoredConsent>(project, &key).await?
            }
            None => None,
        };
        match sealed.as_ref().and_then(StoredConsent::to_bank) {
            Some(consent) => Ok(Some(consent)),
            None => {
                // Without the bank's consent nothing can be read: the end
                // user signs in again.
                let again = ConnectionStatus::ActionRequired {
                    reason: ActionRequiredReason::ScaRequired,
                };
                self.set_status(project, id, again).await?;
                let detail = "the bank's consent is not kept on this deployment: sign in again";
                self.fail(project, import.id, ImportFailure::Internal, detail)
                    .await?;
                Ok(None)
            }
        }
    }

    async fn set_status(
        &self,
        project: ProjectId,
        id: AggregationConnectionId,
        status: ConnectionStatus,
    ) -> Result<(), SyncError> {
        let command = AggregationConnectionCommand::ChangeAggregationConnectionStatus { id, status };
        self.exec(project, self.now(), command.into()).await?;
        Ok(())
    }

    async fn fail(
        &self,
        project: ProjectId,
        id: AggregationImportId,
        reason: ImportFailure,
        detail: &str,
    ) -> Result<(), SyncError> {
        let command = AggregationImportCommand::FailAggregationImport {
            id,
            reason,
            detail: truncate(detail),
        };
        self.exec(project, self.now(), command.into()).await?;
        Ok(())
    }

    /// The accounts, then each readable account's transactions.
    async fn import_data(
        &self,
        project: ProjectId,
        import: &AggregationImport,
        consent: &Consent,
        at: SyncPoint,
    ) -> Result<ImportProgress, Stop> {
        let mut counts = Counts {
            base: import.progress,
            run: ImportProgress::default(),
        };
        let connection = self.connection(project, import.connection_id).await?;
        let known = self.known_accounts(&connection).await?;
        let found = self.bank_accounts(import, consent, at, &known).await?;
        let accounts = found.iter().map(|(account, _)| account.clone()).collect();
        let sync = AggregatedAccountCommand::SyncAggregatedAccounts {
            connection_id: connection.id,
            import_id: Some(import.id),
            accounts,
        };
        self.exec(project, self.now(), sync.into()).await?;
        counts.run.accounts_found = u32::try_from(found.len()).unwrap_or(u32::MAX);
        self.progress(project, import.id, counts.progress()).await?;
        let connection = self.connection(project, import.connection_id).await?;
        for known in self.known_accounts(&connection).await? {
            let Some((_, bank_ref)) = found
                .iter()
                .find(|(account, _)| account.personal.bank_account_id.as_str() == known.bank_ref)
            else {
                continue;
            };
            let wanted = if known.card {
                import.parts.credit_cards
            } else {
                import.parts.transactions
            };
            if !known.readable || !wanted {
                continue;
            }
            self.account_transactions(project, import, consent, at, known.id, bank_ref, &mut counts)
                .await?;
            counts.run.accounts_done += 1;
            self.progress(project, import.id, counts.progress()).await?;
        }
        Ok(counts.progress())
    }

    async fn progress(
        &self,
        project: ProjectId,
        id: AggregationImportId,
        progress: ImportProgress,
    ) -> Result<ImportProgress, SyncError> {
        // Counts only grow: another job on the same import (another
        // server's, resumed at a restart) may have recorded more.
        let recorded = self.import_state(project, id).await?.progress;
        let progress = at_least(recorded, progress);
        let command = AggregationImportCommand::RecordAggregationImportProgress { id, progress };
        self.exec(project, self.now(), command.into()).await?;
        Ok(progress)
    }

    /// What a run needs of the connection's accounts, loaded one at a time.
    async fn known_accounts(&self, connection: &AggregationConnection) -> Result<Vec<Known>, SyncError> {
        let mut known = Vec::with_capacity(connection.accounts.len());
        for id in &connection.accounts {
            let state = self.inner.engine.load(&StreamRef::AggregatedAccount(*id)).await?;
            if let Some(account) = state.as_aggregated_account() {
                known.push(Known {
                    id: *id,
                    bank_ref: account.personal.bank_account_id.as_str().to_owned(),
                    owners: account.personal.owners.clone(),
                    readable: !account.is_disabled() && !account.is_archived(),
                    card: account.account_type == AggregatedAccountType::CreditCard,
                });
            }
        }
        Ok(known)
    }

    /// Every account the bank lists now (a sync archives what it does not
    /// list, so the list is always whole): accounts, and credit cards when
    /// the parts ask for them or the connection has some already. Owners
    /// when the parts ask, else those recorded are kept.
    async fn bank_accounts(
        &self,
        import: &AggregationImport,
        consent: &Consent,
        at: SyncPoint,
        known: &[Known],
    ) -> Result<Vec<(paycore_domain::aggregated_account::FoundAccount, BankAccountRef)>, Stop> {
        let institution = consent.institution.as_str();
        let bank = &self.inner.bank;
        let owners = if import.parts.owners {
            optional(self.call(institution, || bank.owners(consent, at)).await)?
        } else {
            None
        };
        let accounts = self
            .call(institution, || bank.accounts(consent, at))
            .await
            .map_err(Stop::Bank)?;
        let cards = if import.parts.credit_cards || known.iter().any(|k| k.card) {
            optional(self.call(institution, || bank.credit_cards(consent, at)).await)?.unwrap_or_default()
        } else {
            Vec::new()
        };
        let kept = |bank_ref: &str| -> Vec<AccountOwner> {
            known
                .iter()
                .find(|k| k.bank_ref == bank_ref)
                .map(|k| k.owners.clone())
                .unwrap_or_default()
        };
        let mut found = Vec::with_capacity(accounts.len() + cards.len());
        for account in &accounts {
            let new_id = AggregatedAccountId::from_uuid(self.inner.clock.new_uuid());
            match convert::found_account(account, new_id, owners.as_deref(), &kept(account.id.as_str())) {
                Some(one) => found.push(one),
                None => {
                    tracing::warn!(target: "paycore::aggregation", import = %import.id, "an account the domain cannot name was left out")
                }
            }
        }
        for card in &cards {
            let new_id = AggregatedAccountId::from_uuid(self.inner.clock.new_uuid());
            match convert::found_card(card, new_id, owners.as_deref(), &kept(card.id.as_str())) {
                Some(one) => found.push(one),
                None => {
                    tracing::warn!(target: "paycore::aggregation", import = %import.id, "a card the domain cannot name was left out")
                }
            }
        }
        Ok(found)
    }

    /// A call to the bank, paced per institution, a bank that is down
    /// retried with backoff.
    async fn call<T, F, Fut>(&self, institution: &str, call: F) -> Result<T, ConnectorError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ConnectorError>>,
    {
        self.inner
            .config
            .backoff
            .run(|| async {
                self.inner.limiter.wait(institution).await;
                call().await
            })
            .await
    }

    async fn page(
        &self,
        consent: &Consent,
        bank_ref: &BankAccountRef,
        query: &TransactionQuery,
        at: SyncPoint,
    ) -> Result<TransactionPage, ConnectorError> {
        let bank = &self.inner.bank;
        let institution = consent.institution.as_str();
        match bank_ref {
            BankAccountRef::Account(id) => {
                self.call(institution, || bank.transactions(consent, id, query, at))
                    .await
            }
            BankAccountRef::Card(id) => {
                self.call(institution, || bank.card_transactions(consent, id, query, at))
                    .await
            }
        }
    }

    /// One account's transactions, page by page: the next page is fetched
    /// while the last one is appended, so at most two pages are held.
    #[allow(clippy::too_many_arguments)] // one account of one run: all of it is needed
    async fn account_transactions(
        &self,
        project: ProjectId,
        import: &AggregationImport,
        consent: &Consent,
        at: SyncPoint,
        account: AggregatedAccountId,
        bank_ref: &BankAccountRef,
        counts: &mut Counts,
    ) -> Result<(), Stop> {
        let query = |cursor| TransactionQuery {
            from: from_domain_date(import.history_from).unwrap_or(at.now.date()),
            to: at.now.date(),
            status: BookingStatus::Both,
            cursor,
            page_size: MAX_PAGE_SIZE,
        };
        let state = self
            .inner
            .engine
            .load(&StreamRef::AggregatedAccount(account))
            .await?;
        let mut recorded = state
            .as_aggregated_account()
            .map_or(0, |a| a.transactions.recorded());
        let mut page = match self.page(consent, bank_ref, &query(None), at).await {
            Ok(page) => page,
            // Closed since the accounts were listed, or not covered: the
            // next sync archives it or the consent says so.
            Err(
                ConnectorError::UnknownAccount(_)
                | ConnectorError::UnknownCard(_)
                | ConnectorError::OutOfScope(_),
            ) => {
                return Ok(());
            }
            Err(error) => return Err(Stop::Bank(error)),
        };
        loop {
            counts.run.transactions_seen += page.transactions.len() as u64;
            let transactions: Vec<ImportedTransaction> = page
                .transactions
                .iter()
                .filter_map(convert::transaction)
                .collect();
            let batches = convert::batches(transactions);
            let Some(cursor) = page.next.take() else {
                let added = self
                    .append(project, import.id, account, batches, &mut recorded)
                    .await?;
                counts.run.transactions_recorded += added;
                return Ok(());
            };
            let next_query = query(Some(cursor));
            let (next, appended) = tokio::join!(
                self.page(consent, bank_ref, &next_query, at),
                self.append(project, import.id, account, batches, &mut recorded)
            );
            counts.run.transactions_recorded += appended?;
            page = next.map_err(Stop::Bank)?;
        }
    }

    /// Appends a page's batches; returns how many transactions were new.
    async fn append(
        &self,
        project: ProjectId,
        import: AggregationImportId,
        account: AggregatedAccountId,
        batches: Vec<Vec<ImportedTransaction>>,
        recorded: &mut u64,
    ) -> Result<u64, SyncError> {
        let mut added = 0;
        for transactions in batches {
            let command = AggregatedAccountCommand::RecordAggregatedTransactions {
                account_id: account,
                import_id: Some(import),
                transactions,
                removed: Vec::new(),
            };
            let executed = self.exec(project, self.now(), command.into()).await?;
            let now = executed
                .state
                .as_aggregated_account()
                .map_or(*recorded, |a| a.transactions.recorded());
            added += now.saturating_sub(*recorded);
            *recorded = now;
        }
        Ok(added)
    }

    /// The data is all recorded: the final progress, the source synced,
    /// `CONNECTED`, the import's success (in that order: see the module
    /// docs).
    async fn finish(
        &self,
        project: ProjectId,
        import: &AggregationImport,
        progress: ImportProgress,
    ) -> Result<(), SyncError> {
        let progress = self.progress(project, import.id, progress).await?;
        let Some(connection) = self.connection_of(project, import).await? else {
            return Ok(());
        };
        let preferred = connection
            .sources
            .iter()
            .filter(|s| !s.disabled)
            .min_by_key(|s| s.priority);
        if let Some(source) = preferred {
            let command = AggregationConnectionCommand::UpdateAggregationSource {
                id: connection.id,
                kind: source.kind,
                state: SourceState::Synced,
                disabled: source.disabled,
            };
            self.exec(project, self.now(), command.into()).await?;
        }
        if connection.status == ConnectionStatus::Updating {
            self.set_status(project, connection.id, ConnectionStatus::Connected)
                .await?;
        }
        let command = AggregationImportCommand::SucceedAggregationImport {
            id: import.id,
            progress,
        };
        self.exec(project, self.now(), command.into()).await?;
        Ok(())
    }

    /// The import's connection; `None` once the import is failed because
    /// the connection was deleted.
    async fn connection_of(
        &self,
        project: ProjectId,
        import: &AggregationImport,
    ) -> Result<Option<AggregationConnection>, SyncError> {
        match self.connection(project, import.connection_id).await {
            Ok(connection) => Ok(Some(connection)),
            Err(SyncError::ConnectionNotFound(_)) => {
                let detail = "the connection was deleted";
                self.fail(project, import.id, ImportFailure::ConnectionDeleted, detail)
                    .await?;
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// The bank answered an error: the connection goes where it says
    /// (`ACTION_REQUIRED`, `REFRESH_DELAYED`), the import fails with why.
    async fn bank_failed(
        &self,
        project: ProjectId,
        import: &AggregationImport,
        error: &ConnectorError,
    ) -> Result<(), SyncError> {
        let now = self.now();
        let Some(connection) = self.connection_of(project, import).await? else {
            return Ok(());
        };
        let outcome = after_bank_error(error, &connection, now, &self.inner.config);
        match outcome.change {
            Some(Change::ExpireConsent) => {
                let id = connection.id;
                self.exec(
                    project,
                    now,
                    AggregationConnectionCommand::ExpireAggregationConsent { id }.into(),
                )
                .await?;
            }
            // Only a sync in progress moves: the status may have moved
            // since (a consent expired by the schedule meanwhile).
            Some(Change::Status(status)) if connection.status == ConnectionStatus::Updating => {
                self.set_status(project, connection.id, status).await?;
            }
            _ => {}
        }
        self.fail(project, import.id, outcome.failure, &outcome.detail)
            .await
    }

    /// Recording stopped: where the connection is says why. The store being
    /// unavailable leaves the import unfinished (resumed at the next start).
    async fn run_failed(
        &self,
        project: ProjectId,
        import: &AggregationImport,
        error: SyncError,
    ) -> Result<(), SyncError> {
        if let SyncError::Engine(
            EngineError::Unavailable(_)
            | EngineError::Overloaded
            | EngineError::Fatal(_)
            | EngineError::Conflict(_),
        ) = error
        {
            return Err(error);
        }
        let connection = match self.connection(project, import.connection_id).await {
            Ok(connection) => connection,
            Err(SyncError::ConnectionNotFound(_)) => {
                return self
                    .fail(
                        project,
                        import.id,
                        ImportFailure::ConnectionDeleted,
                        "the connection was deleted",
                    )
                    .await;
            }
            Err(other) => return Err(other),
        };
        match connection.status {
            ConnectionStatus::ActionRequired { reason } => {
                self.fail(
                    project,
                    import.id,
                    ImportFailure::ActionRequired { reason },
                    "the end user must act at the bank",
                )
                .await
            }
            ConnectionStatus::Updating => {
                let next = plus(self.now(), self.inner.config.failure_delay);
                self.set_status(
                    project,
                    connection.id,
                    ConnectionStatus::RefreshDelayed { next_try_at: next },
                )
                .await?;
                self.fail(project, import.id, ImportFailure::Internal, &error.to_string())
                    .await
            }
            _ => {
                self.fail(project, import.id, ImportFailure::Internal, &error.to_string())
                    .await
            }
        }
    }
}

/// Each count the larger of the two.
fn at_least(recorded: ImportProgress, ours: ImportProgress) -> ImportProgress {
    ImportProgress {
        accounts_found: recorded.accounts_found.max(ours.accounts_found),
        accounts_done: recorded.accounts_done.max(ours.accounts_done),
        transactions_seen: recorded.transactions_seen.max(ours.transactions_seen),
        transactions_recorded: recorded.transactions_recorded.max(ours.transactions_recorded),
    }
}

/// What a bank error does to the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Status(ConnectionStatus),
    ExpireConsent,
}

#[derive(Debug, PartialEq, Eq)]
struct AfterError {
    change: Option<Change>,
    failure: ImportFailure,
    detail: String,
}

/// Where a bank error sends the connection and why the import failed.
fn after_bank_error(
    error: &ConnectorError,
    connection: &AggregationConnection,
    now: Timestamp,
    config: &crate::SyncerConfig,
) -> AfterError {
    let delayed = |next: Timestamp| {
        // The domain takes only a next try in the future.
        let next = next.max(plus(now, std::time::Duration::from_secs(1)));
        (
            Some(Change::Status(ConnectionStatus::RefreshDelayed {
                next_try_at: next,
            })),
            next,
        )
    };
    let act = |reason: ActionRequiredReason| ImportFailure::ActionRequired { reason };
    let sign_in_again = Some(Change::Status(ConnectionStatus::ActionRequired {
        reason: ActionRequiredReason::ScaRequired,
    }));
    let (change, failure) = match error {
        // The domain records CONSENT_EXPIRED from its own `expires_at` on;
        // a bank that ended the consent earlier makes the connection ask
        // for a sign-in (SCA), which renews it.
        ConnectorError::ConsentExpired { .. } if connection.consent.is_some_and(|c| c.expires_at <= now) => (
            Some(Change::ExpireConsent),
            act(ActionRequiredReason::ConsentExpired),
        ),
        ConnectorError::ConsentExpired { .. } => (sign_in_again, act(ActionRequiredReason::ConsentExpired)),
        ConnectorError::ScaRequired | ConnectorError::SessionExpired { .. } => {
            (sign_in_again, act(ActionRequiredReason::ScaRequired))
        }
        ConnectorError::RateLimited { retry_after } => {
            let (change, next_try_at) = delayed(from_offset(*retry_after));
            (change, ImportFailure::RateLimited { next_try_at })
        }
        ConnectorError::BankUnavailable { .. } | ConnectorError::Transport(_) => {
            let next = error
                .retry_after()
                .map_or(plus(now, config.bank_down_delay), from_offset);
            (delayed(next).0, ImportFailure::BankUnavailable)
        }
        _ => (
            delayed(plus(now, config.failure_delay)).0,
            ImportFailure::Internal,
        ),
    };
    AfterError {
        change,
        failure,
        detail: connector_text(error),
    }
}

/// A part the consent or the institution may not offer: `None` then.
fn optional<T>(answer: Result<T, ConnectorError>) -> Result<Option<T>, Stop> {
    match answer {
        Ok(value) => Ok(Some(value)),
        Err(ConnectorError::OutOfScope(_) | ConnectorError::Unsupported(_)) => Ok(None),
        Err(error) => Err(Stop::Bank(error)),
    }
}

/// Ends a job's bookkeeping however its task ends.
struct JobGuard {
    syncer: Syncer,
    connection: AggregationConnectionId,
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        let inner = &self.syncer.inner;
        inner
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.connection);
        inner.jobs.send_modify(|n| *n = n.saturating_sub(1));
        // The schedule may have left connections due while the queue was full.
        inner.kick.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use paycore_domain::aggregation_connection::Consent as DomainConsent;
    use paycore_domain::{CustomerId, ProjectId};
    use uuid::Uuid;

    use super::*;

    const NOW: Timestamp = Timestamp::from_micros(1_796_558_400_000_000);

    fn updating(consent_expires_at: Timestamp) -> AggregationConnection {
        AggregationConnection {
            id: AggregationConnectionId::from_uuid(Uuid::now_v7()),
            project_id: ProjectId::from_uuid(Uuid::now_v7()),
            customer_id: CustomerId::from_uuid(Uuid::now_v7()),
            institution_id: None,
            status: ConnectionStatus::Updating,
            sources: Vec::new(),
            consent: Some(DomainConsent {
                granted_at: Timestamp::from_micros(0),
                expires_at: consent_expires_at,
            }),
            accounts: Vec::new(),
            redirect_url: None,
            created_at: Timestamp::from_micros(0),
            status_changed_at: Timestamp::from_micros(0),
            deleted_at: None,
        }
    }

    fn at(micros: i64) -> time::OffsetDateTime {
        crate::clock::to_offset(Timestamp::from_micros(micros)).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    }

    #[test]
    fn each_bank_error_sends_the_connection_where_the_diagram_allows() {
        let config = crate::SyncerConfig::default();
        let live = updating(plus(NOW, std::time::Duration::from_secs(86_400)));
        let ended = updating(NOW);
        let expired = ConnectorError::ConsentExpired { expired_at: at(0) };
        let sca = Some(Change::Status(ConnectionStatus::ActionRequired {
            reason: ActionRequiredReason::ScaRequired,
        }));
        let consent_failure = ImportFailure::ActionRequired {
            reason: ActionRequiredReason::ConsentExpired,
        };
        let answer = after_bank_error(&expired, &ended, NOW, &config);
        assert_eq!(
            (answer.change, answer.failure),
            (Some(Change::ExpireConsent), consent_failure)
        );
        let answer = after_bank_error(&expired, &live, NOW, &config);
        assert_eq!((answer.change, answer.failure), (sca, consent_failure));

        let retry = NOW.micros() + 3_600_000_000;
        let limited = ConnectorError::RateLimited {
            retry_after: at(retry),
        };
        let next_try_at = Timestamp::from_micros(retry);
        let answer = after_bank_error(&limited, &live, NOW, &config);
        assert_eq!(
            (answer.change, answer.failure),
            (
                Some(Change::Status(ConnectionStatus::RefreshDelayed { next_try_at })),
                ImportFailure::RateLimited { next_try_at }
            )
        );
        // A retry time already past still delays into the future.
        let past = ConnectorError::RateLimited { retry_after: at(0) };
        let Some(Change::Status(ConnectionStatus::RefreshDelayed { next_try_at })) =
            after_bank_error(&past, &live, NOW, &config).change
        else {
            panic!("not delayed")
        };
        assert!(next_try_at > NOW);

        let down = ConnectorError::Transport("timeout".into());
        let answer = after_bank_error(&down, &live, NOW, &config);
        let next_try_at = plus(NOW, config.bank_down_delay);
        assert_eq!(
            (answer.change, answer.failure),
            (
                Some(Change::Status(ConnectionStatus::RefreshDelayed { next_try_at })),
                ImportFailure::BankUnavailable
            )
        );
        let odd = ConnectorError::Protocol("<html>".into());
        let answer = after_bank_error(&odd, &live, NOW, &config);
        assert_eq!(answer.failure, ImportFailure::Internal);
        assert!(!answer.detail.contains("html"), "{}", answer.detail);
    }
}
