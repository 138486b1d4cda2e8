//! `Connector`: opens connections outside the pool, for subscriptions that hold a lock and
//! listen for wake-ups on a connection of their own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use eventlogs_core::{InvalidInput, Result};
use futures::future::poll_fn;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, Client};

use crate::config::{redact, PostgresConfig};
use crate::error::connection_error;

/// Idle time before TCP keepalive probes on a subscription's connection, on both ends.
pub(crate) const KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(10);

/// How connections are encrypted.
#[derive(Clone)]
pub(crate) enum Tls {
    /// Plain TCP or a Unix socket.
    None,
    /// rustls, verifying against the configured roots.
    #[cfg(feature = "tls")]
    Rustls(tokio_postgres_rustls::MakeRustlsConnect),
}

/// The parsed URL and TLS setup, shared by the pool and dedicated connections.
#[derive(Clone)]
pub(crate) struct Connector {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls: Tls,
}

impl Connector {
    /// Parses the URL and prepares TLS when `sslmode=require`.
    pub(crate) fn new(config: &PostgresConfig) -> Result<Self> {
        let invalid =
            || InvalidInput::Config(format!("invalid PostgreSQL URL {}", redact(&config.url)));
        let mut pg: tokio_postgres::Config = config.url.parse().map_err(|_| invalid())?;
        pg.connect_timeout(config.connect_timeout);
        if pg.get_application_name().is_none() {
            pg.application_name("eventlogs");
        }
        let tls = if pg.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            rustls(config.tls_root_certificates.as_deref())?
        } else {
            Tls::None
        };
        Ok(Self { config: pg, tls })
    }

    /// Opens a connection whose notifications wake `wake`. `closed` turns true (and `wake`
    /// fires) when the connection ends.
    pub(crate) async fn connect(
        &self,
        wake: Arc<Notify>,
        closed: Arc<AtomicBool>,
    ) -> Result<Client> {
        match &self.tls {
            Tls::None => {
                let (client, connection) = self
                    .config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(connection_error)?;
                tokio::spawn(drive(connection, wake, closed));
                Ok(client)
            }
            #[cfg(feature = "tls")]
            Tls::Rustls(tls) => {
                let (client, connection) = self
                    .config
                    .connect(tls.clone())
                    .await
                    .map_err(connection_error)?;
                tokio::spawn(drive(connection, wake, closed));
                Ok(client)
            }
        }
    }
}

/// Runs the connection, turning each notification into a wake-up.
async fn drive<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    wake: Arc<Notify>,
    closed: Arc<AtomicBool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notification(_))) => {
                tracing::trace!("subscription wake-up received");
                wake.notify_one();
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                tracing::warn!(%error, "postgres subscription connection failed");
                break;
            }
            None => break,
        }
    }
    closed.store(true, Ordering::SeqCst);
    wake.notify_one();
}

#[cfg(feature = "tls")]
fn rustls(roots: Option<&[u8]>) -> Result<Tls> {
    let connector = crate::tls::connector(roots).map_err(InvalidInput::Config)?;
    Ok(Tls::Rustls(connector))
}

#[cfg(not(feature = "tls"))]
fn rustls(_: Option<&[u8]>) -> Result<Tls> {
    Err(InvalidInput::Config(
        "sslmode=require needs the `tls` feature of eventlogs-postgres".into(),
    )
    .into())
}
