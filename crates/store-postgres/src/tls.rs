//! TLS to PostgreSQL, with libpq's meanings of `sslmode` (rustls, ring).
//!
//! tokio-postgres understands only `disable`, `prefer` and `require`, and
//! verifies nothing itself; paycore reads the TLS options out of the URL
//! before tokio-postgres sees it and builds the rustls client they ask for:
//!
//! | `sslmode` | TLS | server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (default, as in libpq) | when the server offers it | not checked |
//! | `require` | always | not checked; checked against `sslrootcert` if given (as libpq does) |
//! | `verify-ca` | always | signed by a CA in `sslrootcert` |
//! | `verify-full` | always | signed by a CA in `sslrootcert`, and issued for the host connected to |
//!
//! `sslrootcert` is a PEM file of CA certificates, or `system` for the
//! operating system's trust store. `sslcert` and `sslkey` (PEM) present a
//! client certificate, for servers that authenticate by certificate.
//! `sslmode=allow` (plain first, TLS only if refused) is not supported: it
//! is refused by name rather than silently treated as something else.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How much TLS a connection insists on (libpq's `sslmode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, String> {
        match value {
            "disable" => Ok(Self::Disable),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            "allow" => Err(
                "sslmode=allow is not supported: use prefer (TLS whenever the server offers it) \
                 or disable"
                    .to_owned(),
            ),
            other => Err(format!(
                "invalid sslmode {other:?}: expected disable, prefer, require, verify-ca or verify-full"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres negotiates: whether TLS is tried and required.
    pub(crate) fn negotiation(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Negotiation;
        match self {
            Self::Disable => Negotiation::Disable,
            Self::Prefer => Negotiation::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => Negotiation::Require,
        }
    }
}

/// Where the trusted CA certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum RootCerts {
    File(PathBuf),
    System,
}

/// The TLS options of a connection URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TlsOptions {
    pub mode: SslMode,
    root_certs: Option<RootCerts>,
    client_cert: Option<(PathBuf, PathBuf)>,
}

/// The options paycore reads itself; tokio-postgres never sees them.
const TLS_KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// Splits `url` (a `postgres://` URL or libpq `key=value` pairs) into what
/// tokio-postgres parses and the TLS options.
pub(crate) fn split(url: &str) -> Result<(String, TlsOptions), String> {
    let (rest, taken) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        split_url(url)?
    } else {
        split_pairs(url)?
    };
    let value = |key: &str| {
        taken
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let mode = value("sslmode").map(SslMode::parse).transpose()?;
    let root_certs = value("sslrootcert").map(|path| match path {
        "system" => RootCerts::System,
        path => RootCerts::File(PathBuf::from(path)),
    });
    let client_cert = match (value("sslcert"), value("sslkey")) {
        (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
        (None, None) => None,
        (Some(_), None) => {
            return Err("sslcert needs sslkey (the client certificate's private key)".to_owned());
        }
        (None, Some(_)) => return Err("sslkey needs sslcert (the client certificate)".to_owned()),
    };
    let mode = mode.unwrap_or(SslMode::Prefer);
    if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root_certs.is_none() {
        return Err(format!(
            "sslmode={} needs sslrootcert: a PEM file of the CA certificates that sign the server's \
             certificate, or sslrootcert=system for the operating system's",
            mode.as_str()
        ));
    }
    Ok((
        rest,
        TlsOptions {
            mode,
            root_certs,
            client_cert,
        },
    ))
}

type Taken = Vec<(String, String)>;

/// A URL without its TLS query parameters, and those (percent-decoded).
fn split_url(url: &str) -> Result<(String, Taken), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), Vec::new()));
    };
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for parameter in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        let key_decoded = percent_decode(key)?;
        if TLS_KEYS.contains(&key_decoded.as_str()) {
            taken.push((key_decoded, percent_decode(value)?));
        } else {
            kept.push(parameter);
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, taken))
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| {
                    format!(
                        "invalid percent-encoding in the PostgreSQL URL near {:?}",
                        &text[i..]
                    )
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the PostgreSQL URL's parameters are not UTF-8".to_owned())
}

/// libpq `key=value` pairs without the TLS ones (rewritten quoted), and
/// those. Values may be single-quoted, with `\'` and `\\` inside.
fn split_pairs(text: &str) -> Result<(String, Taken), String> {
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!(
                "invalid PostgreSQL connection string: {key:?} has no value"
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => {
                            return Err(format!(
                                "invalid PostgreSQL connection string: unterminated quote after {key}="
                            ));
                        }
                    },
                    Some(c) => value.push(c),
                    None => {
                        return Err(format!(
                            "invalid PostgreSQL connection string: unterminated quote after {key}="
                        ));
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
            }
        }
        if TLS_KEYS.contains(&key.as_str()) {
            taken.push((key, value));
        } else {
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            kept.push(format!("{key}='{quoted}'"));
        }
    }
    Ok((kept.join(" "), taken))
}

/// The rustls client `options` ask for.
pub(crate) fn connector(options: &TlsOptions) -> Result<MakeRustlsConnect, String> {
    // ring, as the gRPC server's TLS: rustls marks it deprecated for
    // lacking post-quantum key exchange; PostgreSQL's own TLS (OpenSSL)
    // negotiates the classical suites it offers.
    #[allow(deprecated)]
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS to PostgreSQL: {error}"))?;
    let verifier: Arc<dyn ServerCertVerifier> = match (&options.root_certs, options.mode) {
        (None, _) => Arc::new(Unverified(provider.signature_verification_algorithms)),
        (Some(roots), mode) => {
            let roots = Arc::new(root_store(roots)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|error| format!("TLS to PostgreSQL: sslrootcert: {error}"))?;
            if mode == SslMode::VerifyFull {
                webpki
            } else {
                Arc::new(AnyName(webpki))
            }
        }
    };
    let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
    let config = match &options.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = certificates(cert, "sslcert")?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|error| format!("sslkey {}: {error}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|error| format!("sslcert/sslkey: {error}"))?
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

fn certificates(path: &Path, option: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|error| format!("{option} {}: {error}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!(
            "{option} {}: no PEM certificate in the file",
            path.display()
        ));
    }
    Ok(certificates)
}

fn root_store(roots: &RootCerts) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match roots {
        RootCerts::File(path) => {
            for certificate in certificates(path, "sslrootcert")? {
                store
                    .add(certificate)
                    .map_err(|error| format!("sslrootcert {}: {error}", path.display()))?;
            }
        }
        RootCerts::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(format!(
                    "sslrootcert=system: no CA certificate found in the system's trust store ({} errors)",
                    found.errors.len()
                ));
            }
        }
    }
    Ok(store)
}

/// `verify-ca`, and `require` with `sslrootcert`: the chain must lead to a
/// trusted CA, whatever host name the certificate was issued for.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without `sslrootcert`: encrypted, but the server
/// is not authenticated (libpq's behaviour). The handshake's signatures are
/// still checked, so the session key belongs to whoever holds the
/// certificate's key.
#[derive(Debug)]
struct Unverified(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(url: &str) -> (String, TlsOptions) {
        split(url).unwrap_or_else(|error| panic!("{url}: {error}"))
    }

    #[test]
    fn a_url_without_tls_options_prefers_tls_as_libpq_does() {
        let (rest, tls) = options("postgres://u@h:5432/db?application_name=x");
        assert_eq!(rest, "postgres://u@h:5432/db?application_name=x");
        assert_eq!(tls.mode, SslMode::Prefer);
        assert_eq!(tls.root_certs, None);
    }

    #[test]
    fn tls_options_leave_the_url_and_are_percent_decoded() {
        let (rest, tls) = options(
            "postgresql://u@h/db?sslmode=verify-full&connect_timeout=3&sslrootcert=%2Fetc%2Fca%20x.pem",
        );
        assert_eq!(rest, "postgresql://u@h/db?connect_timeout=3");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_certs, Some(RootCerts::File("/etc/ca x.pem".into())));
        let (rest, _) = options("postgres://h/db?sslmode=require");
        assert_eq!(rest, "postgres://h/db");
    }

    #[test]
    fn key_value_strings_keep_their_other_pairs() {
        let (rest, tls) =
            options("host=h  dbname = 'my db' sslmode=verify-ca sslrootcert='/a b/c\\'s.pem' user=u");
        assert_eq!(rest, "host='h' dbname='my db' user='u'");
        assert_eq!(tls.mode, SslMode::VerifyCa);
        assert_eq!(tls.root_certs, Some(RootCerts::File("/a b/c's.pem".into())));
        let parsed: tokio_postgres::Config = rest.parse().expect("tokio-postgres parses the rest");
        assert_eq!(parsed.get_dbname(), Some("my db"));
    }

    #[test]
    fn verifying_modes_need_a_root_certificate() {
        for url in ["postgres://h/db?sslmode=verify-full", "host=h sslmode=verify-ca"] {
            let error = split(url).expect_err(url);
            assert!(error.contains("needs sslrootcert"), "{error}");
        }
        let (_, tls) = options("postgres://h/db?sslmode=verify-full&sslrootcert=system");
        assert_eq!(tls.root_certs, Some(RootCerts::System));
    }

    #[test]
    fn bad_modes_and_half_client_certificates_are_refused_by_name() {
        assert!(
            split("postgres://h/db?sslmode=allow")
                .unwrap_err()
                .contains("allow is not supported")
        );
        assert!(
            split("postgres://h/db?sslmode=yes")
                .unwrap_err()
                .contains("invalid sslmode \"yes\"")
        );
        assert!(
            split("postgres://h/db?sslcert=/c.pem")
                .unwrap_err()
                .contains("sslcert needs sslkey")
        );
        assert!(
            split("postgres://h/db?sslmode=%zz")
                .unwrap_err()
                .contains("percent-encoding")
        );
        assert!(
            split("host=h sslmode='require")
                .unwrap_err()
                .contains("unterminated quote")
        );
    }

    #[test]
    fn a_missing_root_certificate_file_is_named() {
        let (_, tls) = options("postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
        let error = connector(&tls).err().expect("no such file");
        assert!(error.contains("sslrootcert /nonexistent/ca.pem"), "{error}");
    }
}
