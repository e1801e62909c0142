//! `etl plan`: every statement a job would run, in order, without connecting to anything.

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use etl_core::Job;
use etl_core::plan::{self, PlanOptions};
use etl_core::sql::{Dialect, IamRole, S3Url};

use crate::Failure;

/// `--dialect`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DialectArg {
    /// Amazon Redshift: COPY from S3, UNLOAD to S3.
    Redshift,
    /// PostgreSQL as `etl run` drives it: COPY FROM STDIN, COPY TO STDOUT.
    Postgres,
}

impl From<DialectArg> for Dialect {
    fn from(d: DialectArg) -> Dialect {
        match d {
            DialectArg::Redshift => Dialect::Redshift,
            DialectArg::Postgres => Dialect::Postgres,
        }
    }
}

/// `etl plan` flags.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The job manifest (JSON).
    job: PathBuf,

    /// The SQL dialect to plan for.
    #[arg(long, value_enum, default_value_t = DialectArg::Redshift)]
    dialect: DialectArg,

    /// Where the input files are on S3, when the manifest names a local folder (see `etl stage`).
    #[arg(long, value_name = "S3_URL", value_parser = parse_s3)]
    input: Option<S3Url>,

    /// The IAM role Redshift assumes for COPY and UNLOAD (default: the manifest's, else `default`).
    #[arg(long, value_name = "ARN", value_parser = parse_role)]
    iam_role: Option<IamRole>,

    /// Where UNLOAD writes on S3, when the manifest names a local folder.
    #[arg(long, value_name = "S3_URL", value_parser = parse_s3)]
    unload_to: Option<S3Url>,
}

fn parse_s3(s: &str) -> Result<S3Url, String> {
    S3Url::parse(s)
}

fn parse_role(s: &str) -> Result<IamRole, String> {
    IamRole::parse(s)
}

/// Runs `etl plan`.
pub fn run(args: PlanArgs) -> Result<(), Failure> {
    let job = Job::from_path(&args.job)?;
    let dialect = Dialect::from(args.dialect);
    for w in job.warnings() {
        eprintln!("etl: note: {w}");
    }
    if dialect == Dialect::Postgres {
        job.check_postgres()?;
    }
    let steps = plan::build(
        &job,
        dialect,
        &PlanOptions {
            input: args.input,
            iam_role: args.iam_role,
            unload_to: args.unload_to,
            text_copy: false,
            copy_manifests: None,
        },
    )?;
    let mut out = std::io::stdout().lock();
    out.write_all(plan::render(&steps).as_bytes())?;
    out.flush()?;
    Ok(())
}
