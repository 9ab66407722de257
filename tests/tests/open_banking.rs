//! Open banking through gRPC against the real server and the sandbox bank:
//! connections signed in by every kind of sandbox user (password, one-time
//! code, SCA in the bank's app, the bank's own page, a wrong password, a
//! bank that is down), imports in the background, accounts enabled by
//! consent, years of transactions listed newest first by booking date, a
//! re-sync that finds nothing new, deletion, bad input with precise
//! statuses and nothing written, and an import killed with kill -9 that
//! resumes at the next start without recording anything twice.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use paycore_e2e::{Authed, Server, bearer};
use paycore_grpc::pb;
use paycore_grpc::{
    AggregatedAccountServiceClient, AggregationConnectionServiceClient, AggregationImportServiceClient,
};
use tonic::Code;
use tonic_types::StatusExt;

const BANK: &str = "sandbox_de_rheinbank";
const PASSWORD: &str = "pass_good";

struct OpenBanking {
    connections: AggregationConnectionServiceClient<Authed>,
    imports: AggregationImportServiceClient<Authed>,
    accounts: AggregatedAccountServiceClient<Authed>,
    customer: String,
}

impl OpenBanking {
    async fn new(server: &Server) -> Self {
        let activated = server.cli(&["institutions", "activate", "--project", server.project_id(), BANK]);
        assert!(
            activated.status.success(),
            "{}",
            String::from_utf8_lossy(&activated.stderr)
        );
        let customer = server
            .client()
            .customers
            .create_customer(pb::CreateCustomerRequest::default())
            .await
            .unwrap()
            .into_inner()
            .id;
        Self::with_key(server, server.key(), customer)
    }

    fn with_key(server: &Server, key: &str, customer: String) -> Self {
        Self {
            connections: AggregationConnectionServiceClient::with_interceptor(server.channel(), bearer(key)),
            imports: AggregationImportServiceClient::with_interceptor(server.channel(), bearer(key)),
            accounts: AggregatedAccountServiceClient::with_interceptor(server.channel(), bearer(key)),
            customer,
        }
    }

    async fn connection(&mut self) -> pb::AggregationConnection {
        self.connections
            .create_aggregation_connection(pb::CreateAggregationConnectionRequest {
                customer_id: self.customer.clone(),
                institution_id: Some(BANK.into()),
                redirect_url: None,
            })
            .await
            .unwrap()
            .into_inner()
    }

    async fn sign_in(
        &mut self,
        connection: &str,
        username: &str,
        password: &str,
    ) -> pb::AggregationSignInStep {
        self.connections
            .submit_aggregation_credentials(pb::SubmitAggregationCredentialsRequest {
                connection_id: connection.into(),
                username: username.into(),
                password: password.into(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    async fn get_connection(&mut self, id: &str) -> Result<pb::AggregationConnection, tonic::Status> {
        let request = pb::GetAggregationConnectionRequest {
            connection_id: id.into(),
        };
        Ok(self
            .connections
            .get_aggregation_connection(request)
            .await?
            .into_inner())
    }

    async fn import(&mut self, id: &str) -> pb::AggregationImport {
        let request = pb::GetAggregationImportRequest { import_id: id.into() };
        self.imports
            .get_aggregation_import(request)
            .await
            .unwrap()
            .into_inner()
    }

    /// Polls the import until it has finished.
    async fn finished(&mut self, id: &str) -> pb::AggregationImport {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let import = self.import(id).await;
            match import.status() {
                pb::AggregationImportStatus::Succeeded | pb::AggregationImportStatus::Failed => {
                    return import;
                }
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "import {id} still {:?}",
                import.status()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn accounts(&mut self, connection: &str, include_archived: bool) -> Vec<pb::AggregatedAccount> {
        let request = pb::ListAggregatedAccountsRequest {
            of: Some(pb::list_aggregated_accounts_request::Of::ConnectionId(
                connection.into(),
            )),
            include_archived,
            page_size: 100,
            page_token: String::new(),
        };
        self.accounts
            .list_aggregated_accounts(request)
            .await
            .unwrap()
            .into_inner()
            .items
    }

    /// Every transaction of an account, page by page.
    async fn transactions(
        &mut self,
        account: &str,
        status: pb::AggregatedTransactionStatus,
    ) -> Vec<pb::AggregatedTransaction> {
        let (mut all, mut token) = (Vec::new(), String::new());
        loop {
            let request = pb::ListAggregatedTransactionsRequest {
                aggregated_account_id: account.into(),
                status: status.into(),
                page_size: 100,
                page_token: token,
                ..Default::default()
            };
            let page = self
                .accounts
                .list_aggregated_transactions(request)
                .await
                .unwrap()
                .into_inner();
            all.extend(page.items);
            if page.next_page_token.is_empty() {
                return all;
            }
            token = page.next_page_token;
        }
    }

    async fn enable_all(&mut self, connection: &str) -> usize {
        let accounts = self.accounts(connection, false).await;
        for account in &accounts {
            let request = pb::EnableAggregatedAccountRequest {
                aggregated_account_id: account.id.clone(),
            };
            let enabled = self
                .accounts
                .enable_aggregated_account(request)
                .await
                .unwrap()
                .into_inner();
            assert!(!enabled.disabled);
        }
        accounts.len()
    }

    async fn refresh(&mut self, connection: &str) -> pb::AggregationImport {
        let request = pb::RefreshAggregationConnectionRequest {
            connection_id: connection.into(),
        };
        self.connections
            .refresh_aggregation_connection(request)
            .await
            .unwrap()
            .into_inner()
    }
}

fn date_key(date: &Option<pb::Date>) -> (i32, i32, i32) {
    let date = date.as_ref().unwrap();
    (date.year, date.month, date.day)
}

fn signed_in(step: &pb::AggregationSignInStep) -> String {
    match &step.next {
        Some(pb::aggregation_sign_in_step::Next::SignedIn(signed_in)) => signed_in.import_id.clone(),
        other => panic!("not signed in: {other:?}"),
    }
}

#[tokio::test]
async fn sandbox_users_connect_and_their_accounts_are_imported() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(root.path());
    let mut ob = OpenBanking::new(&server).await;

    // user_good: signed in, a first import finds 5 accounts, disabled.
    let connection = ob.connection().await;
    assert_eq!(
        connection.status(),
        pb::AggregationConnectionStatus::InitialActionRequired
    );
    assert_eq!(
        connection.authentication_url, None,
        "no pages served by this server"
    );
    let step = ob.sign_in(&connection.id, "user_good", PASSWORD).await;
    let first = ob.finished(&signed_in(&step)).await;
    assert_eq!(
        first.status(),
        pb::AggregationImportStatus::Succeeded,
        "{first:?}"
    );
    let found = ob.accounts(&connection.id, false).await;
    assert_eq!(found.len(), 5);
    assert!(found.iter().all(|account| account.disabled));
    let connected = ob.get_connection(&connection.id).await.unwrap();
    assert_eq!(connected.status(), pb::AggregationConnectionStatus::Connected);
    assert!(connected.consent.is_some());

    // The end user consents to all of them; a refresh reads 5 years.
    assert_eq!(ob.enable_all(&connection.id).await, 5);
    let refresh = ob.refresh(&connection.id).await;
    let imported = ob.finished(&refresh.id).await;
    assert_eq!(
        imported.status(),
        pb::AggregationImportStatus::Succeeded,
        "{imported:?}"
    );
    let recorded = imported.progress.as_ref().unwrap().transactions_recorded;
    assert!(recorded > 10_000, "{imported:?}");
    let mut listed = 0;
    let mut accounts_with_history = 0;
    for account in ob.accounts(&connection.id, false).await {
        assert!(!account.disabled && account.personal.as_ref().unwrap().identifier.is_some());
        let all = ob
            .transactions(&account.id, pb::AggregatedTransactionStatus::Unspecified)
            .await;
        let keys: Vec<_> = all
            .iter()
            .map(|t| (date_key(&t.booking_date), t.id.clone()))
            .collect();
        assert!(
            keys.windows(2).all(|w| w[0] > w[1]),
            "newest first by booking date, then ID"
        );
        let ids: BTreeSet<_> = all.iter().map(|t| t.bank_transaction_id.clone()).collect();
        assert_eq!(ids.len(), all.len(), "each bank transaction once");
        let pending = ob
            .transactions(&account.id, pb::AggregatedTransactionStatus::Pending)
            .await;
        assert!(
            pending
                .iter()
                .all(|t| t.status() == pb::AggregatedTransactionStatus::Pending)
        );
        listed += all.len();
        if all.len() > 1_000 {
            accounts_with_history += 1;
            let oldest = all.last().unwrap();
            assert!(
                oldest.booking_date.as_ref().unwrap().year <= 2022,
                "5 years back: {oldest:?}"
            );
            let got = ob
                .accounts
                .get_aggregated_transaction(pb::GetAggregatedTransactionRequest {
                    aggregated_transaction_id: oldest.id.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(got.aggregated_account_id, account.id);
            assert_eq!(got.transaction.as_ref(), Some(oldest));
        }
    }
    assert_eq!(
        listed as u64, recorded,
        "every recorded transaction is listed once"
    );
    assert!(accounts_with_history >= 2);

    // A re-sync that finds nothing new records nothing.
    let again = ob.refresh(&connection.id).await;
    let again = ob.finished(&again.id).await;
    assert_eq!(again.status(), pb::AggregationImportStatus::Succeeded);
    assert_eq!(
        again.progress.as_ref().unwrap().transactions_recorded,
        0,
        "{again:?}"
    );
    let imports = ob
        .imports
        .list_aggregation_imports(pb::ListAggregationImportsRequest {
            connection_id: connection.id.clone(),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(
        imports.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        [again.id.as_str(), refresh.id.as_str(), first.id.as_str()],
        "newest first"
    );

    // A wrong password: the bank refuses, the end user is asked again.
    let wrong = ob.connection().await;
    let step = ob.sign_in(&wrong.id, "user_good", "pass_bad").await;
    let Some(pb::aggregation_sign_in_step::Next::Failed(failed)) = &step.next else {
        panic!("{step:?}")
    };
    assert_eq!(
        failed.reason(),
        pb::AggregationActionRequiredReason::CredentialsInvalid
    );
    let connection_after = step.connection.as_ref().unwrap();
    assert_eq!(
        connection_after.status(),
        pb::AggregationConnectionStatus::InitialActionRequired
    );
    assert_eq!(
        connection_after.action_required_reason(),
        pb::AggregationActionRequiredReason::CredentialsInvalid
    );
    // A one-time code where none is asked for: FAILED_PRECONDITION.
    let refused = ob
        .connections
        .submit_aggregation_one_time_code(pb::SubmitAggregationOneTimeCodeRequest {
            connection_id: wrong.id.clone(),
            code: "123456".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");

    // user_otp: a code; a wrong one fails, the right one signs in.
    let otp = ob.connection().await;
    let step = ob.sign_in(&otp.id, "user_otp", PASSWORD).await;
    let Some(pb::aggregation_sign_in_step::Next::OneTimeCodeRequired(prompt)) = &step.next else {
        panic!("{step:?}")
    };
    assert!(prompt.prompt.contains("123456"), "{prompt:?}");
    let code = |code: &str| pb::SubmitAggregationOneTimeCodeRequest {
        connection_id: otp.id.clone(),
        code: code.into(),
    };
    let step = ob
        .connections
        .submit_aggregation_one_time_code(code("000000"))
        .await
        .unwrap()
        .into_inner();
    assert!(
        matches!(step.next, Some(pb::aggregation_sign_in_step::Next::Failed(_))),
        "{step:?}"
    );
    let step = ob.sign_in(&otp.id, "user_otp", PASSWORD).await;
    assert!(matches!(
        step.next,
        Some(pb::aggregation_sign_in_step::Next::OneTimeCodeRequired(_))
    ));
    let step = ob
        .connections
        .submit_aggregation_one_time_code(code("123456"))
        .await
        .unwrap()
        .into_inner();
    let import = ob.finished(&signed_in(&step)).await;
    assert_eq!(import.status(), pb::AggregationImportStatus::Succeeded);
    assert_eq!(ob.accounts(&otp.id, false).await.len(), 2);

    // user_sca: approve in the app; polling waits, then signs in.
    let sca = ob.connection().await;
    let step = ob.sign_in(&sca.id, "user_sca", PASSWORD).await;
    assert!(
        matches!(
            step.next,
            Some(pb::aggregation_sign_in_step::Next::ScaRequired(_))
        ),
        "{step:?}"
    );
    let poll = pb::PollAggregationScaRequest {
        connection_id: sca.id.clone(),
    };
    let step = ob
        .connections
        .poll_aggregation_sca(poll.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(
        matches!(
            step.next,
            Some(pb::aggregation_sign_in_step::Next::ScaRequired(_))
        ),
        "still waiting"
    );
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let step = ob
        .connections
        .poll_aggregation_sca(poll)
        .await
        .unwrap()
        .into_inner();
    ob.finished(&signed_in(&step)).await;

    // user_redirect: the bank's own page, then back with its state; a
    // forged state is refused and changes nothing.
    let redirect = ob.connection().await;
    let step = ob.sign_in(&redirect.id, "user_redirect", PASSWORD).await;
    let Some(pb::aggregation_sign_in_step::Next::RedirectRequired(to_bank)) = &step.next else {
        panic!("{step:?}")
    };
    let state = to_bank
        .url
        .split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("state="))
        .unwrap()
        .to_owned();
    let back = |state: &str| pb::CompleteAggregationRedirectRequest {
        connection_id: redirect.id.clone(),
        state: state.into(),
        code: Some("sandbox".into()),
        error: None,
    };
    let forged = ob
        .connections
        .complete_aggregation_redirect(back("forged"))
        .await
        .unwrap_err();
    assert_eq!(forged.code(), Code::InvalidArgument, "{forged:?}");
    let step = ob
        .connections
        .complete_aggregation_redirect(back(&state))
        .await
        .unwrap()
        .into_inner();
    ob.finished(&signed_in(&step)).await;

    // user_bank_down: UNAVAILABLE with when to retry, nothing recorded.
    let down = ob.connection().await;
    let unavailable = ob
        .connections
        .submit_aggregation_credentials(pb::SubmitAggregationCredentialsRequest {
            connection_id: down.id.clone(),
            username: "user_bank_down".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unavailable.code(), Code::Unavailable, "{unavailable:?}");
    assert!(unavailable.get_details_retry_info().is_some());
    assert_eq!(
        ob.get_connection(&down.id).await.unwrap().status(),
        pb::AggregationConnectionStatus::InitialActionRequired
    );

    // Deleted: the connection, its accounts and transactions are gone.
    let kept_account = found[0].id.clone();
    let deleted = ob
        .connections
        .delete_aggregation_connection(pb::DeleteAggregationConnectionRequest {
            connection_id: connection.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.id, connection.id);
    assert_eq!(
        ob.get_connection(&connection.id).await.unwrap_err().code(),
        Code::NotFound
    );
    let gone = ob
        .accounts
        .get_aggregated_account(pb::GetAggregatedAccountRequest {
            aggregated_account_id: kept_account.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let listed = ob
        .accounts
        .list_aggregated_transactions(pb::ListAggregatedTransactionsRequest {
            aggregated_account_id: kept_account,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(listed.code(), Code::NotFound);
    let by_customer = ob
        .accounts
        .list_aggregated_accounts(pb::ListAggregatedAccountsRequest {
            of: Some(pb::list_aggregated_accounts_request::Of::CustomerId(
                ob.customer.clone(),
            )),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert!(
        by_customer
            .iter()
            .all(|account| account.connection_id != connection.id)
    );
    assert_eq!(
        by_customer.len(),
        2 + 2 + 2,
        "user_otp's, user_sca's and user_redirect's"
    );
}

#[tokio::test]
async fn bad_input_is_refused_precisely_and_writes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (server, other) = Server::start_with_second_project(root.path());
    let mut ob = OpenBanking::new(&server).await;
    let create = |customer: &str, institution: &str| pb::CreateAggregationConnectionRequest {
        customer_id: customer.into(),
        institution_id: Some(institution.into()),
        redirect_url: None,
    };
    let customer = ob.customer.clone();

    let unknown = ob
        .connections
        .create_aggregation_connection(create(&customer, "sandbox_xx_nowhere"))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    let inactive = ob
        .connections
        .create_aggregation_connection(create(&customer, "sandbox_gb_albion"))
        .await
        .unwrap_err();
    assert_eq!(inactive.code(), Code::FailedPrecondition, "{inactive:?}");
    assert_eq!(
        inactive.get_details_error_info().unwrap().reason,
        "INSTITUTION_NOT_ACTIVE"
    );
    let malformed = ob
        .connections
        .create_aggregation_connection(pb::CreateAggregationConnectionRequest {
            customer_id: "cus_nope".into(),
            institution_id: Some("not an institution!".into()),
            redirect_url: Some("javascript:alert(1)".into()),
        })
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument, "{malformed:?}");
    let fields: BTreeSet<_> = malformed
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert!(
        fields.contains("customer_id") && fields.contains("institution_id"),
        "{fields:?}"
    );

    // Another project's customer is not found (the other project has the
    // institution active too), and another project cannot see this
    // project's connection.
    let activated = server.cli(&["institutions", "activate", "--project", &other.id, BANK]);
    assert!(activated.status.success());
    let mut theirs = OpenBanking::with_key(&server, &other.key, customer.clone());
    let foreign = theirs
        .connections
        .create_aggregation_connection(create(&customer, BANK))
        .await
        .unwrap_err();
    assert!(
        matches!(foreign.code(), Code::NotFound | Code::FailedPrecondition),
        "{foreign:?}"
    );
    let connection = ob.connection().await;
    assert_eq!(
        theirs.get_connection(&connection.id).await.unwrap_err().code(),
        Code::NotFound
    );
    let refused = theirs
        .connections
        .submit_aggregation_credentials(pb::SubmitAggregationCredentialsRequest {
            connection_id: connection.id.clone(),
            username: "user_good".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);

    // A refresh before signing in, bad filters and empty credentials.
    let early = ob
        .connections
        .refresh_aggregation_connection(pb::RefreshAggregationConnectionRequest {
            connection_id: connection.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition, "{early:?}");
    let empty = ob
        .connections
        .submit_aggregation_credentials(pb::SubmitAggregationCredentialsRequest {
            connection_id: connection.id.clone(),
            username: " ".into(),
            password: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    let backwards = ob
        .accounts
        .list_aggregated_transactions(pb::ListAggregatedTransactionsRequest {
            aggregated_account_id: "aacc_00000000000000000000000000".into(),
            booked_from: Some(pb::Date {
                year: 2026,
                month: 2,
                day: 1,
            }),
            booked_to: Some(pb::Date {
                year: 2026,
                month: 1,
                day: 1,
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(backwards.code(), Code::InvalidArgument, "{backwards:?}");

    // Nothing but the one good connection was written.
    let listed = ob
        .connections
        .list_aggregation_connections(pb::ListAggregationConnectionsRequest {
            customer_id: customer,
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(
        listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [connection.id.as_str()]
    );
    assert_eq!(
        listed[0].status(),
        pb::AggregationConnectionStatus::InitialActionRequired
    );
}

#[tokio::test]
async fn an_import_killed_mid_way_resumes_at_the_next_start_and_records_nothing_twice() {
    let root = tempfile::tempdir().unwrap();
    let mut server = Server::start(root.path());
    let mut ob = OpenBanking::new(&server).await;
    let connection = ob.connection().await;
    let step = ob.sign_in(&connection.id, "user_good", PASSWORD).await;
    ob.finished(&signed_in(&step)).await;
    ob.enable_all(&connection.id).await;
    let import = ob.refresh(&connection.id).await;

    // Killed once the import recorded something and before it ended.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = ob.import(&import.id).await;
        assert_ne!(
            now.status(),
            pb::AggregationImportStatus::Succeeded,
            "finished before the kill"
        );
        if now.progress.as_ref().is_some_and(|p| p.transactions_recorded > 0) {
            break;
        }
        assert!(Instant::now() < deadline, "the import did not start recording");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill9();
    server.start_again();
    let mut ob = OpenBanking::with_key(&server, server.key(), ob.customer.clone());
    let resumed = ob.finished(&import.id).await;
    assert_eq!(
        resumed.status(),
        pb::AggregationImportStatus::Succeeded,
        "{resumed:?}"
    );

    // Each bank transaction once, and a re-sync finds nothing missing.
    let mut total = 0;
    for account in ob.accounts(&connection.id, false).await {
        let all = ob
            .transactions(&account.id, pb::AggregatedTransactionStatus::Unspecified)
            .await;
        let ids: BTreeSet<_> = all.iter().map(|t| t.bank_transaction_id.clone()).collect();
        assert_eq!(ids.len(), all.len(), "each bank transaction once");
        total += all.len();
    }
    assert!(total > 10_000, "{total}");
    let again = ob.refresh(&connection.id).await;
    let again = ob.finished(&again.id).await;
    assert_eq!(
        again.progress.as_ref().unwrap().transactions_recorded,
        0,
        "{again:?}"
    );
}

#[tokio::test]
async fn sandbox_users_whose_behaviour_shows_at_the_next_sync() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(root.path());
    let ob = OpenBanking::new(&server).await;
    let connected = |user: &'static str| {
        let mut ob = OpenBanking::with_key(&server, server.key(), ob.customer.clone());
        async move {
            let connection = ob.connection().await;
            let step = ob.sign_in(&connection.id, user, PASSWORD).await;
            let first = ob.finished(&signed_in(&step)).await;
            assert_eq!(
                first.status(),
                pb::AggregationImportStatus::Succeeded,
                "{user}: {first:?}"
            );
            ob.enable_all(&connection.id).await;
            (ob, connection.id)
        }
    };

    // user_rate_limited: a second sync the same UTC day is refused by the
    // bank; the connection waits until the time the bank gave.
    let (mut rate_limited, id) = connected("user_rate_limited").await;
    let second = rate_limited.refresh(&id).await;
    let second = rate_limited.finished(&second.id).await;
    assert_eq!(second.status(), pb::AggregationImportStatus::Failed, "{second:?}");
    let failure = second.failure.as_ref().unwrap();
    assert_eq!(failure.reason(), pb::AggregationImportFailureReason::RateLimited);
    let delayed = rate_limited.get_connection(&id).await.unwrap();
    assert_eq!(delayed.status(), pb::AggregationConnectionStatus::RefreshDelayed);
    let next_try = delayed.next_try_at.unwrap();
    assert_eq!(
        next_try.seconds % 86_400,
        0,
        "the bank's next UTC midnight: {next_try:?}"
    );
    let refused = rate_limited
        .connections
        .submit_aggregation_credentials(pb::SubmitAggregationCredentialsRequest {
            connection_id: id.clone(),
            username: "user_rate_limited".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::FailedPrecondition,
        "no sign-in while delayed: {refused:?}"
    );

    // user_account_closes: "Old savings" is gone at the next sync: archived,
    // listed only with include_archived, still readable by ID.
    let (mut closes, id) = connected("user_account_closes").await;
    assert_eq!(closes.accounts(&id, false).await.len(), 3);
    let next = closes.refresh(&id).await;
    assert_eq!(
        closes.finished(&next.id).await.status(),
        pb::AggregationImportStatus::Succeeded
    );
    let listed = closes.accounts(&id, false).await;
    let all = closes.accounts(&id, true).await;
    assert_eq!((listed.len(), all.len()), (2, 3));
    let archived = all.iter().find(|a| a.archived_at.is_some()).unwrap();
    assert_eq!(archived.personal.as_ref().unwrap().name, "Old savings");
    // Consent on an archived account is refused, and says why.
    let refused = closes
        .accounts
        .enable_aggregated_account(pb::EnableAggregatedAccountRequest {
            aggregated_account_id: archived.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(
        refused.get_details_error_info().unwrap().reason,
        "AGGREGATED_ACCOUNT_ARCHIVED"
    );

    // user_consent_expired: the bank ends the consent at the next sync; the
    // import fails and the end user must sign in again.
    let (mut expired, id) = connected("user_consent_expired").await;
    let next = expired.refresh(&id).await;
    let next = expired.finished(&next.id).await;
    assert_eq!(next.status(), pb::AggregationImportStatus::Failed, "{next:?}");
    let connection = expired.get_connection(&id).await.unwrap();
    assert_eq!(
        connection.status(),
        pb::AggregationConnectionStatus::ActionRequired
    );
    // The sandbox's consents carry their time to the second: a consent
    // granted in the same second as the last sync would look used.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let step = expired.sign_in(&id, "user_consent_expired", PASSWORD).await;
    let renewed = expired.finished(&signed_in(&step)).await;
    assert_eq!(
        renewed.status(),
        pb::AggregationImportStatus::Succeeded,
        "{renewed:?}"
    );

    // user_joint: the joint account has its holder and co-holder.
    let (mut joint, id) = connected("user_joint").await;
    let next = joint.refresh(&id).await;
    joint.finished(&next.id).await;
    let accounts = joint.accounts(&id, false).await;
    assert_eq!(accounts.len(), 2);
    let owners: Vec<usize> = accounts
        .iter()
        .map(|a| a.personal.as_ref().unwrap().owners.len())
        .collect();
    assert!(owners.contains(&2), "{owners:?}");
}
