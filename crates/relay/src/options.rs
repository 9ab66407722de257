//! How a relay is configured, checked before anything connects so that a bad
//! URL or name stops `paycore serve` at once with a precise message (a NATS
//! that is merely down is retried instead).

use std::str::FromStr;
use std::time::Duration;

use async_nats::ServerAddr;

use crate::subject::{DEFAULT_SUBJECT_PREFIX, valid_prefix};

/// The default JetStream stream name.
pub const DEFAULT_STREAM: &str = "PAYCORE";
/// The default duplicate window of a stream the relay creates. It only has
/// to cover a retry of a publish whose ack was lost; the relay's own
/// checkpoint (the stream's last message) covers a restart however late.
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// A relay's configuration.
#[derive(Clone)]
pub struct RelayOptions {
    /// The NATS servers (`nats://host:port`, comma-separated for a cluster).
    pub(crate) servers: Vec<ServerAddr>,
    /// The URLs as given without credentials, for logs and messages.
    pub(crate) display: String,
    /// The JetStream stream that holds the events (created if missing).
    pub stream: String,
    /// The first token(s) of every subject; the stream captures `<prefix>.>`.
    pub subject_prefix: String,
    /// The duplicate window of the stream, when the relay creates it.
    pub duplicate_window: Duration,
    /// Publishes awaiting their ack at most: the relay reads the log only
    /// this far ahead, so its memory does not grow with the history.
    pub max_in_flight: usize,
    /// How long an ack (or a JetStream API call) may take before the relay
    /// reconnects and resumes from the stream's last message.
    pub ack_timeout: Duration,
    /// The first pause after a failure; doubled up to [`MAX_BACKOFF`].
    pub retry_every: Duration,
    /// How often the lag is logged (at info while behind, debug otherwise).
    pub report_every: Duration,
}

/// The longest pause between two attempts after failures.
/// Short enough that a NATS back after an outage is used again soon;
/// an attempt costs one TCP connection.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl std::fmt::Debug for RelayOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Without `servers`: its URLs may hold credentials.
        f.debug_struct("RelayOptions")
            .field("nats", &self.display)
            .field("stream", &self.stream)
            .field("subject_prefix", &self.subject_prefix)
            .field("duplicate_window", &self.duplicate_window)
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

/// A configuration the relay cannot start with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error("no NATS URL given: expected nats://host:port")]
    NoUrl,
    #[error(
        "invalid NATS URL {url:?}: {why}; expected nats://host:port (or tls://, comma-separated for a cluster)"
    )]
    BadUrl { url: String, why: String },
    #[error("invalid JetStream stream name {0:?}: 1 to 255 characters of letters, digits, `_` and `-`")]
    BadStream(String),
    #[error(
        "invalid subject prefix {0:?}: one or more dot-separated tokens of letters, digits, `_` and `-`, without wildcards"
    )]
    BadPrefix(String),
}

impl RelayOptions {
    /// Options for `urls` (one or more comma-separated NATS URLs) with the
    /// defaults: stream [`DEFAULT_STREAM`], prefix [`DEFAULT_SUBJECT_PREFIX`].
    pub fn new(urls: &str) -> Result<Self, OptionsError> {
        let mut servers = Vec::new();
        let mut display = Vec::new();
        for url in urls.split(',').map(str::trim).filter(|url| !url.is_empty()) {
            let server = parse_url(url)?;
            display.push(format!("nats://{}:{}", server.host(), server.port()));
            servers.push(server);
        }
        if servers.is_empty() {
            return Err(OptionsError::NoUrl);
        }
        Ok(Self {
            servers,
            display: display.join(","),
            stream: DEFAULT_STREAM.to_owned(),
            subject_prefix: DEFAULT_SUBJECT_PREFIX.to_owned(),
            duplicate_window: DEFAULT_DUPLICATE_WINDOW,
            max_in_flight: 256,
            ack_timeout: Duration::from_secs(5),
            retry_every: Duration::from_millis(500),
            report_every: Duration::from_secs(10),
        })
    }

    pub fn with_stream(mut self, stream: &str) -> Result<Self, OptionsError> {
        if !valid_stream_name(stream) {
            return Err(OptionsError::BadStream(stream.to_owned()));
        }
        stream.clone_into(&mut self.stream);
        Ok(self)
    }

    pub fn with_subject_prefix(mut self, prefix: &str) -> Result<Self, OptionsError> {
        if !valid_prefix(prefix) {
            return Err(OptionsError::BadPrefix(prefix.to_owned()));
        }
        prefix.clone_into(&mut self.subject_prefix);
        Ok(self)
    }

    /// The NATS servers without credentials, for messages.
    pub fn servers_display(&self) -> &str {
        &self.display
    }
}

fn parse_url(url: &str) -> Result<ServerAddr, OptionsError> {
    let bad = |why: &str| OptionsError::BadUrl {
        // Never echo a password back into a log.
        url: redact(url),
        why: why.to_owned(),
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad("no scheme"));
    };
    if !matches!(scheme, "nats" | "tls") {
        return Err(bad(&format!("unsupported scheme {scheme:?}")));
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if host_port.is_empty() || host_port.starts_with(':') {
        return Err(bad("no host"));
    }
    ServerAddr::from_str(url).map_err(|error| bad(&error.to_string()))
}

/// `url` with any `user:password@` replaced by `***@`.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// JetStream stream names may not hold `.`, `*`, `>`, whitespace or path
/// separators; we allow a conservative subset.
fn valid_stream_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let options = RelayOptions::new("nats://127.0.0.1:4222").unwrap();
        assert_eq!(options.servers_display(), "nats://127.0.0.1:4222");
        let options = RelayOptions::new("nats://a:1, nats://user:secret@b:2").unwrap();
        assert_eq!(options.servers_display(), "nats://a:1,nats://b:2");
        assert!(!format!("{options:?}").contains("secret"));
        assert_eq!(RelayOptions::new(" , ").err(), Some(OptionsError::NoUrl));
        for bad in [
            "127.0.0.1:4222",
            "http://127.0.0.1:4222",
            "nats://",
            "nats://:4222",
            "nats://host:notaport",
        ] {
            let error = RelayOptions::new(bad).err().unwrap();
            assert!(matches!(error, OptionsError::BadUrl { .. }), "{bad}: {error}");
        }
        let error = RelayOptions::new("http://me:pw@host:1").err().unwrap();
        assert!(!error.to_string().contains("pw"), "{error}");
    }

    #[test]
    fn names() {
        let options = RelayOptions::new("nats://127.0.0.1:4222").unwrap();
        assert_eq!(
            (options.stream.as_str(), options.subject_prefix.as_str()),
            ("PAYCORE", "paycore")
        );
        assert!(options.clone().with_stream("PAYCORE_EU-1").is_ok());
        for bad in ["", "A.B", "A*", "A B", "A/B"] {
            assert!(options.clone().with_stream(bad).is_err(), "{bad:?}");
        }
        assert!(options.clone().with_subject_prefix("acme.paycore").is_ok());
        assert!(options.with_subject_prefix("acme.>").is_err());
    }
}
