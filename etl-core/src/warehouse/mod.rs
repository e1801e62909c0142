//! The warehouse connection: settings ([`ConnectOptions`]), TLS through postgres-native-tls, a
//! deadpool-postgres pool whose recycling check Redshift accepts, and retries with backoff.
//!
//! ```no_run
//! # async fn demo() -> etl_core::Result<()> {
//! use etl_core::warehouse::{ConnectOptions, Warehouse};
//! let options = ConnectOptions::from_url("postgres://etl@localhost/etl?sslmode=disable")?;
//! let warehouse = Warehouse::connect(options, 4).await?;
//! let client = warehouse.get().await?;
//! let rows = client.simple_query("SELECT 1").await;
//! # Ok(()) }
//! ```

mod options;

pub use options::{ConnectOptions, Password, SslMode};

use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use postgres_native_tls::MakeTlsConnector;
use tokio_postgres::Client;

use crate::error::{DbError, Error, Result};
use crate::sql::Dialect;

/// How long and how often to retry a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Give up after this long (the first attempt always happens).
    pub deadline: Duration,
    /// First pause; doubled after each failure.
    pub initial: Duration,
    /// Longest pause.
    pub max: Duration,
}

impl Retry {
    /// No retries.
    pub const NONE: Retry = Retry {
        deadline: Duration::ZERO,
        initial: Duration::ZERO,
        max: Duration::ZERO,
    };

    /// Retries for up to `deadline`, from 250 ms pauses up to 10 s.
    pub fn for_up_to(deadline: Duration) -> Self {
        Retry {
            deadline,
            initial: Duration::from_millis(250),
            max: Duration::from_secs(10),
        }
    }
}

impl Default for Retry {
    /// Retries for up to two minutes: enough for a new cluster's DNS name to resolve.
    fn default() -> Self {
        Self::for_up_to(Duration::from_secs(120))
    }
}

/// The TLS connector for `options.sslmode` (libpq semantics: `require` encrypts without checking the
/// certificate, `verify-ca` checks the chain, `verify-full` also the host name). Built once per
/// process and setting: building one loads the system's CA bundle, which costs tens of
/// milliseconds — most of a Lambda's cold start.
///
/// # Errors
/// When the root certificate file cannot be read or parsed.
pub fn tls_connector(options: &ConnectOptions) -> Result<MakeTlsConnector> {
    type Key = (SslMode, Option<std::path::PathBuf>);
    static CACHE: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<Key, MakeTlsConnector>>,
    > = std::sync::OnceLock::new();
    let key = (options.sslmode, options.ssl_root_cert.clone());
    let cache = CACHE.get_or_init(Default::default);
    if let Some(c) = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&key)
    {
        return Ok(c.clone());
    }
    let connector = build_tls_connector(options)?;
    cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(key, connector.clone());
    Ok(connector)
}

fn build_tls_connector(options: &ConnectOptions) -> Result<MakeTlsConnector> {
    let mut builder = native_tls::TlsConnector::builder();
    match options.sslmode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => {
            builder
                .danger_accept_invalid_certs(true)
                .danger_accept_invalid_hostnames(true);
        }
        SslMode::VerifyCa => {
            builder.danger_accept_invalid_hostnames(true);
        }
        SslMode::VerifyFull => {}
    }
    if let Some(path) = &options.ssl_root_cert {
        let pem = std::fs::read(path)
            .map_err(|e| Error::io("cannot read sslrootcert", path.display(), e))?;
        let cert = native_tls::Certificate::from_pem(&pem)
            .map_err(|e| Error::invalid("sslrootcert", format!("{}: {e}", path.display())))?;
        builder.add_root_certificate(cert);
    }
    let connector = builder.build().map_err(|e| Error::Environment {
        message: format!("cannot initialise TLS: {e}"),
        source: None,
    })?;
    Ok(MakeTlsConnector::new(connector))
}

/// Connects one client, retrying retryable failures (refused, DNS not resolvable yet, server
/// starting up) with exponential backoff until `retry.deadline`. The connection task is spawned on
/// the current tokio runtime.
///
/// # Errors
/// [`Error::Connect`] with the last server error and SQLSTATE; a bad password or unknown database
/// fails at once.
pub async fn connect(options: &ConnectOptions, retry: Retry) -> Result<Client> {
    let config = options.pg_config();
    let tls = tls_connector(options)?;
    let start = Instant::now();
    let mut pause = retry.initial;
    let mut attempts = 0;
    loop {
        attempts += 1;
        match config.connect(tls.clone()).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "connection closed");
                    }
                });
                return Ok(client);
            }
            Err(e) => {
                let err = connect_error(options, attempts, &e);
                if !err.is_retryable() || start.elapsed() + pause > retry.deadline {
                    return Err(err);
                }
                tracing::warn!(target = %options.target(), attempt = attempts, error = %e, "connection failed, retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(retry.max);
            }
        }
    }
}

fn connect_error(options: &ConnectOptions, attempts: u32, e: &tokio_postgres::Error) -> Error {
    Error::Connect {
        target: options.target(),
        attempts,
        source: Box::new(DbError::from_pg(e)),
    }
}

/// Detects the dialect of a connected server from `version()`.
///
/// # Errors
/// When the query fails.
pub async fn detect_dialect(client: &Client) -> Result<Dialect> {
    let row = client
        .query_one("SELECT version()", &[])
        .await
        .map_err(|e| Error::query("SELECT version()", &e))?;
    let version: String = row.get(0);
    Ok(if version.contains("Redshift") {
        Dialect::Redshift
    } else {
        Dialect::Postgres
    })
}

/// A pool of connections to one warehouse, and its dialect.
#[derive(Clone)]
pub struct Warehouse {
    pool: Pool,
    dialect: Dialect,
    options: ConnectOptions,
    retry: Retry,
}

impl std::fmt::Debug for Warehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warehouse")
            .field("target", &self.options.target())
            .field("dialect", &self.dialect)
            .field("size", &self.pool.status().max_size)
            .finish()
    }
}

impl Warehouse {
    /// Builds a pool of up to `size` connections, opens one (with [`Retry::default`]) to check the
    /// settings and detect the dialect.
    ///
    /// # Errors
    /// [`Error::Connect`] when the warehouse cannot be reached.
    pub async fn connect(options: ConnectOptions, size: usize) -> Result<Self> {
        Self::connect_with(options, size, Retry::default()).await
    }

    /// [`Warehouse::connect`] with an explicit retry policy.
    ///
    /// # Errors
    /// [`Error::Connect`] when the warehouse cannot be reached.
    pub async fn connect_with(options: ConnectOptions, size: usize, retry: Retry) -> Result<Self> {
        let first = connect(&options, retry).await?;
        let dialect = detect_dialect(&first).await?;
        drop(first);
        let mut config = options.pg_config();
        if dialect == Dialect::Postgres {
            // quote_literal relies on it (Redshift always treats backslash as an escape).
            config.options("-c standard_conforming_strings=on");
        }
        let manager = Manager::from_config(
            config,
            tls_connector(&options)?,
            ManagerConfig {
                // `Clean` sends PostgreSQL-only statements (DISCARD ALL); `SELECT 1` works on both.
                recycling_method: RecyclingMethod::Custom("SELECT 1".into()),
            },
        );
        let pool = Pool::builder(manager)
            .max_size(size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the connection pool: {e}")))?;
        Ok(Warehouse {
            pool,
            dialect,
            options,
            retry,
        })
    }

    /// A connection from the pool, retrying retryable connection failures.
    ///
    /// # Errors
    /// [`Error::Connect`].
    pub async fn get(&self) -> Result<deadpool_postgres::Object> {
        let start = Instant::now();
        let mut pause = self.retry.initial.max(Duration::from_millis(50));
        let mut attempts = 0;
        loop {
            attempts += 1;
            let err = match self.pool.get().await {
                Ok(c) => return Ok(c),
                Err(deadpool_postgres::PoolError::Backend(e)) => {
                    connect_error(&self.options, attempts, &e)
                }
                Err(e) => Error::Connect {
                    target: self.options.target(),
                    attempts,
                    source: Box::new(DbError {
                        sqlstate: None,
                        severity: None,
                        message: e.to_string(),
                        detail: None,
                        hint: None,
                        position: None,
                    }),
                },
            };
            if !err.is_retryable() || start.elapsed() + pause > self.retry.deadline {
                return Err(err);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(self.retry.max.max(Duration::from_millis(50)));
        }
    }

    /// A fresh connection outside the pool (for a statement that must outlive pooled sessions, or a
    /// cancel request).
    ///
    /// # Errors
    /// [`Error::Connect`].
    pub async fn connect_one(&self) -> Result<Client> {
        connect(&self.options, self.retry).await
    }

    /// The server's dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The connection settings.
    pub fn options(&self) -> &ConnectOptions {
        &self.options
    }

    /// The pool's maximum size.
    pub fn max_size(&self) -> usize {
        self.pool.status().max_size
    }
}
