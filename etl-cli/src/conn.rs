//! The connection flags shared by subcommands, following libpq: a URL, a Secrets Manager secret,
//! or the `PG*` variables.

use clap::Args;
use etl_core::warehouse::ConnectOptions;

/// Where the warehouse is.
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// postgres://user:password@host:port/dbname?sslmode=... (default: the PG* variables, as psql).
    #[arg(long, env = "DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// A Secrets Manager secret (ARN or name) holding the warehouse's `username`, `password`,
    /// `host`, `port` and `dbname`, as Redshift stores them; TLS is verified (verify-full) unless
    /// PGSSLMODE says otherwise.
    #[cfg(feature = "aws")]
    #[arg(long, value_name = "ARN", conflicts_with = "database_url")]
    pub secret_id: Option<String>,
}

/// How long the CLI retries a connection: long enough for a server that is starting, short enough
/// that a wrong address fails while the user is still looking (the Lambdas wait for a new
/// cluster's DNS name much longer).
pub const CONNECT_RETRY: std::time::Duration = std::time::Duration::from_secs(15);

impl ConnArgs {
    /// Whether the flags name a warehouse (rather than leaving it to the `PG*` variables).
    pub fn given(&self) -> bool {
        #[cfg(feature = "aws")]
        if self.secret_id.is_some() {
            return true;
        }
        self.database_url.is_some()
    }

    /// The connection settings these flags select.
    pub async fn options(&self) -> etl_core::Result<ConnectOptions> {
        #[cfg(feature = "aws")]
        if let Some(id) = &self.secret_id {
            let config = etl_core::aws::config().await;
            // The secret must say where the warehouse is (the on-demand stack attaches the
            // cluster to it): nothing else here knows the address.
            let options = etl_core::aws::secrets::Secrets::new(config)
                .endpoint_options(id)
                .await?;
            // libpq's PGSSLMODE still decides TLS (verify-full unless set), as in the Lambdas.
            return match std::env::var("PGSSLMODE") {
                Ok(mode) if !mode.is_empty() => Ok(options.with_sslmode(mode.parse()?)),
                _ => Ok(options),
            };
        }
        match &self.database_url {
            Some(url) => ConnectOptions::from_url(url),
            None => ConnectOptions::from_env(),
        }
    }
}
