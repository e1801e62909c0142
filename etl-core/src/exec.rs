//! Executing one step of a plan, with its journal writes: the code the local run ([`crate::pipeline`])
//! and the Lambda functions ([`crate::steps`]) share, so that the rehearsal runs what the cloud runs.
//! The callers differ in orchestration only (order, parallelism, waiting here or handing a handle
//! back to the state machine), never in how a step executes.
//!
//! Each function follows the step's [`Body`]; none inspects SQL text.
//!
//! - [`Executor::create_tables`]: the create-tables transaction, which commits its journal row;
//! - [`Executor::load_here`]: a client-side load (PostgreSQL): `BEGIN; [DELETE | staging ...];
//!   COPY ... FROM STDIN` fed from the table's files; `[upsert ...]; ANALYZE`, rejected rows and the
//!   journal row, `COMMIT`;
//! - [`Executor::submit`]: a server-side step (a transform statement, a Redshift load or UNLOAD)
//!   submitted on its own session with its journal completion in the same request where a block
//!   is allowed ([`track::submit`]); [`Executor::run_here`] waits for it, with the timeout and
//!   cancellation;
//! - [`Executor::unload_here`]: the client-side unload (PostgreSQL) into UNLOAD's file layout;
//! - [`Executor::previous`]: what an earlier attempt of the step left, waiting for (or cancelling)
//!   an orphan that still runs on the server before the step may run again.
//!
//! Every in-process step takes the same [`Guard`] (Ctrl-C or a caller's cancel, a statement timeout):
//! the statement is cancelled on the server, never only dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind, Result};
use crate::job::{Job, Location, Table};
use crate::journal::{self, Status};
use crate::load::RowParser;
use crate::load::client::{self, LoadFailure, LoadReport, LoadSettings, Progress, SourceFile};
use crate::plan::{Body, Step, StepKind};
use crate::sql::{self, Dialect};
use crate::track::{self, Handle, Submitted};
use crate::unload::{UnloadOptions, UnloadReport};
use crate::warehouse::Warehouse;

/// Installs the Redshift compatibility functions (`sql/compat/postgres.sql`: NVL, DATEADD,
/// GETDATE, ...) on a PostgreSQL warehouse, in one transaction. Idempotent.
///
/// # Errors
/// [`Error::Query`] when the server refuses (e.g. no CREATE privilege on schema `public`).
pub async fn install_compat(client: &Client) -> Result<()> {
    client
        .batch_execute(&sql::compat::install_script())
        .await
        .map_err(|e| {
            Error::query(
                "install the Redshift compatibility functions (sql/compat/postgres.sql)",
                &e,
            )
        })
}

/// When an in-process step must stop early: a cancel (Ctrl-C, a caller) or a timeout.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// Cancelled by Ctrl-C or a caller.
    pub cancel: CancellationToken,
    /// The longest a statement may run.
    pub timeout: Option<Duration>,
}

/// Why a statement stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interrupt {
    Cancelled,
    TimedOut,
}

/// What to do about a step an earlier attempt left `running` while its statement still runs on
/// the server (its client was killed, or a Lambda timed out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Orphans {
    /// Wait for it, then take its outcome from the journal (the default).
    #[default]
    Wait,
    /// Cancel it, then run the step again.
    Cancel,
    /// Leave it and report it as running (the state machine polls it).
    Report,
}

/// What an earlier attempt of a step left.
#[derive(Debug)]
pub enum Previous {
    /// Never started, or ended without success: run the step.
    Run,
    /// Succeeded (the journal says so, committed).
    Succeeded(Handle),
    /// Still running on the server ([`Orphans::Report`] only).
    Running(Handle),
}

/// What a client-side load did.
pub type LoadOutcome = std::result::Result<LoadReport, LoadFailure>;

/// Runs steps of one run of a job on one warehouse.
#[derive(Debug, Clone, Copy)]
pub struct Executor<'a> {
    /// The job.
    pub job: &'a Job,
    /// The warehouse.
    pub warehouse: &'a Warehouse,
    /// The run.
    pub run_id: &'a str,
}

impl<'a> Executor<'a> {
    /// An executor for `run_id` of `job` on `warehouse`.
    pub fn new(job: &'a Job, warehouse: &'a Warehouse, run_id: &'a str) -> Self {
        Executor {
            job,
            warehouse,
            run_id,
        }
    }

    fn dialect(&self) -> Dialect {
        self.warehouse.dialect()
    }

    /// What an earlier attempt of `step` (number `seq`) left. A step journaled `running` whose
    /// statement the server still runs (same PID and label) is an orphan: with
    /// [`Orphans::Wait`] this waits for it (telling `on_wait` once, with the handle), then reads
    /// the journal again; with [`Orphans::Cancel`] it cancels it first. A `running` row whose
    /// session is gone is concluded by the tracker (failed, or succeeded when it committed).
    ///
    /// # Errors
    /// [`Error::Connect`], [`Error::Query`].
    pub async fn previous(
        &self,
        seq: usize,
        step: &Step,
        orphans: Orphans,
        guard: &Guard,
        on_wait: &(dyn Fn(&Handle, f64) + Send + Sync),
    ) -> Result<Previous> {
        let Some((row, handle)) = self.journaled(seq, step).await? else {
            return Ok(Previous::Run);
        };
        match row.status {
            Status::Succeeded => return Ok(Previous::Succeeded(handle)),
            Status::Running => {}
            Status::Pending | Status::Failed | Status::Cancelled => return Ok(Previous::Run),
        }
        let mut told = false;
        let started = Instant::now();
        loop {
            match track::poll(self.warehouse, &handle).await? {
                track::State::Running => match orphans {
                    Orphans::Report => return Ok(Previous::Running(handle)),
                    Orphans::Cancel => {
                        track::cancel(self.warehouse, &handle).await?;
                        tokio::time::sleep(poll_pause(started.elapsed())).await;
                    }
                    Orphans::Wait => {
                        if !told {
                            on_wait(&handle, row.running_seconds().unwrap_or(0.0));
                            told = true;
                        }
                        tokio::select! {
                            () = guard.cancel.cancelled() => {
                                return Err(Error::Cancelled {
                                    context: format!("waiting for {}", step.id),
                                });
                            }
                            () = tokio::time::sleep(poll_pause(started.elapsed())) => {}
                        }
                    }
                },
                track::State::Succeeded { .. } => return Ok(Previous::Succeeded(handle)),
                _ => return Ok(Previous::Run),
            }
        }
    }

    /// The step's journal row and the handle that finds its last attempt; `None` when the journal
    /// does not know the step.
    ///
    /// # Errors
    /// [`Error::Connect`], [`Error::Query`].
    pub async fn journaled(
        &self,
        seq: usize,
        step: &Step,
    ) -> Result<Option<(journal::StepRow, Handle)>> {
        let Some(row) = journal::read_step(self.warehouse, self.run_id, &step.id).await? else {
            return Ok(None);
        };
        let handle = Handle {
            run_id: self.run_id.to_owned(),
            step_id: step.id.clone(),
            pid: row.pid.unwrap_or(0),
            label: row
                .label
                .clone()
                .unwrap_or_else(|| journal::step_label(self.run_id, seq)),
            submitted_at: row.started_at.unwrap_or_default(),
            dialect: self.dialect(),
            in_block: in_block(step),
            attempt: Some(row.attempts),
        };
        Ok(Some((row, handle)))
    }

    /// Journals the start of `step` (number `seq`) on `client`'s session and returns its handle.
    async fn begin(&self, client: &Client, seq: usize, step: &Step) -> Result<Handle> {
        track::begin(client, self.dialect(), self.run_id, &step.id, seq, true).await
    }

    /// The create-tables step: its statements and its journal success in one transaction, so the
    /// tables exist exactly when the journal says so.
    ///
    /// # Errors
    /// The failing statement's [`Error::Query`] (journaled), [`Error::Cancelled`],
    /// [`Error::Timeout`], [`Error::Connect`].
    pub async fn create_tables(&self, seq: usize, step: &Step, guard: &Guard) -> Result<()> {
        let Body::Transaction(statements) = &step.body else {
            return Err(Error::Internal(format!("{} is not a transaction", step.id)));
        };
        let start = Instant::now();
        let conn = self.warehouse.get().await?;
        let work = async {
            // The journal's `running` (PID, label) commits first, so that others can see it.
            self.begin(&conn, seq, step).await?;
            conn.batch_execute(sql::BEGIN)
                .await
                .map_err(|e| Error::query(&step.id, &e))?;
            for s in statements {
                conn.batch_execute(&s.sql)
                    .await
                    .map_err(|e| Error::query(&s.context, &e))?;
            }
            journal::succeed_step(&**conn, self.dialect(), self.run_id, &step.id, None, None)
                .await?;
            conn.batch_execute(sql::COMMIT)
                .await
                .map_err(|e| Error::query(&step.id, &e))?;
            Ok::<_, Error>(())
        };
        let (r, interrupt) = guarded(self.warehouse, guard, &conn, work).await;
        if let Err(e) = r {
            rollback(&conn).await;
            drop(conn);
            let e = interpret(e, interrupt, &step.id, start);
            journal::record_failure(self.warehouse, self.run_id, &step.id, &e, None).await;
            return Err(e);
        }
        Ok(())
    }

    /// A client-side load (PostgreSQL): the step's transaction with its `COPY ... FROM STDIN`
    /// fed from `files`, then `ANALYZE` of the table (the planner's statistics, as Redshift's COPY
    /// keeps them), the rejected rows and the journal row, committed together. On failure the
    /// transaction is rolled back and the failure journaled (with the rejected rows).
    #[allow(clippy::too_many_arguments)] // the load's inputs, each distinct; a struct would only rename them
    pub async fn load_here(
        &self,
        seq: usize,
        step: &Step,
        table: &Table,
        files: &[SourceFile],
        settings: LoadSettings,
        guard: &Guard,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> LoadOutcome {
        let start = Instant::now();
        let failure = |error: Error| LoadFailure {
            error,
            rejected: 0,
            errors: Vec::new(),
        };
        let Body::Load {
            statements,
            copy,
            client_side: true,
            ..
        } = &step.body
        else {
            return Err(failure(Error::Internal(format!(
                "{} is not a client-side load",
                step.id
            ))));
        };
        let parser = RowParser::new(&table.columns, &table.format, settings.encoding)
            .map(Arc::new)
            .map_err(|m| failure(Error::invalid(format!("format of {}", table.name), m)))?;
        let conn = self.warehouse.get().await.map_err(failure)?;
        let dialect = self.dialect();
        let mut loaded: Option<LoadReport> = None;
        let work = async {
            let q = |context: &str, e: tokio_postgres::Error| failure(Error::query(context, &e));
            // The journal's `running` (PID, label) commits first, so that others can see it.
            self.begin(&conn, seq, step).await.map_err(failure)?;
            conn.batch_execute(sql::BEGIN)
                .await
                .map_err(|e| q(&step.id, e))?;
            for (i, s) in statements.iter().enumerate() {
                if i == *copy {
                    let r = client::copy_files(
                        &conn,
                        &s.sql,
                        table,
                        files,
                        Arc::clone(&parser),
                        settings,
                        progress,
                    )
                    .await?;
                    loaded = Some(r);
                } else {
                    conn.batch_execute(&s.sql)
                        .await
                        .map_err(|e| q(&s.context, e))?;
                }
            }
            let r = loaded.as_ref();
            if let Some(r) = r
                && !r.errors.is_empty()
            {
                journal::insert_load_errors(
                    &**conn,
                    dialect,
                    self.run_id,
                    &step.id,
                    &table.name.to_string(),
                    &r.errors,
                )
                .await
                .map_err(failure)?;
            }
            journal::succeed_step(
                &**conn,
                dialect,
                self.run_id,
                &step.id,
                r.map(|r| r.rows),
                r.map(|r| r.rejected),
            )
            .await
            .map_err(failure)?;
            conn.batch_execute(sql::COMMIT)
                .await
                .map_err(|e| q(&step.id, e))?;
            Ok::<_, LoadFailure>(())
        };
        let (r, interrupt) = guarded(self.warehouse, guard, &conn, work).await;
        match r {
            Ok(()) => Ok(loaded.unwrap_or_default()),
            Err(f) => {
                rollback(&conn).await;
                drop(conn);
                let error = interpret(f.error, interrupt, &format!("load {}", table.name), start);
                let name = table.name.to_string();
                journal::record_failure(
                    self.warehouse,
                    self.run_id,
                    &step.id,
                    &error,
                    Some((&name, f.rejected, &f.errors)),
                )
                .await;
                Err(LoadFailure { error, ..f })
            }
        }
    }

    /// Submits a server-side step on its own session and returns once the server has it: a
    /// transform statement (with its journal completion in the same request where a block is
    /// allowed), a Redshift load (its transaction, `pg_last_copy_count()` and journal row in one
    /// request), or a Redshift UNLOAD.
    ///
    /// # Errors
    /// [`Error::Connect`], [`Error::Query`] (the journal), [`Error::Internal`] for a client-side
    /// step.
    pub async fn submit(&self, seq: usize, step: &Step) -> Result<Submitted> {
        match &step.body {
            Body::Statement { statement, .. }
            | Body::Unload {
                statement,
                client_side: false,
            } => track::submit(self.warehouse, self.run_id, &step.id, seq, &statement.sql).await,
            Body::Load {
                statements,
                copy,
                client_side: false,
                ..
            } => {
                let inner: Vec<&str> = statements.iter().map(|s| s.sql.as_str()).collect();
                track::submit_block(self.warehouse, self.run_id, &step.id, seq, &inner, *copy).await
            }
            _ => Err(Error::Internal(format!(
                "{} runs on the client, not as a submitted statement",
                step.id
            ))),
        }
    }

    /// Submits a server-side step ([`Executor::submit`]) and waits for it here, cancelling it on
    /// the server when `guard` fires. Returns its row count.
    ///
    /// # Errors
    /// The statement's [`Error::Query`], [`Error::Cancelled`], [`Error::Timeout`].
    pub async fn run_here(&self, seq: usize, step: &Step, guard: &Guard) -> Result<Option<u64>> {
        let start = Instant::now();
        let submitted = self.submit(seq, step).await?;
        let handle = submitted.handle.clone();
        let finish = submitted.finish(self.warehouse);
        tokio::pin!(finish);
        let expiry = async {
            match guard.timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => futures::future::pending::<()>().await,
            }
        };
        let context = statement_context(step);
        let interrupt = tokio::select! {
            r = &mut finish => return r.map_err(|e| reword(e, &context, None)),
            () = guard.cancel.cancelled() => Interrupt::Cancelled,
            () = expiry => Interrupt::TimedOut,
        };
        let _ = track::cancel(self.warehouse, &handle).await;
        let r = finish.await;
        match r {
            Ok(rows) => Ok(rows),
            Err(e) => {
                let e = reword(e, &context, Some(interrupt));
                let e = interpret(e, Some(interrupt), &context, start);
                if matches!(e, Error::Timeout { .. }) {
                    // The cancel was this run's timeout: the step failed (the tracker recorded
                    // only that it was cancelled).
                    journal::record_failure(self.warehouse, self.run_id, &step.id, &e, None).await;
                }
                Err(e)
            }
        }
    }

    /// The client-side unload (PostgreSQL): the plan's `COPY (query) TO STDOUT` written in
    /// UNLOAD's file layout, to `to` or the job's `unload.to`, and its journal row. Files of a
    /// failed or cancelled unload are removed.
    ///
    /// # Errors
    /// [`Error::Query`], [`Error::Storage`], [`Error::Io`], [`Error::Cancelled`],
    /// [`Error::Timeout`] (journaled).
    pub async fn unload_here(
        &self,
        seq: usize,
        step: &Step,
        to: Option<Location>,
        guard: &Guard,
    ) -> Result<UnloadReport> {
        let (Some(spec), StepKind::Unload { query }) = (&self.job.unload, &step.kind) else {
            return Err(Error::Internal(format!("{} is not an unload", step.id)));
        };
        let start = Instant::now();
        let conn = self.warehouse.get().await?;
        let options = UnloadOptions {
            to,
            query: Some(query.clone()),
            ..UnloadOptions::default()
        };
        // The unload stops at once on a cancel (and deletes what it wrote); `guarded` also
        // cancels the statement on the server.
        let stop = guard.cancel.child_token();
        let work = async {
            self.begin(&conn, seq, step).await?;
            let report = crate::unload::unload_postgres(&conn, spec, &options, &stop).await?;
            journal::succeed_step(
                &**conn,
                self.dialect(),
                self.run_id,
                &step.id,
                Some(report.rows),
                None,
            )
            .await?;
            Ok::<_, Error>(report)
        };
        let timed = Guard {
            cancel: stop.clone(),
            timeout: guard.timeout,
        };
        let (r, interrupt) = guarded(self.warehouse, &timed, &conn, work).await;
        match r {
            Ok(report) => Ok(report),
            Err(e) => {
                drop(conn);
                let e = interpret(e, interrupt, "unload", start);
                journal::record_failure(self.warehouse, self.run_id, &step.id, &e, None).await;
                Err(e)
            }
        }
    }
}

/// Whether the step's statement commits together with its journal row.
pub fn in_block(step: &Step) -> bool {
    match &step.body {
        Body::Transaction(_) | Body::Load { .. } => true,
        Body::Statement { in_block, .. } => *in_block,
        Body::Unload { client_side, .. } => *client_side,
    }
}

fn statement_context(step: &Step) -> String {
    match &step.body {
        Body::Statement { statement, .. } | Body::Unload { statement, .. } => {
            statement.context.clone()
        }
        _ => step.id.clone(),
    }
}

/// A submitted statement's error, told with the statement's context. A cancel (57014) is this
/// run's cancellation only when this run interrupted it; cancelled by someone else, it is a failed
/// statement with the server's message.
fn reword(err: Error, context: &str, interrupt: Option<Interrupt>) -> Error {
    match err {
        Error::Query { source, .. } => {
            if interrupt.is_some() && source.sqlstate.as_deref() == Some("57014") {
                Error::Cancelled {
                    context: context.to_owned(),
                }
            } else {
                Error::Query {
                    context: context.to_owned(),
                    source,
                }
            }
        }
        other => other,
    }
}

/// How long to wait between polls of an orphan: 200 ms, growing to 5 s.
fn poll_pause(waited: Duration) -> Duration {
    let ms = 200 + waited.as_millis() / 4;
    Duration::from_millis(ms.min(5_000) as u64)
}

/// Runs `work` on `client`'s session; when `guard` fires (a cancel, or the timeout), cancels the
/// statement on the server (dropping the future would not) and waits for the work to wind down.
async fn guarded<T>(
    warehouse: &Warehouse,
    guard: &Guard,
    client: &Client,
    work: impl std::future::Future<Output = T>,
) -> (T, Option<Interrupt>) {
    tokio::pin!(work);
    let expiry = async {
        match guard.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => futures::future::pending::<()>().await,
        }
    };
    let interrupt = tokio::select! {
        r = &mut work => return (r, None),
        () = guard.cancel.cancelled() => Interrupt::Cancelled,
        () = expiry => Interrupt::TimedOut,
    };
    if let Ok(tls) = crate::warehouse::tls_connector(warehouse.options()) {
        let _ = client.cancel_token().cancel_query(tls).await;
    }
    (work.await, Some(interrupt))
}

/// Turns a cancellation caused by the timeout into [`Error::Timeout`].
fn interpret(err: Error, interrupt: Option<Interrupt>, context: &str, started: Instant) -> Error {
    match (interrupt, err.kind()) {
        (Some(Interrupt::TimedOut), ErrorKind::Cancelled) => Error::Timeout {
            context: context.to_owned(),
            seconds: started.elapsed().as_secs_f64(),
        },
        _ => err,
    }
}

async fn rollback(client: &Client) {
    let _ = client.batch_execute(sql::ROLLBACK).await;
}
