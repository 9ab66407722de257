//! Opening single connections (migrations, the listener) and describing the
//! target in error messages without leaking a password.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::config::Host;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, Notification};

use crate::error::describe;

/// Parses `url` (a `postgres://` URL or `key=value` pairs) and applies the
/// defaults paycore wants: a connect timeout, an application name and TCP
/// keepalives that notice a dead server within about half a minute.
pub fn config(
    url: &str,
    connect_timeout: Duration,
    application_name: Option<&str>,
) -> Result<Config, String> {
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
        .keepalives_retries(3);
    Ok(config)
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
pub(crate) struct Single {
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
pub(crate) async fn open(config: &Config, timeout: Duration) -> Result<Single, String> {
    let connecting = config.connect(NoTls);
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
