//! What every call meets before its service: the request metadata limit, and
//! the translation of tonic's request-framing errors into the caller's
//! mistakes.
//!
//! # Request metadata
//!
//! Metadata (HTTP/2 headers, including `authorization`) is measured as
//! HTTP/2 measures a header list (RFC 9113 §6.5.2): name + value + 32 bytes
//! per field, pseudo-headers included.
//!
//! - Up to [`MAX_REQUEST_METADATA_BYTES`] (16 KiB): served.
//! - Above it, up to [`TRANSPORT_HEADER_LIST_BYTES`] (1 MiB): answered
//!   RESOURCE_EXHAUSTED with the size and the limit in the message. Only that
//!   call fails; the connection and its other calls go on.
//! - Above 1 MiB the HTTP/2 layer refuses the stream itself (HTTP 431 and
//!   RST_STREAM REFUSED_STREAM, no `grpc-status`; other streams go on), and a
//!   header block of more than about 1.25 MiB on the wire is treated as a
//!   flood: the connection is closed with GOAWAY ENHANCE_YOUR_CALM. These two
//!   are the `h2` crate's protections against header floods and cannot
//!   answer a gRPC status; the 1 MiB transport limit keeps them far from any
//!   honest client.
//!
//! The transport limit is advertised in SETTINGS_MAX_HEADER_LIST_SIZE, so
//! clients that honour it refuse such calls before sending them.
//!
//! # Request framing
//!
//! tonic answers some malformed request bodies with INTERNAL before a
//! handler runs: an empty unary body ("Missing request message."), a body
//! cut inside a message ("Unexpected EOF decoding stream."), a compression
//! flag other than 0 or 1, a compressed-flag without `grpc-encoding`, and a
//! compressed message that does not decompress. Each is the caller's mistake,
//! and INTERNAL pages an operator, so they are answered INVALID_ARGUMENT with
//! tonic's explanation. (The gRPC compression document asks for INTERNAL on
//! a compressed-flag without `grpc-encoding`; paycore keeps INTERNAL for its
//! own faults only.) Undecodable messages are handled by
//! [`crate::codec::RequestCodec`] on paycore's services; on the health and
//! reflection services, which decode with tonic's stock codec, its
//! "failed to decode Protobuf message" is translated here too (and by
//! [`callers_mistake`] on reflection's request stream).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::Status;
use tonic::codegen::http::{self, HeaderMap};
use tower::{Layer, Service};

/// The largest request metadata a call may carry, in HTTP/2 header list
/// bytes (name + value + 32 per field).
pub const MAX_REQUEST_METADATA_BYTES: usize = 16 * 1024;

/// The header list size the HTTP/2 transport accepts (and advertises); calls
/// between [`MAX_REQUEST_METADATA_BYTES`] and this answer RESOURCE_EXHAUSTED.
pub const TRANSPORT_HEADER_LIST_BYTES: u32 = 1024 * 1024;

/// The starts of tonic's messages for request bodies it cannot frame, all of
/// them the caller's doing (tonic 0.14, `codec/decode.rs`, `server/grpc.rs`).
const REQUEST_FRAMING_ERRORS: &[&str] = &[
    "Missing request message",
    "Unexpected EOF decoding stream",
    "protocol error: received message with compressed-flag but no grpc-encoding",
    "protocol error: received message with invalid compression flag",
    "Error decompressing",
    // tonic-prost's ProstCodec, on a server only ever decoding a request.
    "failed to decode Protobuf message",
];

/// The layers in front of every route: the call's span outermost (so
/// everything below is part of the call's trace), the call's metrics (so
/// they count what the edge refuses too), then the edge.
pub type EdgeLayers = tower::layer::util::Stack<
    tower::layer::util::Stack<EdgeLayer, crate::metrics::RequestMetricsLayer>,
    crate::call_trace::CallTraceLayer,
>;

/// The transport paycore's public gRPC API is served with: the edge layer
/// in front of every route, measured and traced, and the transport header
/// list limit.
pub fn server()
-> tonic::transport::Server<tower::layer::util::Stack<EdgeLayers, tower::layer::util::Identity>> {
    tonic::transport::Server::builder()
        .http2_max_header_list_size(TRANSPORT_HEADER_LIST_BYTES)
        .layer(tower::layer::util::Stack::new(
            tower::layer::util::Stack::new(EdgeLayer, crate::metrics::RequestMetricsLayer),
            crate::call_trace::CallTraceLayer,
        ))
}

/// Wraps a service with the metadata limit and the framing-error
/// translation described in the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct EdgeLayer;

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge { inner }
    }
}

/// The service [`EdgeLayer`] builds.
#[derive(Clone, Debug)]
pub struct Edge<S> {
    inner: S,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, ReqBody> Service<http::Request<ReqBody>> for Edge<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        crate::tls::log_call(&request);
        let size = header_list_size(&request);
        if size > MAX_REQUEST_METADATA_BYTES {
            let status = Status::resource_exhausted(format!(
                "request metadata is {size} bytes; the limit is {MAX_REQUEST_METADATA_BYTES} bytes \
                 (name + value + 32 per entry)"
            ));
            return Box::pin(std::future::ready(Ok(status.into_http())));
        }
        let response = self.inner.call(request);
        Box::pin(async move { Ok(callers_framing_mistake(response.await?)) })
    }
}

/// The request's header list size as HTTP/2 counts it.
fn header_list_size<B>(request: &http::Request<B>) -> usize {
    const FIELD_OVERHEAD: usize = 32;
    let pseudo = [
        (":method", request.method().as_str().len()),
        (
            ":path",
            request.uri().path_and_query().map_or(0, |p| p.as_str().len()),
        ),
        (":scheme", request.uri().scheme_str().map_or(0, str::len)),
        (
            ":authority",
            request.uri().authority().map_or(0, |a| a.as_str().len()),
        ),
    ]
    .iter()
    .map(|(name, value)| name.len() + value + FIELD_OVERHEAD)
    .sum::<usize>();
    pseudo + headers_size(request.headers())
}

fn headers_size(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum()
}

/// tonic's INTERNAL for a request body it could not frame or decode, as
/// the INVALID_ARGUMENT it is; every other response unchanged.
fn callers_framing_mistake(response: http::Response<tonic::body::Body>) -> http::Response<tonic::body::Body> {
    match Status::from_header_map(response.headers()) {
        Some(status) if is_request_framing_error(&status) => callers_mistake(status).into_http(),
        _ => response,
    }
}

fn is_request_framing_error(status: &Status) -> bool {
    status.code() == tonic::Code::Internal
        && REQUEST_FRAMING_ERRORS
            .iter()
            .any(|start| status.message().starts_with(start))
}

/// A status from reading a request (its frames or messages): tonic's
/// INTERNAL for a body it could not frame or decode becomes
/// INVALID_ARGUMENT; any other status is returned as it is.
pub fn callers_mistake(status: Status) -> Status {
    if !is_request_framing_error(&status) {
        return status;
    }
    Status::invalid_argument(format!("the request body is malformed: {}", status.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response_of(status: Status) -> http::Response<tonic::body::Body> {
        status.into_http()
    }

    fn status_of(response: &http::Response<tonic::body::Body>) -> Status {
        Status::from_header_map(response.headers()).expect("a trailers-only response")
    }

    #[test]
    fn tonic_framing_errors_become_invalid_argument() {
        for message in [
            "Missing request message.",
            "Unexpected EOF decoding stream.",
            "protocol error: received message with invalid compression flag: 7 (valid flags are 0 and 1), while sending request",
        ] {
            let status = status_of(&callers_framing_mistake(response_of(Status::internal(message))));
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{message}");
            assert!(status.message().ends_with(message), "{}", status.message());
        }
    }

    #[test]
    fn paycores_own_internal_errors_stay_internal() {
        let status = status_of(&callers_framing_mistake(response_of(Status::internal(
            "internal error",
        ))));
        assert_eq!(status.code(), tonic::Code::Internal);
        let status = status_of(&callers_framing_mistake(response_of(Status::not_found(
            "no such account",
        ))));
        assert_eq!(status.code(), tonic::Code::NotFound);
    }

    #[test]
    fn metadata_is_measured_as_http2_measures_it() {
        let request = http::Request::builder()
            .method("POST")
            .uri("http://localhost/paycore.v1.ProjectService/GetProject")
            .header("authorization", "Bearer x")
            .body(())
            .expect("a valid request");
        let field = |name: &str, value: &str| name.len() + value.len() + 32;
        let expected = field(":method", "POST")
            + field(":path", "/paycore.v1.ProjectService/GetProject")
            + field(":scheme", "http")
            + field(":authority", "localhost")
            + field("authorization", "Bearer x");
        assert_eq!(header_list_size(&request), expected);
    }
}
