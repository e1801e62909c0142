//! `etl`: run a Redshift ETL job on one machine or on AWS, print its plan, run ad-hoc SQL.
//!
//! Exit codes: 0 success, 1 the job or statement ran and failed, 2 usage or configuration error,
//! 130 interrupted. Data goes to stdout; progress, logs and errors to stderr.
#![forbid(unsafe_code)]

mod conn;
#[cfg(feature = "aws")]
mod deploy_cmd;
mod doctor_cmd;
mod errors;
mod init_cmd;
mod output;
mod plan_cmd;
mod run_cmd;
mod server_cmd;
#[cfg(feature = "aws")]
mod sfn_cmd;
mod sql_cmd;
#[cfg(feature = "aws")]
mod stage_cmd;
mod track_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Batch ETL into Amazon Redshift — or a throwaway PostgreSQL on this machine.
#[derive(Debug, Parser)]
#[command(name = "etl", version, propagate_version = true)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a job on one machine: a throwaway PostgreSQL (or --database-url), Redshift's semantics.
    Run(run_cmd::RunArgs),
    /// Run SQL against a warehouse: -c (repeatable), -f FILE, or stdin.
    Sql(sql_cmd::SqlArgs),
    /// Print every statement a job would run, in order, without connecting to anything.
    Plan(plan_cmd::PlanArgs),
    /// Write a job manifest from Hive CREATE TABLE statements and/or a sample of the exported files.
    Init(init_cmd::InitArgs),
    /// Start a throwaway PostgreSQL, print its URL, remove it on Ctrl-C.
    Server(server_cmd::ServerArgs),
    /// Check every assumption the Redshift path makes against a warehouse, one line per probe.
    Doctor(doctor_cmd::DoctorArgs),
    /// Show runs (or one run's steps) from the journal (etl_meta).
    Status(track_cmd::StatusArgs),
    /// Cancel the running statements of a run.
    Cancel(track_cmd::CancelArgs),
    /// Submit, poll, wait for or cancel one tracked statement (handles are JSON).
    #[command(subcommand)]
    Statement(track_cmd::StatementCommand),
    /// Upload a job's input files (split for Redshift if asked), SQL and manifest to S3.
    #[cfg(feature = "aws")]
    Stage(stage_cmd::StageArgs),
    /// Create or update the permanent stack (cfn/initial.yaml) through a change set.
    #[cfg(feature = "aws")]
    Deploy(deploy_cmd::DeployArgs),
    /// Start a staged job on AWS (a Step Functions execution); print its ARN.
    #[cfg(feature = "aws")]
    Start(sfn_cmd::StartArgs),
    /// Follow an execution state by state; exit 0 when it succeeded, 1 when it failed.
    #[cfg(feature = "aws")]
    Watch(sfn_cmd::WatchArgs),
}

/// Refuses `job` when the permanent stack `stack` says its network cannot reach the job's buckets
/// or region (a stack without the outputs is not checked, with a note).
#[cfg(feature = "aws")]
async fn reach_check(
    stack: &str,
    job: &etl_core::Job,
    input: Option<&etl_core::sql::S3Url>,
    unload_to: Option<&etl_core::sql::S3Url>,
) -> etl_core::Result<()> {
    let config = etl_core::aws::config().await;
    match etl_core::reach::Reach::from_stack(config, stack).await? {
        Some(reach) => reach.check(job, input, unload_to),
        None => {
            eprintln!(
                "etl: note: stack {stack} has no {} / {} outputs (deployed before them): \
                 what its network reaches is not checked",
                etl_core::reach::BUCKETS_OUTPUT,
                etl_core::reach::REGION_OUTPUT
            );
            Ok(())
        }
    }
}

/// What ended the command, mapped to the exit code.
#[derive(Debug)]
pub enum Failure {
    /// The job or a statement ran and failed (exit 1).
    Failed(anyhow::Error),
    /// Bad usage or configuration (exit 2).
    Usage(anyhow::Error),
    /// Ctrl-C (exit 130).
    Interrupted,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        let e = e.into();
        match e.downcast_ref::<etl_core::Error>() {
            Some(core) => match core.kind() {
                etl_core::ErrorKind::InvalidJob | etl_core::ErrorKind::Environment => {
                    Failure::Usage(e)
                }
                etl_core::ErrorKind::Cancelled => Failure::Interrupted,
                _ if matches!(core, etl_core::Error::Connect { .. }) => Failure::Usage(e),
                _ => Failure::Failed(e),
            },
            None => Failure::Failed(e),
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,etl_core=info",
        2 => "debug,tokio_postgres=info,hyper=info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ETL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("etl: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run_cmd::run(args).await,
            Command::Sql(args) => sql_cmd::run(args).await,
            Command::Plan(args) => plan_cmd::run(args).await,
            Command::Init(args) => init_cmd::run(args),
            Command::Server(args) => server_cmd::run(args).await,
            Command::Doctor(args) => doctor_cmd::run(args).await,
            Command::Status(args) => track_cmd::status(args).await,
            Command::Cancel(args) => track_cmd::cancel(args).await,
            Command::Statement(cmd) => track_cmd::statement(cmd).await,
            #[cfg(feature = "aws")]
            Command::Stage(args) => stage_cmd::run(args).await,
            #[cfg(feature = "aws")]
            Command::Deploy(args) => deploy_cmd::run(args).await,
            #[cfg(feature = "aws")]
            Command::Start(args) => sfn_cmd::start(args).await,
            #[cfg(feature = "aws")]
            Command::Watch(args) => sfn_cmd::watch(args).await,
        }
    });
    // Don't wait for connection tasks still winding down.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Interrupted) => {
            eprintln!("etl: interrupted");
            ExitCode::from(130)
        }
        Err(Failure::Failed(e)) if errors::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(Failure::Failed(e)) => {
            errors::print(&e);
            ExitCode::from(1)
        }
        Err(Failure::Usage(e)) => {
            errors::print(&e);
            ExitCode::from(2)
        }
    }
}
