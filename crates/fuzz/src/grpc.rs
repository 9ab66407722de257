//! Every request message of `paycore.v1`, through the servers' own decode
//! path, then through the proto → domain conversion its handler runs.
//!
//! The body goes through `tonic::codec::Streaming::new_request` with the
//! decoder of [`paycore_grpc::codec::RequestCodec`]: what a generated
//! server does with the HTTP/2 body of a call (gRPC framing, the 4 MiB
//! message limit, then our codec). A decoded message is hashed as the
//! idempotency check hashes it and converted as its handler converts it
//! (the pure part: the conversions of `convert*.rs`, with fixed IDs where a
//! handler would draw fresh ones). Any panic is a bug; an error is fine.
//!
//! Input: byte 0 picks the method (modulo [`REQUESTS`]); bit 0 of byte 1
//! says whether the rest is the message body (framed here, one message) or
//! the raw HTTP/2 body (frame headers and all, any number of messages).

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::Full;
use paycore_domain::card::YearMonth;
use paycore_domain::consumer::ConsumerName;
use paycore_domain::kernel::bank::PayinReferenceCode;
use paycore_domain::*;
use paycore_grpc::codec::RequestCodec;
use paycore_grpc::pb;
use paycore_grpc::services;
use paycore_grpc::{convert, idempotency};
use tonic::codec::{Codec, Streaming};
use uuid::Uuid;

/// The servers' default limit on a decoded message (tonic's 4 MiB).
pub const MAX_DECODING_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// One method: its full gRPC path, its input message's name, and the run of
/// a body through decode and conversion.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    pub method: &'static str,
    /// The protobuf name of the input message (`GetProjectRequest`): the
    /// Rust type's name, so the list cannot name one and decode another.
    pub message: &'static str,
    run: fn(&'static str, Bytes),
}

impl Request {
    /// Decodes `body` (an HTTP/2 request body) with the server's decoder and
    /// converts every message decoded.
    pub fn run(&self, body: Bytes) {
        (self.run)(self.method, body);
    }
}

/// Decodes every message of `body` as the server does, then `convert`s it.
fn decode_then<M>(method: &'static str, body: Bytes, convert: fn(&M, &mut Violations))
where
    M: prost::Message + Default + Send + 'static,
{
    let mut codec = RequestCodec::<pb::Project, M>::default();
    let mut stream = Streaming::new_request(
        codec.decoder(),
        Full::new(body),
        None,
        Some(MAX_DECODING_MESSAGE_SIZE),
    );
    for _ in 0..64 {
        match futures::executor::block_on(stream.message()) {
            Ok(Some(message)) => {
                let _hash = idempotency::request_hash(method, &message);
                let mut v = Violations::new();
                convert(&message, &mut v);
            }
            Ok(None) => return,
            Err(status) => {
                // Never INTERNAL for a body, once the edge layer in front of
                // every route has translated tonic's framing errors: a body
                // is the caller's mistake.
                let answered = paycore_grpc::edge::callers_mistake(status);
                assert_ne!(
                    answered.code(),
                    tonic::Code::Internal,
                    "{method}: a request body answered INTERNAL: {answered:?}"
                );
                return;
            }
        }
    }
}

/// The time pending transfers' timeouts count from.
const NOW: paycore_domain::Timestamp = paycore_domain::Timestamp::from_micros(1_700_000_000_000_000);

fn transfer_ids() -> services::transfer::convert::TransferIds {
    services::transfer::convert::TransferIds {
        transfer: TransferId::from_uuid(uuid(13)),
        source_transaction: TransactionId::from_uuid(uuid(14)),
        destination_transaction: TransactionId::from_uuid(uuid(15)),
    }
}

fn uuid(n: u128) -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n)
}

/// The month the card conversions compare expiries with (a handler uses
/// today's).
const TODAY: YearMonth = YearMonth::new(2026, 6);

macro_rules! requests {
    ($($method:literal: $message:ident => |$m:ident, $v:ident| $convert:expr;)*) => {
        /// Every unary and streaming method of `paycore.v1` (a test checks the
        /// list against the descriptor the server is built from).
        pub const REQUESTS: &[Request] = &[$(
            Request {
                method: $method,
                message: stringify!($message),
                run: |method, body| decode_then::<pb::$message>(method, body, |$m, $v| { let _ = $convert; }),
            },
        )*];
    };
}

fn page(page_size: i32, page_token: &str, v: &mut Violations) -> Option<paycore_projections::PageRequest> {
    convert::page_request(page_size, page_token, v)
}

requests! {
    "/paycore.v1.AccountService/CreateAccount": CreateAccountRequest =>
        |m, v| services::account::convert::create_account(m, AccountId::from_uuid(uuid(1)), v);
    "/paycore.v1.AccountService/GetAccount": GetAccountRequest =>
        |m, v| convert::id::<AccountId>(&m.account_id, "account_id", v);
    "/paycore.v1.AccountService/GetAccountAt": GetAccountAtRequest =>
        |m, v| (convert::id::<AccountId>(&m.account_id, "account_id", v), convert::required_as_of(m.as_of.as_ref(), v));
    "/paycore.v1.AccountService/ListAccounts": ListAccountsRequest =>
        |m, v| page(m.page_size, &m.page_token, v);
    "/paycore.v1.AccountService/UpdateAccount": UpdateAccountRequest =>
        |m, v| services::account::convert::update_account(m, TransactionId::from_uuid(uuid(2)), v);

    "/paycore.v1.BankAccountService/CreateBankAccount": CreateBankAccountRequest =>
        |m, v| services::bank_account::convert::create_bank_account(m, BankAccountId::from_uuid(uuid(3)), v);
    "/paycore.v1.BankAccountService/GetBankAccount": GetBankAccountRequest =>
        |m, v| convert::id::<BankAccountId>(&m.bank_account_id, "bank_account_id", v);
    "/paycore.v1.BankAccountService/ListBankAccounts": ListBankAccountsRequest =>
        |m, v| page(m.page_size, &m.page_token, v);
    "/paycore.v1.BankAccountService/UpdateBankAccount": UpdateBankAccountRequest =>
        |m, v| services::bank_account::convert::update_bank_account(m, v);

    "/paycore.v1.BankPayoutService/CreateBankPayout": CreateBankPayoutRequest =>
        |m, v| services::bank_payout::convert::create_bank_payout(m, services::bank_payout::convert::PayoutIds {
            payout: BankPayoutId::from_uuid(uuid(4)),
            transaction: TransactionId::from_uuid(uuid(5)),
            miniref_entropy: [9; 8],
        }, v);
    "/paycore.v1.BankPayoutService/GetBankPayout": GetBankPayoutRequest =>
        |m, v| convert::id::<BankPayoutId>(&m.bank_payout_id, "bank_payout_id", v);
    "/paycore.v1.BankPayoutService/ListBankPayouts": ListBankPayoutsRequest =>
        |m, v| page(m.page_size, &m.page_token, v);
    "/paycore.v1.BankPayoutService/UpdateBankPayout": UpdateBankPayoutRequest =>
        |m, v| services::bank_payout::convert::update_bank_payout(m, v);
    "/paycore.v1.BankPayoutService/CompleteBankPayout": CompleteBankPayoutRequest =>
        |m, v| convert::id::<BankPayoutId>(&m.bank_payout_id, "bank_payout_id", v);
    "/paycore.v1.BankPayoutService/FailBankPayout": FailBankPayoutRequest =>
        |m, v| convert::id::<BankPayoutId>(&m.bank_payout_id, "bank_payout_id", v);
    "/paycore.v1.BankPayoutService/ReturnBankPayout": ReturnBankPayoutRequest =>
        |m, v| convert::id::<BankPayoutId>(&m.bank_payout_id, "bank_payout_id", v);

    "/paycore.v1.BankPayinReferenceService/CreateBankPayinReference": CreateBankPayinReferenceRequest =>
        |m, v| services::bank_payin::convert::create_bank_payin_reference(
            m,
            BankPayinReferenceId::from_uuid(uuid(6)),
            PayinReferenceCode::candidates([7; 8]).take(4).collect(),
            v,
        );
    "/paycore.v1.BankPayinReferenceService/GetBankPayinReference": GetBankPayinReferenceRequest =>
        |m, v| convert::id::<BankPayinReferenceId>(&m.bank_payin_reference_id, "bank_payin_reference_id", v);
    "/paycore.v1.BankPayinReferenceService/ListBankPayinReferences": ListBankPayinReferencesRequest =>
        |m, v| page(m.page_size, &m.page_token, v);
    "/paycore.v1.BankPayinReferenceService/UpdateBankPayinReference": UpdateBankPayinReferenceRequest =>
        |m, v| services::bank_payin::convert::update_bank_payin_reference(m, v);

    "/paycore.v1.BankPayinService/GetBankPayin": GetBankPayinRequest =>
        |m, v| convert::id::<BankPayinId>(&m.bank_payin_id, "bank_payin_id", v);
    "/paycore.v1.BankPayinService/ListBankPayins": ListBankPayinsRequest =>
        |m, v| page(m.page_size, &m.page_token, v);
    "/paycore.v1.BankPayinService/UpdateBankPayin": UpdateBankPayinRequest =>
        |m, v| services::bank_payin::convert::update_bank_payin(m, v);
    "/paycore.v1.BankPayinService/SimulateBankPayin": SimulateBankPayinRequest =>
        |m, v| services::bank_payin::convert::simulate_bank_payin(m, services::bank_payin::convert::PayinIds {
            payin: BankPayinId::from_uuid(uuid(8)),
            transaction: TransactionId::from_uuid(uuid(9)),
        }, v);

    "/paycore.v1.CardTokenService/CreateCardToken": CreateCardTokenRequest =>
        |m, v| m.card_info.as_ref().map(|info| {
            let _hashed = services::card::convert::card_info_for_hash(info, &[1; 32]);
            services::card::convert::card_info_request(info, "card_info", TODAY, v)
        });
    "/paycore.v1.CardTokenService/GetCardToken": GetCardTokenRequest =>
        |m, v| convert::id::<CardTokenId>(&m.card_token_id, "card_token_id", v);

    "/paycore.v1.CardService/CreateCard": CreateCardRequest =>
        |m, v| {
            let _hashed = m.card_info.as_ref().map(|info| services::card::convert::card_info_for_hash(info, &[1; 32]));
            services::card::convert::create_card(m, TODAY, v)
        };
    "/paycore.v1.CardService/GetCard": GetCardRequest =>
        |m, v| convert::id::<CardId>(&m.card_id, "card_id", v);
    "/paycore.v1.CardService/ListCards": ListCardsRequest =>
        |m, v| page(m.page_size, &m.page_token, v);
    "/paycore.v1.CardService/UpdateCard": UpdateCardRequest =>
        |m, v| services::card::convert::update_card(m, v);

    "/paycore.v1.CardPayinService/CreateCardPayin": CreateCardPayinRequest =>
        |m, v| {
            let _hashed = m.card_info.as_ref().map(|info| services::card::convert::card_info_for_hash(info, &[1; 32]));
            services::card_payin::convert::create_card_payin(m, TODAY, v)
        };
    "/paycore.v1.CardPayinService/GetCardPayin": GetCardPayinRequest =>
        |m, v| convert::id::<CardPayinId>(&m.card_payin_id, "card_payin_id", v);
    "/paycore.v1.CardPayinService/ListCardPayins": ListCardPayinsRequest =>
        |m, v| page(m.page_size, &m.page_token, v);
    "/paycore.v1.CardPayinService/UpdateCardPayin": UpdateCardPayinRequest =>
        |m, v| services::card_payin::convert::update_card_payin(m, v);
    "/paycore.v1.CardPayinService/CompleteCardPayinAuthentication": CompleteCardPayinAuthenticationRequest =>
        |m, v| convert::id::<CardPayinId>(&m.card_payin_id, "card_payin_id", v);
    "/paycore.v1.CardPayinService/SettleCardPayin": SettleCardPayinRequest =>
        |m, v| convert::id::<CardPayinId>(&m.card_payin_id, "card_payin_id", v);
    "/paycore.v1.CardPayinService/CreateCardPayinRefund": CreateCardPayinRefundRequest =>
        |m, v| services::card_payin::convert::create_card_payin_refund(m, services::card_payin::convert::RefundIds {
            refund: CardPayinRefundId::from_uuid(uuid(10)),
            transaction: TransactionId::from_uuid(uuid(11)),
        }, v);
    "/paycore.v1.CardPayinService/GetCardPayinRefund": GetCardPayinRefundRequest =>
        |m, v| convert::id::<CardPayinRefundId>(&m.card_payin_refund_id, "card_payin_refund_id", v);
    "/paycore.v1.CardPayinService/ListCardPayinRefunds": ListCardPayinRefundsRequest =>
        |m, v| (convert::id::<CardPayinId>(&m.card_payin_id, "card_payin_id", v), page(m.page_size, &m.page_token, v));
    "/paycore.v1.CardPayinService/UpdateCardPayinRefund": UpdateCardPayinRefundRequest =>
        |m, v| services::card_payin::convert::update_card_payin_refund(m, v);
    "/paycore.v1.CardPayinService/CompleteCardPayinRefund": CompleteCardPayinRefundRequest =>
        |m, v| convert::id::<CardPayinRefundId>(&m.card_payin_refund_id, "card_payin_refund_id", v);
    "/paycore.v1.CardPayinService/FailCardPayinRefund": FailCardPayinRefundRequest =>
        |m, v| convert::id::<CardPayinRefundId>(&m.card_payin_refund_id, "card_payin_refund_id", v);

    "/paycore.v1.AggregationConnectionService/CreateAggregationConnection": CreateAggregationConnectionRequest =>
        |m, v| services::aggregation_connection::convert::create_request(m, v).map(|asked| asked.customer);
    "/paycore.v1.AggregationConnectionService/GetAggregationConnection": GetAggregationConnectionRequest =>
        |m, v| convert::id::<AggregationConnectionId>(&m.connection_id, "connection_id", v);
    "/paycore.v1.AggregationConnectionService/ListAggregationConnections": ListAggregationConnectionsRequest =>
        |m, v| (convert::id::<CustomerId>(&m.customer_id, "customer_id", v), page(m.page_size, &m.page_token, v));
    "/paycore.v1.AggregationConnectionService/DeleteAggregationConnection": DeleteAggregationConnectionRequest =>
        |m, v| convert::id::<AggregationConnectionId>(&m.connection_id, "connection_id", v);

    "/paycore.v1.AggregationConnectionService/RefreshAggregationConnection": RefreshAggregationConnectionRequest =>
        |m, v| convert::id::<AggregationConnectionId>(&m.connection_id, "connection_id", v);
    "/paycore.v1.AggregationConnectionService/SubmitAggregationCredentials": SubmitAggregationCredentialsRequest =>
        |m, v| (convert::id::<AggregationConnectionId>(&m.connection_id, "connection_id", v), m.username.len() + m.password.len());
    "/paycore.v1.AggregationConnectionService/SubmitAggregationOneTimeCode": SubmitAggregationOneTimeCodeRequest =>
        |m, v| (convert::id::<AggregationConnectionId>(&m.connection_id, "connection_id", v), m.code.len());
    "/paycore.v1.AggregationConnectionService/PollAggregationSca": PollAggregationScaRequest =>
        |m, v| convert::id::<AggregationConnectionId>(&m.connection_id, "connection_id", v);
    "/paycore.v1.AggregationConnectionService/CompleteAggregationRedirect": CompleteAggregationRedirectRequest =>
        |m, v| (convert::id::<AggregationConnectionId>(&m.connection_id, "connection_id", v), m.state.len());

    "/paycore.v1.AggregationImportService/StartAggregationImport": StartAggregationImportRequest =>
        |m, v| services::aggregation_import::convert::start_request(m, v);
    "/paycore.v1.AggregationImportService/GetAggregationImport": GetAggregationImportRequest =>
        |m, v| convert::id::<AggregationImportId>(&m.import_id, "import_id", v);
    "/paycore.v1.AggregationImportService/ListAggregationImports": ListAggregationImportsRequest =>
        |m, v| (convert::id::<AggregationConnectionId>(&m.connection_id, "connection_id", v), page(m.page_size, &m.page_token, v));

    "/paycore.v1.AggregatedAccountService/GetAggregatedAccount": GetAggregatedAccountRequest =>
        |m, v| convert::id::<AggregatedAccountId>(&m.aggregated_account_id, "aggregated_account_id", v);
    "/paycore.v1.AggregatedAccountService/ListAggregatedAccounts": ListAggregatedAccountsRequest =>
        |m, v| (services::aggregated_account::convert::accounts_of(m.of.as_ref(), v), page(m.page_size, &m.page_token, v));
    "/paycore.v1.AggregatedAccountService/EnableAggregatedAccount": EnableAggregatedAccountRequest =>
        |m, v| convert::id::<AggregatedAccountId>(&m.aggregated_account_id, "aggregated_account_id", v);
    "/paycore.v1.AggregatedAccountService/ListAggregatedTransactions": ListAggregatedTransactionsRequest =>
        |m, v| (services::aggregated_account::convert::transaction_filter(m, v), page(m.page_size, &m.page_token, v));
    "/paycore.v1.AggregatedAccountService/GetAggregatedTransaction": GetAggregatedTransactionRequest =>
        |m, v| convert::id::<AggregatedTransactionId>(&m.aggregated_transaction_id, "aggregated_transaction_id", v);

    "/paycore.v1.CustomerService/CreateCustomer": CreateCustomerRequest =>
        |m, v| services::customer::convert::create_customer(m, CustomerId::from_uuid(uuid(12)), v);
    "/paycore.v1.CustomerService/GetCustomer": GetCustomerRequest =>
        |m, v| convert::id::<CustomerId>(&m.customer_id, "customer_id", v);
    "/paycore.v1.CustomerService/ListCustomers": ListCustomersRequest =>
        |m, v| page(m.page_size, &m.page_token, v);
    "/paycore.v1.CustomerService/UpdateCustomer": UpdateCustomerRequest =>
        |m, v| services::customer::convert::update_customer(m, v);

    "/paycore.v1.EventService/SubscribeEvents": SubscribeEventsRequest =>
        |m, v| m.consumer.as_deref().map(|name| v.check("consumer", ConsumerName::parse(name)));
    "/paycore.v1.EventService/CommitConsumerPosition": CommitConsumerPositionRequest =>
        |m, v| (v.check("consumer", ConsumerName::parse(&m.consumer)), m.position.saturating_add(1));
    "/paycore.v1.EventService/GetConsumerPosition": GetConsumerPositionRequest =>
        |m, v| v.check("consumer", ConsumerName::parse(&m.consumer));

    "/paycore.v1.FileService/UploadFile": UploadFileRequest =>
        |m, _v| m.data.as_ref().map(|data| match data {
            pb::upload_file_request::Data::Name(name) => name.len(),
            pb::upload_file_request::Data::Chunk(chunk) => chunk.len(),
        });
    "/paycore.v1.FileService/GetFile": GetFileRequest =>
        |m, v| convert::id::<FileId>(&m.file_id, "file_id", v);
    "/paycore.v1.FileService/ListFiles": ListFilesRequest =>
        |m, v| page(m.page_size, &m.page_token, v);
    "/paycore.v1.FileService/DownloadFile": DownloadFileRequest =>
        |m, v| convert::id::<FileId>(&m.file_id, "file_id", v);

    "/paycore.v1.FxRateService/ListFxRates": ListFxRatesRequest =>
        |_m, _v| ();

    "/paycore.v1.InstitutionService/ListInstitutions": ListInstitutionsRequest =>
        |m, v| services::institution::convert::filter(m, v).is_some();
    "/paycore.v1.InstitutionService/GetInstitution": GetInstitutionRequest =>
        |m, v| services::institution::convert::institution_id(&m.institution_id, v);

    "/paycore.v1.ProjectService/GetProject": GetProjectRequest =>
        |_m, _v| ();
    "/paycore.v1.ProjectService/UpdateProject": UpdateProjectRequest =>
        |m, v| services::project::convert::update_project(m, v);

    "/paycore.v1.TransactionService/GetTransaction": GetTransactionRequest =>
        |m, v| convert::id::<TransactionId>(&m.transaction_id, "transaction_id", v);
    "/paycore.v1.TransactionService/ListTransactions": ListTransactionsRequest =>
        |m, v| (
            page(m.page_size, &m.page_token, v),
            convert::optional_id::<AccountId>(m.account_id.as_deref(), "account_id", v),
            convert::as_of(m.as_of.as_ref(), v),
        );

    "/paycore.v1.TransferService/CreateTransfer": CreateTransferRequest =>
        |m, v| services::transfer::convert::create_transfer(m, transfer_ids(), NOW, v);
    "/paycore.v1.TransferService/CreateTransfers": CreateTransfersRequest =>
        |m, v| {
            services::transfer::check_batch_fields(&m.transfers, v);
            for item in &m.transfers {
                if !item.transfer_id.is_empty() {
                    convert::id::<TransferId>(&item.transfer_id, "transfer_id", v);
                }
                if let Some(transfer) = &item.transfer {
                    services::transfer::convert::create_transfer(transfer, transfer_ids(), NOW, v);
                }
            }
        };
    "/paycore.v1.TransferService/PostPendingTransfer": PostPendingTransferRequest =>
        |m, v| services::transfer::convert::post_pending_transfer(
            m,
            (TransactionId::from_uuid(uuid(14)), TransactionId::from_uuid(uuid(15))),
            v,
        );
    "/paycore.v1.TransferService/VoidPendingTransfer": VoidPendingTransferRequest =>
        |m, v| services::transfer::convert::void_pending_transfer(m, v);
    "/paycore.v1.TransferService/GetTransfer": GetTransferRequest =>
        |m, v| convert::id::<TransferId>(&m.transfer_id, "transfer_id", v);
    "/paycore.v1.TransferService/ListTransfers": ListTransfersRequest =>
        |m, v| page(m.page_size, &m.page_token, v);
    "/paycore.v1.TransferService/UpdateTransfer": UpdateTransferRequest =>
        |m, v| services::transfer::convert::update_transfer(m, v);
}

/// One gRPC message frame: uncompressed flag, big-endian length, body.
pub fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    out.put_slice(message);
    out.freeze()
}

/// The harness (see the module docs for the input layout).
pub fn run(data: &[u8]) {
    let [which, mode, body @ ..] = data else {
        return;
    };
    let request = &REQUESTS[usize::from(*which) % REQUESTS.len()];
    let body = if mode & 1 == 0 {
        frame(body)
    } else {
        Bytes::copy_from_slice(body)
    };
    request.run(body);
}

/// `(method path, input message name)` of every method of `paycore.v1` in
/// the descriptor set the server is built from (and serves by reflection).
pub fn methods_in_descriptor() -> BTreeSet<(String, String)> {
    let Ok(set) =
        <prost_types::FileDescriptorSet as prost::Message>::decode(paycore_grpc::FILE_DESCRIPTOR_SET)
    else {
        return BTreeSet::new();
    };
    set.file
        .iter()
        .filter(|file| file.package() == "paycore.v1")
        .flat_map(|file| {
            file.service.iter().flat_map(|service| {
                service.method.iter().map(move |method| {
                    (
                        format!("/paycore.v1.{}/{}", service.name(), method.name()),
                        method.input_type().trim_start_matches(".paycore.v1.").to_owned(),
                    )
                })
            })
        })
        .collect()
}

/// `(method path, input message name)` of every entry of [`REQUESTS`].
pub fn methods_in_harness() -> BTreeSet<(String, String)> {
    REQUESTS
        .iter()
        .map(|request| (request.method.to_owned(), request.message.to_owned()))
        .collect()
}

// ---------------------------------------------------------------- seeds

use prost::encoding::{WireType, encode_key, encode_varint};
use prost_types::field_descriptor_proto::Type;
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorSet};

/// A sample value for a string field, by its name: valid IDs, codes and
/// tokens, so that seeds get past the first checks of the conversions.
fn sample_string(field: &str) -> String {
    let world = crate::world::world();
    let u = uuid(99);
    match field {
        "account_id" | "source_account_id" => world.accounts[0].to_string(),
        "destination_account_id" => world.accounts[1].to_string(),
        "customer_id" => world.customer.to_string(),
        "transfer_id" => world.transfers[0].to_string(),
        "transaction_id" => TransactionId::from_uuid(u).to_string(),
        "card_token_id" => CardTokenId::from_uuid(u).to_string(),
        "card_id" => CardId::from_uuid(u).to_string(),
        "card_payin_id" => CardPayinId::from_uuid(u).to_string(),
        "card_payin_refund_id" => CardPayinRefundId::from_uuid(u).to_string(),
        "bank_account_id" => BankAccountId::from_uuid(u).to_string(),
        "bank_payout_id" => BankPayoutId::from_uuid(u).to_string(),
        "bank_payin_reference_id" => BankPayinReferenceId::from_uuid(u).to_string(),
        "bank_payin_id" => BankPayinId::from_uuid(u).to_string(),
        "file_id" | "front_file_id" | "back_file_id" | "selfie_file_id" => FileId::from_uuid(u).to_string(),
        "currency" => "EUR".into(),
        "iban" => "DE89370400440532013000".into(),
        "bic" => "COBADEFFXXX".into(),
        "number" | "card_number" => "4242424242424242".into(),
        "cvc" => "123".into(),
        "expiry" | "expiration" => "12/30".into(),
        "email" => "ada@example.com".into(),
        "paths" => "meta".into(),
        "concept" => "PAYCORE ABCDEFGH".into(),
        "authentication_redirect_url" => "https://example.com/back".into(),
        "consumer" => "ledger-sync".into(),
        "page_token" => String::new(),
        _ => "Ada".into(),
    }
}

/// The encoding of a message of type `message` with every field set to a
/// sample value (one element for repeated fields and maps, the first member
/// of each oneof), nested messages filled the same way up to `depth`.
fn sample_message(set: &FileDescriptorSet, message: &DescriptorProto, depth: usize, out: &mut Vec<u8>) {
    let mut oneofs_done = BTreeSet::new();
    for field in &message.field {
        if let Some(oneof) = field.oneof_index
            && !field.proto3_optional()
            && !oneofs_done.insert(oneof)
        {
            continue;
        }
        sample_field(set, message, field, depth, out);
    }
}

fn sample_field(
    set: &FileDescriptorSet,
    parent: &DescriptorProto,
    field: &FieldDescriptorProto,
    depth: usize,
    out: &mut Vec<u8>,
) {
    let Ok(number) = u32::try_from(field.number()) else {
        return;
    };
    match field.r#type() {
        Type::String => {
            let text = sample_string(field.name());
            encode_key(number, WireType::LengthDelimited, out);
            encode_varint(text.len() as u64, out);
            out.extend_from_slice(text.as_bytes());
        }
        Type::Bytes => {
            encode_key(number, WireType::LengthDelimited, out);
            encode_varint(3, out);
            out.extend_from_slice(b"abc");
        }
        Type::Bool | Type::Enum => {
            encode_key(number, WireType::Varint, out);
            encode_varint(1, out);
        }
        Type::Int32 | Type::Int64 | Type::Uint32 | Type::Uint64 | Type::Sint32 | Type::Sint64 => {
            let value = match field.name() {
                "page_size" => 10,
                "year" => 2030,
                "month" | "day" => 6,
                "seconds" => 1_700_000_000,
                _ => 1_234,
            };
            encode_key(number, WireType::Varint, out);
            encode_varint(value, out);
        }
        Type::Fixed32 | Type::Sfixed32 | Type::Float => {
            encode_key(number, WireType::ThirtyTwoBit, out);
            out.extend_from_slice(&1u32.to_le_bytes());
        }
        Type::Fixed64 | Type::Sfixed64 | Type::Double => {
            encode_key(number, WireType::SixtyFourBit, out);
            out.extend_from_slice(&1u64.to_le_bytes());
        }
        Type::Message if depth > 0 => {
            let Some(nested) = find_message(set, parent, field.type_name()) else {
                return;
            };
            let mut body = Vec::new();
            if nested.options.as_ref().is_some_and(|options| options.map_entry()) {
                // A map entry: key "k"-ish, value sampled.
                for entry_field in &nested.field {
                    if entry_field.r#type() == Type::String && entry_field.name() == "key" {
                        encode_key(1, WireType::LengthDelimited, &mut body);
                        encode_varint(4, &mut body);
                        body.extend_from_slice(b"note");
                    } else {
                        sample_field(set, &nested, entry_field, depth - 1, &mut body);
                    }
                }
            } else {
                sample_message(set, &nested, depth - 1, &mut body);
            }
            encode_key(number, WireType::LengthDelimited, out);
            encode_varint(body.len() as u64, out);
            out.extend_from_slice(&body);
        }
        _ => {}
    }
}

/// The message a field's `type_name` (`.pkg.Outer.Inner`) names: nested
/// types of `parent` first (map entries live there), then every file.
fn find_message(
    set: &FileDescriptorSet,
    parent: &DescriptorProto,
    type_name: &str,
) -> Option<DescriptorProto> {
    let last = type_name.rsplit('.').next()?;
    if let Some(nested) = parent.nested_type.iter().find(|nested| nested.name() == last) {
        return Some(nested.clone());
    }
    for file in &set.file {
        let prefix = format!(".{}.", file.package());
        let Some(path) = type_name.strip_prefix(&prefix) else {
            continue;
        };
        let mut names = path.split('.');
        let first = names.next()?;
        let mut message = file
            .message_type
            .iter()
            .find(|message| message.name() == first)?
            .clone();
        for name in names {
            message = message
                .nested_type
                .iter()
                .find(|nested| nested.name() == name)?
                .clone();
        }
        return Some(message);
    }
    None
}

/// Seeds: for every method, an empty message, a message with every field
/// set (framed by the harness), the same as a raw framed body, and a few
/// hostile bodies (a lone continuation byte, invalid UTF-8, deep nesting).
pub fn seeds() -> Vec<Vec<u8>> {
    let Ok(set) = <FileDescriptorSet as prost::Message>::decode(paycore_grpc::FILE_DESCRIPTOR_SET) else {
        return Vec::new();
    };
    let mut seeds = Vec::new();
    for (index, request) in REQUESTS.iter().enumerate() {
        let index = index as u8;
        seeds.push(vec![index, 0]);
        let Some(message) = find_message(
            &set,
            &DescriptorProto::default(),
            &format!(".paycore.v1.{}", request.message),
        ) else {
            continue;
        };
        let mut body = Vec::new();
        sample_message(&set, &message, 3, &mut body);
        let mut framed = vec![index, 0];
        framed.extend_from_slice(&body);
        seeds.push(framed);
        let mut raw = vec![index, 1];
        raw.extend_from_slice(&frame(&body));
        seeds.push(raw);
        if index.is_multiple_of(8) {
            seeds.push(vec![index, 0, 0x80]);
            seeds.push(vec![index, 0, 0x0a, 0x02, 0xff, 0xfe]);
            let mut nested = vec![index, 0];
            for _ in 0..120 {
                nested.extend_from_slice(&[0xc3, 0x3e]); // field 1000, start group
            }
            seeds.push(nested);
        }
    }
    seeds
}
