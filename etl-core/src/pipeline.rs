//! Runs a job on a PostgreSQL warehouse (the local rehearsal): the steps of its plan, journaled in
//! `etl_meta`, with tables loaded in parallel, transforms in order, and the unload.
//!
//! Every step is atomic and journaled: a load is one transaction (its journal row commits with
//! it); a transform statement travels in one request with its journal update (`BEGIN; stmt;
//! UPDATE etl_meta.steps ...; COMMIT`), so the warehouse records its success even if this process
//! dies meanwhile. Statements that cannot run in a transaction block (VACUUM, ...) run alone and
//! are journaled right after. A rerun with the same run id skips the steps journaled as succeeded.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::exec::{Executor, Guard, Orphans, Previous};
use crate::job::{Job, Location};
use crate::journal::{self, Status};
use crate::load::LoadError;
use crate::load::client::{self, LoadSettings, Progress, SourceFile};
use crate::lock::RunLock;
use crate::plan::{self, PlanOptions, Step, StepKind};
use crate::sql::Dialect;
use crate::warehouse::Warehouse;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Resume this run (or start it with this id); a new id when `None`.
    pub run_id: Option<String>,
    /// Tables loaded at once (default: the job's `concurrency`, bounded by the pool).
    pub concurrency: Option<usize>,
    /// Parser workers per file and COPY encoding.
    pub load: LoadSettings,
    /// Per-statement timeout (default: the job's `statement_timeout_seconds`).
    pub statement_timeout: Option<Duration>,
    /// Replaces the unload target.
    pub unload_to: Option<Location>,
    /// Install the Redshift compatibility functions (`sql/compat/postgres.sql`) before running.
    pub compat: bool,
    /// Cancelled by Ctrl-C or a caller: running statements are cancelled on the server.
    pub cancel: CancellationToken,
    /// What to do about a step an earlier attempt of this run left running on the server.
    pub orphans: Orphans,
    /// When another run of the job is active on the warehouse, wait for it instead of refusing.
    pub wait: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            run_id: None,
            concurrency: None,
            load: LoadSettings::default(),
            statement_timeout: None,
            unload_to: None,
            compat: true,
            cancel: CancellationToken::new(),
            orphans: Orphans::Wait,
            wait: false,
        }
    }
}

/// What happened, as it happens.
#[derive(Debug)]
pub enum Event<'a> {
    /// The run started (or resumed, skipping `skipped` steps).
    RunStarted {
        /// The run id.
        run_id: &'a str,
        /// Whether the journal knew the run.
        resumed: bool,
        /// Steps journaled as succeeded, skipped.
        skipped: usize,
    },
    /// A step started; `bytes` is the total input size of a load.
    StepStarted {
        /// The step.
        step: &'a Step,
        /// Compressed input bytes of a load.
        bytes: Option<u64>,
    },
    /// A load's progress.
    Progress {
        /// The step.
        step: &'a str,
        /// Counts so far.
        progress: Progress,
    },
    /// Before a step runs again, an earlier attempt's statement is still running on the server
    /// (its client was killed): the run waits for it.
    WaitingForOrphan {
        /// The step.
        step: &'a Step,
        /// The session running it.
        pid: i32,
        /// How long it has run.
        seconds: f64,
    },
    /// A step ended (or was skipped).
    StepFinished {
        /// Its report.
        report: &'a StepReport,
    },
}

/// Receives [`Event`]s (progress bars, logs).
pub trait Observer: Send + Sync {
    /// Called for each event, from any task.
    fn event(&self, event: Event<'_>);
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;

impl Observer for Quiet {
    fn event(&self, _: Event<'_>) {}
}

/// How one step went.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// The step id.
    pub id: String,
    /// What it is.
    pub kind: StepKind,
    /// How it ended.
    pub status: Status,
    /// Skipped because a previous attempt of this run succeeded.
    pub skipped: bool,
    /// Wall time.
    pub seconds: f64,
    /// Rows loaded, changed or unloaded.
    pub rows: Option<u64>,
    /// Rows rejected by a load.
    pub rejected: u64,
    /// The first rejected rows.
    pub load_errors: Vec<LoadError>,
    /// Input bytes of a load, output bytes of an unload.
    pub bytes: u64,
    /// Files written by the unload.
    pub files: Vec<String>,
    /// Why it failed.
    pub error: Option<String>,
}

impl StepReport {
    fn new(step: &Step) -> Self {
        StepReport {
            id: step.id.clone(),
            kind: step.kind.clone(),
            status: Status::Pending,
            skipped: false,
            seconds: 0.0,
            rows: None,
            rejected: 0,
            load_errors: Vec::new(),
            bytes: 0,
            files: Vec::new(),
            error: None,
        }
    }
}

/// How the run went.
#[derive(Debug)]
pub struct RunReport {
    /// The run id (pass it to `--run-id` to resume).
    pub run_id: String,
    /// Whether this was a resume.
    pub resumed: bool,
    /// Every step, in plan order.
    pub steps: Vec<StepReport>,
    /// Wall time.
    pub seconds: f64,
    /// The first error; `None` when the run succeeded.
    pub error: Option<Error>,
}

/// Runs `job` on `warehouse` (PostgreSQL). Always returns a report; its `error` says whether the
/// run failed.
pub async fn run(
    job: &Job,
    warehouse: &Warehouse,
    options: RunOptions,
    observer: &dyn Observer,
) -> RunReport {
    let start = Instant::now();
    let run_id = options
        .run_id
        .clone()
        .unwrap_or_else(|| journal::new_run_id(&job.name));
    let mut report = RunReport {
        run_id: run_id.clone(),
        resumed: false,
        steps: Vec::new(),
        seconds: 0.0,
        error: None,
    };
    // One run of a job at a time: the lock is taken before the journal knows this run, and a
    // refused run writes nothing (the active run's journal rows are its own).
    let lock = match take_lock(job, warehouse, &options, &run_id).await {
        Ok(lock) => lock,
        Err(e) => {
            report.error = Some(e);
            report.seconds = start.elapsed().as_secs_f64();
            return report;
        }
    };
    if let Err(e) = run_inner(job, warehouse, &options, observer, &mut report).await {
        report.error = Some(e);
    }
    // Journal the end; a failure to do so must not hide the run's own error.
    if let Ok(client) = warehouse.get().await {
        let status = match &report.error {
            None => Status::Succeeded,
            Some(e) if e.kind() == crate::ErrorKind::Cancelled => Status::Cancelled,
            Some(_) => Status::Failed,
        };
        let _ = journal::finish_run(
            &**client,
            warehouse.dialect(),
            &run_id,
            status,
            report.error.as_ref(),
        )
        .await;
    }
    lock.release().await;
    report.seconds = start.elapsed().as_secs_f64();
    report
}

async fn take_lock(
    job: &Job,
    warehouse: &Warehouse,
    options: &RunOptions,
    run_id: &str,
) -> Result<RunLock> {
    journal::check_run_id(run_id)?;
    journal::ensure(&**warehouse.get().await?).await?;
    crate::lock::acquire(warehouse, &job.name, run_id, options.wait, &options.cancel).await
}

struct Ctx<'a> {
    job: &'a Job,
    exec: Executor<'a>,
    options: &'a RunOptions,
    observer: &'a dyn Observer,
    guard: Guard,
}

async fn run_inner(
    job: &Job,
    warehouse: &Warehouse,
    options: &RunOptions,
    observer: &dyn Observer,
    report: &mut RunReport,
) -> Result<()> {
    let dialect = warehouse.dialect();
    if dialect != Dialect::Postgres {
        return Err(Error::invalid(
            "warehouse",
            "`etl run` drives PostgreSQL; Redshift runs go through the state machine (etl start)",
        ));
    }
    job.check_postgres()?;
    // Everything the run needs must exist before anything runs.
    let mut files = Vec::new();
    for table in &job.tables {
        files.push(client::resolve_files(job, table).await?);
    }
    let steps = plan::build(
        job,
        dialect,
        &PlanOptions {
            text_copy: options.load.encoding == crate::load::CopyEncoding::Text,
            no_compat: !options.compat,
            ..PlanOptions::default()
        },
    )?;

    let conn = warehouse.get().await?;
    // The journal exists: `take_lock` created it before taking the run lock.
    if options.compat {
        // Redshift's functions for the transforms (NVL, DATEADD, GETDATE, ...): idempotent.
        crate::exec::install_compat(&conn).await?;
    }
    let ids: Vec<(String, usize)> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.clone(), i + 1))
        .collect();
    let start = journal::begin_run(&**conn, dialect, &report.run_id, &job.name, &ids).await?;
    let digests: Vec<(String, String)> = steps.iter().map(|s| (s.id.clone(), s.digest())).collect();
    journal::check_plan(&**conn, &report.run_id, &digests, &start.succeeded).await?;
    drop(conn);
    report.resumed = start.resumed;
    observer.event(Event::RunStarted {
        run_id: &report.run_id,
        resumed: start.resumed,
        skipped: start.succeeded.len(),
    });

    let run_id = report.run_id.clone();
    let ctx = Ctx {
        job,
        exec: Executor::new(job, warehouse, &run_id),
        options,
        observer,
        guard: Guard {
            cancel: options.cancel.clone(),
            timeout: options.statement_timeout.or(job.statement_timeout),
        },
    };
    report.steps = steps.iter().map(StepReport::new).collect();

    // 1. Schemas and tables.
    for (i, step) in steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind == StepKind::CreateTables)
    {
        if !ctx.settled(i, step, &start, report).await? {
            let r = create_tables_step(&ctx, i + 1, step).await;
            finish(&ctx, &mut report.steps[i], r)?;
        }
    }

    // 2. Loads, in parallel over the pool.
    let concurrency = options
        .concurrency
        .unwrap_or(job.concurrency)
        .clamp(1, warehouse.max_size().max(1));
    let mut loads = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        if matches!(step.kind, StepKind::Load(_)) && !ctx.settled(i, step, &start, report).await? {
            loads.push(i);
        }
    }
    // Parser threads: the CPUs shared among the tables loading at once.
    let mut load_settings = options.load;
    if load_settings.workers.is_none() {
        load_settings.workers = Some(LoadSettings::auto_workers(concurrency.min(loads.len())));
    }
    let ctx_ref = &ctx;
    let files_ref = &files;
    let steps_ref = &steps;
    let mut results = futures::stream::iter(loads.into_iter().map(|i| async move {
        let StepKind::Load(t) = steps_ref[i].kind else {
            unreachable!("filtered")
        };
        (
            i,
            load_step(
                ctx_ref,
                i + 1,
                &steps_ref[i],
                t,
                &files_ref[t],
                load_settings,
            )
            .await,
        )
    }))
    .buffer_unordered(concurrency);
    let mut first_error = None;
    while let Some((i, r)) = results.next().await {
        if let Err(e) = finish(&ctx, &mut report.steps[i], r) {
            first_error.get_or_insert(e);
        }
    }
    drop(results);
    if let Some(e) = first_error {
        return Err(e);
    }

    // 3. Transforms, in order.
    for (i, step) in steps
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s.kind, StepKind::Transform { .. }))
    {
        if !ctx.settled(i, step, &start, report).await? {
            let r = transform_step(&ctx, i + 1, step).await;
            finish(&ctx, &mut report.steps[i], r)?;
        }
    }

    // 4. Unload.
    for (i, step) in steps
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s.kind, StepKind::Unload { .. }))
    {
        if !ctx.settled(i, step, &start, report).await? {
            let r = unload_step(&ctx, i + 1, step).await;
            finish(&ctx, &mut report.steps[i], r)?;
        }
    }
    Ok(())
}

impl Ctx<'_> {
    /// Whether step `i` needs no run: the journal records it succeeded — now, or once the orphan
    /// an earlier attempt left running has finished (waited for, or cancelled, per
    /// [`RunOptions::orphans`]). A settled step is reported as skipped.
    async fn settled(
        &self,
        i: usize,
        step: &Step,
        start: &journal::RunStart,
        report: &mut RunReport,
    ) -> Result<bool> {
        let done = if start.succeeded.contains(&step.id) {
            true
        } else if start.running.contains(&step.id) {
            let observer = self.observer;
            let on_wait = |h: &crate::track::Handle, seconds: f64| {
                observer.event(Event::WaitingForOrphan {
                    step,
                    pid: h.pid,
                    seconds,
                });
            };
            let previous = self
                .exec
                .previous(i + 1, step, self.options.orphans, &self.guard, &on_wait)
                .await?;
            matches!(previous, Previous::Succeeded(_))
        } else {
            false
        };
        if done {
            let r = &mut report.steps[i];
            r.status = Status::Succeeded;
            r.skipped = true;
            self.observer.event(Event::StepFinished { report: r });
        }
        Ok(done)
    }
}

/// What a step produced, or how it failed.
struct Outcome {
    status: Status,
    seconds: f64,
    rows: Option<u64>,
    rejected: u64,
    load_errors: Vec<LoadError>,
    bytes: u64,
    files: Vec<String>,
    error: Option<Error>,
}

impl Outcome {
    fn ok(start: Instant) -> Self {
        Outcome {
            status: Status::Succeeded,
            seconds: start.elapsed().as_secs_f64(),
            rows: None,
            rejected: 0,
            load_errors: Vec::new(),
            bytes: 0,
            files: Vec::new(),
            error: None,
        }
    }

    fn failed(start: Instant, error: Error) -> Self {
        let status = if error.kind() == crate::ErrorKind::Cancelled {
            Status::Cancelled
        } else {
            Status::Failed
        };
        Outcome {
            status,
            error: Some(error),
            ..Outcome::ok(start)
        }
    }
}

/// Copies an outcome into the report, tells the observer, and returns the step's error.
fn finish(ctx: &Ctx<'_>, report: &mut StepReport, outcome: Outcome) -> Result<()> {
    report.status = outcome.status;
    report.seconds = outcome.seconds;
    report.rows = outcome.rows;
    report.rejected = outcome.rejected;
    report.load_errors = outcome.load_errors;
    report.bytes = outcome.bytes;
    report.files = outcome.files;
    report.error = outcome.error.as_ref().map(journal::error_text);
    ctx.observer.event(Event::StepFinished { report });
    match outcome.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The create-tables step.
async fn create_tables_step(ctx: &Ctx<'_>, seq: usize, step: &Step) -> Outcome {
    let start = Instant::now();
    ctx.observer.event(Event::StepStarted { step, bytes: None });
    match ctx.exec.create_tables(seq, step, &ctx.guard).await {
        Ok(()) => Outcome::ok(start),
        Err(e) => Outcome::failed(start, e),
    }
}

/// One table, loaded by the client ([`Executor::load_here`]).
async fn load_step(
    ctx: &Ctx<'_>,
    seq: usize,
    step: &Step,
    table_index: usize,
    files: &[SourceFile],
    settings: LoadSettings,
) -> Outcome {
    let start = Instant::now();
    let table = &ctx.job.tables[table_index];
    let total: u64 = files.iter().map(|f| f.size).sum();
    ctx.observer.event(Event::StepStarted {
        step,
        bytes: Some(total),
    });
    let step_id = step.id.as_str();
    let progress = |p: Progress| {
        ctx.observer.event(Event::Progress {
            step: step_id,
            progress: p,
        })
    };
    match ctx
        .exec
        .load_here(seq, step, table, files, settings, &ctx.guard, &progress)
        .await
    {
        Ok(r) => Outcome {
            rows: Some(r.rows),
            rejected: r.rejected,
            load_errors: r.errors,
            bytes: r.bytes_in,
            ..Outcome::ok(start)
        },
        Err(failure) => Outcome {
            rejected: failure.rejected,
            load_errors: failure.errors,
            ..Outcome::failed(start, failure.error)
        },
    }
}

/// One transform statement, submitted as the Lambda submits it and waited for here.
async fn transform_step(ctx: &Ctx<'_>, seq: usize, step: &Step) -> Outcome {
    let start = Instant::now();
    ctx.observer.event(Event::StepStarted { step, bytes: None });
    match ctx.exec.run_here(seq, step, &ctx.guard).await {
        Ok(rows) => Outcome {
            rows,
            ..Outcome::ok(start)
        },
        Err(e) => Outcome::failed(start, e),
    }
}

/// The unload: `COPY (query) TO STDOUT` written in UNLOAD's file layout.
async fn unload_step(ctx: &Ctx<'_>, seq: usize, step: &Step) -> Outcome {
    let start = Instant::now();
    ctx.observer.event(Event::StepStarted { step, bytes: None });
    match ctx
        .exec
        .unload_here(seq, step, ctx.options.unload_to.clone(), &ctx.guard)
        .await
    {
        Ok(report) => Outcome {
            rows: Some(report.rows),
            bytes: report.files.iter().map(|f| f.bytes).sum(),
            files: report.files.into_iter().map(|f| f.location).collect(),
            ..Outcome::ok(start)
        },
        Err(e) => Outcome::failed(start, e),
    }
}
