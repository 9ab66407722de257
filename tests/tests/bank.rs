//! Bank accounts, payouts, payin references and bank payins through the real
//! server: funds leave at payout creation and come back exactly once when a
//! payout fails or is returned; incoming transfers find their account by the
//! reference code in their concept.

#![allow(clippy::unwrap_used)]

use paycore_e2e::{
    Authed, Client, Server, assert_bad_request, assert_code, assert_reason, bearer, expect_err, mask, meta,
    money, pb, sibling_id, test_dir, with_idempotency_key,
};
use paycore_grpc::{
    BankAccountServiceClient, BankPayinReferenceServiceClient, BankPayinServiceClient,
    BankPayoutServiceClient,
};
use tonic::Code;

const IBAN: &str = "ES9121000418450200051332";
const OTHER_IBAN: &str = "DE89370400440532013000";

/// The bank services and the core ones, for one project's key.
struct Bank {
    core: Client,
    accounts: BankAccountServiceClient<Authed>,
    payouts: BankPayoutServiceClient<Authed>,
    references: BankPayinReferenceServiceClient<Authed>,
    payins: BankPayinServiceClient<Authed>,
}

impl Bank {
    fn new(server: &Server, key: &str) -> Self {
        let channel = server.channel();
        Self {
            core: Client::new(channel.clone(), key),
            accounts: BankAccountServiceClient::with_interceptor(channel.clone(), bearer(key)),
            payouts: BankPayoutServiceClient::with_interceptor(channel.clone(), bearer(key)),
            references: BankPayinReferenceServiceClient::with_interceptor(channel.clone(), bearer(key)),
            payins: BankPayinServiceClient::with_interceptor(channel, bearer(key)),
        }
    }

    /// A EUR account holding `amount` (sandbox magic balance).
    async fn funded_account(&self, amount: i64) -> anyhow::Result<String> {
        let account = self.core.create_account("EUR", false).await?;
        if amount != 0 {
            self.core.set_balance(&account.id, "EUR", amount).await?;
        }
        Ok(account.id)
    }

    async fn payout(
        &self,
        account_id: &str,
        destination: pb::create_bank_payout_request::Destination,
        amount: i64,
    ) -> Result<pb::BankPayout, tonic::Status> {
        let request = payout_request(account_id, destination, amount);
        Ok(self
            .payouts
            .clone()
            .create_bank_payout(request)
            .await?
            .into_inner())
    }

    async fn all_payouts(&self) -> anyhow::Result<Vec<pb::BankPayout>> {
        let request = pb::ListBankPayoutsRequest {
            page_size: 100,
            page_token: String::new(),
        };
        Ok(self
            .payouts
            .clone()
            .list_bank_payouts(request)
            .await?
            .into_inner()
            .items)
    }

    async fn complete(&self, id: &str) -> Result<pb::BankPayout, tonic::Status> {
        let request = pb::CompleteBankPayoutRequest {
            bank_payout_id: id.into(),
        };
        Ok(self
            .payouts
            .clone()
            .complete_bank_payout(request)
            .await?
            .into_inner())
    }

    async fn fail(&self, id: &str) -> Result<pb::BankPayout, tonic::Status> {
        let request = pb::FailBankPayoutRequest {
            bank_payout_id: id.into(),
        };
        Ok(self.payouts.clone().fail_bank_payout(request).await?.into_inner())
    }

    async fn give_back(&self, id: &str) -> Result<pb::BankPayout, tonic::Status> {
        let request = pb::ReturnBankPayoutRequest {
            bank_payout_id: id.into(),
        };
        Ok(self
            .payouts
            .clone()
            .return_bank_payout(request)
            .await?
            .into_inner())
    }

    async fn simulate(&self, concept: &str, amount: i64) -> Result<pb::BankPayin, tonic::Status> {
        let request = pb::SimulateBankPayinRequest {
            concept: concept.into(),
            value: money("EUR", amount),
            meta: meta(&[]),
        };
        Ok(self
            .payins
            .clone()
            .simulate_bank_payin(request)
            .await?
            .into_inner())
    }

    async fn create_reference(&self, account_id: &str) -> Result<pb::BankPayinReference, tonic::Status> {
        let request = pb::CreateBankPayinReferenceRequest {
            account_id: account_id.into(),
            meta: meta(&[]),
        };
        Ok(self
            .references
            .clone()
            .create_bank_payin_reference(request)
            .await?
            .into_inner())
    }
}

fn info(iban: &str) -> pb::BankAccountInfo {
    pb::BankAccountInfo {
        iban: iban.into(),
        beneficiary_name: "Jane Doe".into(),
    }
}

fn inline(iban: &str) -> pb::create_bank_payout_request::Destination {
    pb::create_bank_payout_request::Destination::BankAccountInfo(info(iban))
}

fn payout_request(
    account_id: &str,
    destination: pb::create_bank_payout_request::Destination,
    amount: i64,
) -> pb::CreateBankPayoutRequest {
    pb::CreateBankPayoutRequest {
        account_id: account_id.into(),
        destination: Some(destination),
        concept: "Invoice 42".into(),
        value: money("EUR", amount),
        meta: meta(&[]),
    }
}

/// The account's transactions of `kind`, newest first.
async fn transactions_of_type(
    bank: &Bank,
    account_id: &str,
    kind: pb::TransactionType,
) -> anyhow::Result<Vec<pb::Transaction>> {
    let all = bank.core.all_transactions(Some(account_id)).await?;
    Ok(all.into_iter().filter(|tx| tx.r#type() == kind).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_accounts_are_created_read_listed_and_annotated() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let bank = Bank::new(&server, server.key());
    let customer = bank
        .core
        .customers
        .clone()
        .create_customer(pb::CreateCustomerRequest {
            identity: None,
            meta: meta(&[]),
        })
        .await?
        .into_inner();

    let request = pb::CreateBankAccountRequest {
        bank_account_info: Some(info(IBAN)),
        customer_id: Some(customer.id.clone()),
        meta: meta(&[("purpose", "rent")]),
    };
    let created = bank
        .accounts
        .clone()
        .create_bank_account(request)
        .await?
        .into_inner();
    assert!(created.id.starts_with("ba_"), "{}", created.id);
    assert_eq!(created.customer_id.as_deref(), Some(customer.id.as_str()));
    assert_eq!(created.bank_account_info, Some(info(IBAN)));
    assert_eq!(created.project_id, server.project_id());

    let got = bank
        .accounts
        .clone()
        .get_bank_account(pb::GetBankAccountRequest {
            bank_account_id: created.id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(got, created);
    let listed = bank
        .accounts
        .clone()
        .list_bank_accounts(pb::ListBankAccountsRequest::default())
        .await?
        .into_inner();
    assert_eq!(listed.items, std::slice::from_ref(&created));

    let updated = bank
        .accounts
        .clone()
        .update_bank_account(pb::UpdateBankAccountRequest {
            bank_account_id: created.id.clone(),
            update_mask: Some(mask(&["meta"])),
            meta: meta(&[("purpose", "savings")]),
        })
        .await?
        .into_inner();
    assert_eq!(updated.meta, meta(&[("purpose", "savings")]));
    assert_eq!(updated.bank_account_info, created.bank_account_info);

    let missing = expect_err(
        bank.accounts
            .clone()
            .get_bank_account(pb::GetBankAccountRequest {
                bank_account_id: sibling_id(&created.id),
            })
            .await,
    );
    assert_code(&missing, Code::NotFound);

    for (bad, why) in [
        ("ES9121000418450200051333", "checksum"),
        ("ES91210004184502000513", "ES"),
        ("ES91 2100 0418 4502 0005 1332", "spaces"),
        ("QQ9121000418450200051332", "QQ"),
    ] {
        let request = pb::CreateBankAccountRequest {
            bank_account_info: Some(info(bad)),
            customer_id: None,
            meta: meta(&[]),
        };
        let status = expect_err(bank.accounts.clone().create_bank_account(request).await);
        assert_bad_request(&status, "bank_account_info.iban");
        assert!(status.message().contains(why), "{bad}: {}", status.message());
    }
    // Nothing was saved by the refused requests.
    let listed = bank
        .accounts
        .clone()
        .list_bank_accounts(pb::ListBankAccountsRequest::default())
        .await?
        .into_inner();
    assert_eq!(listed.items.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payouts_take_funds_and_give_them_back_once() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let bank = Bank::new(&server, server.key());
    let account = bank.funded_account(10_000).await?;

    // Created: PROCESSING, the funds are taken at once.
    let first = bank.payout(&account, inline(IBAN), 2_500).await?;
    assert!(first.id.starts_with("bpo_"), "{}", first.id);
    assert_eq!(first.state(), pb::BankPayoutState::Processing);
    assert_eq!(first.account_id, account);
    assert_eq!(first.bank_account_id, None);
    assert_eq!(first.bank_account_info, Some(info(IBAN)));
    assert_eq!(first.concept, "Invoice 42");
    assert_eq!(first.miniref.len(), 6);
    assert_eq!(first.failure_transaction_id, None);
    assert_eq!(bank.core.balance(&account).await?, 7_500);
    let debits = transactions_of_type(&bank, &account, pb::TransactionType::BankPayout).await?;
    assert_eq!(debits.len(), 1);
    assert_eq!(debits[0].id, first.transaction_id);
    assert_eq!(debits[0].bank_payout_id.as_deref(), Some(first.id.as_str()));
    assert_eq!(debits[0].value, money("EUR", -2_500));

    // Not enough funds: refused, nothing written.
    let status = expect_err(bank.payout(&account, inline(IBAN), 7_501).await);
    assert_reason(&status, Code::FailedPrecondition, "INSUFFICIENT_FUNDS");
    assert_eq!(bank.core.balance(&account).await?, 7_500);
    assert_eq!(bank.all_payouts().await?.len(), 1);

    // Completed, then returned by the destination bank: credited back once.
    let completed = bank.complete(&first.id).await?;
    assert_eq!(completed.state(), pb::BankPayoutState::Completed);
    let status = expect_err(bank.fail(&first.id).await);
    assert_reason(&status, Code::FailedPrecondition, "PAYOUT_NOT_PROCESSING");
    let returned = bank.give_back(&first.id).await?;
    assert_eq!(returned.state(), pb::BankPayoutState::Refunded);
    assert!(returned.failure_transaction_id.is_some());
    assert_eq!(bank.core.balance(&account).await?, 10_000);
    let status = expect_err(bank.give_back(&first.id).await);
    assert_reason(&status, Code::FailedPrecondition, "PAYOUT_NOT_COMPLETED");
    assert_eq!(bank.core.balance(&account).await?, 10_000);

    // To a saved bank account with the same IBAN: failed, credited back once.
    let saved = bank
        .accounts
        .clone()
        .create_bank_account(pb::CreateBankAccountRequest {
            bank_account_info: Some(info(IBAN)),
            customer_id: None,
            meta: meta(&[]),
        })
        .await?
        .into_inner();
    let by_id = pb::create_bank_payout_request::Destination::BankAccountId(saved.id.clone());
    let second = bank.payout(&account, by_id, 1_000).await?;
    assert_eq!(second.bank_account_id.as_deref(), Some(saved.id.as_str()));
    assert_eq!(second.bank_account_info, Some(info(IBAN)));
    assert_ne!(
        second.miniref, first.miniref,
        "two payouts to one IBAN share a miniref"
    );
    assert_eq!(bank.core.balance(&account).await?, 9_000);
    let failed = bank.fail(&second.id).await?;
    assert_eq!(failed.state(), pb::BankPayoutState::Failed);
    let failure_tx = failed.failure_transaction_id.clone().unwrap();
    assert_eq!(bank.core.balance(&account).await?, 10_000);
    for status in [
        expect_err(bank.fail(&second.id).await),
        expect_err(bank.complete(&second.id).await),
    ] {
        assert_reason(&status, Code::FailedPrecondition, "PAYOUT_NOT_PROCESSING");
    }
    let status = expect_err(bank.give_back(&second.id).await);
    assert_reason(&status, Code::FailedPrecondition, "PAYOUT_NOT_COMPLETED");
    assert_eq!(bank.core.balance(&account).await?, 10_000);
    let credits = transactions_of_type(&bank, &account, pb::TransactionType::BankPayoutFailure).await?;
    assert_eq!(credits.len(), 2, "one credit per failed or returned payout");
    let credit = credits.iter().find(|tx| tx.id == failure_tx).unwrap();
    assert_eq!(credit.bank_payout_id.as_deref(), Some(second.id.as_str()));
    assert_eq!(credit.value, money("EUR", 1_000));

    // More payouts to the IBAN (and one elsewhere): every miniref differs.
    let mut minirefs = vec![first.miniref.clone(), second.miniref.clone()];
    for _ in 0..4 {
        minirefs.push(bank.payout(&account, inline(IBAN), 10).await?.miniref);
    }
    bank.payout(&account, inline(OTHER_IBAN), 10).await?;
    let mut distinct = minirefs.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), minirefs.len(), "{minirefs:?}");
    bank.core.check_transaction_chain(&account).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payout_requests_are_checked_and_sandbox_calls_are_idempotent() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let bank = Bank::new(&server, server.key());
    let account = bank.funded_account(1_000).await?;

    let long = pb::CreateBankPayoutRequest {
        concept: "x".repeat(141),
        ..payout_request(&account, inline(IBAN), 100)
    };
    let status = expect_err(bank.payouts.clone().create_bank_payout(long).await);
    assert_bad_request(&status, "concept");
    let exactly_140 = pb::CreateBankPayoutRequest {
        concept: "x".repeat(140),
        ..payout_request(&account, inline(IBAN), 100)
    };
    bank.payouts.clone().create_bank_payout(exactly_140).await?;
    let nowhere = pb::CreateBankPayoutRequest {
        destination: None,
        ..payout_request(&account, inline(IBAN), 100)
    };
    let status = expect_err(bank.payouts.clone().create_bank_payout(nowhere).await);
    assert_bad_request(&status, "destination");
    let status = expect_err(
        bank.payout(&account, inline("ES9121000418450200051333"), 100)
            .await,
    );
    assert_bad_request(&status, "bank_account_info.iban");
    assert_eq!(bank.core.balance(&account).await?, 900);

    // A retried sandbox call with its idempotency key answers the payout
    // instead of being refused as "not processing" any more.
    let payout = bank.payout(&account, inline(IBAN), 100).await?;
    for _ in 0..2 {
        let request = with_idempotency_key(
            pb::CompleteBankPayoutRequest {
                bank_payout_id: payout.id.clone(),
            },
            "complete-1",
        );
        let completed = bank
            .payouts
            .clone()
            .complete_bank_payout(request)
            .await?
            .into_inner();
        assert_eq!(completed.state(), pb::BankPayoutState::Completed);
    }
    // Update changes metadata only.
    let updated = bank
        .payouts
        .clone()
        .update_bank_payout(pb::UpdateBankPayoutRequest {
            bank_payout_id: payout.id.clone(),
            update_mask: Some(mask(&["meta"])),
            meta: meta(&[("batch", "7")]),
        })
        .await?
        .into_inner();
    assert_eq!(updated.meta, meta(&[("batch", "7")]));
    assert_eq!(updated.state(), pb::BankPayoutState::Completed);
    let got = bank
        .payouts
        .clone()
        .get_bank_payout(pb::GetBankPayoutRequest {
            bank_payout_id: payout.id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(got, updated);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_calls_are_refused_in_a_live_project() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let live = server.create_project("live", true);
    let bank = Bank::new(&server, &live.key);
    // The sandbox check comes first, so any well-formed ID will do.
    let id = "bpo_01jq0000000000000000000000";
    for status in [
        expect_err(bank.complete(id).await),
        expect_err(bank.fail(id).await),
        expect_err(bank.give_back(id).await),
        expect_err(bank.simulate("REF KM4TRW9H", 100).await),
    ] {
        assert_reason(&status, Code::FailedPrecondition, "SANDBOX_ONLY");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payins_credit_the_account_of_the_reference_in_the_concept() -> anyhow::Result<()> {
    let dir = test_dir();
    let (server, second) = Server::start_with_second_project(dir.path());
    let bank = Bank::new(&server, server.key());
    let first_account = bank.funded_account(0).await?;
    let account = bank.funded_account(0).await?;

    let reference = bank.create_reference(&first_account).await?;
    assert!(reference.id.starts_with("bpir_"), "{}", reference.id);
    assert_eq!(reference.reference.len(), 8, "{}", reference.reference);
    assert!(
        reference.reference.chars().all(|c| "34679FHKMRTWXY".contains(c)),
        "{}",
        reference.reference
    );
    // The account a reference credits can be changed.
    let moved = bank
        .references
        .clone()
        .update_bank_payin_reference(pb::UpdateBankPayinReferenceRequest {
            bank_payin_reference_id: reference.id.clone(),
            update_mask: Some(mask(&["account_id", "meta"])),
            account_id: account.clone(),
            meta: meta(&[("tenant", "4B")]),
        })
        .await?
        .into_inner();
    assert_eq!(moved.account_id, account);
    assert_eq!(moved.reference, reference.reference);
    assert_eq!(moved.meta, meta(&[("tenant", "4B")]));
    let got = bank
        .references
        .clone()
        .get_bank_payin_reference(pb::GetBankPayinReferenceRequest {
            bank_payin_reference_id: reference.id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(got, moved);

    // The code inside a longer concept, lowercase, split by a hyphen.
    let code = reference.reference.to_lowercase();
    let concept = format!("Rent march ref {}-{} thanks", &code[..4], &code[4..]);
    let payin = bank.simulate(&concept, 1_500).await?;
    assert!(payin.id.starts_with("bpi_"), "{}", payin.id);
    assert_eq!(payin.account_id, account);
    assert_eq!(payin.bank_payin_reference_id, reference.id);
    assert_eq!(payin.concept, concept);
    assert_eq!(bank.core.balance(&account).await?, 1_500);
    assert_eq!(bank.core.balance(&first_account).await?, 0);
    let credits = transactions_of_type(&bank, &account, pb::TransactionType::BankPayin).await?;
    assert_eq!(credits.len(), 1);
    assert_eq!(credits[0].id, payin.transaction_id);
    assert_eq!(credits[0].bank_payin_id.as_deref(), Some(payin.id.as_str()));

    // No known code: refused, nothing credited.
    for concept in ["Rent march", "ref 3333-3333"] {
        let status = expect_err(bank.simulate(concept, 700).await);
        assert_reason(&status, Code::FailedPrecondition, "UNKNOWN_PAYIN_REFERENCE");
    }
    // Another project's code is unknown here too.
    let other = Bank::new(&server, &second.key);
    let other_account = other.funded_account(0).await?;
    let theirs = other.create_reference(&other_account).await?;
    let status = expect_err(bank.simulate(&format!("ref {}", theirs.reference), 700).await);
    assert_reason(&status, Code::FailedPrecondition, "UNKNOWN_PAYIN_REFERENCE");
    let status = expect_err(
        bank.references
            .clone()
            .get_bank_payin_reference(pb::GetBankPayinReferenceRequest {
                bank_payin_reference_id: theirs.id.clone(),
            })
            .await,
    );
    assert_code(&status, Code::NotFound);
    assert_eq!(bank.core.balance(&account).await?, 1_500);
    assert_eq!(other.core.balance(&other_account).await?, 0);

    // A value in another currency than the account's.
    let request = pb::SimulateBankPayinRequest {
        concept: format!("ref {}", reference.reference),
        value: money("USD", 100),
        meta: meta(&[]),
    };
    let status = expect_err(bank.payins.clone().simulate_bank_payin(request).await);
    assert_bad_request(&status, "value.currency");

    // Read back and annotate.
    let listed = bank
        .payins
        .clone()
        .list_bank_payins(pb::ListBankPayinsRequest::default())
        .await?
        .into_inner();
    assert_eq!(listed.items, std::slice::from_ref(&payin));
    let updated = bank
        .payins
        .clone()
        .update_bank_payin(pb::UpdateBankPayinRequest {
            bank_payin_id: payin.id.clone(),
            update_mask: Some(mask(&["meta"])),
            meta: meta(&[("matched", "yes")]),
        })
        .await?
        .into_inner();
    assert_eq!(updated.meta, meta(&[("matched", "yes")]));
    let got = bank
        .payins
        .clone()
        .get_bank_payin(pb::GetBankPayinRequest {
            bank_payin_id: payin.id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(got, updated);
    bank.core.check_transaction_chain(&account).await?;
    Ok(())
}
