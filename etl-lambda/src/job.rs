//! The job functions: `etl-create-tables`, `etl-load-table`, `etl-submit` and
//! `etl-statement-status` (`asl/README.md`, "Functions").
//!
//! Each reads the manifest from S3 (`manifest`, relative files resolved against its folder),
//! connects to `warehouse` with the credentials of `ETL_SECRET_ARN`, and runs one step through
//! [`etl_core::steps`], journaled under `run_id`. Loads, transform statements and the unload
//! return a [`StatementHandle`] without waiting for the statement (on PostgreSQL, loads and the
//! unload run client-side and their handle is already final); `etl-statement-status` polls it.

use std::time::Duration;

use etl_core::Job;
use etl_core::sql::S3Url;
use etl_core::steps::{Runner, StepOptions, Submission, TableRef};
use etl_core::track::{self, Handle, State};
use etl_core::warehouse::Warehouse;
use serde::{Deserialize, Serialize};

use crate::error::HandlerError;
use crate::resources::{Resources, WarehouseAddress};

/// The input of `etl-create-tables`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTablesEvent {
    /// The manifest's S3 URL.
    pub manifest: String,
    /// The run id.
    pub run_id: String,
    /// Where the warehouse listens.
    pub warehouse: WarehouseAddress,
}

/// The output of `etl-create-tables`: the load plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTablesOutput {
    /// One entry per table, in manifest order; `index` comes back as `etl-load-table`'s
    /// `table_index`.
    pub tables: Vec<TableRef>,
    /// The number of transform statements (`etl-submit`'s `index` runs from 0 to this minus 1).
    pub transform_count: usize,
    /// The run id.
    pub run_id: String,
}

/// The input of `etl-load-table`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadTableEvent {
    /// The manifest's S3 URL.
    pub manifest: String,
    /// The run id.
    pub run_id: String,
    /// Where the warehouse listens.
    pub warehouse: WarehouseAddress,
    /// The table's position in the manifest (`etl-create-tables`' `index`).
    pub table_index: usize,
}

/// What `etl-submit` submits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubmitStep {
    /// Transform statement `index`.
    Transform,
    /// The unload (`index` 0).
    Unload,
}

/// The input of `etl-submit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitEvent {
    /// The manifest's S3 URL.
    pub manifest: String,
    /// The run id.
    pub run_id: String,
    /// Where the warehouse listens.
    pub warehouse: WarehouseAddress,
    /// A transform statement or the unload.
    pub step: SubmitStep,
    /// The transform statement's index (0 for the unload).
    pub index: usize,
}

/// The handle of a submitted statement: what [`track`] needs to find it again, plus the statement
/// timeout that `etl-statement-status` enforces. Opaque to the state machine, well under 1 KB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementHandle {
    /// The statement.
    #[serde(flatten)]
    pub statement: Handle,
    /// The job's `statement_timeout_seconds`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
}

/// The input of `etl-statement-status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusEvent {
    /// What `etl-load-table` or `etl-submit` returned.
    pub handle: StatementHandle,
    /// Where the warehouse listens.
    pub warehouse: WarehouseAddress,
}

/// The output of `etl-statement-status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusOutput {
    /// `Running`, `Succeeded`, `Failed`, `Cancelled` or `Unknown`.
    pub state: String,
    /// Rows loaded, changed or unloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// A failure's SQLSTATE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlstate: Option<String>,
    /// A failure's message, or why the state is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl From<State> for StatusOutput {
    fn from(state: State) -> Self {
        let out = |state: &str| StatusOutput {
            state: state.to_owned(),
            rows: None,
            sqlstate: None,
            message: None,
        };
        match state {
            State::Running => out("Running"),
            State::Succeeded { rows } => StatusOutput {
                rows,
                ..out("Succeeded")
            },
            State::Failed { sqlstate, message } => StatusOutput {
                sqlstate,
                message: Some(message),
                ..out("Failed")
            },
            State::Cancelled => out("Cancelled"),
            State::Unknown { reason } => StatusOutput {
                message: Some(reason),
                ..out("Unknown")
            },
        }
    }
}

/// The manifest, from S3.
async fn read_job(manifest: &str) -> Result<Job, HandlerError> {
    let url =
        S3Url::parse(manifest).map_err(|e| HandlerError::invalid(format!("manifest: {e}")))?;
    Ok(Job::from_store(&url).await?)
}

fn step_options(res: &Resources) -> Result<StepOptions, HandlerError> {
    Ok(StepOptions {
        iam_role: res.settings().s3_role()?,
        runs_url: res.settings().runs_url()?,
        ..StepOptions::default()
    })
}

/// `etl-create-tables`: creates the journal, the schemas and the tables (idempotent, journaled),
/// and returns the load plan.
///
/// # Errors
/// `EtlInvalidJob` for an invalid manifest (with every problem's JSON path); `EtlRetryable` when
/// the warehouse cannot be reached yet; `EtlQueryFailed` when a statement fails.
pub async fn create_tables(
    event: CreateTablesEvent,
    res: &Resources,
) -> Result<CreateTablesOutput, HandlerError> {
    let job = read_job(&event.manifest).await?;
    let warehouse = res.warehouse(&event.warehouse).await?;
    let runner = Runner::new(&job, &warehouse, &event.run_id, step_options(res)?)?;
    let plan = runner.create_tables().await?;
    tracing::info!(run = %event.run_id, tables = plan.tables.len(), transforms = plan.transform_count, "tables created");
    Ok(CreateTablesOutput {
        tables: plan.tables,
        transform_count: plan.transform_count,
        run_id: event.run_id,
    })
}

fn handed_back(
    submission: Submission,
    job: &Job,
    warehouse: &Warehouse,
    res: &Resources,
) -> StatementHandle {
    let handle = submission.handle().clone();
    if let Submission::Submitted(s) = submission {
        res.keep(warehouse, s);
    }
    StatementHandle {
        statement: handle,
        timeout_seconds: job.statement_timeout.map(|t| t.as_secs()),
    }
}

/// `etl-load-table`: loads table `table_index` — on Redshift, writes its COPY manifest under
/// `ETL_RUNS_URL<run_id>/` and submits `BEGIN; [DELETE;] COPY; journal; COMMIT`; on PostgreSQL,
/// loads it client-side from S3 before returning. A table already loaded by this run returns a
/// handle whose state is `Succeeded`.
///
/// # Errors
/// `EtlInvalidJob` for an invalid manifest, a missing input file or an index out of range;
/// `EtlRetryable` when the warehouse cannot be reached yet.
pub async fn load_table(
    event: LoadTableEvent,
    res: &Resources,
) -> Result<StatementHandle, HandlerError> {
    let job = read_job(&event.manifest).await?;
    let warehouse = res.warehouse(&event.warehouse).await?;
    let runner = Runner::new(&job, &warehouse, &event.run_id, step_options(res)?)?;
    let submission = runner.load_table(event.table_index).await?;
    Ok(handed_back(submission, &job, &warehouse, res))
}

/// `etl-submit`: submits transform statement `index`, or the unload (on PostgreSQL the unload runs
/// client-side before returning).
///
/// # Errors
/// `EtlInvalidJob` for an invalid manifest or an index out of range; `EtlRetryable` when the
/// warehouse cannot be reached yet.
pub async fn submit(event: SubmitEvent, res: &Resources) -> Result<StatementHandle, HandlerError> {
    let job = read_job(&event.manifest).await?;
    let warehouse = res.warehouse(&event.warehouse).await?;
    let runner = Runner::new(&job, &warehouse, &event.run_id, step_options(res)?)?;
    let submission = match event.step {
        SubmitStep::Transform => runner.submit_transform(event.index).await?,
        SubmitStep::Unload if event.index == 0 => runner.submit_unload().await?,
        SubmitStep::Unload => {
            return Err(HandlerError::invalid(format!(
                "the unload is step index 0, not {}",
                event.index
            )));
        }
    };
    Ok(handed_back(submission, &job, &warehouse, res))
}

/// `etl-statement-status`: the state of the statement behind `handle`, from the journal and the
/// server ([`track::poll`]). A statement still running past the job's statement timeout is
/// cancelled on the server, and the function fails with `EtlTimeout`.
///
/// # Errors
/// `EtlTimeout` as above; `EtlRetryable` when the warehouse cannot be reached.
pub async fn statement_status(
    event: StatusEvent,
    res: &Resources,
) -> Result<StatusOutput, HandlerError> {
    let warehouse = res.warehouse(&event.warehouse).await?;
    let handle = &event.handle.statement;
    // Past the job's statement timeout the poll stops the statement (its session ends, so its
    // locks go) and journals it failed.
    let limit = event.handle.timeout_seconds.map(Duration::from_secs);
    let polled = track::poll_with_timeout(&warehouse, handle, limit).await?;
    if let Some(elapsed) = polled.timed_out {
        tracing::warn!(step = %handle.step_id, elapsed, limit = ?limit, "statement timed out: its session was ended");
        return Err(HandlerError::from(etl_core::Error::Timeout {
            context: format!("step {} of run {}", handle.step_id, handle.run_id),
            seconds: elapsed,
        }));
    }
    let out = StatusOutput::from(polled.state);
    tracing::info!(step = %handle.step_id, state = %out.state, rows = out.rows, "statement status");
    Ok(out)
}
