//! The codec of paycore's gRPC servers: protobuf (prost) whose request
//! decoding errors are the client's.
//!
//! tonic's stock `ProstCodec` answers a body that is not a valid message
//! with INTERNAL, following the status-code table for a *peer's* parse
//! failure. On a server that is always the caller's mistake — a wire-format
//! error, invalid UTF-8 in a string or map field, nesting past prost's
//! recursion limit — and INTERNAL would page an operator for it. This codec
//! answers INVALID_ARGUMENT, naming the message type and what could not be
//! decoded.
//!
//! Only the servers use it (`build.rs` generates the clients with the stock
//! codec), so a client that cannot decode a server's answer still sees
//! INTERNAL: there, the fault is not the caller's.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

/// Protobuf codec whose undecodable requests answer INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct RequestCodec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for RequestCodec<T, U> {
    fn default() -> Self {
        Self { _types: PhantomData }
    }
}

impl<T, U> Codec for RequestCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder {
            _message: PhantomData,
        }
    }
}

/// Decodes one request message of type `U`.
#[derive(Debug, Clone)]
pub struct RequestDecoder<U> {
    _message: PhantomData<U>,
}

impl<U: Message + Default> Decoder for RequestDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|error| undecodable::<U>(&error))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// INVALID_ARGUMENT for a body that is not a valid `U`, e.g. "the request
/// is not a valid GetProjectRequest message: failed to decode Protobuf
/// message: invalid varint".
fn undecodable<U>(error: &prost::DecodeError) -> Status {
    Status::invalid_argument(format!(
        "the request is not a valid {} message: {error}",
        message_name::<U>()
    ))
}

/// The Rust type's last path segment, which is the protobuf message's name.
fn message_name<U>() -> &'static str {
    let full = std::any::type_name::<U>();
    full.rsplit("::").next().unwrap_or(full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{GetCustomerRequest, GetProjectRequest};

    fn decode<U: Message + Default>(bytes: &[u8]) -> Result<U, Status> {
        U::decode(bytes).map_err(|error| undecodable::<U>(&error))
    }

    #[test]
    fn a_wire_format_error_is_the_callers_mistake() {
        let status =
            decode::<GetProjectRequest>(&[0x80]).expect_err("a lone continuation byte is not a varint");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status
                .message()
                .starts_with("the request is not a valid GetProjectRequest message: "),
            "{}",
            status.message()
        );
        assert!(
            status.message().contains("invalid varint"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn invalid_utf8_in_a_string_field_is_the_callers_mistake() {
        // Field 1 (customer_id), length-delimited, two bytes that are not UTF-8.
        let status = decode::<GetCustomerRequest>(&[0x0a, 0x02, 0xff, 0xfe]).expect_err("not UTF-8");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("UTF-8"), "{}", status.message());
    }
}
