//! The client's HTTP: hyper-util's pooled client over hyper 1, TLS by
//! rustls (ring) for `https` URLs, a timeout on every exchange, and
//! retries with exponential backoff and jitter for idempotent requests.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The largest answer read (a page of 1,000 transactions is ~1 MB).
const MAX_BODY: usize = 32 << 20;

/// How requests are sent and retried.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// The longest one exchange (connect, send, read the whole answer) may take.
    pub timeout: Duration,
    /// Attempts of an idempotent request (GET), the first included.
    pub max_attempts: u32,
    /// The first retry's delay; each further one doubles, up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            max_attempts: 4,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry `n` (1 for the first): exponential, with
    /// "equal jitter" (half fixed, half random) so that clients retrying
    /// together spread out.
    pub fn backoff(&self, n: u32) -> Duration {
        let exp = self
            .base_backoff
            .saturating_mul(1u32 << n.saturating_sub(1).min(20))
            .min(self.max_backoff);
        let half = exp / 2;
        let jitter = rand::random_range(0..=half.as_micros().min(u128::from(u64::MAX)) as u64);
        half + Duration::from_micros(jitter)
    }
}

#[derive(Debug)]
pub struct HttpRequest {
    pub method: Method,
    pub url: Uri,
    pub headers: Vec<(HeaderName, String)>,
    pub body: Option<Vec<u8>>,
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpResponse {
    pub fn retry_after(&self) -> Option<&str> {
        self.headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Failed(String),
    #[error("invalid request: {0}")]
    Invalid(String),
}

#[derive(Clone, Debug)]
pub struct Transport {
    client: Client<Connector, Full<Bytes>>,
    policy: RetryPolicy,
}

impl Transport {
    /// A transport trusting the system's roots and `extra_roots`.
    pub fn new(policy: RetryPolicy, extra_roots: &[CertificateDer<'static>]) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            // A system root rustls cannot parse is skipped, as browsers do.
            let _ = roots.add(cert);
        }
        for cert in extra_roots {
            roots
                .add(cert.clone())
                .map_err(|e| format!("a root certificate: {e}"))?;
        }
        // ring, as everywhere in paycore: rustls marks it deprecated for
        // lacking post-quantum key exchange; banks' APIs offer the classical
        // suites.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(policy.timeout));
        let connector = Connector {
            http,
            tls: TlsConnector::from(Arc::new(tls)),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self { client, policy })
    }

    /// One exchange, within the timeout.
    pub async fn send_once(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let mut builder = Request::builder()
            .method(request.method.clone())
            .uri(request.url.clone());
        for (name, value) in &request.headers {
            let value =
                HeaderValue::from_str(value).map_err(|e| TransportError::Invalid(format!("{name}: {e}")))?;
            builder = builder.header(name, value);
        }
        builder = builder.header(hyper::header::ACCEPT, "application/json");
        if request.body.is_some() {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let body = Full::new(Bytes::from(request.body.clone().unwrap_or_default()));
        let http_request = builder
            .body(body)
            .map_err(|e| TransportError::Invalid(e.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(http_request)
                .await
                .map_err(|e| TransportError::Failed(error_chain(&e)))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|e| TransportError::Failed(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok(HttpResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.policy.timeout, exchange)
            .await
            .map_err(|_| TransportError::Timeout(self.policy.timeout))?
    }

    /// Sends a request; an idempotent one is tried again after a timeout,
    /// a connection error or a 5xx (502, 503, 504, 500), up to the
    /// policy's attempts, waiting the backoff (or a 503's shorter
    /// `Retry-After`) between attempts. Other requests are sent once.
    pub async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let idempotent = request.method == Method::GET;
        let attempts = if idempotent {
            self.policy.max_attempts.max(1)
        } else {
            1
        };
        let mut attempt = 1;
        loop {
            let result = self.send_once(request).await;
            let delay = match &result {
                Ok(response) if is_retryable(response.status) => {
                    let told = response
                        .retry_after()
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    match told {
                        // The bank asks for longer than we wait: give up now.
                        Some(told) if told > self.policy.max_backoff => return result,
                        Some(told) => told,
                        None => self.policy.backoff(attempt),
                    }
                }
                Ok(_) | Err(TransportError::Invalid(_)) => return result,
                Err(_) => self.policy.backoff(attempt),
            };
            if attempt >= attempts {
                return result;
            }
            tracing::debug!(target: "paycore::bank", url = %request.url, attempt, ?delay, "retrying a bank request");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

fn is_retryable(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// TCP, with TLS for `https`.
#[derive(Clone)]
struct Connector {
    http: HttpConnector,
    tls: TlsConnector,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").finish_non_exhaustive()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<Uri> for Connector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        tower::Service::<Uri>::poll_ready(&mut self.http, cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let mut http = self.http.clone();
        let tls = self.tls.clone();
        Box::pin(async move {
            let https = match uri.scheme_str() {
                Some("https") => true,
                Some("http") => false,
                other => return Err(format!("unsupported scheme {other:?}").into()),
            };
            let host = uri
                .host()
                .ok_or("a URL without a host")?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let tcp = tower::Service::call(&mut http, uri).await?;
            if !https {
                return Ok(Stream::Plain(tcp));
            }
            let name = ServerName::try_from(host)?;
            let stream = tls.connect(name, tcp.into_inner()).await?;
            Ok(Stream::Tls(Box::new(TokioIo::new(stream))))
        })
    }
}

#[derive(Debug)]
enum Stream {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        match self {
            Stream::Plain(stream) => stream.connected(),
            Stream::Tls(stream) => stream.inner().get_ref().0.connected(),
        }
    }
}

impl Read for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl Write for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
