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
use object_store::{ObjectStoreExt as _, PutPayload, path::Path as ObjectPath};
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

/// The output of `etl-create-tables`: the run's plan, as batches of statements that the state
/// machine's one Distributed Map runs in order, one child execution per statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTablesOutput {
    /// The run id.
    pub run_id: String,
    /// The number of tables.
    pub tables: usize,
    /// The number of transform statements.
    pub transform_count: usize,
    /// The bucket that holds the batches (`ETL_RUNS_URL`'s).
    pub bucket: String,
    /// In order: the loads (all tables, one batch, run `concurrency` at a time), then each
    /// transform statement, then the unload (a batch of one each, run after the one before).
    pub batches: Vec<Batch>,
}

/// One batch of the plan: a JSON array of [`PlanItem`]s at `s3://<bucket>/<key>`, which the
/// state machine's `ItemReader` reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// The object's key, below `ETL_RUNS_URL<run_id>/plan/`.
    pub key: String,
    /// What it runs, for people: `load of 3 tables`, `transform statement 2 of 5`, `unload`.
    pub label: String,
    /// How many items it holds.
    pub items: usize,
}

/// One statement of the plan: the input of one child execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanItem {
    /// `load` (`etl-load-table`'s `table_index`), `transform` or `unload` (`etl-submit`'s
    /// `step`, `index`).
    pub step: String,
    /// The table's or the transform statement's index (0 for the unload).
    pub index: usize,
    /// For people: `staging.usage`, `transform statement 2 of 5`, `unload`.
    pub name: String,
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

/// The other input of `etl-statement-status`: which step of the run failed (or was still running
/// when the run failed), from the journal — how the state machine reports the cause of a failed
/// child execution, whose own error and cause stay in the child's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunStatusEvent {
    /// The run id.
    pub run_id: String,
    /// Where the warehouse listens.
    pub warehouse: WarehouseAddress,
}

/// What `etl-statement-status` accepts: a statement's handle, or a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StatusRequest {
    /// `{"handle", "warehouse"}`: [`statement_status`].
    Statement(StatusEvent),
    /// `{"run_id", "warehouse"}`: [`run_status`].
    Run(RunStatusEvent),
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
    /// The journal's step id (a run's status only): `load:staging.usage`, `transform:1:0`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

impl From<State> for StatusOutput {
    fn from(state: State) -> Self {
        let out = |state: &str| StatusOutput {
            state: state.to_owned(),
            rows: None,
            sqlstate: None,
            message: None,
            step: None,
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
/// writes the plan's batches under `ETL_RUNS_URL<run_id>/plan/` (overwritten by a retry, with the
/// same content), and returns them.
///
/// # Errors
/// `EtlInvalidJob` for an invalid manifest (with every problem's JSON path); `EtlRetryable` when
/// the warehouse cannot be reached yet; `EtlQueryFailed` when a statement fails; `EtlInternal`
/// without `ETL_RUNS_URL` or when a batch cannot be written.
pub async fn create_tables(
    event: CreateTablesEvent,
    res: &Resources,
) -> Result<CreateTablesOutput, HandlerError> {
    let job = read_job(&event.manifest).await?;
    let runs = res
        .settings()
        .runs_url()?
        .ok_or_else(|| HandlerError::internal("ETL_RUNS_URL is not set"))?;
    let warehouse = res.warehouse(&event.warehouse).await?;
    let runner = Runner::new(&job, &warehouse, &event.run_id, step_options(res)?)?;
    let plan = runner.create_tables().await?;
    let folder = runs.join(&format!("{}/plan/", event.run_id));
    let batches = plan_batches(&plan.tables, plan.transform_count);
    let store = etl_core::storage::s3_store(&folder).map_err(HandlerError::from)?;
    let mut out = Vec::with_capacity(batches.len());
    for (n, (label, items)) in batches.into_iter().enumerate() {
        let url = folder.join(&format!("batch-{n:04}.json"));
        let body = serde_json::to_vec(&items).expect("plan items serialize");
        store
            .put(&ObjectPath::from(url.key()), PutPayload::from(body))
            .await
            .map_err(|e| {
                HandlerError::internal(format!("cannot write the plan batch {url}: {e}"))
            })?;
        out.push(Batch {
            key: url.key().to_owned(),
            label,
            items: items.len(),
        });
    }
    tracing::info!(run = %event.run_id, tables = plan.tables.len(), transforms = plan.transform_count, batches = out.len(), "tables created, plan written");
    Ok(CreateTablesOutput {
        run_id: event.run_id,
        tables: plan.tables.len(),
        transform_count: plan.transform_count,
        bucket: folder.bucket().to_owned(),
        batches: out,
    })
}

/// The plan's batches, in order: every table's load (one batch, if there are tables), each
/// transform statement, the unload.
pub fn plan_batches(tables: &[TableRef], transform_count: usize) -> Vec<(String, Vec<PlanItem>)> {
    let mut batches = Vec::new();
    if !tables.is_empty() {
        let loads = tables
            .iter()
            .map(|t| PlanItem {
                step: "load".into(),
                index: t.index,
                name: format!("{}.{}", t.schema, t.table),
            })
            .collect();
        let s = if tables.len() == 1 { "" } else { "s" };
        batches.push((format!("load of {} table{s}", tables.len()), loads));
    }
    for i in 0..transform_count {
        let name = format!("transform statement {} of {transform_count}", i + 1);
        let item = PlanItem {
            step: "transform".into(),
            index: i,
            name: name.clone(),
        };
        batches.push((name, vec![item]));
    }
    let unload = PlanItem {
        step: "unload".into(),
        index: 0,
        name: "unload".into(),
    };
    batches.push(("unload".into(), vec![unload]));
    batches
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

/// `etl-statement-status` on either input ([`StatusRequest`]).
///
/// # Errors
/// As [`statement_status`] and [`run_status`].
pub async fn status(event: StatusRequest, res: &Resources) -> Result<StatusOutput, HandlerError> {
    match event {
        StatusRequest::Statement(e) => statement_status(e, res).await,
        StatusRequest::Run(e) => run_status(e, res).await,
    }
}

/// `etl-statement-status` for a run: its first failed step in the journal (`Failed`, with the
/// step id, SQLSTATE and message), else its first step still running (`Running`), else
/// `Unknown`.
///
/// # Errors
/// `EtlRetryable` when the warehouse cannot be reached; `EtlInternal` when the journal cannot be
/// read.
pub async fn run_status(
    event: RunStatusEvent,
    res: &Resources,
) -> Result<StatusOutput, HandlerError> {
    etl_core::journal::check_run_id(&event.run_id)?;
    let warehouse = res.warehouse(&event.warehouse).await?;
    let conn = warehouse.get().await?;
    let rows = conn
        .query(etl_core::sql::journal::list_steps(), &[&event.run_id])
        .await
        .map_err(|e| etl_core::Error::query("read the run's journal", &e))?;
    let step = |status: &str| {
        rows.iter()
            .find(|r| r.get::<_, String>("status") == status)
            .map(|r| {
                (
                    r.get::<_, String>("step_id"),
                    r.get::<_, Option<String>>("sqlstate"),
                    r.get::<_, Option<String>>("error"),
                )
            })
    };
    let out = if let Some((id, sqlstate, error)) = step("failed") {
        StatusOutput {
            state: "Failed".into(),
            rows: None,
            sqlstate,
            message: error,
            step: Some(id),
        }
    } else if let Some((id, _, _)) = step("running") {
        StatusOutput {
            state: "Running".into(),
            rows: None,
            sqlstate: None,
            message: Some("still running when the run failed".into()),
            step: Some(id),
        }
    } else {
        StatusOutput {
            state: "Unknown".into(),
            rows: None,
            sqlstate: None,
            message: Some(format!(
                "run {} has no failed or running step in the journal",
                event.run_id
            )),
            step: None,
        }
    };
    tracing::info!(run = %event.run_id, state = %out.state, step = ?out.step, "run status");
    Ok(out)
}
