//! The journal: one row per run and per step in the warehouse's `etl_meta` schema, so that the
//! warehouse itself records what finished — even when the process that submitted a statement is
//! gone — and a rerun of the same run id skips what already succeeded.
//!
//! Tables: `etl_meta.runs` (run_id, job, status, started_at, finished_at, error),
//! `etl_meta.steps` (run_id, step_id, seq, status `pending`/`running`/`succeeded`/`failed`/`cancelled`,
//! label, pid, started_at, finished_at, rows, rejected, sqlstate, error, attempts) and
//! `etl_meta.load_errors` (like Redshift's STL_LOAD_ERRORS, per run and step). Timestamps are UTC.

use std::collections::HashSet;

use tokio_postgres::GenericClient;

use crate::error::{Error, Result};
use crate::load::LoadError;
use crate::sql::{self, Dialect, journal as q};

/// How a step or a run ended (or stands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Known, not started.
    Pending,
    /// Started and not known to have ended.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Cancelled (Ctrl-C, `etl cancel`, a timeout).
    Cancelled,
}

impl Status {
    /// The text stored in the journal.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Parses the stored text.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pending" => Status::Pending,
            "running" => Status::Running,
            "succeeded" => Status::Succeeded,
            "failed" => Status::Failed,
            "cancelled" => Status::Cancelled,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks a run id: 1 to 80 characters of letters, digits, `-`, `_`, `.`, `:` (a Step Functions
/// execution name fits).
///
/// # Errors
/// [`Error::InvalidInput`] naming the rule.
pub fn check_run_id(run_id: &str) -> Result<()> {
    let ok = !run_id.is_empty()
        && run_id.len() <= 80
        && run_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "run id",
            format!("{run_id:?} must be 1 to 80 letters, digits, '-', '_', '.' or ':'"),
        ))
    }
}

/// A new run id: `<job>-<UTC time>-<4 hex>`.
pub fn new_run_id(job: &str) -> String {
    let now = chrono::Utc::now();
    let salt = (now.timestamp_subsec_nanos() ^ std::process::id()) & 0xffff;
    let mut job: String = job.chars().take(48).collect();
    if job.is_empty() {
        job.push_str("run");
    }
    format!("{job}-{}-{salt:04x}", now.format("%Y%m%dT%H%M%SZ"))
}

/// The label a step's statements carry (`query_group` on Redshift, `application_name` on
/// PostgreSQL): `etl-<hash of the run id>-<step number>`, at most 30 characters, which is all
/// Redshift keeps.
pub fn step_label(run_id: &str, seq: usize) -> String {
    // FNV-1a: stable across versions and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in run_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("etl-{:08x}-{seq}", h as u32)
}

fn db(context: &str) -> impl Fn(tokio_postgres::Error) -> Error + '_ {
    move |e| Error::query(context, &e)
}

/// Creates the journal's schema and tables if needed (safe to run concurrently).
///
/// # Errors
/// [`Error::Query`].
pub async fn ensure<C: GenericClient>(client: &C) -> Result<()> {
    for stmt in q::create_journal() {
        // Two sessions creating the same table at once can collide on the catalog: once more.
        if let Err(e) = client.batch_execute(stmt).await {
            let code = e.code().map(|c| c.code().to_owned());
            if matches!(code.as_deref(), Some("23505" | "42P07" | "42P06")) {
                client
                    .batch_execute(stmt)
                    .await
                    .map_err(db("create the journal (etl_meta)"))?;
            } else {
                return Err(Error::query("create the journal (etl_meta)", &e));
            }
        }
    }
    Ok(())
}

/// What a run's journal said when the run (re)started.
#[derive(Debug, Clone, Default)]
pub struct RunStart {
    /// The run existed: this is a resume.
    pub resumed: bool,
    /// Steps already journaled as succeeded: a rerun skips them.
    pub succeeded: HashSet<String>,
    /// Steps journaled as running: an earlier attempt may still run them on the server.
    pub running: HashSet<String>,
}

/// Starts run `run_id` of `job`, or resumes it when it exists; registers `steps` (`(id, seq)`).
///
/// # Errors
/// [`Error::InvalidInput`] when the run id belongs to another job; [`Error::Query`].
pub async fn begin_run<C: GenericClient>(
    client: &C,
    dialect: Dialect,
    run_id: &str,
    job: &str,
    steps: &[(String, usize)],
) -> Result<RunStart> {
    check_run_id(run_id)?;
    let existing = client
        .query_opt(q::run_job(), &[&run_id])
        .await
        .map_err(db("read the journal"))?;
    let mut start = RunStart::default();
    match existing {
        Some(row) => {
            let other: String = row.get(0);
            if other != job {
                return Err(Error::invalid(
                    "run id",
                    format!(
                        "run {run_id:?} belongs to job {other:?}, not {job:?}: pick another run id"
                    ),
                ));
            }
            client
                .execute(q::restart_run(), &[&run_id])
                .await
                .map_err(db("resume the run in the journal"))?;
            start.resumed = true;
            for row in client
                .query(q::step_statuses(), &[&run_id])
                .await
                .map_err(db("read the journal"))?
            {
                let (id, status): (String, String) = (row.get(0), row.get(1));
                if status == Status::Succeeded.as_str() {
                    start.succeeded.insert(id);
                } else if status == Status::Running.as_str() {
                    start.running.insert(id);
                }
            }
        }
        None => {
            client
                .execute(&q::insert_run(dialect), &[&run_id, &job])
                .await
                .map_err(db("start the run in the journal"))?;
        }
    }
    let insert = q::insert_step();
    for (id, seq) in steps {
        let seq = i32::try_from(*seq).unwrap_or(i32::MAX);
        client
            .execute(insert, &[&run_id, id, &seq])
            .await
            .map_err(db("register the run's steps"))?;
    }
    Ok(start)
}

/// Marks a step running on this session (its PID) with `label`. Commits on its own when the client
/// is not in a transaction, so that others can see it.
///
/// # Errors
/// [`Error::Query`].
pub async fn start_step<C: GenericClient>(
    client: &C,
    dialect: Dialect,
    run_id: &str,
    step_id: &str,
    label: &str,
) -> Result<()> {
    client
        .execute(&q::start_step(dialect), &[&run_id, &step_id, &label])
        .await
        .map_err(db("journal the step's start"))?;
    Ok(())
}

/// Marks a step succeeded with its counts.
///
/// # Errors
/// [`Error::Query`].
pub async fn succeed_step<C: GenericClient>(
    client: &C,
    dialect: Dialect,
    run_id: &str,
    step_id: &str,
    rows: Option<u64>,
    rejected: Option<u64>,
) -> Result<()> {
    let rows = rows.map(|n| n as i64);
    let rejected = rejected.map(|n| n as i64);
    client
        .execute(
            &q::succeed_step(dialect),
            &[&run_id, &step_id, &rows, &rejected],
        )
        .await
        .map_err(db("journal the step's success"))?;
    Ok(())
}

/// Marks a step failed or cancelled, with the error.
///
/// # Errors
/// [`Error::Query`].
pub async fn fail_step<C: GenericClient>(
    client: &C,
    dialect: Dialect,
    run_id: &str,
    step_id: &str,
    status: Status,
    error: &Error,
    rejected: Option<u64>,
) -> Result<()> {
    let sqlstate = error.sqlstate().map(str::to_owned);
    let message = error_text(error);
    let rejected = rejected.map(|n| n as i64);
    client
        .execute(
            &q::fail_step(dialect),
            &[
                &run_id,
                &step_id,
                &status.as_str(),
                &sqlstate,
                &message,
                &rejected,
            ],
        )
        .await
        .map_err(db("journal the step's failure"))?;
    Ok(())
}

/// Records the plan a run starts with (each step's [`crate::plan::Step::digest`]), or on a resume
/// checks that the plan is the one the run was started with: a resume with a changed manifest
/// would skip steps whose meaning changed, or run new ones against old data.
///
/// # Errors
/// [`Error::InvalidInput`] naming the steps that changed, appeared or disappeared;
/// [`Error::Query`].
pub async fn check_plan<C: GenericClient>(
    client: &C,
    run_id: &str,
    digests: &[(String, String)],
) -> Result<()> {
    let rows = client
        .query(q::plan_digests(), &[&run_id])
        .await
        .map_err(db("read the run's plan"))?;
    if rows.is_empty() {
        for (id, digest) in digests {
            client
                .execute(q::insert_plan_digest(), &[&run_id, id, digest])
                .await
                .map_err(db("record the run's plan"))?;
        }
        return Ok(());
    }
    let before: std::collections::HashMap<String, String> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut changes = Vec::new();
    for (id, digest) in digests {
        match before.get(id) {
            None => changes.push(format!("{id} is new")),
            Some(d) if d != digest => changes.push(format!("{id} changed")),
            Some(_) => {}
        }
    }
    let now: HashSet<&str> = digests.iter().map(|(id, _)| id.as_str()).collect();
    let mut gone: Vec<&String> = before
        .keys()
        .filter(|id| !now.contains(id.as_str()))
        .collect();
    gone.sort();
    changes.extend(gone.into_iter().map(|id| format!("{id} is gone")));
    if changes.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = changes.iter().take(10).map(String::as_str).collect();
    Err(Error::invalid(
        "run id",
        format!(
            "run {run_id:?} was started with a different manifest or SQL ({}{}): a resume runs \
             only the plan it started with; restore the manifest and SQL, or start a new run \
             (without --run-id)",
            shown.join(", "),
            if changes.len() > shown.len() {
                format!(", and {} more", changes.len() - shown.len())
            } else {
                String::new()
            }
        ),
    ))
}

/// One step's journal row, decoded in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRow {
    /// The step.
    pub step_id: String,
    /// Its status.
    pub status: Status,
    /// The session that ran (or runs) it.
    pub pid: Option<i32>,
    /// The label its session carried.
    pub label: Option<String>,
    /// When its last attempt started (UTC).
    pub started_at: Option<chrono::NaiveDateTime>,
    /// When it ended (UTC).
    pub finished_at: Option<chrono::NaiveDateTime>,
    /// Rows loaded, changed or unloaded.
    pub rows: Option<i64>,
    /// Rows rejected by a load.
    pub rejected: Option<i64>,
    /// The failure's SQLSTATE.
    pub sqlstate: Option<String>,
    /// The failure's message.
    pub error: Option<String>,
    /// Attempts so far.
    pub attempts: i32,
}

impl StepRow {
    /// Decodes a row of [`sql::journal::STEP_COLUMNS`].
    pub fn from_row(row: &tokio_postgres::Row) -> Self {
        StepRow {
            step_id: row.get(0),
            status: Status::parse(&row.get::<_, String>(1)).unwrap_or(Status::Pending),
            pid: row.get(2),
            label: row.get(3),
            started_at: row.get(4),
            finished_at: row.get(5),
            rows: row.get(6),
            rejected: row.get(7),
            sqlstate: row.get(8),
            error: row.get(9),
            attempts: row.get(10),
        }
    }

    /// Seconds since the last attempt started, by this machine's clock (UTC).
    pub fn running_seconds(&self) -> Option<f64> {
        let started = self.started_at?;
        let now = chrono::Utc::now().naive_utc();
        Some((now - started).num_milliseconds().max(0) as f64 / 1000.0)
    }
}

/// Reads one step's journal row; `None` when the journal does not know the step.
///
/// # Errors
/// [`Error::Connect`], [`Error::Query`].
pub async fn read_step(
    warehouse: &crate::warehouse::Warehouse,
    run_id: &str,
    step_id: &str,
) -> Result<Option<StepRow>> {
    let conn = warehouse.get().await?;
    let row = conn
        .query_opt(&q::step_full_row(), &[&run_id, &step_id])
        .await
        .map_err(db("read the journal"))?;
    Ok(row.as_ref().map(StepRow::from_row))
}

/// Records a failed step — its rejected rows first, when it was a load — on a fresh connection
/// (the step's own may be broken). Best effort: a journal that cannot be written must not hide the
/// step's own error, which the caller reports.
pub async fn record_failure(
    warehouse: &crate::warehouse::Warehouse,
    run_id: &str,
    step_id: &str,
    error: &Error,
    load: Option<(&str, u64, &[LoadError])>,
) {
    let Ok(conn) = warehouse.get().await else {
        return;
    };
    let dialect = warehouse.dialect();
    let status = if error.kind() == crate::ErrorKind::Cancelled {
        Status::Cancelled
    } else {
        Status::Failed
    };
    let mut rejected = None;
    if let Some((table, n, errors)) = load {
        if !errors.is_empty() {
            let _ = insert_load_errors(&**conn, dialect, run_id, step_id, table, errors).await;
        }
        rejected = (n > 0).then_some(n);
    }
    let _ = fail_step(&**conn, dialect, run_id, step_id, status, error, rejected).await;
}

/// The error and its causes on one line, as stored in the journal.
pub fn error_text(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Finishes a run.
///
/// # Errors
/// [`Error::Query`].
pub async fn finish_run<C: GenericClient>(
    client: &C,
    dialect: Dialect,
    run_id: &str,
    status: Status,
    error: Option<&Error>,
) -> Result<()> {
    let message = error.map(error_text);
    client
        .execute(
            &q::finish_run(dialect),
            &[&run_id, &status.as_str(), &message],
        )
        .await
        .map_err(db("journal the run's end"))?;
    Ok(())
}

/// Cuts `s` to at most `max` bytes on a character boundary (VARCHAR lengths are bytes on Redshift).
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// One `etl_meta.load_errors` row's values, cut to the column sizes.
struct ErrorRow {
    file: String,
    line: i64,
    column: Option<String>,
    position: i32,
    code: i32,
    reason: String,
    raw_line: String,
    raw_field: String,
}

impl ErrorRow {
    fn new(e: &LoadError) -> Self {
        ErrorRow {
            file: cut(&e.file, 2048).to_owned(),
            line: i64::try_from(e.line).unwrap_or(i64::MAX),
            column: e.column.as_deref().map(|c| cut(c, 300).to_owned()),
            position: i32::try_from(e.position).unwrap_or(i32::MAX),
            code: i32::try_from(e.code).unwrap_or(i32::MAX),
            reason: cut(&e.reason, 1024).to_owned(),
            raw_line: cut(&e.raw_line, 4096).to_owned(),
            raw_field: cut(&e.raw_field, 4096).to_owned(),
        }
    }
}

/// Stores load errors in `etl_meta.load_errors`, in batches.
///
/// # Errors
/// [`Error::Query`].
pub async fn insert_load_errors<C: GenericClient>(
    client: &C,
    dialect: Dialect,
    run_id: &str,
    step_id: &str,
    table: &str,
    errors: &[LoadError],
) -> Result<()> {
    const BATCH: usize = 500;
    for chunk in errors.chunks(BATCH) {
        let stmt = sql::journal::insert_load_errors(dialect, chunk.len());
        let owned: Vec<ErrorRow> = chunk.iter().map(ErrorRow::new).collect();
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::new();
        for r in &owned {
            params.extend([
                &run_id as &(dyn tokio_postgres::types::ToSql + Sync),
                &step_id,
                &table,
                &r.file,
                &r.line,
                &r.column,
                &r.position,
                &r.code,
                &r.reason,
                &r.raw_line,
                &r.raw_field,
            ]);
        }
        client
            .execute(&stmt, &params)
            .await
            .map_err(db("store the load errors in etl_meta.load_errors"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_fit_redshift() {
        let l = step_label(
            "a-very-long-run-id-from-step-functions-0123456789abcdef",
            123_456,
        );
        assert!(l.len() <= sql::MAX_LABEL, "{l}");
        assert_eq!(step_label("x", 1), step_label("x", 1));
        assert_ne!(step_label("x", 1), step_label("y", 1));
    }

    #[test]
    fn run_ids() {
        assert!(check_run_id("recommendations-20260101T000000Z-00ff").is_ok());
        assert!(check_run_id(&new_run_id("recommendations")).is_ok());
        assert!(check_run_id("a'b").is_err());
        assert!(check_run_id("").is_err());
        assert!(check_run_id(&"x".repeat(81)).is_err());
    }

    #[test]
    fn cuts_on_char_boundaries() {
        assert_eq!(cut("ééé", 3), "é");
        assert_eq!(cut("abc", 5), "abc");
    }
}
