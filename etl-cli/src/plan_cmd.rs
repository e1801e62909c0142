//! `etl plan`: every statement a job would run, in order, without connecting to anything (but
//! CloudFormation, with `--stack`: what the deployment reaches, [`etl_core::reach`]).

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

    /// PostgreSQL: print the transforms as written, without the Redshift compatibility rewrite
    /// (what `etl run --no-compat` sends).
    #[arg(long)]
    no_compat: bool,

    /// Fail when a transform uses a construct the PostgreSQL rehearsal cannot reproduce
    /// (otherwise a warning on stderr).
    #[arg(long)]
    strict: bool,

    /// The permanent stack the job will run on: refuse a job whose input or unload bucket, or
    /// redshift.region, its network cannot reach (its ReachableBuckets and S3Region outputs).
    #[cfg(feature = "aws")]
    #[arg(long, value_name = "NAME")]
    stack: Option<String>,
}

/// Prints, on stderr, each construct of the job's transforms that the PostgreSQL rehearsal cannot
/// reproduce, with file, line and what to write instead; with `strict`, refuses the job.
pub fn compat_check(job: &Job, strict: bool, no_compat: bool) -> Result<(), Failure> {
    if no_compat {
        return Ok(());
    }
    let warnings = plan::compat_warnings(job);
    for w in &warnings {
        eprintln!("etl: warning: {w}");
    }
    if strict && !warnings.is_empty() {
        return Err(Failure::Usage(anyhow::anyhow!(
            "{} construct(s) in the transforms cannot be rehearsed on PostgreSQL (listed above): \
             rewrite them as suggested, or drop --strict to run with the warnings",
            warnings.len()
        )));
    }
    Ok(())
}

fn parse_s3(s: &str) -> Result<S3Url, String> {
    S3Url::parse(s)
}

fn parse_role(s: &str) -> Result<IamRole, String> {
    IamRole::parse(s)
}

/// Runs `etl plan`.
pub async fn run(args: PlanArgs) -> Result<(), Failure> {
    let job = Job::from_path(&args.job)?;
    let dialect = Dialect::from(args.dialect);
    #[cfg(feature = "aws")]
    if let Some(stack) = &args.stack {
        crate::reach_check(stack, &job, args.input.as_ref(), args.unload_to.as_ref()).await?;
    }
    for w in job.warnings() {
        eprintln!("etl: note: {w}");
    }
    if dialect == Dialect::Postgres {
        job.check_postgres()?;
        compat_check(&job, args.strict, args.no_compat)?;
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
            no_compat: args.no_compat,
        },
    )?;
    let mut out = std::io::stdout().lock();
    out.write_all(plan::render(&steps).as_bytes())?;
    out.flush()?;
    Ok(())
}
