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
/// PostgreSQL): `etl-` and 11 base-32 characters of a 64-bit hash of the run id and the step
/// number — 15 characters for any step number, all of which every view keeps: `STV_INFLIGHT.label`
/// keeps 15 characters of the query group, `STL_QUERY.label` 30
/// (<https://docs.aws.amazon.com/redshift/latest/dg/r_query_group.html>), so a label compares
/// exactly everywhere. 55 bits: two (run, step) pairs share a label with probability 2^-55, and a
/// shared label matters only when the two also share a PID.
pub fn step_label(run_id: &str, seq: usize) -> String {
    // FNV-1a over the run id, a separator and the step number, then a finaliser (MurmurHash3's
    // fmix64) so that neighbouring step numbers differ in every bit. Stable across versions and
    // platforms: labels written to the journal by one version are found by the next.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in run_id
        .bytes()
        .chain([0u8])
        .chain((seq as u64).to_le_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    const DIGITS: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut label = String::with_capacity(STEP_LABEL_LEN);
    label.push_str("etl-");
    for i in 0..11 {
        label.push(char::from(DIGITS[((h >> (59 - 5 * i)) & 31) as usize]));
    }
    label
}

/// The length of every [`step_label`]: 15, what `STV_INFLIGHT.label` keeps.
pub const STEP_LABEL_LEN: usize = 15;

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
/// checks it against the plan the run was started with. What already succeeded must not have
/// changed: a resume skips those steps, so a changed (or moved, or removed) step that succeeded
/// would leave its old result under a new meaning. Steps that have not succeeded yet — the failed
/// one a user fixes, and those after it — may change: that is how a run is fixed and resumed.
///
/// # Errors
/// [`Error::InvalidInput`] naming the succeeded steps that changed or disappeared;
/// [`Error::Query`].
pub async fn check_plan<C: GenericClient>(
    client: &C,
    run_id: &str,
    digests: &[(String, String)],
    succeeded: &HashSet<String>,
) -> Result<()> {
    let rows = client
        .query(q::plan_digests(), &[&run_id])
        .await
        .map_err(db("read the run's plan"))?;
    let before: std::collections::HashMap<String, String> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut changes = Vec::new();
    for (id, digest) in digests {
        if let Some(d) = before.get(id)
            && d != digest
            && succeeded.contains(id)
        {
            changes.push(format!("{id} changed"));
        }
    }
    let now: HashSet<&str> = digests.iter().map(|(id, _)| id.as_str()).collect();
    let mut gone: Vec<&String> = before
        .keys()
        .filter(|id| !now.contains(id.as_str()) && succeeded.contains(*id))
        .collect();
    gone.sort();
    changes.extend(gone.into_iter().map(|id| format!("{id} is gone")));
    if !changes.is_empty() {
        let shown: Vec<&str> = changes.iter().take(10).map(String::as_str).collect();
        return Err(Error::invalid(
            "run id",
            format!(
                "run {run_id:?} already ran steps that the manifest or SQL now changes ({}{}): a \
                 resume skips what succeeded, so their results would not match; restore the \
                 manifest and SQL of those steps, or start a new run (without --run-id)",
                shown.join(", "),
                if changes.len() > shown.len() {
                    format!(", and {} more", changes.len() - shown.len())
                } else {
                    String::new()
                }
            ),
        ));
    }
    for (id, digest) in digests {
        match before.get(id) {
            None => {
                client
                    .execute(q::insert_plan_digest(), &[&run_id, id, digest])
                    .await
                    .map_err(db("record the run's plan"))?;
            }
            Some(d) if d != digest => {
                client
                    .execute(q::update_plan_digest(), &[&run_id, id, digest])
                    .await
                    .map_err(db("record the run's plan"))?;
            }
            Some(_) => {}
        }
    }
    Ok(())
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

/// A step's journal row as the tracker reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedStep {
    /// Its status.
    pub status: Status,
    /// How many times it was started (the attempt of the latest start).
    pub attempt: i32,
    /// Rows it changed, when known.
    pub rows: Option<i64>,
    /// The SQLSTATE of its failure.
    pub sqlstate: Option<String>,
    /// Its error.
    pub error: Option<String>,
    /// When its latest attempt started (the server's clock, UTC).
    pub started_at: Option<chrono::NaiveDateTime>,
}

/// Reads step `step_id` of `run_id`; `None` when the journal does not know it.
///
/// # Errors
/// [`Error::Query`].
pub async fn observe_step<C: GenericClient>(
    client: &C,
    run_id: &str,
    step_id: &str,
) -> Result<Option<TrackedStep>> {
    let row = client
        .query_opt(q::observe_step(), &[&run_id, &step_id])
        .await
        .map_err(db("read the journal"))?;
    Ok(row.map(|r| TrackedStep {
        status: Status::parse(&r.get::<_, String>(0)).unwrap_or(Status::Pending),
        attempt: r.get(1),
        rows: r.get(2),
        sqlstate: r.get(3),
        error: r.get(4),
        started_at: r.get(5),
    }))
}

/// Concludes step `step_id` of `run_id` as `status` (succeeded, failed or cancelled) only while it
/// is unfinished and — with `attempt` — still at that attempt: a late `failed` can never overwrite
/// a committed `succeeded`, nor a conclusion about one attempt land on the next. Returns whether
/// the row changed.
///
/// # Errors
/// [`Error::Query`].
#[allow(clippy::too_many_arguments)]
pub async fn conclude_step<C: GenericClient>(
    client: &C,
    dialect: Dialect,
    run_id: &str,
    step_id: &str,
    attempt: Option<i32>,
    status: Status,
    rows: Option<u64>,
    error: Option<(Option<&str>, &str)>,
) -> Result<bool> {
    let rows = rows.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    let sqlstate = error.and_then(|(s, _)| s).map(|s| cut(s, 5));
    let message = error.map(|(_, m)| cut(m, 65535));
    let stmt = q::conclude_step(dialect, attempt.is_some());
    let status = status.as_str();
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        vec![&run_id, &step_id, &status, &rows, &sqlstate, &message];
    if let Some(a) = &attempt {
        params.push(a);
    }
    let n = client
        .execute(&stmt, &params)
        .await
        .map_err(db("journal the step's conclusion"))?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_fit_redshift() {
        // STV_INFLIGHT keeps 15 characters of the query group, STL_QUERY 30
        // (https://docs.aws.amazon.com/redshift/latest/dg/r_query_group.html): every label fits
        // the narrower, at step 100 000 and far beyond.
        let long = "a-very-long-run-id-from-step-functions-0123456789abcdef";
        for seq in [
            1,
            9,
            10,
            99,
            100,
            101,
            99_999,
            100_000,
            100_001,
            123_456,
            usize::MAX,
        ] {
            for run in ["x", long] {
                let l = step_label(run, seq);
                assert_eq!(l.len(), STEP_LABEL_LEN, "{l}");
                assert!(l.len() <= 15 && l.len() <= sql::MAX_LABEL, "{l}");
                assert!(
                    l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                    "{l}"
                );
                // What STV_INFLIGHT (15) and STL_QUERY (30) keep is the label itself.
                assert_eq!(&l[..l.len().min(15)], l);
                assert_eq!(&l[..l.len().min(30)], l);
            }
        }
        assert_eq!(step_label("x", 1), step_label("x", 1));
        assert_ne!(step_label("x", 1), step_label("y", 1));
        assert_ne!(step_label("x", 1), step_label("x", 2));
        // "r1" step 1 and "r" step 11 must not meet through the concatenation.
        assert_ne!(step_label("r1", 1), step_label("r", 11));
        // Stable: a label journaled by this version is found by the next.
        assert_eq!(step_label("r1", 1), "etl-gnkvbkdxzs1");
        assert_eq!(step_label("run-1", 100_000), "etl-b9b3pj2za8g");
    }

    #[test]
    fn labels_are_unique_per_run_and_step_up_to_step_100_000() {
        let mut seen = HashSet::new();
        for run in [
            "recommendations-20260101T000000Z-00ff",
            "recommendations-20260101T000000Z-0100",
        ] {
            for seq in 1..=100_000 {
                assert!(
                    seen.insert(step_label(run, seq)),
                    "{run} step {seq} collides"
                );
            }
        }
        assert_eq!(seen.len(), 200_000);
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
