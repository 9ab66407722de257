//! Projects are walled off from each other: a key sees and touches only its
//! own project's objects, and another project's object answers NOT_FOUND
//! exactly like a missing one.

use std::collections::BTreeMap;

use paycore_e2e::{
    Client, Server, Snapshot, assert_bad_request_fields, assert_code, assert_reason, expect_err, identity,
    mask, meta, pb, sibling_id, test_dir, transfer_request,
};
use tonic::{Code, Status};

/// What one project holds.
struct Holdings {
    customer: pb::Customer,
    a: pb::Account,
    b: pb::Account,
    transfer: pb::Transfer,
}

async fn fill(client: &Client, funds: i64) -> anyhow::Result<Holdings> {
    let customer = client
        .customers
        .clone()
        .create_customer(pb::CreateCustomerRequest {
            identity: Some(identity()),
            meta: BTreeMap::new(),
        })
        .await?
        .into_inner();
    let a = client.create_account("EUR", false).await?;
    let b = client.create_account("EUR", true).await?;
    client.set_balance(&a.id, "EUR", funds).await?;
    let transfer = client.transfer(&a.id, &b.id, "EUR", 100).await?;
    Ok(Holdings {
        customer,
        a,
        b,
        transfer,
    })
}

fn assert_only(snapshot: &Snapshot, project_id: &str, holdings: &Holdings) {
    assert_eq!(snapshot.project.id, project_id);
    assert_eq!(
        snapshot
            .customers
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        [holdings.customer.id.as_str()]
    );
    assert_eq!(
        snapshot
            .accounts
            .iter()
            .map(|a| a.id.as_str())
            .collect::<Vec<_>>(),
        [holdings.b.id.as_str(), holdings.a.id.as_str()]
    );
    assert_eq!(
        snapshot
            .transfers
            .iter()
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>(),
        [holdings.transfer.id.as_str()]
    );
    assert_eq!(snapshot.transactions.len(), 3, "one magic and two legs");
    assert!(snapshot.accounts.iter().all(|a| a.project_id == project_id));
    assert!(snapshot.customers.iter().all(|c| c.project_id == project_id));
    assert!(snapshot.transfers.iter().all(|t| t.project_id == project_id));
    assert!(snapshot.transactions.iter().all(|t| t.project_id == project_id));
    let own_accounts = [holdings.a.id.as_str(), holdings.b.id.as_str()];
    assert!(
        snapshot
            .transactions
            .iter()
            .all(|t| own_accounts.contains(&t.account_id.as_str()))
    );
}

/// NOT_FOUND, worded exactly like the answer for an ID that names nothing.
#[track_caller]
fn assert_not_found_like_missing(foreign: &Status, foreign_id: &str, missing: &Status, missing_id: &str) {
    assert_code(foreign, Code::NotFound);
    assert_code(missing, Code::NotFound);
    assert_eq!(
        foreign.message().replace(foreign_id, "<id>"),
        missing.message().replace(missing_id, "<id>"),
        "another project's object must look exactly like a missing one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_sees_and_touches_only_its_project() -> anyhow::Result<()> {
    let dir = test_dir();
    let (server, second) = Server::start_with_second_project(dir.path());
    let one = server.client();
    let two = server.client_with_key(&second.key);
    let mine = fill(&one, 1_000_000).await?;
    let theirs = fill(&two, 1_000).await?;

    let one_before = one.snapshot().await?;
    let two_before = two.snapshot().await?;
    assert_only(&one_before, server.project_id(), &mine);
    assert_only(&two_before, &second.id, &theirs);

    // Gets of the other project's objects: NOT_FOUND, like missing ones.
    for (client, other) in [(&one, &theirs), (&two, &mine)] {
        let foreign = expect_err(
            client
                .customers
                .clone()
                .get_customer(pb::GetCustomerRequest {
                    customer_id: other.customer.id.clone(),
                })
                .await,
        );
        let missing_id = sibling_id(&other.customer.id);
        let missing = expect_err(
            client
                .customers
                .clone()
                .get_customer(pb::GetCustomerRequest {
                    customer_id: missing_id.clone(),
                })
                .await,
        );
        assert_not_found_like_missing(&foreign, &other.customer.id, &missing, &missing_id);

        let foreign = expect_err(client.account(&other.a.id).await);
        let missing_id = sibling_id(&other.a.id);
        let missing = expect_err(client.account(&missing_id).await);
        assert_not_found_like_missing(&foreign, &other.a.id, &missing, &missing_id);

        let foreign = expect_err(
            client
                .transfers
                .clone()
                .get_transfer(pb::GetTransferRequest {
                    transfer_id: other.transfer.id.clone(),
                })
                .await,
        );
        let missing_id = sibling_id(&other.transfer.id);
        let missing = expect_err(
            client
                .transfers
                .clone()
                .get_transfer(pb::GetTransferRequest {
                    transfer_id: missing_id.clone(),
                })
                .await,
        );
        assert_not_found_like_missing(&foreign, &other.transfer.id, &missing, &missing_id);

        let leg = &other.transfer.source_transaction_id;
        let foreign = expect_err(
            client
                .transactions
                .clone()
                .get_transaction(pb::GetTransactionRequest {
                    transaction_id: leg.clone(),
                })
                .await,
        );
        let missing_id = sibling_id(leg);
        let missing = expect_err(
            client
                .transactions
                .clone()
                .get_transaction(pb::GetTransactionRequest {
                    transaction_id: missing_id.clone(),
                })
                .await,
        );
        assert_not_found_like_missing(&foreign, leg, &missing, &missing_id);

        let foreign = expect_err(client.all_transactions(Some(&other.a.id)).await);
        let missing_id = sibling_id(&other.a.id);
        let missing = expect_err(client.all_transactions(Some(&missing_id)).await);
        assert_not_found_like_missing(&foreign, &other.a.id, &missing, &missing_id);
    }

    // Moving the other project's money, or into its accounts: NOT_FOUND.
    for (client, own, other) in [(&one, &mine, &theirs), (&two, &theirs, &mine)] {
        let status = expect_err(client.transfer(&other.a.id, &own.b.id, "EUR", 1).await);
        assert_code(&status, Code::NotFound);
        let status = expect_err(client.transfer(&own.a.id, &other.b.id, "EUR", 1).await);
        assert_code(&status, Code::NotFound);
        let status = expect_err(client.transfer(&other.a.id, &other.b.id, "EUR", 1).await);
        assert_code(&status, Code::NotFound);
    }

    // Changing the other project's objects: NOT_FOUND.
    for (client, other) in [(&one, &theirs), (&two, &mine)] {
        let status = expect_err(client.set_balance(&other.a.id, "EUR", 5).await);
        assert_code(&status, Code::NotFound);
        let status = expect_err(
            client
                .accounts
                .clone()
                .update_account(pb::UpdateAccountRequest {
                    account_id: other.b.id.clone(),
                    update_mask: Some(mask(&["meta", "allow_negative_balance"])),
                    allow_negative_balance: false,
                    balance: None,
                    meta: meta(&[("owned", "by me")]),
                })
                .await,
        );
        assert_code(&status, Code::NotFound);
        let status = expect_err(
            client
                .transfers
                .clone()
                .update_transfer(pb::UpdateTransferRequest {
                    transfer_id: other.transfer.id.clone(),
                    update_mask: Some(mask(&["meta"])),
                    meta: meta(&[("owned", "by me")]),
                })
                .await,
        );
        assert_code(&status, Code::NotFound);
        let status = expect_err(
            client
                .customers
                .clone()
                .update_customer(pb::UpdateCustomerRequest {
                    customer_id: other.customer.id.clone(),
                    update_mask: Some(mask(&["identity"])),
                    identity: None,
                    meta: BTreeMap::new(),
                })
                .await,
        );
        assert_code(&status, Code::NotFound);
        // An account for the other project's customer.
        let status = expect_err(
            client
                .accounts
                .clone()
                .create_account(pb::CreateAccountRequest {
                    currency: "EUR".into(),
                    allow_negative_balance: false,
                    customer_id: Some(other.customer.id.clone()),
                    meta: BTreeMap::new(),
                })
                .await,
        );
        assert_code(&status, Code::NotFound);
    }

    // A page token of one project is not valid in the other.
    let token = one
        .accounts
        .clone()
        .list_accounts(pb::ListAccountsRequest {
            page_size: 1,
            page_token: String::new(),
        })
        .await?
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty());
    let status = expect_err(
        two.accounts
            .clone()
            .list_accounts(pb::ListAccountsRequest {
                page_size: 1,
                page_token: token,
            })
            .await,
    );
    assert_bad_request_fields(&status, &["page_token"]);

    assert_eq!(one.snapshot().await?, one_before, "project one changed");
    assert_eq!(two.snapshot().await?, two_before, "project two changed");

    // The "total stays at or above zero" rule is per project: project two
    // holds 1000 EUR, 900 of them in `a`, so its debtor `b` can go to -900 but
    // not below, whatever project one holds.
    let status = expect_err(two.set_balance(&theirs.b.id, "EUR", -901).await);
    assert_reason(&status, Code::FailedPrecondition, "PROJECT_BALANCE_NEGATIVE");
    two.set_balance(&theirs.b.id, "EUR", -900).await?;
    let status = expect_err(two.set_balance(&theirs.a.id, "EUR", 899).await);
    assert_reason(&status, Code::FailedPrecondition, "PROJECT_BALANCE_NEGATIVE");
    // (Each project's key still works on its own objects.)
    one.transfer(&mine.a.id, &mine.b.id, "EUR", 1).await?;
    two.transfer(&theirs.b.id, &theirs.a.id, "EUR", 1).await?;

    // Idempotency keys don't leak either (see also idempotency.rs): the same
    // key answers each project with its own transfer.
    let t1 = one
        .transfers
        .clone()
        .create_transfer(paycore_e2e::with_idempotency_key(
            transfer_request(&mine.a.id, &mine.b.id, "EUR", 7),
            "same-key",
        ))
        .await?
        .into_inner();
    let t2 = two
        .transfers
        .clone()
        .create_transfer(paycore_e2e::with_idempotency_key(
            transfer_request(&theirs.a.id, &theirs.b.id, "EUR", 7),
            "same-key",
        ))
        .await?
        .into_inner();
    assert_eq!(t1.project_id, server.project_id());
    assert_eq!(t2.project_id, second.id);
    Ok(())
}
