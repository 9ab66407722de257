//! TLS for the gRPC port (rustls), optionally mutual, with certificates
//! reloaded without a restart.
//!
//! - [`TlsFiles`] names the PEM files: the server's certificate chain and
//!   private key, and, for mutual TLS, the CA whose client certificates are
//!   accepted (then a client without one is refused in the handshake).
//! - [`TlsIncoming`] accepts TCP connections and completes each handshake on
//!   a task of its own (a client that never finishes its handshake holds
//!   nothing but its task, for at most [`HANDSHAKE_TIMEOUT`]), then hands
//!   the stream to tonic, which exposes the peer's certificates to every
//!   call ([`client_subject`]).
//! - [`TlsIncoming::reload`] reads the files again and swaps the
//!   configuration in for the connections that follow (`paycore serve`
//!   does on SIGHUP); connections already open keep theirs. Files that do
//!   not load leave the configuration in place, with the error.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

/// How long a client may take to complete its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for tonic to take them.
const ACCEPTED_BACKLOG: usize = 128;

/// The PEM files of the server's TLS.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The certificate chain, the server's certificate first.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Mutual TLS: clients must present a certificate this CA signed.
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{path} holds no {what}")]
    Empty { path: PathBuf, what: &'static str },
    #[error("the TLS configuration is not usable: {0}")]
    Config(String),
}

impl TlsFiles {
    /// The rustls configuration the files describe (HTTP/2 only, as gRPC
    /// needs).
    pub fn load(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let chain = certificates(&self.cert)?;
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|error| TlsError::File {
            path: self.key.clone(),
            reason: format!("no private key in PEM form ({error})"),
        })?;
        // ring: no C toolchain beyond cc, unlike aws-lc-rs. rustls marks it
        // deprecated for lacking post-quantum key exchange (X25519MLKEM768);
        // the classical suites it offers are the ones clients use today.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Config(error.to_string()))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for certificate in certificates(ca)? {
                    roots.add(certificate).map_err(|error| TlsError::File {
                        path: ca.clone(),
                        reason: format!("not a CA certificate: {error}"),
                    })?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|error| TlsError::Config(error.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|error| {
            TlsError::Config(format!("the certificate and key do not go together: {error}"))
        })?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| TlsError::File {
            path: path.to_owned(),
            reason: error.to_string(),
        })?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::File {
            path: path.to_owned(),
            reason: format!("a certificate does not parse: {error}"),
        })?;
    if certificates.is_empty() {
        return Err(TlsError::Empty {
            path: path.to_owned(),
            what: "certificate",
        });
    }
    Ok(certificates)
}

/// Handshaken connections, for tonic's `serve_with_incoming`.
pub type Accepted = ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>>;

/// TLS connections for tonic's `serve_with_incoming`; see the module docs.
#[derive(Clone, Debug)]
pub struct TlsIncoming {
    files: TlsFiles,
    config: Arc<RwLock<Arc<ServerConfig>>>,
}

impl TlsIncoming {
    /// Loads the files (a start with files that do not load fails).
    pub fn new(files: TlsFiles) -> Result<Self, TlsError> {
        let config = files.load()?;
        Ok(Self {
            files,
            config: Arc::new(RwLock::new(config)),
        })
    }

    /// Reads the files again; on success the next connections use them.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = self.files.load()?;
        // A poisoned lock only means a reader panicked; the value is whole.
        *self
            .config
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
        Ok(())
    }

    /// Accepts on `listener` until the returned stream is dropped.
    pub fn accept(&self, listener: TcpListener) -> Accepted {
        let (sender, receiver) = mpsc::channel(ACCEPTED_BACKLOG);
        let config = self.config.clone();
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    () = sender.closed() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            // Out of file descriptors and the like: wait, go on.
                            tracing::warn!(%error, "accepting a connection");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                // Replies are small and latency-bound: no Nagle delay.
                let _ = stream.set_nodelay(true);
                let current = config
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                let acceptor = TlsAcceptor::from(current);
                let sender = sender.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            if let Some(subject) = peer_subject(&stream) {
                                tracing::info!(%peer, client = %subject, "TLS client connected");
                            }
                            let _ = sender.send(Ok(stream)).await;
                        }
                        // The client's doing (plaintext, an unknown CA, no
                        // certificate): nothing for an operator to fix.
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        ReceiverStream::new(receiver)
    }
}

fn peer_subject(stream: &TlsStream<TcpStream>) -> Option<String> {
    let (_, session) = stream.get_ref();
    session.peer_certificates()?.first().and_then(subject_of)
}

/// The subject of a DER certificate, as `CN=…, O=…`.
fn subject_of(certificate: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    Some(parsed.subject().to_string())
}

/// Logs (at debug) each call with the subject of the client certificate
/// its connection presented (mutual TLS); each connection's subject is
/// logged at info when it connects.
pub(crate) fn log_call<B>(request: &tonic::codegen::http::Request<B>) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let Some(info) = request.extensions().get::<TlsConnectInfo<TcpConnectInfo>>() else {
        return;
    };
    if let Some(subject) = info
        .peer_certs()
        .as_ref()
        .and_then(|certs| certs.first())
        .and_then(subject_of)
    {
        tracing::debug!(client = %subject, call = request.uri().path(), "call over mutual TLS");
    }
}
