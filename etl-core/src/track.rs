//! Statement tracking that tells the truth: submit a statement, get a [`Handle`] (run, step, PID,
//! label, submission time), and poll, wait for or cancel it — from this process or another one
//! (a `Handle` is JSON).
//!
//! A PID alone is not the truth: PIDs are reused, Redshift's `STV_RECENTS.pid` turns to -1 when a
//! statement ends, and no system view says "Completed". So:
//! 1. the journal (`etl_meta.steps`) is read first: a statement submitted in a transaction block
//!    commits together with its journal row, so `succeeded` there is proof;
//! 2. the server is asked whether the session with that PID *and that label* is still running it
//!    (`pg_stat_activity` / `STV_INFLIGHT`), and on Redshift what `SYS_QUERY_HISTORY` says about it;
//! 3. the journal is read again (the statement may have finished in between), and a conclusion
//!    reached by the poller (failed, cancelled) is written back to the journal.
//!
//! Cancellation checks the label before signalling, so a reused PID is never cancelled by mistake;
//! inside a Redshift transaction block only `pg_terminate_backend` stops a statement.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::error::{DbError, Error, Result};
use crate::journal::{self, Status};
use crate::sql::{self, Dialect};
use crate::warehouse::Warehouse;

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
    /// The server's clock when it was submitted (UTC), `YYYY-MM-DD HH:MM:SS.ffffff`.
    pub submitted_at: String,
    /// The warehouse's dialect.
    pub dialect: Dialect,
    /// Whether the statement commits together with its journal row.
    pub in_block: bool,
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
                journal::fail_step(
                    &**conn, h.dialect, &h.run_id, &h.step_id, status, &err, None,
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

/// Starts step `step_id` (number `seq`) of `run_id` on `client`'s session: labels the session,
/// reads its PID and the server's clock, journals the start, and returns the handle that will find
/// the statement the session runs next.
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
    client
        .batch_execute(&sql::set_label(dialect, &label))
        .await
        .map_err(db("label the session"))?;
    let row = client
        .query_one(&sql::session_info(dialect), &[])
        .await
        .map_err(db("read the session's PID"))?;
    let at: chrono::NaiveDateTime = row.get(1);
    journal::start_step(client, dialect, run_id, step_id, &label).await?;
    Ok(Handle {
        run_id: run_id.to_owned(),
        step_id: step_id.to_owned(),
        pid: row.get(0),
        label,
        submitted_at: at.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
        dialect,
        in_block,
    })
}

/// Whether the server shows the statement running, or the journal shows it finished.
async fn is_visible(warehouse: &Warehouse, handle: &Handle) -> bool {
    let Ok(conn) = warehouse.get().await else {
        return false;
    };
    if let Ok(Some(row)) = conn
        .query_opt(sql::journal::step_row(), &[&handle.run_id, &handle.step_id])
        .await
    {
        let status: String = row.get(0);
        if status != Status::Running.as_str() {
            return true;
        }
    }
    let q = sql::status_query(handle.dialect);
    matches!(
        conn.query_opt(q.running, &[&handle.pid, &handle.label])
            .await,
        Ok(Some(_))
    )
}

/// What the journal says about the step: `(status, rows, sqlstate, error)`.
async fn journal_state(
    client: &Client,
    handle: &Handle,
) -> Result<Option<(Status, Option<i64>, Option<String>, Option<String>)>> {
    let row = client
        .query_opt(sql::journal::step_row(), &[&handle.run_id, &handle.step_id])
        .await
        .map_err(db("read the journal"))?;
    Ok(row.map(|r| {
        let status: String = r.get(0);
        (
            Status::parse(&status).unwrap_or(Status::Pending),
            r.get(5),
            r.get(6),
            r.get(7),
        )
    }))
}

fn from_journal(
    status: Status,
    rows: Option<i64>,
    sqlstate: Option<String>,
    error: Option<String>,
) -> Option<State> {
    match status {
        Status::Succeeded => Some(State::Succeeded {
            rows: rows.map(|r| r as u64),
        }),
        Status::Failed => Some(State::Failed {
            sqlstate,
            message: error.unwrap_or_default(),
        }),
        Status::Cancelled => Some(State::Cancelled),
        Status::Running | Status::Pending => None,
    }
}

/// Tells what the statement behind `handle` is doing.
///
/// # Errors
/// [`Error::Connect`] or [`Error::Query`] when the warehouse cannot be asked.
pub async fn poll(warehouse: &Warehouse, handle: &Handle) -> Result<State> {
    let conn = warehouse.get().await?;
    let client: &Client = &conn;
    let Some((status, rows, sqlstate, error)) = journal_state(client, handle).await? else {
        return Ok(State::Unknown {
            reason: format!(
                "the journal has no step {} in run {}",
                handle.step_id, handle.run_id
            ),
        });
    };
    if let Some(state) = from_journal(status, rows, sqlstate, error) {
        return Ok(state);
    }
    let q = sql::status_query(handle.dialect);
    let running = client
        .query_opt(q.running, &[&handle.pid, &handle.label])
        .await
        .map_err(db("ask the server about the statement"))?;
    if let Some(row) = running {
        let state: String = row.get(0);
        if state.starts_with("idle in transaction") {
            // Failed (or stuck) inside its block; the submitter will roll it back or is gone.
            if state.contains("aborted") {
                return conclude(
                    client,
                    handle,
                    Status::Failed,
                    "the statement failed (its transaction is aborted)",
                )
                .await;
            }
        }
        return Ok(State::Running);
    }
    // Not running. The journal again: it may have committed in between.
    if let Some((status, rows, sqlstate, error)) = journal_state(client, handle).await?
        && let Some(state) = from_journal(status, rows, sqlstate, error)
    {
        return Ok(state);
    }
    if let Some(history) = q.history {
        let at =
            chrono::NaiveDateTime::parse_from_str(&handle.submitted_at, "%Y-%m-%d %H:%M:%S%.f")
                .map_err(|e| {
                    Error::invalid(
                        "handle",
                        format!("submitted_at {:?}: {e}", handle.submitted_at),
                    )
                })?;
        let row = client
            .query_opt(history, &[&handle.pid, &handle.label, &at])
            .await
            .map_err(db("read SYS_QUERY_HISTORY"))?;
        if let Some(row) = row {
            let status: String = row.get(0);
            let rows: Option<i64> = row.get(1);
            let error: Option<String> = row.get(2);
            return match status.as_str() {
                "success" if handle.in_block => {
                    // The statement succeeded but its block did not commit the journal row.
                    conclude(
                        client,
                        handle,
                        Status::Failed,
                        "the statement finished but its transaction did not commit",
                    )
                    .await
                }
                "success" => {
                    journal::succeed_step(
                        client,
                        handle.dialect,
                        &handle.run_id,
                        &handle.step_id,
                        rows.map(|r| r as u64),
                        None,
                    )
                    .await?;
                    Ok(State::Succeeded {
                        rows: rows.map(|r| r as u64),
                    })
                }
                "failed" => {
                    conclude(
                        client,
                        handle,
                        Status::Failed,
                        error.as_deref().unwrap_or("failed"),
                    )
                    .await
                }
                "canceled" | "cancelled" => {
                    conclude(client, handle, Status::Cancelled, "cancelled").await
                }
                _ => Ok(State::Running), // planning, queued, running, returning
            };
        }
    }
    if handle.in_block {
        // Its session is idle or gone and the journal row did not commit: the block rolled back.
        conclude(client, handle, Status::Failed, "the statement's session ended without committing it (it failed, was cancelled, or the session died)").await
    } else {
        Ok(State::Unknown {
            reason: "the statement ran outside a transaction block and its session is gone; \
                     PostgreSQL keeps no history to tell how it ended"
                .into(),
        })
    }
}

/// Writes the poller's conclusion to the journal and returns it as a state.
async fn conclude(
    client: &Client,
    handle: &Handle,
    status: Status,
    message: &str,
) -> Result<State> {
    let err = Error::Query {
        context: format!("step {}", handle.step_id),
        source: Box::new(DbError {
            sqlstate: None,
            severity: None,
            message: message.to_owned(),
            detail: None,
            hint: None,
            position: None,
        }),
    };
    journal::fail_step(
        client,
        handle.dialect,
        &handle.run_id,
        &handle.step_id,
        status,
        &err,
        None,
    )
    .await?;
    Ok(match status {
        Status::Cancelled => State::Cancelled,
        _ => State::Failed {
            sqlstate: None,
            message: message.to_owned(),
        },
    })
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

/// Cancels the statement behind `handle` if its session still carries the handle's label.
/// Returns whether a signal was sent. The statement then ends `Cancelled` (or `Failed`: a block
/// that is rolled back).
///
/// # Errors
/// [`Error::Connect`] or [`Error::Query`].
pub async fn cancel(warehouse: &Warehouse, handle: &Handle) -> Result<bool> {
    let conn = warehouse.get().await?;
    let sent = match handle.dialect {
        Dialect::Postgres => conn
            .query(
                sql::cancel_labelled_postgres(),
                &[&handle.pid, &handle.label],
            )
            .await
            .map_err(db("cancel the statement"))?
            .iter()
            .any(|r| r.get::<_, bool>(0)),
        Dialect::Redshift => {
            let q = sql::status_query(Dialect::Redshift);
            let running = conn
                .query_opt(q.running, &[&handle.pid, &handle.label])
                .await
                .map_err(db("ask the server about the statement"))?;
            if running.is_none() {
                false
            } else {
                // Inside a transaction block CANCEL does nothing on Redshift: end the session.
                let stop = if handle.in_block {
                    sql::terminate_session(handle.pid)
                } else {
                    sql::cancel_statement(handle.pid)
                };
                conn.batch_execute(&stop)
                    .await
                    .map_err(db("cancel the statement"))?;
                true
            }
        }
    };
    if sent {
        // We know why it will end: once it has, record "cancelled" unless it committed first (or
        // its submitter, still there, recorded the outcome itself).
        let q = sql::status_query(handle.dialect);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            let still = conn
                .query_opt(q.running, &[&handle.pid, &handle.label])
                .await
                .map_err(db("ask the server about the statement"))?;
            if still.is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some((Status::Running | Status::Pending, ..)) = journal_state(&conn, handle).await? {
            conclude(&conn, handle, Status::Cancelled, "cancelled").await?;
        }
    }
    Ok(sent)
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
        if is_visible(warehouse, &handle).await {
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
