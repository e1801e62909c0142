//! `etl doctor`: check, against a real warehouse, every assumption the Redshift path makes
//! ([`etl_core::doctor`]): one line per probe on stdout, a summary on stderr; exit 0 when no probe
//! failed, 1 when one did, 2 when the warehouse cannot be reached or the job is invalid.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;

use etl_core::doctor::{self, Status};
use etl_core::warehouse::{Retry, Warehouse};

use crate::Failure;
use crate::conn::{CONNECT_RETRY, ConnArgs};

/// `etl doctor` flags.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    conn: ConnArgs,

    /// A job manifest: also COPY and UNLOAD one row under a scratch prefix (_etl_doctor/, deleted
    /// afterwards) of its input and unload locations, with its IAM role.
    #[arg(long, value_name = "JOB")]
    job: Option<PathBuf>,
}

/// Runs `etl doctor`.
pub async fn run(args: DoctorArgs) -> Result<(), Failure> {
    let job = args.job.as_ref().map(etl_core::Job::read).transpose()?;
    let options = args.conn.options().await?;
    let warehouse = Warehouse::connect_with(options, 1, Retry::for_up_to(CONNECT_RETRY)).await?;
    eprintln!(
        "etl doctor: {} at {}",
        warehouse.dialect(),
        warehouse.options().target()
    );
    let findings = doctor::run(&warehouse, job.as_ref()).await;
    let mut out = std::io::stdout().lock();
    for f in &findings {
        writeln!(out, "{f}")?;
    }
    out.flush()?;
    let count = |s: Status| findings.iter().filter(|f| f.status == s).count();
    let (ok, failed, skipped) = (
        count(Status::Ok),
        count(Status::Failed),
        count(Status::Skipped),
    );
    eprintln!("{ok} ok, {failed} failed, {skipped} skipped");
    if failed > 0 {
        return Err(Failure::Failed(anyhow::anyhow!(
            "{failed} probe(s) failed: each line says what to change"
        )));
    }
    Ok(())
}
