//! The connection flags shared by subcommands, following libpq: a URL, or the `PG*` variables.

use clap::Args;
use etl_core::warehouse::ConnectOptions;

/// Where the warehouse is.
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// postgres://user:password@host:port/dbname?sslmode=... (default: the PG* variables, as psql).
    #[arg(long, env = "DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl ConnArgs {
    /// The connection settings these flags select.
    pub fn options(&self) -> etl_core::Result<ConnectOptions> {
        match &self.database_url {
            Some(url) => ConnectOptions::from_url(url),
            None => ConnectOptions::from_env(),
        }
    }
}
