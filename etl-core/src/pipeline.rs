//! Runs a job on a PostgreSQL warehouse (the local rehearsal): the steps of its plan, journaled in
//! `etl_meta`, with tables loaded in parallel, transforms in order, and the unload.
//!
//! Every step is atomic and journaled: a load is one transaction (its journal row commits with
//! it); a transform statement travels in one request with its journal update (`BEGIN; stmt;
//! UPDATE etl_meta.steps ...; COMMIT`), so the warehouse records its success even if this process
//! dies meanwhile. Statements that cannot run in a transaction block (VACUUM, ...) run alone and
//! are journaled right after. A rerun with the same run id skips the steps journaled as succeeded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::job::{Job, Location};
use crate::journal::{self, Status};
use crate::load::client::{self, LoadSettings, Progress, SourceFile};
use crate::load::{LoadError, RowParser};
use crate::plan::{self, PlanOptions, Step, StepKind};
use crate::sql::{self, Dialect};
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
    report.seconds = start.elapsed().as_secs_f64();
    report
}

struct Ctx<'a> {
    job: &'a Job,
    warehouse: &'a Warehouse,
    options: &'a RunOptions,
    observer: &'a dyn Observer,
    run_id: &'a str,
    dialect: Dialect,
    timeout: Option<Duration>,
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
            ..PlanOptions::default()
        },
    )?;

    let conn = warehouse.get().await?;
    journal::ensure(&**conn).await?;
    if options.compat {
        // Redshift's functions for the transforms (NVL, DATEADD, GETDATE, ...): idempotent.
        conn.batch_execute(&format!(
            "BEGIN;\n{}\nCOMMIT",
            sql::compat::POSTGRES_COMPAT_SQL
        ))
        .await
        .map_err(|e| {
            Error::query(
                "install the Redshift compatibility functions (sql/compat/postgres.sql)",
                &e,
            )
        })?;
    }
    let ids: Vec<(String, usize)> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.clone(), i + 1))
        .collect();
    let start = journal::begin_run(&**conn, dialect, &report.run_id, &job.name, &ids).await?;
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
        warehouse,
        options,
        observer,
        run_id: &run_id,
        dialect,
        timeout: options.statement_timeout.or(job.statement_timeout),
    };
    report.steps = steps.iter().map(StepReport::new).collect();
    let skip = |i: usize, report: &mut RunReport| -> bool {
        if start.succeeded.contains(&steps[i].id) {
            let r = &mut report.steps[i];
            r.status = Status::Succeeded;
            r.skipped = true;
            observer.event(Event::StepFinished { report: r });
            true
        } else {
            false
        }
    };

    // 1. Schemas and tables.
    for (i, step) in steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind == StepKind::CreateTables)
    {
        if !skip(i, report) {
            let r = run_statements_step(&ctx, i + 1, step).await;
            finish(&ctx, &mut report.steps[i], r)?;
        }
    }

    // 2. Loads, in parallel over the pool.
    let concurrency = options
        .concurrency
        .unwrap_or(job.concurrency)
        .clamp(1, warehouse.max_size().max(1));
    let loads: Vec<usize> = steps
        .iter()
        .enumerate()
        .filter(|(i, s)| matches!(s.kind, StepKind::Load(_)) && !skip(*i, report))
        .map(|(i, _)| i)
        .collect();
    // Parser threads: the CPUs shared among the tables loading at once.
    let mut load_options = options.clone();
    if load_options.load.workers.is_none() {
        load_options.load.workers = Some(LoadSettings::auto_workers(concurrency.min(loads.len())));
    }
    let ctx = Ctx {
        options: &load_options,
        ..ctx
    };
    let ctx_ref = &ctx;
    let files_ref = &files;
    let steps_ref = &steps;
    let mut results = futures::stream::iter(loads.into_iter().map(|i| async move {
        let StepKind::Load(t) = steps_ref[i].kind else {
            unreachable!("filtered")
        };
        (
            i,
            load_step(ctx_ref, i + 1, &steps_ref[i], t, &files_ref[t]).await,
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
        if !skip(i, report) {
            let r = transform_step(&ctx, i + 1, step).await;
            finish(&ctx, &mut report.steps[i], r)?;
        }
    }

    // 4. Unload.
    for (i, step) in steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind == StepKind::Unload)
    {
        if !skip(i, report) {
            let r = unload_step(&ctx, i + 1, step).await;
            finish(&ctx, &mut report.steps[i], r)?;
        }
    }
    Ok(())
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

/// Why a statement stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interrupt {
    Cancelled,
    TimedOut,
}

/// Runs `work` on `client`'s session; on Ctrl-C or when `timeout` passes, cancels the statement
/// on the server (dropping the future would not) and waits for the work to wind down.
async fn guarded<T>(
    ctx: &Ctx<'_>,
    client: &tokio_postgres::Client,
    timeout: Option<Duration>,
    work: impl std::future::Future<Output = T>,
) -> (T, Option<Interrupt>) {
    tokio::pin!(work);
    let expiry = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => futures::future::pending::<()>().await,
        }
    };
    let interrupt = tokio::select! {
        r = &mut work => return (r, None),
        _ = ctx.options.cancel.cancelled() => Interrupt::Cancelled,
        _ = expiry => Interrupt::TimedOut,
    };
    if let Ok(tls) = crate::warehouse::tls_connector(ctx.warehouse.options()) {
        let _ = client.cancel_token().cancel_query(tls).await;
    }
    (work.await, Some(interrupt))
}

/// Turns a cancellation caused by the timeout into [`Error::Timeout`].
fn interpret(err: Error, interrupt: Option<Interrupt>, context: &str, started: Instant) -> Error {
    match (interrupt, err.kind()) {
        (Some(Interrupt::TimedOut), crate::ErrorKind::Cancelled) => Error::Timeout {
            context: context.to_owned(),
            seconds: started.elapsed().as_secs_f64(),
        },
        _ => err,
    }
}

async fn rollback(client: &tokio_postgres::Client) {
    let _ = client.batch_execute("ROLLBACK").await;
}

async fn begin_step(
    ctx: &Ctx<'_>,
    client: &tokio_postgres::Client,
    seq: usize,
    step: &Step,
) -> Result<()> {
    crate::track::begin(client, ctx.dialect, ctx.run_id, &step.id, seq, true)
        .await
        .map(drop)
}

/// A step made of plain statements in one transaction (create tables).
async fn run_statements_step(ctx: &Ctx<'_>, seq: usize, step: &Step) -> Outcome {
    let start = Instant::now();
    ctx.observer.event(Event::StepStarted { step, bytes: None });
    let conn = match ctx.warehouse.get().await {
        Ok(c) => c,
        Err(e) => return Outcome::failed(start, e),
    };
    let work = async {
        begin_step(ctx, &conn, seq, step).await?;
        for s in &step.statements {
            if s.sql == "COMMIT" {
                journal::succeed_step(&**conn, ctx.dialect, ctx.run_id, &step.id, None, None)
                    .await?;
            }
            conn.batch_execute(&s.sql)
                .await
                .map_err(|e| Error::query(&s.context, &e))?;
        }
        Ok::<_, Error>(())
    };
    let (r, interrupt) = guarded(ctx, &conn, ctx.timeout, work).await;
    match r {
        Ok(()) => Outcome::ok(start),
        Err(e) => {
            rollback(&conn).await;
            let e = interpret(e, interrupt, &step.id, start);
            journal::record_failure(ctx.warehouse, ctx.run_id, &step.id, &e, None).await;
            Outcome::failed(start, e)
        }
    }
}

/// One table: `BEGIN; [DELETE | staging ...]; COPY FROM STDIN; [upsert ...]; journal; COMMIT`.
async fn load_step(
    ctx: &Ctx<'_>,
    seq: usize,
    step: &Step,
    table_index: usize,
    files: &[SourceFile],
) -> Outcome {
    let start = Instant::now();
    let table = &ctx.job.tables[table_index];
    let total: u64 = files.iter().map(|f| f.size).sum();
    ctx.observer.event(Event::StepStarted {
        step,
        bytes: Some(total),
    });
    let parser = match RowParser::new(&table.columns, &table.format, ctx.options.load.encoding) {
        Ok(p) => Arc::new(p),
        Err(m) => {
            return Outcome::failed(
                start,
                Error::invalid(format!("format of {}", table.name), m),
            );
        }
    };
    let conn = match ctx.warehouse.get().await {
        Ok(c) => c,
        Err(e) => return Outcome::failed(start, e),
    };
    let mut loaded = None;
    let step_id = step.id.as_str();
    let progress = |p: Progress| {
        ctx.observer.event(Event::Progress {
            step: step_id,
            progress: p,
        })
    };
    let work = async {
        begin_step(ctx, &conn, seq, step)
            .await
            .map_err(|e| client::LoadFailure {
                error: e,
                rejected: 0,
                errors: Vec::new(),
            })?;
        for s in &step.statements {
            if s.copy_in {
                let r = client::copy_files(
                    &conn,
                    &s.sql,
                    table,
                    files,
                    Arc::clone(&parser),
                    ctx.options.load,
                    &progress,
                )
                .await?;
                loaded = Some(r);
                continue;
            }
            if s.sql == "COMMIT" {
                let r = loaded.as_ref();
                let journal = async {
                    if let Some(r) = r
                        && !r.errors.is_empty()
                    {
                        journal::insert_load_errors(
                            &**conn,
                            ctx.dialect,
                            ctx.run_id,
                            step_id,
                            &table.name.to_string(),
                            &r.errors,
                        )
                        .await?;
                    }
                    journal::succeed_step(
                        &**conn,
                        ctx.dialect,
                        ctx.run_id,
                        step_id,
                        r.map(|r| r.rows),
                        r.map(|r| r.rejected),
                    )
                    .await
                };
                journal.await.map_err(|e| client::LoadFailure {
                    error: e,
                    rejected: 0,
                    errors: Vec::new(),
                })?;
            }
            conn.batch_execute(&s.sql)
                .await
                .map_err(|e| client::LoadFailure {
                    error: Error::query(&s.context, &e),
                    rejected: 0,
                    errors: Vec::new(),
                })?;
        }
        Ok::<_, client::LoadFailure>(())
    };
    let (r, interrupt) = guarded(ctx, &conn, ctx.timeout, work).await;
    match r {
        Ok(()) => {
            let r = loaded.unwrap_or_default();
            Outcome {
                rows: Some(r.rows),
                rejected: r.rejected,
                load_errors: r.errors,
                bytes: r.bytes_in,
                ..Outcome::ok(start)
            }
        }
        Err(failure) => {
            rollback(&conn).await;
            let e = interpret(
                failure.error,
                interrupt,
                &format!("load {}", table.name),
                start,
            );
            let table_name = table.name.to_string();
            journal::record_failure(
                ctx.warehouse,
                ctx.run_id,
                step_id,
                &e,
                Some((&table_name, failure.rejected, &failure.errors)),
            )
            .await;
            Outcome {
                rejected: failure.rejected,
                load_errors: failure.errors,
                ..Outcome::failed(start, e)
            }
        }
    }
}

/// One transform statement. Where a transaction block is allowed, the statement and its journal
/// completion go to the server in one request and commit together.
async fn transform_step(ctx: &Ctx<'_>, seq: usize, step: &Step) -> Outcome {
    let start = Instant::now();
    ctx.observer.event(Event::StepStarted { step, bytes: None });
    let stmt = &step.statements[0];
    let conn = match ctx.warehouse.get().await {
        Ok(c) => c,
        Err(e) => return Outcome::failed(start, e),
    };
    let (request, in_block) =
        sql::journal::tracked_request(ctx.dialect, &stmt.sql, ctx.run_id, &step.id);
    let work = async {
        begin_step(ctx, &conn, seq, step).await?;
        let rows = crate::track::simple_query_rows(&conn, &request, usize::from(in_block))
            .await
            .map_err(|e| Error::query(&stmt.context, &e))?;
        journal::succeed_step(&**conn, ctx.dialect, ctx.run_id, &step.id, rows, None).await?;
        Ok::<_, Error>(rows)
    };
    let (r, interrupt) = guarded(ctx, &conn, ctx.timeout, work).await;
    match r {
        Ok(rows) => Outcome {
            rows,
            ..Outcome::ok(start)
        },
        Err(e) => {
            rollback(&conn).await;
            let e = interpret(e, interrupt, &stmt.context, start);
            journal::record_failure(ctx.warehouse, ctx.run_id, &step.id, &e, None).await;
            Outcome::failed(start, e)
        }
    }
}

/// The unload: `COPY (query) TO STDOUT` written in UNLOAD's file layout.
async fn unload_step(ctx: &Ctx<'_>, seq: usize, step: &Step) -> Outcome {
    let start = Instant::now();
    ctx.observer.event(Event::StepStarted { step, bytes: None });
    let Some(spec) = &ctx.job.unload else {
        return Outcome::ok(start);
    };
    let conn = match ctx.warehouse.get().await {
        Ok(c) => c,
        Err(e) => return Outcome::failed(start, e),
    };
    let work = async {
        begin_step(ctx, &conn, seq, step).await?;
        let report = crate::unload::unload_postgres(
            &conn,
            spec,
            &crate::unload::UnloadOptions {
                to: ctx.options.unload_to.clone(),
                ..crate::unload::UnloadOptions::default()
            },
            &ctx.options.cancel,
        )
        .await?;
        journal::succeed_step(
            &**conn,
            ctx.dialect,
            ctx.run_id,
            &step.id,
            Some(report.rows),
            None,
        )
        .await?;
        Ok::<_, Error>(report)
    };
    let (r, interrupt) = guarded(ctx, &conn, ctx.timeout, work).await;
    match r {
        Ok(report) => Outcome {
            rows: Some(report.rows),
            bytes: report.files.iter().map(|f| f.bytes).sum(),
            files: report.files.into_iter().map(|f| f.location).collect(),
            ..Outcome::ok(start)
        },
        Err(e) => {
            let e = interpret(e, interrupt, "unload", start);
            journal::record_failure(ctx.warehouse, ctx.run_id, &step.id, &e, None).await;
            Outcome::failed(start, e)
        }
    }
}
