//! The whole story of a new user: start the server, set up a customer and
//! accounts, fund one with the sandbox magic balance, move money, read it all
//! back, annotate it, stop gracefully and find everything exactly as it was.

use paycore_e2e::{
    Client, Server, amount, health_status, identity, mask, meta, micros, pb, reflect, reflected_services,
    test_dir,
};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

const SERVICES: [&str; 5] = [
    "paycore.v1.ProjectService",
    "paycore.v1.CustomerService",
    "paycore.v1.AccountService",
    "paycore.v1.TransactionService",
    "paycore.v1.TransferService",
];

/// Every page of the project's transaction list with `page_size`.
async fn transaction_pages(client: &Client, page_size: i32) -> anyhow::Result<Vec<Vec<pb::Transaction>>> {
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .transactions
            .clone()
            .list_transactions(pb::ListTransactionsRequest {
                page_size,
                page_token: token,
                account_id: None,
                as_of: None,
            })
            .await?
            .into_inner();
        pages.push(page.items);
        if page.next_page_token.is_empty() {
            return Ok(pages);
        }
        anyhow::ensure!(pages.len() < 1000, "pagination does not end");
        token = page.next_page_token;
    }
}

async fn check_stock_services(server: &Server) -> anyhow::Result<()> {
    // Health and reflection answer without an API key, so stock tools work.
    assert_eq!(health_status(server.channel(), "").await?, ServingStatus::Serving);
    for service in SERVICES {
        assert_eq!(
            health_status(server.channel(), service).await?,
            ServingStatus::Serving,
            "{service}"
        );
    }
    let listed = reflected_services(server.channel()).await?;
    for service in SERVICES.iter().chain(&["grpc.health.v1.Health"]) {
        assert!(
            listed.iter().any(|s| s == service),
            "reflection lists {listed:?}, not {service}"
        );
    }
    // Reflection can describe the API itself, not just name it.
    let answer = reflect(
        server.channel(),
        MessageRequest::FileContainingSymbol("paycore.v1.TransferService".into()),
    )
    .await?;
    let MessageResponse::FileDescriptorResponse(files) = answer else {
        anyhow::bail!("no file descriptor for paycore.v1.TransferService: {answer:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_story_survives_a_restart() -> anyhow::Result<()> {
    let dir = test_dir();
    let mut server = Server::start(dir.path());
    let bootstrap = server
        .printed_bootstrap()
        .cloned()
        .expect("the first start prints a key");
    assert!(bootstrap.id.starts_with("prj_"), "{}", bootstrap.id);
    assert!(
        bootstrap.key.starts_with("sandbox_secretkey_"),
        "{}",
        bootstrap.key
    );
    check_stock_services(&server).await?;

    let client = server.client();
    let project = client
        .projects
        .clone()
        .get_project(pb::GetProjectRequest {})
        .await?
        .into_inner();
    assert_eq!(project.id, bootstrap.id);
    assert_eq!(project.environment(), pb::Environment::Sandbox);

    // A customer with a full identity.
    let customer = client
        .customers
        .clone()
        .create_customer(pb::CreateCustomerRequest {
            identity: Some(identity()),
            meta: meta(&[("crm_id", "c-17")]),
        })
        .await?
        .into_inner();
    assert!(customer.id.starts_with("cus_"), "{}", customer.id);
    assert_eq!(customer.project_id, project.id);
    assert_eq!(customer.identity, Some(identity()));
    assert_eq!(customer.meta, meta(&[("crm_id", "c-17")]));
    assert!(customer.created_at.is_some());
    let fetched = client
        .customers
        .clone()
        .get_customer(pb::GetCustomerRequest {
            customer_id: customer.id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(fetched, customer);

    // Two EUR accounts: the customer's and the project owner's.
    let alice = client
        .accounts
        .clone()
        .create_account(pb::CreateAccountRequest {
            currency: "EUR".into(),
            allow_negative_balance: false,
            customer_id: Some(customer.id.clone()),
            meta: meta(&[("_name", "Alice main")]),
        })
        .await?
        .into_inner();
    assert!(alice.id.starts_with("acc_"), "{}", alice.id);
    assert_eq!(alice.customer_id.as_deref(), Some(customer.id.as_str()));
    assert_eq!(alice.project_id, project.id);
    assert_eq!(
        alice.balance,
        Some(pb::Money {
            currency: "EUR".into(),
            amount: 0
        })
    );
    let bob = client.create_account("EUR", false).await?;
    assert_eq!(bob.customer_id, None);
    assert!(!bob.allow_negative_balance);

    // Sandbox: give Alice 100.00 EUR out of thin air.
    let funded = client.set_balance(&alice.id, "EUR", 10_000).await?;
    assert_eq!(amount(&funded.balance), 10_000);

    // Money moves: twelve transfers back and forth.
    let mut expected_alice = 10_000;
    let mut expected_bob = 0;
    let mut transfers = Vec::new();
    for i in 0..12_i64 {
        let (from, to, value) = if i % 3 == 2 {
            (&bob, &alice, 100 + i)
        } else {
            (&alice, &bob, 500 + i)
        };
        let transfer = client.transfer(&from.id, &to.id, "EUR", value).await?;
        assert!(transfer.id.starts_with("trf_"), "{}", transfer.id);
        assert_eq!(transfer.source_account_id, from.id);
        assert_eq!(transfer.destination_account_id, to.id);
        assert_eq!(transfer.value, paycore_e2e::money("EUR", value));
        assert_eq!(transfer.project_id, project.id);
        assert!(transfer.source_transaction_id.starts_with("tx_"));
        assert!(transfer.destination_transaction_id.starts_with("tx_"));
        if from.id == alice.id {
            expected_alice -= value;
            expected_bob += value;
        } else {
            expected_alice += value;
            expected_bob -= value;
        }
        transfers.push(transfer);
    }
    assert_eq!(client.balance(&alice.id).await?, expected_alice);
    assert_eq!(client.balance(&bob.id).await?, expected_bob);

    // Each transfer reads back as created, and its two legs exist.
    for transfer in &transfers {
        let fetched = client
            .transfers
            .clone()
            .get_transfer(pb::GetTransferRequest {
                transfer_id: transfer.id.clone(),
            })
            .await?
            .into_inner();
        assert_eq!(&fetched, transfer);
        let source = client
            .transactions
            .clone()
            .get_transaction(pb::GetTransactionRequest {
                transaction_id: transfer.source_transaction_id.clone(),
            })
            .await?
            .into_inner();
        assert_eq!(source.r#type(), pb::TransactionType::TransferSource);
        assert_eq!(source.account_id, transfer.source_account_id);
        assert_eq!(source.transfer_id.as_deref(), Some(transfer.id.as_str()));
        assert_eq!(amount(&source.value), -amount(&transfer.value));
        let destination = client
            .transactions
            .clone()
            .get_transaction(pb::GetTransactionRequest {
                transaction_id: transfer.destination_transaction_id.clone(),
            })
            .await?
            .into_inner();
        assert_eq!(destination.r#type(), pb::TransactionType::TransferDestination);
        assert_eq!(destination.account_id, transfer.destination_account_id);
        assert_eq!(amount(&destination.value), amount(&transfer.value));
    }

    // Alice's history: newest first, balance_after adding up, magic first.
    let history = client.check_transaction_chain(&alice.id).await?;
    assert_eq!(history.len(), 13);
    assert_eq!(history[0].r#type(), pb::TransactionType::Magic);
    assert_eq!(amount(&history[0].value), 10_000);
    assert_eq!(history[0].transfer_id, None);
    let listed = client.all_transactions(Some(&alice.id)).await?;
    let newest = &listed[0];
    let last = transfers.last().expect("twelve transfers");
    assert_eq!(newest.transfer_id.as_deref(), Some(last.id.as_str()));
    let alice_leg = if last.source_account_id == alice.id {
        &last.source_transaction_id
    } else {
        &last.destination_transaction_id
    };
    assert_eq!(&newest.id, alice_leg);
    assert_eq!(amount(&newest.balance_after), expected_alice);
    client.check_transaction_chain(&bob.id).await?;

    // The project-wide list: 1 magic + 24 legs, newest first.
    let all = client.all_transactions(None).await?;
    assert_eq!(all.len(), 25);
    assert!(
        all.windows(2)
            .all(|w| micros(&w[0].created_at) >= micros(&w[1].created_at)),
        "transactions are not newest first"
    );
    let transfer_list = client.all_transfers().await?;
    let mut newest_first = transfers.clone();
    newest_first.reverse();
    assert_eq!(transfer_list, newest_first);
    assert_eq!(client.all_accounts().await?.len(), 2);
    assert_eq!(
        client.all_accounts().await?[0].id,
        bob.id,
        "accounts newest first"
    );

    // Pagination: the default page is 10, pages of 7 cover the list exactly.
    let default_pages = transaction_pages(&client, 0).await?;
    assert_eq!(
        default_pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [10, 10, 5]
    );
    let pages_of_7 = transaction_pages(&client, 7).await?;
    assert_eq!(pages_of_7.iter().map(Vec::len).collect::<Vec<_>>(), [7, 7, 7, 4]);
    assert_eq!(pages_of_7.concat(), all);
    assert_eq!(default_pages.concat(), all);

    // Metadata on everything.
    let transfer = client
        .transfers
        .clone()
        .update_transfer(pb::UpdateTransferRequest {
            transfer_id: transfers[0].id.clone(),
            update_mask: Some(mask(&["meta"])),
            meta: meta(&[("order", "42"), ("note", "rent")]),
        })
        .await?
        .into_inner();
    assert_eq!(transfer.meta, meta(&[("order", "42"), ("note", "rent")]));
    assert_eq!(transfer.value, transfers[0].value, "only meta changes");
    let account = client
        .accounts
        .clone()
        .update_account(pb::UpdateAccountRequest {
            account_id: bob.id.clone(),
            update_mask: Some(mask(&["meta"])),
            allow_negative_balance: false,
            balance: None,
            meta: meta(&[("_name", "Bob"), ("_starred", "1")]),
        })
        .await?
        .into_inner();
    assert_eq!(account.meta, meta(&[("_name", "Bob"), ("_starred", "1")]));
    assert_eq!(
        amount(&account.balance),
        expected_bob,
        "a meta update keeps the balance"
    );
    let customer = client
        .customers
        .clone()
        .update_customer(pb::UpdateCustomerRequest {
            customer_id: customer.id.clone(),
            update_mask: Some(mask(&["meta"])),
            identity: None,
            meta: meta(&[("crm_id", "c-18")]),
        })
        .await?
        .into_inner();
    assert_eq!(customer.meta, meta(&[("crm_id", "c-18")]));
    assert_eq!(
        customer.identity,
        Some(identity()),
        "identity untouched by a meta update"
    );
    let project = client
        .projects
        .clone()
        .update_project(pb::UpdateProjectRequest {
            update_mask: Some(mask(&["meta"])),
            meta: meta(&[("_name", "My shop")]),
        })
        .await?
        .into_inner();
    assert_eq!(project.meta, meta(&[("_name", "My shop")]));
    let fetched = client
        .transfers
        .clone()
        .get_transfer(pb::GetTransferRequest {
            transfer_id: transfers[0].id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(fetched.meta, transfer.meta);
    // A meta update is not a balance change: no new transaction.
    assert_eq!(client.all_transactions(None).await?.len(), 25);

    let before = client.snapshot().await?;
    let pages_before = transaction_pages(&client, 7).await?;
    let first_page = client
        .transactions
        .clone()
        .list_transactions(pb::ListTransactionsRequest {
            page_size: 7,
            page_token: String::new(),
            account_id: None,
            as_of: None,
        })
        .await?
        .into_inner();

    // Graceful stop, start again on the same directory.
    server.stop_ok();
    assert!(
        server.log().contains("stopped"),
        "no `stopped` in the log:\n{}",
        server.log()
    );
    server.start_again();
    assert!(
        server.printed_bootstrap().is_none(),
        "a restart must not create another project"
    );
    assert!(
        !server
            .stdout_lines()
            .iter()
            .any(|line| line.contains("secretkey")),
        "a restart printed a key: {:?}",
        server.stdout_lines()
    );
    check_stock_services(&server).await?;

    let client = server.client();
    let after = client.snapshot().await?;
    assert_eq!(after, before, "the state after a restart differs");
    assert_eq!(transaction_pages(&client, 7).await?, pages_before);
    // A page token handed out before the restart still leads to the same page.
    let second_page = client
        .transactions
        .clone()
        .list_transactions(pb::ListTransactionsRequest {
            page_size: 7,
            page_token: first_page.next_page_token.clone(),
            account_id: None,
            as_of: None,
        })
        .await?
        .into_inner();
    assert_eq!(second_page.items, pages_before[1]);
    assert_eq!(client.balance(&alice.id).await?, expected_alice);
    assert_eq!(client.balance(&bob.id).await?, expected_bob);
    client.check_transaction_chain(&alice.id).await?;
    client.check_transaction_chain(&bob.id).await?;

    // And the restarted server keeps working.
    let transfer = client.transfer(&bob.id, &alice.id, "EUR", 1).await?;
    assert_eq!(client.balance(&alice.id).await?, expected_alice + 1);
    assert_eq!(client.balance(&bob.id).await?, expected_bob - 1);
    assert_eq!(client.all_transfers().await?[0].id, transfer.id);
    assert_eq!(client.all_transactions(None).await?.len(), 27);
    server.stop_ok();
    Ok(())
}

/// A supervisor (systemd, Kubernetes) may stop the server as soon as it is
/// up: a SIGTERM right after `paycore listening on` must be a graceful stop
/// (exit 0, read models saved), not death by the signal's default action.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_right_after_listening_is_a_graceful_stop() {
    for attempt in 0..6 {
        let dir = test_dir();
        let mut server = Server::start_without_readiness_check(dir.path());
        let status = server.stop();
        assert!(
            status.success(),
            "attempt {attempt}: SIGTERM right after `paycore listening on` ended the server with {status} \
             instead of a graceful stop (is the signal handler installed only after the address is \
             printed?); log:\n{}",
            server.log()
        );
    }
}
