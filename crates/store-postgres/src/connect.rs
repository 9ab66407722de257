//! Opening single connections (migrations, the listener) and describing the
//! target in error messages without leaking a password.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::config::Host;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Client, Config, Connection, Notification, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::describe;
use crate::tls::{self, SslMode};

/// A PostgreSQL server and how to reach it: tokio-postgres's settings and
/// the TLS client the URL's `sslmode` asks for (see [`crate::tls`]). Every
/// connection paycore opens (pools, listener, elections, migrations) comes
/// from one of these, so the URL means the same everywhere.
#[derive(Clone)]
pub struct Endpoint {
    config: Config,
    tls: MakeRustlsConnect,
    mode: SslMode,
}

/// The TLS stream of a connection to PostgreSQL.
pub type TlsStream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;

impl Endpoint {
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The TLS client, for connection pools.
    pub fn tls(&self) -> MakeRustlsConnect {
        self.tls.clone()
    }

    pub fn ssl_mode(&self) -> SslMode {
        self.mode
    }

    /// Opens one connection; the caller drives `Connection` (spawn it).
    /// A pool of up to `size` connections with `config` (this endpoint's,
    /// or a copy with more options) and this endpoint's TLS: a request waits
    /// at most `operation_timeout` for a connection, a connection takes at
    /// most twice `connect_timeout` to open, and a check of an idle one at
    /// most `connect_timeout`. The store's pool and the read-model queries'
    /// are both made here, so they time out alike.
    pub fn pool(
        &self,
        config: Config,
        size: usize,
        connect_timeout: Duration,
        operation_timeout: Duration,
    ) -> Result<deadpool_postgres::Pool, String> {
        let manager = deadpool_postgres::Manager::from_config(
            config,
            self.tls(),
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        deadpool_postgres::Pool::builder(manager)
            .max_size(size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(operation_timeout))
            .create_timeout(Some(connect_timeout * 2))
            .recycle_timeout(Some(connect_timeout))
            .build()
            .map_err(|error| format!("building the connection pool: {error}"))
    }

    pub async fn connect(&self) -> Result<(Client, Connection<Socket, TlsStream>), tokio_postgres::Error> {
        self.config.connect(self.tls.clone()).await
    }

    /// `host:port/dbname as user` for messages (never the password).
    pub fn target(&self) -> String {
        target(&self.config)
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Endpoint({}, sslmode={})", self.target(), self.mode.as_str())
    }
}

/// Parses `url` (a `postgres://` URL or `key=value` pairs, with libpq's TLS
/// options) and applies the defaults paycore wants: a connect timeout, an
/// application name and TCP keepalives that notice a dead server within
/// about half a minute.
pub fn config(
    url: &str,
    connect_timeout: Duration,
    application_name: Option<&str>,
) -> Result<Endpoint, String> {
    let (url, tls_options) = tls::split(url)?;
    let mut config: Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| format!("invalid PostgreSQL URL: {}", describe(&e)))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(connect_timeout);
    }
    match application_name {
        Some(name) => {
            config.application_name(name);
        }
        None if config.get_application_name().is_none() => {
            config.application_name("paycore");
        }
        None => {}
    }
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3)
        .ssl_mode(tls_options.mode.negotiation());
    let tls = tls::connector(&tls_options)?;
    Ok(Endpoint {
        config,
        tls,
        mode: tls_options.mode,
    })
}

/// `host:port/dbname as user` for messages (never the password).
pub fn target(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = config
                .get_ports()
                .get(i)
                .or_else(|| config.get_ports().first())
                .copied()
                .unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost:5432".to_owned()
    } else {
        hosts.join(",")
    };
    format!(
        "{hosts}/{} as {}",
        config.get_dbname().unwrap_or("(default database)"),
        config.get_user().unwrap_or("(default user)")
    )
}

/// One connection outside the pool. Its driver task forwards notifications;
/// it ends (closing the channel) when the connection does.
#[derive(Debug)]
pub struct Single {
    pub client: Client,
    pub notifications: mpsc::UnboundedReceiver<Notification>,
    driver: JoinHandle<()>,
}

impl Drop for Single {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Connects, with an overall deadline of `timeout` on top of the
/// per-attempt connect timeout. The error says where and why.
pub async fn open(endpoint: &Endpoint, timeout: Duration) -> Result<Single, String> {
    let config = endpoint.config();
    let connecting = endpoint.connect();
    let (client, mut connection) = match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            return Err(format!(
                "cannot connect to PostgreSQL at {}: {}",
                target(config),
                describe(&e)
            ));
        }
        Err(_) => {
            return Err(format!(
                "cannot connect to PostgreSQL at {}: no answer within {timeout:?}",
                target(config)
            ));
        }
    };
    let (sender, notifications) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if sender.send(n).is_err() {
                        // Nobody listens; keep driving the connection.
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!(error = %describe(&e), "PostgreSQL connection ended");
                    return;
                }
                None => return,
            }
        }
    });
    Ok(Single {
        client,
        notifications,
        driver,
    })
}
