//! Statement tracking that tells the truth: submit a statement, get a [`Handle`] (run, step, PID,
//! label, submission time, attempt), and poll, wait for or cancel it — from this process or
//! another one (a `Handle` is JSON).
//!
//! A PID alone is not the truth: PIDs are reused, Redshift's `STV_RECENTS.pid` turns to -1 when a
//! statement ends, `STV_INFLIGHT` does not show leader-node work, and no system view says
//! "Completed". So a poll [`observe`]s — the journal (`etl_meta.steps`), the session's rows in the
//! server's views, its history — and [`decide`] (a pure function, tested against every situation
//! the Redshift Database Developer Guide describes) says what the statement is doing and what to
//! do about it: journal a conclusion (conditionally: never over a committed `succeeded`, never
//! over another attempt), or end a session whose failed block would keep its locks.
//!
//! Cancellation checks the session before signalling, so a reused PID is never cancelled by
//! mistake; inside a Redshift transaction block only `pg_terminate_backend` stops a statement.

pub mod decide;
mod observe;

pub use observe::observe;

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::error::{DbError, Error, Result};
use crate::journal::{self, Status};
use crate::sql::{self, Dialect};
use crate::warehouse::Warehouse;
use decide::{Decision, Stop, from_journal};

/// Everything needed to find a submitted statement again, from any process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handle {
    /// The run.
    pub run_id: String,
    /// The step (its journal row).
    pub step_id: String,
    /// The session that runs it.
    pub pid: i32,
    /// The label its session carries (`query_group` / `application_name`).
    pub label: String,
    /// The server's clock when it was submitted (UTC); JSON `"YYYY-MM-DD HH:MM:SS.ffffff"`.
    #[serde(with = "server_time")]
    pub submitted_at: chrono::NaiveDateTime,
    /// The warehouse's dialect.
    pub dialect: Dialect,
    /// Whether the statement commits together with its journal row.
    pub in_block: bool,
    /// The step's attempt (`etl_meta.steps.attempts` after its start): the poller's conclusions
    /// concern this attempt only. `None` in handles written before attempts were tracked.
    #[serde(default)]
    pub attempt: Option<i32>,
}

/// `Handle.submitted_at` in JSON: `YYYY-MM-DD HH:MM:SS.ffffff`, as handles have always been
/// written; read with any number of fraction digits (or none).
mod server_time {
    use serde::{Deserialize as _, Deserializer, Serializer};

    const WRITE: &str = "%Y-%m-%d %H:%M:%S%.6f";
    const READ: &str = "%Y-%m-%d %H:%M:%S%.f";

    pub fn serialize<S: Serializer>(t: &chrono::NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&t.format(WRITE))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<chrono::NaiveDateTime, D::Error> {
        let text = String::deserialize(d)?;
        chrono::NaiveDateTime::parse_from_str(&text, READ).map_err(|e| {
            serde::de::Error::custom(format!(
                "submitted_at {text:?} is not YYYY-MM-DD HH:MM:SS[.ffffff]: {e}"
            ))
        })
    }
}

/// What a statement is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state")]
pub enum State {
    /// Still running.
    Running,
    /// Finished and committed.
    Succeeded {
        /// Rows it changed or returned, when known.
        rows: Option<u64>,
    },
    /// Failed (and rolled back).
    Failed {
        /// The SQLSTATE, when known.
        sqlstate: Option<String>,
        /// The server's message.
        message: String,
    },
    /// Cancelled.
    Cancelled,
    /// Nothing says what happened (e.g. a statement outside a transaction block whose session is
    /// gone on PostgreSQL, which keeps no history).
    Unknown {
        /// Why it cannot be told.
        reason: String,
    },
}

impl State {
    /// Whether the statement has ended (any state but `Running`).
    pub fn is_final(&self) -> bool {
        !matches!(self, State::Running)
    }
}

fn db(context: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| Error::query(context, &e)
}

/// Runs a simple-protocol request and returns the row count of its `index`-th command (0-based).
///
/// # Errors
/// The server's error.
pub async fn simple_query_rows(
    client: &Client,
    request: &str,
    index: usize,
) -> std::result::Result<Option<u64>, tokio_postgres::Error> {
    let stream = client.simple_query_raw(request).await?;
    futures::pin_mut!(stream);
    let mut seen = 0;
    let mut rows = None;
    while let Some(msg) = stream.next().await {
        if let SimpleQueryMessage::CommandComplete(n) = msg? {
            if seen == index {
                rows = Some(n);
            }
            seen += 1;
        }
    }
    Ok(rows)
}

/// A submitted statement still running on this process's connection. Await [`Submitted::finish`]
/// to learn how it ended; dropping it leaves the statement running on the server (which journals
/// its own success when it ran in a transaction block).
pub struct Submitted {
    /// The handle to poll or cancel it with, from anywhere.
    pub handle: Handle,
    task: tokio::task::JoinHandle<std::result::Result<Option<u64>, DbError>>,
}

impl Submitted {
    /// Waits for the statement on its own connection and journals the outcome.
    ///
    /// # Errors
    /// The statement's error; [`Error::Internal`] if the driving task panicked.
    pub async fn finish(self, warehouse: &Warehouse) -> Result<Option<u64>> {
        let outcome = self
            .task
            .await
            .map_err(|e| Error::Internal(format!("the statement's task failed: {e}")))?;
        let conn = warehouse.get().await?;
        let h = &self.handle;
        match outcome {
            Ok(rows) => {
                journal::succeed_step(&**conn, h.dialect, &h.run_id, &h.step_id, rows, None)
                    .await?;
                Ok(rows)
            }
            Err(source) => {
                let err = Error::Query {
                    context: format!("step {}", h.step_id),
                    source: Box::new(source),
                };
                let status = if err.sqlstate() == Some("57014") {
                    Status::Cancelled
                } else {
                    Status::Failed
                };
                // Conditional: a connection lost after COMMIT must not turn the committed
                // `succeeded` into `failed`.
                let message = journal::error_text(&err);
                journal::conclude_step(
                    &**conn,
                    h.dialect,
                    &h.run_id,
                    &h.step_id,
                    h.attempt,
                    status,
                    None,
                    Some((err.sqlstate(), &message)),
                )
                .await?;
                Err(err)
            }
        }
    }
}

/// Submits `statement` as step `step_id` (number `seq`) of `run_id` on a new session: journals the
/// start (PID, label), sends the statement — with its journal completion in the same transaction
/// where a block is allowed — and returns once the server has it.
///
/// # Errors
/// [`Error::Connect`], or [`Error::Query`] when the journal cannot be written.
pub async fn submit(
    warehouse: &Warehouse,
    run_id: &str,
    step_id: &str,
    seq: usize,
    statement: &str,
) -> Result<Submitted> {
    let (request, in_block) =
        sql::journal::tracked_request(warehouse.dialect(), statement, run_id, step_id);
    // In a block, `BEGIN` is the request's first command and the statement's count is the second.
    submit_request(
        warehouse,
        run_id,
        step_id,
        seq,
        request,
        in_block,
        usize::from(in_block),
    )
    .await
}

/// Starts step `step_id` (number `seq`) of `run_id` on `client`'s session: reads its PID and the
/// server's clock, journals the start, reads the attempt back (Redshift has no `RETURNING`), then
/// labels the session — last, so that the tracker's own statements do not carry the step's label
/// — and returns the handle that will find the statement the session runs next.
///
/// # Errors
/// [`Error::Query`].
pub async fn begin(
    client: &Client,
    dialect: Dialect,
    run_id: &str,
    step_id: &str,
    seq: usize,
    in_block: bool,
) -> Result<Handle> {
    let label = journal::step_label(run_id, seq);
    let row = client
        .query_one(&sql::session_info(dialect), &[])
        .await
        .map_err(db("read the session's PID"))?;
    journal::start_step(client, dialect, run_id, step_id, &label).await?;
    let attempt = journal::observe_step(client, run_id, step_id)
        .await?
        .map(|r| r.attempt);
    client
        .batch_execute(&sql::set_label(dialect, &label))
        .await
        .map_err(db("label the session"))?;
    Ok(Handle {
        run_id: run_id.to_owned(),
        step_id: step_id.to_owned(),
        pid: row.get(0),
        label,
        submitted_at: row.get(1),
        dialect,
        in_block,
        attempt,
    })
}

/// The state of a statement after a poll, and whether it ran past its timeout (it was then
/// stopped and journaled failed).
#[derive(Debug, Clone, PartialEq)]
pub struct Polled {
    /// What the statement is doing.
    pub state: State,
    /// Seconds it had run when it was stopped for running past its timeout.
    pub timed_out: Option<f64>,
}

/// Tells what the statement behind `handle` is doing (see [`poll_with_timeout`]).
///
/// # Errors
/// [`Error::Connect`] or [`Error::Query`] when the warehouse cannot be asked.
pub async fn poll(warehouse: &Warehouse, handle: &Handle) -> Result<State> {
    Ok(poll_with_timeout(warehouse, handle, None).await?.state)
}

/// Tells what the statement behind `handle` is doing, and does what that calls for: journals a
/// conclusion the server's rows prove (conditionally), ends a session whose block failed, and —
/// with `timeout` — stops a statement that has run longer (by the warehouse's clock, from its
/// start) and journals it failed.
///
/// # Errors
/// [`Error::Connect`] or [`Error::Query`] when the warehouse cannot be asked.
pub async fn poll_with_timeout(
    warehouse: &Warehouse,
    handle: &Handle,
    timeout: Option<Duration>,
) -> Result<Polled> {
    let conn = warehouse.get().await?;
    let obs = observe(&conn, handle).await?;
    let decision = decide::decide(handle, &obs, timeout);
    tracing::debug!(step = %handle.step_id, why = decision.why, "poll");
    act(&conn, handle, decision).await
}

/// Executes a decision: stop the session first (so a block cannot commit after its conclusion),
/// then journal the conclusion; when the journal already holds another one, that one is the truth.
async fn act(client: &Client, handle: &Handle, decision: Decision) -> Result<Polled> {
    if let Some(stop) = decision.stop {
        let sent = stop_session(client, handle, stop).await?;
        tracing::warn!(step = %handle.step_id, pid = handle.pid, ?stop, sent, why = decision.why, "stopped the statement's session");
    }
    let Some(c) = &decision.conclude else {
        return Ok(Polled {
            state: decision.state,
            timed_out: decision.timed_out,
        });
    };
    let changed = journal::conclude_step(
        client,
        handle.dialect,
        &handle.run_id,
        &handle.step_id,
        handle.attempt,
        c.status,
        c.rows,
        c.message.as_deref().map(|m| (None, m)),
    )
    .await?;
    if !changed
        && let Some(row) = journal::observe_step(client, &handle.run_id, &handle.step_id).await?
        && let Some(state) = from_journal(&row)
    {
        return Ok(Polled {
            state,
            timed_out: None,
        });
    }
    Ok(Polled {
        state: decision.state,
        timed_out: decision.timed_out.filter(|_| changed),
    })
}

/// Sends `stop` to the handle's session; returns whether a signal was sent. PostgreSQL checks the
/// label in the same statement (PIDs are reused); Redshift's session was checked by the decision.
async fn stop_session(client: &Client, handle: &Handle, stop: Stop) -> Result<bool> {
    match handle.dialect {
        Dialect::Postgres => {
            let q = match stop {
                Stop::Cancel => sql::cancel_labelled_postgres(),
                Stop::Terminate => sql::terminate_labelled_postgres(),
            };
            Ok(client
                .query(q, &[&handle.pid, &handle.label])
                .await
                .map_err(db("stop the statement"))?
                .iter()
                .any(|r| r.get::<_, bool>(0)))
        }
        Dialect::Redshift => {
            let q = match stop {
                Stop::Cancel => sql::cancel_statement(handle.pid),
                Stop::Terminate => sql::terminate_session(handle.pid),
            };
            client
                .batch_execute(&q)
                .await
                .map_err(db("stop the statement"))?;
            Ok(true)
        }
    }
}

/// Polls until the statement ends or `deadline` passes, backing off from 200 ms to 5 s. Returns
/// the last state (`Running` when the deadline passed).
///
/// # Errors
/// As [`poll`].
pub async fn wait(warehouse: &Warehouse, handle: &Handle, deadline: Instant) -> Result<State> {
    let mut pause = Duration::from_millis(200);
    loop {
        let state = poll(warehouse, handle).await?;
        if state.is_final() || Instant::now() + pause > deadline {
            return Ok(state);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// Cancels the statement behind `handle` if its own session still runs it ([`decide::stop_for_cancel`]:
/// not a reused PID, not a step the journal shows finished). Returns whether a signal was sent.
/// The statement then ends `Cancelled` (or `Failed`: a block that is rolled back), unless it
/// committed first.
///
/// # Errors
/// [`Error::Connect`] or [`Error::Query`].
pub async fn cancel(warehouse: &Warehouse, handle: &Handle) -> Result<bool> {
    let conn = warehouse.get().await?;
    let obs = observe(&conn, handle).await?;
    let Some(stop) = decide::stop_for_cancel(handle, &obs) else {
        return Ok(false);
    };
    let sent = stop_session(&conn, handle, stop).await?;
    if sent {
        // We know why it will end: once it has, record "cancelled" unless it committed first (or
        // its submitter, still there, recorded the outcome itself) — the conclusion is
        // conditional.
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if decide::stopped(handle, &observe(&conn, handle).await?) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        journal::conclude_step(
            &**conn,
            handle.dialect,
            &handle.run_id,
            &handle.step_id,
            handle.attempt,
            Status::Cancelled,
            None,
            Some((None, "cancelled")),
        )
        .await?;
    }
    Ok(sent)
}

/// Seconds the statement behind `handle` has run, by the warehouse's clock (the handle's time is
/// the server's).
///
/// # Errors
/// [`Error::Connect`] or [`Error::Query`].
pub async fn running_for(warehouse: &Warehouse, handle: &Handle) -> Result<f64> {
    let conn = warehouse.get().await?;
    let row = conn
        .query_one(&sql::session_info(handle.dialect), &[])
        .await
        .map_err(db("read the warehouse's clock"))?;
    let now: chrono::NaiveDateTime = row.get(1);
    Ok((now - handle.submitted_at).as_seconds_f64())
}

/// Submits a step made of several statements that must commit together — a load on Redshift:
/// `[DELETE ...;] COPY ...;` or an upsert's statements — as one request `BEGIN; <statements>;
/// <journal success>; COMMIT` (see [`sql::journal::tracked_block`]), and returns once the server
/// has it, like [`submit`]: the data and the step's journal row commit together, so the warehouse
/// records the step's success even when the submitter is gone. `statements` exclude `BEGIN` and
/// `COMMIT`; `rows_of` is the index of the statement whose row count is the step's (the COPY).
///
/// # Errors
/// [`Error::Connect`], or [`Error::Query`] when the journal cannot be written.
pub async fn submit_block(
    warehouse: &Warehouse,
    run_id: &str,
    step_id: &str,
    seq: usize,
    statements: &[&str],
    rows_of: usize,
) -> Result<Submitted> {
    let request =
        sql::journal::tracked_block(warehouse.dialect(), statements, run_id, step_id, true);
    // `BEGIN` is the request's first command.
    submit_request(warehouse, run_id, step_id, seq, request, true, rows_of + 1).await
}

/// [`submit`] for a prepared request: `in_block` says whether the request commits the journal
/// row itself, `rows_index` which command's row count is the step's.
async fn submit_request(
    warehouse: &Warehouse,
    run_id: &str,
    step_id: &str,
    seq: usize,
    request: String,
    in_block: bool,
    rows_index: usize,
) -> Result<Submitted> {
    let client = warehouse.connect_one().await?;
    let handle = begin(&client, warehouse.dialect(), run_id, step_id, seq, in_block).await?;
    let task = tokio::spawn(async move {
        let r = simple_query_rows(&client, &request, rows_index).await;
        if r.is_err() {
            let _ = client.batch_execute("ROLLBACK").await;
        }
        r.map_err(|e| DbError::from_pg(&e))
    });
    // Return once the server is running it (or already done with it), so that a poll from another
    // process finds it. (Only look: a poll now could conclude "failed" from a session that has not
    // started yet.)
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) && !task.is_finished() {
        if let Ok(conn) = warehouse.get().await
            && let Ok(obs) = observe(&conn, &handle).await
            && decide::visible(&handle, &obs)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Submitted { handle, task })
}

impl std::fmt::Debug for Submitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submitted")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

impl Submitted {
    /// Whether the statement's driver is done (the statement ended, or its connection broke):
    /// [`Submitted::finish`] then returns at once.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}
