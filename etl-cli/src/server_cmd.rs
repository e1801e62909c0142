//! `etl server`: a throwaway PostgreSQL for rehearsals, with the bulk-load settings `etl run` uses.

use std::io::Write as _;

use clap::Args;
use tokio::signal::unix::{SignalKind, signal};

use etl_core::cluster::Local;

use crate::Failure;

/// `etl server` flags.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// A server setting, `name=value` (repeatable), e.g. `-c shared_buffers=1GB`.
    #[arg(short = 'c', long = "set", value_name = "NAME=VALUE")]
    settings: Vec<String>,
}

/// Runs `etl server`: prints the URL on stdout, then waits for Ctrl-C or SIGTERM and removes the
/// server.
pub async fn run(args: ServerArgs) -> Result<(), Failure> {
    let mut builder = Local::builder();
    for s in &args.settings {
        let (k, v) = s.split_once('=').ok_or_else(|| {
            Failure::Usage(anyhow::anyhow!("-c {s:?}: write a setting as name=value"))
        })?;
        builder = builder.with_setting(k.trim(), v.trim());
    }
    let local = builder.start().await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", local.url())?;
        out.flush()?;
    }
    eprintln!(
        "a throwaway PostgreSQL is running; Ctrl-C (or SIGTERM) stops it and deletes its files"
    );
    let mut term = signal(SignalKind::terminate()).map_err(anyhow::Error::from)?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    drop(local);
    Ok(())
}
