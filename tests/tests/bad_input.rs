//! Every bad input gets its precise status (code, field, reason) and changes
//! nothing: each test takes a snapshot of everything the project can list
//! before the bad requests and compares it afterwards, then checks that a good
//! request still goes through.

use std::collections::BTreeMap;

use paycore_e2e::{
    Client, Server, amount, assert_bad_request, assert_bad_request_fields, assert_code, assert_reason,
    expect_err, identity, key_id, mask, meta, money, pb, sibling_id, test_dir, transfer_request,
    with_idempotency_key, with_prefix,
};
use tonic::{Code, Request, Status};

async fn create_transfer(
    client: &Client,
    request: pb::CreateTransferRequest,
) -> Result<pb::Transfer, Status> {
    Ok(client
        .transfers
        .clone()
        .create_transfer(request)
        .await?
        .into_inner())
}

async fn create_account(client: &Client, request: pb::CreateAccountRequest) -> Result<pb::Account, Status> {
    Ok(client
        .accounts
        .clone()
        .create_account(request)
        .await?
        .into_inner())
}

async fn update_account(client: &Client, request: pb::UpdateAccountRequest) -> Result<pb::Account, Status> {
    Ok(client
        .accounts
        .clone()
        .update_account(request)
        .await?
        .into_inner())
}

fn account_request(currency: &str) -> pb::CreateAccountRequest {
    pb::CreateAccountRequest {
        currency: currency.into(),
        allow_negative_balance: false,
        customer_id: None,
        meta: BTreeMap::new(),
    }
}

fn balance_update(account_id: &str, currency: &str, amount: i64) -> pb::UpdateAccountRequest {
    pb::UpdateAccountRequest {
        account_id: account_id.into(),
        update_mask: Some(mask(&["balance"])),
        allow_negative_balance: false,
        balance: money(currency, amount),
        meta: BTreeMap::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_transfers_are_refused_precisely_and_write_nothing() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let client = server.client();
    let a = client.create_account("EUR", false).await?;
    let b = client.create_account("EUR", false).await?;
    let usd = client.create_account("USD", false).await?;
    client.set_balance(&a.id, "EUR", 1_000).await?;
    client.set_balance(&usd.id, "USD", 500).await?;
    let before = client.snapshot().await?;

    let ok = || transfer_request(&a.id, &b.id, "EUR", 100);
    let refuse = |request: pb::CreateTransferRequest| {
        let client = client.clone();
        async move { expect_err(create_transfer(&client, request).await) }
    };

    // Missing and malformed fields, each reported on its own path.
    let status = refuse(pb::CreateTransferRequest {
        source_account_id: String::new(),
        ..ok()
    })
    .await;
    assert_bad_request_fields(&status, &["source_account_id"]);
    let status = refuse(pb::CreateTransferRequest {
        destination_account_id: String::new(),
        ..ok()
    })
    .await;
    assert_bad_request_fields(&status, &["destination_account_id"]);
    let status = refuse(pb::CreateTransferRequest { value: None, ..ok() }).await;
    assert_bad_request_fields(&status, &["value"]);
    let status = refuse(pb::CreateTransferRequest::default()).await;
    assert_bad_request_fields(&status, &["source_account_id", "destination_account_id", "value"]);

    // Currencies: missing, unknown, lowercase.
    for currency in ["", "EURO", "eur", "ZZZ", "€"] {
        let status = refuse(transfer_request(&a.id, &b.id, currency, 100)).await;
        assert_bad_request_fields(&status, &["value.currency"]);
    }

    // Amounts: zero, negative, the most negative.
    for bad in [0, -1, -100, i64::MIN] {
        let status = refuse(transfer_request(&a.id, &b.id, "EUR", bad)).await;
        assert_bad_request_fields(&status, &["value.amount"]);
    }

    // The same account on both sides.
    let status = refuse(transfer_request(&a.id, &a.id, "EUR", 100)).await;
    assert_bad_request_fields(&status, &["destination_account_id"]);

    // IDs of the wrong kind or shape.
    let status = refuse(transfer_request(&with_prefix(&a.id, "cus"), &b.id, "EUR", 100)).await;
    assert_bad_request_fields(&status, &["source_account_id"]);
    let status = refuse(transfer_request(&a.id, &with_prefix(&b.id, "trf"), "EUR", 100)).await;
    assert_bad_request_fields(&status, &["destination_account_id"]);
    for garbage in [
        "acc_",
        "acc_nope",
        "acc_01M7Z1V5XMEVAVHC49RN62Y96Z",
        "acc_81m7z1v5xmevavhc49rn62y96z",
        "42",
    ] {
        let status = refuse(transfer_request(garbage, &b.id, "EUR", 100)).await;
        assert_bad_request_fields(&status, &["source_account_id"]);
    }

    // All the problems of one request at once.
    let status = refuse(pb::CreateTransferRequest {
        source_account_id: with_prefix(&a.id, "cus"),
        destination_account_id: String::new(),
        value: money("EURO", 5),
        meta: meta(&[("_secret", "x")]),
        pending_timeout: None,
    })
    .await;
    assert_bad_request_fields(
        &status,
        &[
            "source_account_id",
            "destination_account_id",
            "value.currency",
            "meta._secret",
        ],
    );

    // Well-formed IDs that name nothing.
    let status = refuse(transfer_request(&sibling_id(&a.id), &b.id, "EUR", 100)).await;
    assert_code(&status, Code::NotFound);
    let status = refuse(transfer_request(&a.id, &sibling_id(&b.id), "EUR", 100)).await;
    assert_code(&status, Code::NotFound);

    // The value's currency is not the accounts'.
    let status = refuse(transfer_request(&a.id, &b.id, "USD", 100)).await;
    assert_bad_request_fields(&status, &["value.currency"]);
    // Accounts of different currencies with no exchange rate configured.
    let status = refuse(transfer_request(&a.id, &usd.id, "EUR", 100)).await;
    assert_reason(&status, Code::FailedPrecondition, "FX_RATE_NOT_CONFIGURED");
    let status = refuse(transfer_request(&usd.id, &a.id, "USD", 100)).await;
    assert_reason(&status, Code::FailedPrecondition, "FX_RATE_NOT_CONFIGURED");

    // Not enough money: one cent more than the balance, or from an empty account.
    let status = refuse(transfer_request(&a.id, &b.id, "EUR", 1_001)).await;
    assert_reason(&status, Code::FailedPrecondition, "INSUFFICIENT_FUNDS");
    let status = refuse(transfer_request(&b.id, &a.id, "EUR", 1)).await;
    assert_reason(&status, Code::FailedPrecondition, "INSUFFICIENT_FUNDS");

    // Bad metadata on a transfer.
    let status = refuse(pb::CreateTransferRequest {
        meta: meta(&[("_foo", "x")]),
        ..ok()
    })
    .await;
    assert_bad_request_fields(&status, &["meta._foo"]);

    assert_eq!(
        client.snapshot().await?,
        before,
        "a refused transfer changed something"
    );

    // The exact balance goes through, so the refusals above were about the
    // input and nothing else.
    client.transfer(&a.id, &b.id, "EUR", 1_000).await?;
    assert_eq!(client.balance(&a.id).await?, 0);
    assert_eq!(client.balance(&b.id).await?, 1_000);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balances_that_would_overflow_are_refused() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let client = server.client();
    let rich = client.create_account("EUR", false).await?;
    let debtor = client.create_account("EUR", true).await?;
    let other = client.create_account("EUR", false).await?;
    // Project total: (i64::MAX - 10) - 100 = i64::MAX - 110.
    client.set_balance(&rich.id, "EUR", i64::MAX - 10).await?;
    client.set_balance(&debtor.id, "EUR", -100).await?;
    let before = client.snapshot().await?;

    // The destination would pass i64::MAX.
    let status = expect_err(client.transfer(&debtor.id, &rich.id, "EUR", 100).await);
    assert_reason(&status, Code::FailedPrecondition, "BALANCE_OVERFLOW");
    // The source (allowed to go negative) would pass i64::MIN.
    let status = expect_err(client.transfer(&debtor.id, &other.id, "EUR", i64::MAX).await);
    assert_reason(&status, Code::FailedPrecondition, "BALANCE_OVERFLOW");
    // Sandbox money that would overflow the project's total.
    let status = expect_err(client.set_balance(&other.id, "EUR", 1_000).await);
    assert_reason(&status, Code::FailedPrecondition, "BALANCE_OVERFLOW");
    // Near i64::MAX the amount itself is fine, the arithmetic is what's refused.
    let status = expect_err(client.transfer(&rich.id, &debtor.id, "EUR", i64::MAX).await);
    assert_reason(&status, Code::FailedPrecondition, "INSUFFICIENT_FUNDS");

    assert_eq!(
        client.snapshot().await?,
        before,
        "a refused overflow changed something"
    );

    // Up to exactly i64::MAX is fine.
    client.transfer(&debtor.id, &rich.id, "EUR", 10).await?;
    assert_eq!(client.balance(&rich.id).await?, i64::MAX);
    assert_eq!(client.balance(&debtor.id).await?, -110);
    client.check_transaction_chain(&rich.id).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_accounts_customers_and_lookups_are_refused() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let client = server.client();
    let customer = client
        .customers
        .clone()
        .create_customer(pb::CreateCustomerRequest {
            identity: Some(identity()),
            meta: BTreeMap::new(),
        })
        .await?
        .into_inner();
    let funded = client.create_account("EUR", false).await?;
    let debtor = client.create_account("EUR", true).await?;
    let plain = client.create_account("EUR", false).await?;
    client.set_balance(&funded.id, "EUR", 1_000).await?;
    client.set_balance(&debtor.id, "EUR", -400).await?;
    let transfer = client.transfer(&funded.id, &plain.id, "EUR", 10).await?;
    let before = client.snapshot().await?;

    // CreateAccount.
    for currency in ["", "eur", "EURO", "ZZZ"] {
        let status = expect_err(create_account(&client, account_request(currency)).await);
        assert_bad_request_fields(&status, &["currency"]);
    }
    let status = expect_err(
        create_account(
            &client,
            pb::CreateAccountRequest {
                customer_id: Some(with_prefix(&customer.id, "acc")),
                ..account_request("EUR")
            },
        )
        .await,
    );
    assert_bad_request_fields(&status, &["customer_id"]);
    let status = expect_err(
        create_account(
            &client,
            pb::CreateAccountRequest {
                customer_id: Some(sibling_id(&customer.id)),
                ..account_request("EUR")
            },
        )
        .await,
    );
    assert_code(&status, Code::NotFound);

    // CreateCustomer / UpdateCustomer with a bad identity: every field named.
    let mut bad = identity();
    bad.first_name = String::new();
    bad.email_address = Some("not-an-email".into());
    bad.phone_number = Some("600 111 222".into());
    if let Some(address) = bad.address.as_mut() {
        address.country = "XX".into();
    }
    if let Some(document) = bad.document.as_mut() {
        document.r#type = pb::DocumentType::Unspecified.into();
        document.expiration_date = Some(pb::Date {
            year: 2023,
            month: 2,
            day: 29,
        });
    }
    let bad_fields = [
        "identity.first_name",
        "identity.email_address",
        "identity.phone_number",
        "identity.address.country",
        "identity.document.type",
        "identity.document.expiration_date",
    ];
    let status = expect_err(
        client
            .customers
            .clone()
            .create_customer(pb::CreateCustomerRequest {
                identity: Some(bad.clone()),
                meta: BTreeMap::new(),
            })
            .await,
    );
    assert_bad_request_fields(&status, &bad_fields);
    let status = expect_err(
        client
            .customers
            .clone()
            .update_customer(pb::UpdateCustomerRequest {
                customer_id: customer.id.clone(),
                update_mask: Some(mask(&["identity"])),
                identity: Some(bad),
                meta: BTreeMap::new(),
            })
            .await,
    );
    assert_bad_request_fields(&status, &bad_fields);
    let status = expect_err(
        client
            .customers
            .clone()
            .update_customer(pb::UpdateCustomerRequest {
                customer_id: sibling_id(&customer.id),
                update_mask: Some(mask(&["meta"])),
                identity: None,
                meta: BTreeMap::new(),
            })
            .await,
    );
    assert_code(&status, Code::NotFound);

    // UpdateAccount: masks.
    for bad_mask in [
        None,
        Some(mask(&[])),
        Some(mask(&["currency"])),
        Some(mask(&["meta", "id"])),
    ] {
        let status = expect_err(
            update_account(
                &client,
                pb::UpdateAccountRequest {
                    update_mask: bad_mask.clone(),
                    ..balance_update(&plain.id, "EUR", 5)
                },
            )
            .await,
        );
        assert_bad_request_fields(&status, &["update_mask"]);
    }
    // UpdateAccount: sandbox balances.
    let status = expect_err(update_account(&client, balance_update(&plain.id, "USD", 5)).await);
    assert_bad_request_fields(&status, &["balance.currency"]);
    let status = expect_err(
        update_account(
            &client,
            pb::UpdateAccountRequest {
                balance: None,
                ..balance_update(&plain.id, "EUR", 5)
            },
        )
        .await,
    );
    assert_bad_request_fields(&status, &["balance"]);
    let status = expect_err(update_account(&client, balance_update(&plain.id, "EUR", -1)).await);
    assert_bad_request_fields(&status, &["balance.amount"]);
    // The project's EUR total is 990 + 10 - 400 = 600: setting the debtor to
    // -1001 or the funded account to 389 would bring it to -1.
    let status = expect_err(update_account(&client, balance_update(&debtor.id, "EUR", -1_001)).await);
    assert_reason(&status, Code::FailedPrecondition, "PROJECT_BALANCE_NEGATIVE");
    let status = expect_err(update_account(&client, balance_update(&funded.id, "EUR", 389)).await);
    assert_reason(&status, Code::FailedPrecondition, "PROJECT_BALANCE_NEGATIVE");
    // A negative account cannot lose its allowance.
    let status = expect_err(
        update_account(
            &client,
            pb::UpdateAccountRequest {
                update_mask: Some(mask(&["allow_negative_balance"])),
                allow_negative_balance: false,
                ..balance_update(&debtor.id, "EUR", 0)
            },
        )
        .await,
    );
    assert_reason(&status, Code::FailedPrecondition, "INSUFFICIENT_FUNDS");
    let status = expect_err(update_account(&client, balance_update(&sibling_id(&plain.id), "EUR", 5)).await);
    assert_code(&status, Code::NotFound);

    // Lookups by ID: required, right prefix, existing.
    let status = expect_err(
        client
            .accounts
            .clone()
            .get_account(pb::GetAccountRequest {
                account_id: String::new(),
            })
            .await,
    );
    assert_bad_request_fields(&status, &["account_id"]);
    let status = expect_err(client.account(&with_prefix(&plain.id, "cus")).await);
    assert_bad_request_fields(&status, &["account_id"]);
    let status = expect_err(client.account(&sibling_id(&plain.id)).await);
    assert_code(&status, Code::NotFound);
    let status = expect_err(
        client
            .customers
            .clone()
            .get_customer(pb::GetCustomerRequest {
                customer_id: with_prefix(&customer.id, "acc"),
            })
            .await,
    );
    assert_bad_request_fields(&status, &["customer_id"]);
    let status = expect_err(
        client
            .transfers
            .clone()
            .get_transfer(pb::GetTransferRequest {
                transfer_id: transfer.source_transaction_id.clone(),
            })
            .await,
    );
    assert_bad_request_fields(&status, &["transfer_id"]);
    let status = expect_err(
        client
            .transfers
            .clone()
            .get_transfer(pb::GetTransferRequest {
                transfer_id: sibling_id(&transfer.id),
            })
            .await,
    );
    assert_code(&status, Code::NotFound);
    let status = expect_err(
        client
            .transactions
            .clone()
            .get_transaction(pb::GetTransactionRequest {
                transaction_id: transfer.id.clone(),
            })
            .await,
    );
    assert_bad_request_fields(&status, &["transaction_id"]);
    let status = expect_err(
        client
            .transactions
            .clone()
            .get_transaction(pb::GetTransactionRequest {
                transaction_id: sibling_id(&transfer.source_transaction_id),
            })
            .await,
    );
    assert_code(&status, Code::NotFound);
    let status = expect_err(
        client
            .all_transactions(Some(&with_prefix(&plain.id, "cus")))
            .await,
    );
    assert_bad_request_fields(&status, &["account_id"]);
    let status = expect_err(client.all_transactions(Some(&sibling_id(&plain.id))).await);
    assert_code(&status, Code::NotFound);
    let status = expect_err(
        client
            .transfers
            .clone()
            .update_transfer(pb::UpdateTransferRequest {
                transfer_id: sibling_id(&transfer.id),
                update_mask: Some(mask(&["meta"])),
                meta: BTreeMap::new(),
            })
            .await,
    );
    assert_code(&status, Code::NotFound);
    let status = expect_err(
        client
            .transfers
            .clone()
            .update_transfer(pb::UpdateTransferRequest {
                transfer_id: transfer.id.clone(),
                update_mask: Some(mask(&["value"])),
                meta: BTreeMap::new(),
            })
            .await,
    );
    assert_bad_request_fields(&status, &["update_mask"]);
    let status = expect_err(
        client
            .projects
            .clone()
            .update_project(pb::UpdateProjectRequest {
                update_mask: None,
                meta: BTreeMap::new(),
            })
            .await,
    );
    assert_bad_request_fields(&status, &["update_mask"]);

    // `idempotency-key` is for Create methods only, and has a length limit.
    let status = expect_err(
        client
            .accounts
            .clone()
            .get_account(with_idempotency_key(
                pb::GetAccountRequest {
                    account_id: plain.id.clone(),
                },
                "k-1",
            ))
            .await,
    );
    assert_bad_request_fields(&status, &["idempotency-key"]);
    let status = expect_err(
        client
            .accounts
            .clone()
            .update_account(with_idempotency_key(balance_update(&plain.id, "EUR", 5), "k-2"))
            .await,
    );
    assert_bad_request_fields(&status, &["idempotency-key"]);
    let status = expect_err(
        client
            .accounts
            .clone()
            .create_account(with_idempotency_key(account_request("EUR"), &"k".repeat(256)))
            .await,
    );
    assert_bad_request_fields(&status, &["idempotency-key"]);

    assert_eq!(
        client.snapshot().await?,
        before,
        "a refused request changed something"
    );

    // The good versions go through.
    let created = create_account(
        &client,
        pb::CreateAccountRequest {
            customer_id: Some(customer.id.clone()),
            ..account_request("JPY")
        },
    )
    .await?;
    assert_eq!(created.balance, money("JPY", 0));
    // A project total of exactly zero is fine.
    let account = update_account(&client, balance_update(&debtor.id, "EUR", -1_000)).await?;
    assert_eq!(amount(&account.balance), -1_000);
    Ok(())
}

/// One create or update per object kind, all with `entries` as meta.
async fn meta_requests(
    client: &Client,
    entries: &BTreeMap<String, String>,
    ids: (&str, &str, &str, &str),
) -> Vec<Result<(), Status>> {
    let (source, destination, transfer, customer) = ids;
    let mut results = Vec::new();
    results.push(
        client
            .accounts
            .clone()
            .create_account(pb::CreateAccountRequest {
                meta: entries.clone(),
                ..account_request("EUR")
            })
            .await
            .map(drop),
    );
    results.push(
        client
            .accounts
            .clone()
            .update_account(pb::UpdateAccountRequest {
                update_mask: Some(mask(&["meta"])),
                meta: entries.clone(),
                ..balance_update(source, "EUR", 0)
            })
            .await
            .map(drop),
    );
    results.push(
        client
            .customers
            .clone()
            .create_customer(pb::CreateCustomerRequest {
                identity: None,
                meta: entries.clone(),
            })
            .await
            .map(drop),
    );
    results.push(
        client
            .customers
            .clone()
            .update_customer(pb::UpdateCustomerRequest {
                customer_id: customer.into(),
                update_mask: Some(mask(&["meta"])),
                identity: None,
                meta: entries.clone(),
            })
            .await
            .map(drop),
    );
    results.push(
        client
            .transfers
            .clone()
            .create_transfer(pb::CreateTransferRequest {
                meta: entries.clone(),
                ..transfer_request(source, destination, "EUR", 1)
            })
            .await
            .map(drop),
    );
    results.push(
        client
            .transfers
            .clone()
            .update_transfer(pb::UpdateTransferRequest {
                transfer_id: transfer.into(),
                update_mask: Some(mask(&["meta"])),
                meta: entries.clone(),
            })
            .await
            .map(drop),
    );
    results.push(
        client
            .projects
            .clone()
            .update_project(pb::UpdateProjectRequest {
                update_mask: Some(mask(&["meta"])),
                meta: entries.clone(),
            })
            .await
            .map(drop),
    );
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_limits_are_enforced_everywhere() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let client = server.client();
    let source = client.create_account("EUR", false).await?;
    let destination = client.create_account("EUR", false).await?;
    client.set_balance(&source.id, "EUR", 1_000).await?;
    let transfer = client.transfer(&source.id, &destination.id, "EUR", 1).await?;
    let customer = client
        .customers
        .clone()
        .create_customer(pb::CreateCustomerRequest::default())
        .await?
        .into_inner();
    let ids = (
        source.id.as_str(),
        destination.id.as_str(),
        transfer.id.as_str(),
        customer.id.as_str(),
    );
    let before = client.snapshot().await?;

    let long_key = "k".repeat(41);
    let cases: Vec<(BTreeMap<String, String>, String)> = vec![
        (
            (0..51).map(|i| (format!("key{i}"), "v".to_owned())).collect(),
            "meta".to_owned(),
        ),
        (meta(&[(long_key.as_str(), "v")]), format!("meta.{long_key}")),
        (meta(&[("note", &"v".repeat(501))]), "meta.note".to_owned()),
        (meta(&[("_foo", "x")]), "meta._foo".to_owned()),
        (meta(&[("", "x")]), "meta".to_owned()),
    ];
    for (entries, field) in &cases {
        for (index, result) in meta_requests(&client, entries, ids).await.into_iter().enumerate() {
            let status = expect_err(result);
            assert_bad_request(&status, field);
            assert!(
                bad_request_fields_all_meta(&status),
                "request #{index}: only meta violations expected: {}",
                status.message()
            );
        }
    }
    assert_eq!(
        client.snapshot().await?,
        before,
        "refused metadata changed something"
    );

    // The limits themselves are fine: 50 keys, 40-character keys, 500-character
    // values, the dashboard's `_name` and `_starred`.
    let mut at_limit: BTreeMap<String, String> =
        (0..47).map(|i| (format!("key{i}"), "v".repeat(500))).collect();
    at_limit.insert("k".repeat(40), "x".into());
    at_limit.insert("_name".into(), "Main".into());
    at_limit.insert("_starred".into(), "1".into());
    assert_eq!(at_limit.len(), 50);
    for (index, result) in meta_requests(&client, &at_limit, ids)
        .await
        .into_iter()
        .enumerate()
    {
        if let Err(status) = result {
            panic!("request #{index} refused valid metadata: {status:?}");
        }
    }
    let stored = client.account(&source.id).await?;
    assert_eq!(stored.meta, at_limit);
    Ok(())
}

fn bad_request_fields_all_meta(status: &Status) -> bool {
    paycore_e2e::bad_request_fields(status)
        .iter()
        .all(|field| field == "meta" || field.starts_with("meta."))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_page_sizes_and_tokens_are_refused() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let client = server.client();
    let mut accounts = Vec::new();
    for _ in 0..12 {
        accounts.push(client.create_account("EUR", false).await?);
    }
    client.set_balance(&accounts[0].id, "EUR", 1_000).await?;
    for i in 1..12 {
        client
            .transfer(&accounts[0].id, &accounts[i].id, "EUR", 1)
            .await?;
        client
            .customers
            .clone()
            .create_customer(pb::CreateCustomerRequest::default())
            .await?;
    }
    let before = client.snapshot().await?;

    let list_accounts = |page_size: i32, page_token: &str| {
        let client = client.clone();
        let request = pb::ListAccountsRequest {
            page_size,
            page_token: page_token.to_owned(),
        };
        async move { Ok::<_, Status>(client.accounts.clone().list_accounts(request).await?.into_inner()) }
    };
    let list_transfers = |page_size: i32, page_token: &str| {
        let client = client.clone();
        let request = pb::ListTransfersRequest {
            page_size,
            page_token: page_token.to_owned(),
        };
        async move {
            Ok::<_, Status>(
                client
                    .transfers
                    .clone()
                    .list_transfers(request)
                    .await?
                    .into_inner(),
            )
        }
    };
    let list_customers = |page_size: i32, page_token: &str| {
        let client = client.clone();
        let request = pb::ListCustomersRequest {
            page_size,
            page_token: page_token.to_owned(),
        };
        async move {
            Ok::<_, Status>(
                client
                    .customers
                    .clone()
                    .list_customers(request)
                    .await?
                    .into_inner(),
            )
        }
    };
    let list_transactions = |page_size: i32, page_token: &str, account: Option<&str>| {
        let client = client.clone();
        let request = pb::ListTransactionsRequest {
            page_size,
            page_token: page_token.to_owned(),
            account_id: account.map(str::to_owned),
            as_of: None,
        };
        async move {
            Ok::<_, Status>(
                client
                    .transactions
                    .clone()
                    .list_transactions(request)
                    .await?
                    .into_inner(),
            )
        }
    };

    // page_size: 0 is the default (10), 1..=100 as asked, anything else refused.
    let page = list_accounts(0, "").await?;
    assert_eq!(page.items.len(), 10);
    assert!(!page.next_page_token.is_empty());
    assert_eq!(list_accounts(1, "").await?.items.len(), 1);
    let page = list_accounts(100, "").await?;
    assert_eq!(page.items.len(), 12);
    assert!(page.next_page_token.is_empty());
    assert_eq!(list_transfers(0, "").await?.items.len(), 10);
    assert_eq!(list_customers(0, "").await?.items.len(), 10);
    assert_eq!(list_transactions(0, "", None).await?.items.len(), 10);
    for bad in [-1, 101, i32::MIN, i32::MAX] {
        assert_bad_request_fields(&expect_err(list_accounts(bad, "").await), &["page_size"]);
        assert_bad_request_fields(&expect_err(list_transfers(bad, "").await), &["page_size"]);
        assert_bad_request_fields(&expect_err(list_customers(bad, "").await), &["page_size"]);
        assert_bad_request_fields(
            &expect_err(list_transactions(bad, "", None).await),
            &["page_size"],
        );
        assert_bad_request_fields(
            &expect_err(list_transactions(bad, "", Some(&accounts[0].id)).await),
            &["page_size"],
        );
    }

    // page_token: garbage, or a token of another list.
    let accounts_token = list_accounts(2, "").await?.next_page_token;
    let transfers_token = list_transfers(2, "").await?.next_page_token;
    let account_tx_token = list_transactions(2, "", Some(&accounts[0].id))
        .await?
        .next_page_token;
    assert!(!accounts_token.is_empty() && !transfers_token.is_empty() && !account_tx_token.is_empty());
    for garbage in [
        "garbage",
        "00",
        "ffffffffffffffffffffffff",
        "%%%",
        &"a".repeat(5000),
    ] {
        assert_bad_request_fields(&expect_err(list_accounts(10, garbage).await), &["page_token"]);
        assert_bad_request_fields(&expect_err(list_transfers(10, garbage).await), &["page_token"]);
        assert_bad_request_fields(&expect_err(list_customers(10, garbage).await), &["page_token"]);
        assert_bad_request_fields(
            &expect_err(list_transactions(10, garbage, None).await),
            &["page_token"],
        );
    }
    assert_bad_request_fields(
        &expect_err(list_transfers(10, &accounts_token).await),
        &["page_token"],
    );
    assert_bad_request_fields(
        &expect_err(list_accounts(10, &transfers_token).await),
        &["page_token"],
    );
    assert_bad_request_fields(
        &expect_err(list_transactions(10, &account_tx_token, None).await),
        &["page_token"],
    );
    assert_bad_request_fields(
        &expect_err(list_transactions(10, &account_tx_token, Some(&accounts[1].id)).await),
        &["page_token"],
    );
    // Both at once.
    assert_bad_request_fields(
        &expect_err(list_transactions(-1, "garbage", Some("cus_x")).await),
        &["page_size", "account_id"],
    );

    // The genuine tokens work where they belong.
    assert_eq!(list_accounts(10, &accounts_token).await?.items.len(), 10);
    assert_eq!(
        list_transactions(100, &account_tx_token, Some(&accounts[0].id))
            .await?
            .items
            .len(),
        10
    );
    assert_eq!(client.snapshot().await?, before);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_idempotency_key_with_other_parameters_is_refused() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let client = server.client();
    let a = client.create_account("EUR", false).await?;
    let b = client.create_account("EUR", false).await?;
    client.set_balance(&a.id, "EUR", 1_000).await?;
    let first = client
        .transfers
        .clone()
        .create_transfer(with_idempotency_key(
            transfer_request(&a.id, &b.id, "EUR", 100),
            "order-1",
        ))
        .await?
        .into_inner();
    let before = client.snapshot().await?;

    let reused = |request: Request<pb::CreateTransferRequest>| {
        let client = client.clone();
        async move { expect_err(client.transfers.clone().create_transfer(request).await) }
    };
    let cases = [
        transfer_request(&a.id, &b.id, "EUR", 101),
        transfer_request(&b.id, &a.id, "EUR", 100),
        pb::CreateTransferRequest {
            meta: meta(&[("note", "x")]),
            ..transfer_request(&a.id, &b.id, "EUR", 100)
        },
    ];
    for request in cases {
        let status = reused(with_idempotency_key(request, "order-1")).await;
        assert_bad_request_fields(&status, &["idempotency-key"]);
        assert_reason(&status, Code::InvalidArgument, "IDEMPOTENCY_KEY_REUSED");
    }
    // The same key on another method is another request too.
    let status = expect_err(
        client
            .accounts
            .clone()
            .create_account(with_idempotency_key(account_request("EUR"), "order-1"))
            .await,
    );
    assert_reason(&status, Code::InvalidArgument, "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(
        client.snapshot().await?,
        before,
        "a refused reuse changed something"
    );

    // The original parameters still replay the original transfer.
    let again = client
        .transfers
        .clone()
        .create_transfer(with_idempotency_key(
            transfer_request(&a.id, &b.id, "EUR", 100),
            "order-1",
        ))
        .await?
        .into_inner();
    assert_eq!(again.id, first.id);
    assert_eq!(client.snapshot().await?, before);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_keys_are_refused_and_write_nothing() -> anyhow::Result<()> {
    let dir = test_dir();
    let mut server = Server::start(dir.path());
    let key = server.key().to_owned();
    let project = server.project_id().to_owned();
    let client = server.client();
    let a = client.create_account("EUR", false).await?;
    let b = client.create_account("EUR", false).await?;
    client.set_balance(&a.id, "EUR", 1_000).await?;
    drop(client);

    // Keys made with the CLI while the server is stopped.
    server.stop_ok();
    let public = server.create_key(&project, true);
    assert!(public.starts_with("sandbox_publickey_"), "{public}");
    let doomed = server.create_key(&project, false);
    let live = server.create_project("live shop", true);
    assert!(live.key.starts_with("live_secretkey_"), "{}", live.key);
    server.start_again();

    // The second secret key works… until it is revoked, at once, by the CLI
    // talking to the running server; and it stays revoked after a restart.
    let doomed_client = server.client_with_key(&doomed);
    let seen = doomed_client
        .projects
        .clone()
        .get_project(pb::GetProjectRequest {})
        .await?
        .into_inner();
    assert_eq!(seen.id, project);
    server.revoke_key(&key_id(&doomed));
    let status = expect_err(
        doomed_client
            .projects
            .clone()
            .get_project(pb::GetProjectRequest {})
            .await,
    );
    assert_code(&status, Code::Unauthenticated);
    assert_eq!(status.message(), "API key revoked");
    server.restart();

    let client = server.client();
    let before = client.snapshot().await?;
    let channel = server.channel();
    let tamper_last = |text: &str| {
        let mut text = text.to_owned();
        let last = text.pop().expect("non-empty key");
        text.push(if last == '0' { '1' } else { '0' });
        text
    };
    let other_key_id = {
        let parts: Vec<&str> = key.splitn(4, '_').collect();
        let id = sibling_id(&format!("key_{}", parts[2]));
        format!("{}_{}_{}_{}", parts[0], parts[1], &id["key_".len()..], parts[3])
    };
    let unauthenticated: Vec<(String, Option<String>)> = vec![
        ("no authorization".into(), None),
        ("empty".into(), Some(String::new())),
        ("no scheme".into(), Some(key.clone())),
        ("basic scheme".into(), Some(format!("Basic {key}"))),
        ("bearer without key".into(), Some("Bearer".into())),
        (
            "malformed key".into(),
            Some("Bearer sandbox_secretkey_nope_00".into()),
        ),
        (
            "wrong secret".into(),
            Some(format!("Bearer {}", tamper_last(&key))),
        ),
        ("unknown key id".into(), Some(format!("Bearer {other_key_id}"))),
        (
            "sandbox key presented as live".into(),
            Some(format!("Bearer {}", key.replacen("sandbox_", "live_", 1))),
        ),
        (
            "secret presented as public".into(),
            Some(format!("Bearer {}", key.replacen("secretkey", "publickey", 1))),
        ),
        ("revoked".into(), Some(format!("Bearer {doomed}"))),
    ];
    for (case, authorization) in &unauthenticated {
        let bad = Client::with_authorization(channel.clone(), authorization.as_deref());
        let statuses = [
            expect_err(
                bad.projects
                    .clone()
                    .get_project(pb::GetProjectRequest {})
                    .await
                    .map(drop),
            ),
            expect_err(bad.create_account("EUR", false).await.map(drop)),
            expect_err(bad.transfer(&a.id, &b.id, "EUR", 1).await.map(drop)),
            expect_err(bad.account(&a.id).await.map(drop)),
            expect_err(bad.all_transactions(None).await.map(drop)),
            expect_err(
                bad.customers
                    .clone()
                    .create_customer(pb::CreateCustomerRequest::default())
                    .await
                    .map(drop),
            ),
        ];
        for status in statuses {
            assert_eq!(
                status.code(),
                Code::Unauthenticated,
                "{case}: expected UNAUTHENTICATED, got {status:?}"
            );
            if case == "revoked" {
                assert_eq!(status.message(), "API key revoked", "{case}");
            }
        }
    }

    // A public key is known but may not do any of this.
    let public_client = server.client_with_key(&public);
    let status = expect_err(
        public_client
            .projects
            .clone()
            .get_project(pb::GetProjectRequest {})
            .await,
    );
    assert_code(&status, Code::PermissionDenied);
    let status = expect_err(public_client.transfer(&a.id, &b.id, "EUR", 1).await);
    assert_code(&status, Code::PermissionDenied);
    let status = expect_err(public_client.create_account("EUR", false).await);
    assert_code(&status, Code::PermissionDenied);

    assert_eq!(
        client.snapshot().await?,
        before,
        "a refused caller changed something"
    );

    // A live project works with its own key, but sandbox money is refused.
    let live_client = server.client_with_key(&live.key);
    let live_project = live_client
        .projects
        .clone()
        .get_project(pb::GetProjectRequest {})
        .await?
        .into_inner();
    assert_eq!(live_project.id, live.id);
    assert_eq!(live_project.environment(), pb::Environment::Live);
    let live_account = live_client.create_account("EUR", false).await?;
    let live_before = live_client.snapshot().await?;
    let status = expect_err(live_client.set_balance(&live_account.id, "EUR", 1_000).await);
    assert_reason(&status, Code::FailedPrecondition, "SANDBOX_ONLY");
    assert_eq!(live_client.snapshot().await?, live_before);

    // The CLI refuses to make keys for a project that does not exist, or to
    // revoke a key that does not exist, and says so.
    for args in [
        vec!["keys", "create", "--project", &*sibling_id(&project)],
        vec!["keys", "revoke", &*sibling_id(&key_id(&key))],
        vec!["keys", "revoke", "not-a-key-id"],
    ] {
        let output = server.cli(&args);
        assert!(
            !output.status.success(),
            "`paycore {}` succeeded: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout)
        );
        assert!(
            !output.stderr.is_empty(),
            "`paycore {}` failed silently",
            args.join(" ")
        );
    }
    assert_eq!(
        client.snapshot().await?,
        before,
        "a refused CLI command changed something"
    );

    // The bootstrap key still works.
    client.transfer(&a.id, &b.id, "EUR", 1).await?;
    Ok(())
}
