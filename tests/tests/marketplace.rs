#![allow(clippy::unwrap_used)] // a failure is the test failing
//! A marketplace through one day, over gRPC: a buyer pays by card with 3-D
//! Secure from the browser (public key → token), the payin settles into the
//! marketplace's escrow account, the seller's share moves to the seller, part
//! is refunded to the buyer, the seller is paid out by bank transfer, the
//! payout comes back from the bank, and the seller is paid again to a
//! corrected account. At the end of the day the books add up and the audit of
//! the log finds nothing.

use paycore_e2e::{Server, amount, money, pb, test_dir};
use paycore_grpc::{
    BankAccountServiceClient, BankPayoutServiceClient, CardPayinServiceClient, CardTokenServiceClient,
    CustomerServiceClient, TransactionServiceClient,
};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

type Authed = InterceptedService<Channel, Bearer>;

/// Every call carries `authorization: Bearer <key>`.
#[derive(Clone)]
struct Bearer(AsciiMetadataValue);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

fn bearer(key: &str) -> Bearer {
    Bearer(format!("Bearer {key}").parse().unwrap())
}

struct Marketplace {
    payins: CardPayinServiceClient<Authed>,
    payouts: BankPayoutServiceClient<Authed>,
    bank_accounts: BankAccountServiceClient<Authed>,
    transactions: TransactionServiceClient<Authed>,
}

impl Marketplace {
    fn new(channel: &Channel, key: &str) -> Self {
        Self {
            payins: CardPayinServiceClient::with_interceptor(channel.clone(), bearer(key)),
            payouts: BankPayoutServiceClient::with_interceptor(channel.clone(), bearer(key)),
            bank_accounts: BankAccountServiceClient::with_interceptor(channel.clone(), bearer(key)),
            transactions: TransactionServiceClient::with_interceptor(channel.clone(), bearer(key)),
        }
    }

    /// The types and values of an account's transactions, oldest first.
    async fn history(&self, account: &str) -> Vec<(pb::TransactionType, i64, i64)> {
        let page = self
            .transactions
            .clone()
            .list_transactions(pb::ListTransactionsRequest {
                page_size: 100,
                page_token: String::new(),
                account_id: Some(account.to_owned()),
                as_of: None,
            })
            .await
            .unwrap()
            .into_inner();
        let mut items: Vec<_> = page
            .items
            .iter()
            .map(|tx| (tx.r#type(), amount(&tx.value), amount(&tx.balance_after)))
            .collect();
        items.reverse();
        items
    }

    async fn bank_account(&self, customer: &str, iban: &str) -> pb::BankAccount {
        self.bank_accounts
            .clone()
            .create_bank_account(pb::CreateBankAccountRequest {
                bank_account_info: Some(pb::BankAccountInfo {
                    iban: iban.into(),
                    beneficiary_name: "Ana Seller".into(),
                }),
                customer_id: Some(customer.to_owned()),
                meta: Default::default(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    async fn payout(&self, account: &str, bank_account: &str, value: i64) -> pb::BankPayout {
        self.payouts
            .clone()
            .create_bank_payout(pb::CreateBankPayoutRequest {
                account_id: account.into(),
                destination: Some(pb::create_bank_payout_request::Destination::BankAccountId(
                    bank_account.into(),
                )),
                concept: "Sales 21 Nov".into(),
                value: money("EUR", value),
                meta: Default::default(),
            })
            .await
            .unwrap()
            .into_inner()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_day_at_the_marketplace() {
    use pb::TransactionType as T;
    let dir = test_dir();
    let mut server = Server::start(dir.path());
    let channel = server.channel();
    let client = server.client();
    let shop = Marketplace::new(&channel, server.key());
    let public_key = server.create_key(server.project_id(), true);

    // Morning: the marketplace's escrow account and the seller.
    let escrow = client.create_account("EUR", false).await.unwrap().id;
    let mut customers = CustomerServiceClient::with_interceptor(channel.clone(), bearer(server.key()));
    let seller = customers
        .create_customer(pb::CreateCustomerRequest::default())
        .await
        .unwrap()
        .into_inner()
        .id;
    let seller_account = client.create_account("EUR", false).await.unwrap().id;

    // The buyer's browser tokenizes a card that requires 3-D Secure.
    let token = CardTokenServiceClient::with_interceptor(channel.clone(), bearer(&public_key))
        .create_card_token(pb::CreateCardTokenRequest {
            card_info: Some(pb::CardInfoRequest {
                number: "4000000000003220".into(),
                expiration_month: 12,
                expiration_year: 2031,
                cvc: "737".into(),
            }),
        })
        .await
        .unwrap()
        .into_inner();

    // The marketplace charges 120.00 EUR with 3-D Secure.
    let payin = shop
        .payins
        .clone()
        .create_card_payin(pb::CreateCardPayinRequest {
            account_id: escrow.clone(),
            value: money("EUR", 12_000),
            card_token_id: Some(token.id.clone()),
            authentication_type: pb::AuthenticationType::ThreeDSecure.into(),
            authentication_redirect_url: Some("https://shop.example/checkout/done".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(payin.state(), pb::CardPayinState::AuthenticationPending);
    assert!(
        payin
            .authentication_url
            .as_deref()
            .unwrap()
            .contains(&format!("/{}?token=", payin.id))
    );
    let id = payin.id.clone();
    let authorized = shop
        .payins
        .clone()
        .complete_card_payin_authentication(pb::CompleteCardPayinAuthenticationRequest {
            card_payin_id: id.clone(),
            authentication_failed: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(authorized.state(), pb::CardPayinState::Authorized);
    assert_eq!(
        client.balance(&escrow).await.unwrap(),
        0,
        "authorized is not settled"
    );
    let settled = shop
        .payins
        .clone()
        .settle_card_payin(pb::SettleCardPayinRequest {
            card_payin_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(settled.state(), pb::CardPayinState::Settled);
    assert!(settled.transaction_id.is_some());

    // The seller's share (100.00) moves to the seller; 20.00 stays.
    client
        .transfer(&escrow, &seller_account, "EUR", 10_000)
        .await
        .unwrap();

    // The buyer sends one item back: 15.00 refunded from escrow.
    let refund = shop
        .payins
        .clone()
        .create_card_payin_refund(pb::CreateCardPayinRefundRequest {
            card_payin_id: id.clone(),
            value: money("EUR", 1_500),
            account_id: None,
            meta: Default::default(),
        })
        .await
        .unwrap()
        .into_inner();
    shop.payins
        .clone()
        .complete_card_payin_refund(pb::CompleteCardPayinRefundRequest {
            card_payin_refund_id: refund.id.clone(),
        })
        .await
        .unwrap();
    let payin_now = shop
        .payins
        .clone()
        .get_card_payin(pb::GetCardPayinRequest {
            card_payin_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(amount(&payin_now.refunded_value), 1_500);

    // Evening: the seller is paid out; the bank sends the transfer back.
    let wrong = shop.bank_account(&seller, "ES9121000418450200051332").await;
    let first = shop.payout(&seller_account, &wrong.id, 10_000).await;
    assert_eq!(client.balance(&seller_account).await.unwrap(), 0);
    shop.payouts
        .clone()
        .complete_bank_payout(pb::CompleteBankPayoutRequest {
            bank_payout_id: first.id.clone(),
        })
        .await
        .unwrap();
    let returned = shop
        .payouts
        .clone()
        .return_bank_payout(pb::ReturnBankPayoutRequest {
            bank_payout_id: first.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(returned.state(), pb::BankPayoutState::Refunded);
    assert!(returned.failure_transaction_id.is_some());
    assert_eq!(client.balance(&seller_account).await.unwrap(), 10_000);

    // Paid again, to the corrected account.
    let corrected = shop.bank_account(&seller, "DE89370400440532013000").await;
    let second = shop.payout(&seller_account, &corrected.id, 10_000).await;
    shop.payouts
        .clone()
        .complete_bank_payout(pb::CompleteBankPayoutRequest {
            bank_payout_id: second.id.clone(),
        })
        .await
        .unwrap();

    // The books of the day.
    assert_eq!(
        shop.history(&escrow).await,
        vec![
            (T::CardPayin, 12_000, 12_000),
            (T::TransferSource, -10_000, 2_000),
            (T::CardPayinRefund, -1_500, 500),
        ]
    );
    assert_eq!(
        shop.history(&seller_account).await,
        vec![
            (T::TransferDestination, 10_000, 10_000),
            (T::BankPayout, -10_000, 0),
            (T::BankPayoutFailure, 10_000, 10_000),
            (T::BankPayout, -10_000, 0),
        ]
    );

    // The log, replayed by the auditor, agrees.
    server.stop_ok();
    let audit = server.cli(&["audit"]);
    assert_eq!(
        audit.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&audit.stdout),
        String::from_utf8_lossy(&audit.stderr)
    );
}
