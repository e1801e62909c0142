//! The journal's tables (`etl_meta`) and statements. Both dialects: Redshift has no `ON CONFLICT`,
//! no `clock_timestamp()`, and counts VARCHAR lengths in bytes, so the statements stay plain.

use super::{Dialect, push_literal};

/// The journal's schema.
pub const SCHEMA: &str = "etl_meta";

/// Statements that create the journal, idempotently. Primary keys are informational on Redshift:
/// the journal's writers keep them unique themselves.
pub fn create_journal() -> [&'static str; 6] {
    [
        "CREATE SCHEMA IF NOT EXISTS etl_meta",
        "CREATE TABLE IF NOT EXISTS etl_meta.runs (\n  \
         run_id VARCHAR(128) NOT NULL,\n  \
         job VARCHAR(64) NOT NULL,\n  \
         status VARCHAR(16) NOT NULL,\n  \
         started_at TIMESTAMP NOT NULL,\n  \
         finished_at TIMESTAMP,\n  \
         error VARCHAR(65535),\n  \
         PRIMARY KEY (run_id)\n)",
        "CREATE TABLE IF NOT EXISTS etl_meta.steps (\n  \
         run_id VARCHAR(128) NOT NULL,\n  \
         step_id VARCHAR(512) NOT NULL,\n  \
         seq INTEGER NOT NULL,\n  \
         status VARCHAR(16) NOT NULL,\n  \
         label VARCHAR(64),\n  \
         pid INTEGER,\n  \
         started_at TIMESTAMP,\n  \
         finished_at TIMESTAMP,\n  \
         rows BIGINT,\n  \
         rejected BIGINT,\n  \
         sqlstate VARCHAR(5),\n  \
         error VARCHAR(65535),\n  \
         attempts INTEGER NOT NULL,\n  \
         PRIMARY KEY (run_id, step_id)\n)",
        "CREATE TABLE IF NOT EXISTS etl_meta.load_errors (\n  \
         run_id VARCHAR(128) NOT NULL,\n  \
         step_id VARCHAR(512) NOT NULL,\n  \
         table_name VARCHAR(300) NOT NULL,\n  \
         filename VARCHAR(2048),\n  \
         line_number BIGINT,\n  \
         colname VARCHAR(300),\n  \
         position INTEGER,\n  \
         err_code INTEGER,\n  \
         err_reason VARCHAR(1024),\n  \
         raw_line VARCHAR(4096),\n  \
         raw_field_value VARCHAR(4096),\n  \
         logged_at TIMESTAMP NOT NULL\n)",
        "CREATE TABLE IF NOT EXISTS etl_meta.locks (\n  \
         job VARCHAR(64) NOT NULL,\n  \
         run_id VARCHAR(128) NOT NULL,\n  \
         host VARCHAR(256),\n  \
         client_pid INTEGER,\n  \
         session_pid INTEGER,\n  \
         started_at TIMESTAMP NOT NULL,\n  \
         PRIMARY KEY (job)\n)",
        "CREATE TABLE IF NOT EXISTS etl_meta.plans (\n  \
         run_id VARCHAR(128) NOT NULL,\n  \
         step_id VARCHAR(512) NOT NULL,\n  \
         digest VARCHAR(16) NOT NULL,\n  \
         PRIMARY KEY (run_id, step_id)\n)",
    ]
}

/// The server's clock, now (not the transaction's start): `clock_timestamp()` on PostgreSQL,
/// `GETDATE()` (the statement's start) on Redshift. UTC on both, as timestamps without time zone.
pub fn now(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Redshift => "GETDATE()",
        Dialect::Postgres => "(clock_timestamp() AT TIME ZONE 'UTC')",
    }
}

/// Starts or restarts a run. `$1` run_id, `$2` job.
pub fn insert_run(dialect: Dialect) -> String {
    format!(
        "INSERT INTO etl_meta.runs (run_id, job, status, started_at) VALUES ($1, $2, 'running', {})",
        now(dialect)
    )
}

/// Marks an existing run running again (resume). `$1` run_id. Returns the number of rows touched.
pub fn restart_run() -> &'static str {
    "UPDATE etl_meta.runs SET status = 'running', finished_at = NULL, error = NULL WHERE run_id = $1"
}

/// Finishes a run. `$1` run_id, `$2` status, `$3` error (nullable).
pub fn finish_run(dialect: Dialect) -> String {
    format!(
        "UPDATE etl_meta.runs SET status = $2, error = $3, finished_at = {} WHERE run_id = $1",
        now(dialect)
    )
}

/// The job a run belongs to. `$1` run_id.
pub fn run_job() -> &'static str {
    "SELECT job, status FROM etl_meta.runs WHERE run_id = $1"
}

/// Registers a step as pending if it is not known yet. `$1` run_id, `$2` step_id, `$3` seq.
pub fn insert_step() -> &'static str {
    "INSERT INTO etl_meta.steps (run_id, step_id, seq, status, attempts) \
     SELECT CAST($1 AS VARCHAR), CAST($2 AS VARCHAR), CAST($3 AS INTEGER), 'pending', 0 \
     WHERE NOT EXISTS (SELECT 1 FROM etl_meta.steps \
     WHERE run_id = CAST($1 AS VARCHAR) AND step_id = CAST($2 AS VARCHAR))"
}

/// The plan a run was started with: `(step_id, digest)`. `$1` run_id.
pub fn plan_digests() -> &'static str {
    "SELECT step_id, digest FROM etl_meta.plans WHERE run_id = $1"
}

/// Records one step of the plan a run was started with. `$1` run_id, `$2` step_id, `$3` digest.
pub fn insert_plan_digest() -> &'static str {
    "INSERT INTO etl_meta.plans (run_id, step_id, digest) \
     SELECT CAST($1 AS VARCHAR), CAST($2 AS VARCHAR), CAST($3 AS VARCHAR) \
     WHERE NOT EXISTS (SELECT 1 FROM etl_meta.plans \
     WHERE run_id = CAST($1 AS VARCHAR) AND step_id = CAST($2 AS VARCHAR))"
}

/// Updates the digest of a step that has not succeeded yet (fixed before a resume). `$1` run_id,
/// `$2` step_id, `$3` digest.
pub fn update_plan_digest() -> &'static str {
    "UPDATE etl_meta.plans SET digest = $3 WHERE run_id = $1 AND step_id = $2"
}

/// Every step of a run with its status: `(step_id, status)`. `$1` run_id.
pub fn step_statuses() -> &'static str {
    "SELECT step_id, status FROM etl_meta.steps WHERE run_id = $1"
}

/// Marks a step running, with the session's PID and label. `$1` run_id, `$2` step_id, `$3` label.
pub fn start_step(dialect: Dialect) -> String {
    format!(
        "UPDATE etl_meta.steps SET status = 'running', pid = pg_backend_pid(), label = $3, \
         started_at = {}, finished_at = NULL, error = NULL, sqlstate = NULL, rows = NULL, \
         rejected = NULL, attempts = attempts + 1 WHERE run_id = $1 AND step_id = $2",
        now(dialect)
    )
}

/// Marks a step succeeded: written as text (no parameters) so it can travel in the same
/// simple-protocol request as the statement it records, and commit with it.
pub fn succeed_step_inline(dialect: Dialect, run_id: &str, step_id: &str) -> String {
    let mut out = format!(
        "UPDATE etl_meta.steps SET status = 'succeeded', finished_at = {} WHERE run_id = ",
        now(dialect)
    );
    push_literal(&mut out, dialect, run_id);
    out.push_str(" AND step_id = ");
    push_literal(&mut out, dialect, step_id);
    out
}

/// The request that runs a statement for step `step_id` of `run_id`: where a transaction block is
/// allowed, `BEGIN; <statement>; <journal success>; COMMIT` in one simple-protocol request, so the
/// statement and its journal row commit together even if the client is gone by then; otherwise
/// the statement alone (see [`super::needs_own_transaction`]). Returns the request and whether the
/// journal update is in it.
pub fn tracked_request(
    dialect: Dialect,
    statement: &str,
    run_id: &str,
    step_id: &str,
) -> (String, bool) {
    if super::needs_own_transaction(statement) {
        (statement.to_owned(), false)
    } else {
        // The newline keeps a trailing `-- comment` from swallowing the `;`.
        (
            format!(
                "BEGIN;\n{statement}\n;\n{};\nCOMMIT",
                succeed_step_inline(dialect, run_id, step_id)
            ),
            true,
        )
    }
}

/// Marks a step succeeded with its row counts. `$1` run_id, `$2` step_id, `$3` rows, `$4` rejected.
/// Counts already journaled by the step's own transaction (Redshift's `pg_last_copy_count()`)
/// are kept: the start of an attempt clears them, so they are this attempt's.
pub fn succeed_step(dialect: Dialect) -> String {
    format!(
        "UPDATE etl_meta.steps SET status = 'succeeded', rows = COALESCE(rows, $3), \
         rejected = COALESCE(rejected, $4), finished_at = COALESCE(finished_at, {}) \
         WHERE run_id = $1 AND step_id = $2",
        now(dialect)
    )
}

/// Marks a step failed (or cancelled). `$1` run_id, `$2` step_id, `$3` status, `$4` sqlstate,
/// `$5` error, `$6` rejected. Never over a committed `succeeded`: a late conclusion cannot undo
/// what the warehouse committed.
pub fn fail_step(dialect: Dialect) -> String {
    format!(
        "UPDATE etl_meta.steps SET status = $3, sqlstate = $4, error = $5, rejected = $6, \
         finished_at = {} WHERE run_id = $1 AND step_id = $2 AND status <> 'succeeded'",
        now(dialect)
    )
}

/// One step's journal row. `$1` run_id, `$2` step_id. Columns: status, pid, label, started_at,
/// finished_at, rows, sqlstate, error.
pub fn step_row() -> &'static str {
    "SELECT status, pid, label, started_at, finished_at, rows, sqlstate, error \
     FROM etl_meta.steps WHERE run_id = $1 AND step_id = $2"
}

/// The columns of [`crate::journal::StepRow`], in its order.
pub const STEP_COLUMNS: &str = "step_id, status, pid, label, started_at, finished_at, rows, \
     rejected, sqlstate, error, attempts";

/// One step's row, every column ([`STEP_COLUMNS`]). `$1` run_id, `$2` step_id.
pub fn step_full_row() -> String {
    format!("SELECT {STEP_COLUMNS} FROM etl_meta.steps WHERE run_id = $1 AND step_id = $2")
}

/// Takes the job's run lock, a session-level advisory lock (PostgreSQL), without waiting:
/// `$1`, `$2` the lock's two keys (int4). Returns whether it was taken.
pub fn try_run_lock() -> &'static str {
    "SELECT pg_try_advisory_lock($1::int4, $2::int4)"
}

/// Takes the job's run lock, waiting for it (PostgreSQL). `$1`, `$2` the keys.
pub fn wait_run_lock() -> &'static str {
    "SELECT pg_advisory_lock($1::int4, $2::int4)"
}

/// Releases the job's run lock (PostgreSQL). `$1`, `$2` the keys.
pub fn release_run_lock() -> &'static str {
    "SELECT pg_advisory_unlock($1::int4, $2::int4)"
}

/// Locks the lock table for the rest of the transaction (Redshift, which has no advisory locks):
/// lock-row readers and writers are serialised.
pub fn lock_locks_table() -> &'static str {
    "LOCK etl_meta.locks"
}

/// Who holds the job's run lock: `(run_id, host, client_pid, session_pid, started_at)`. `$1` job.
pub fn lock_owner() -> &'static str {
    "SELECT run_id, host, client_pid, session_pid, started_at FROM etl_meta.locks WHERE job = $1"
}

/// Clears the job's lock row. `$1` job.
pub fn clear_lock() -> &'static str {
    "DELETE FROM etl_meta.locks WHERE job = $1"
}

/// Records the job's lock owner (after [`clear_lock`], in one transaction). `$1` job, `$2`
/// run_id, `$3` host, `$4` client pid; the session is this one.
pub fn write_lock(dialect: Dialect) -> String {
    format!(
        "INSERT INTO etl_meta.locks (job, run_id, host, client_pid, session_pid, started_at) \
         VALUES ($1, $2, $3, $4, pg_backend_pid(), {})",
        now(dialect)
    )
}

/// Releases the job's lock row if `run_id` holds it. `$1` job, `$2` run_id.
pub fn release_lock() -> &'static str {
    "DELETE FROM etl_meta.locks WHERE job = $1 AND run_id = $2"
}

/// The status of a run: `(status)`. `$1` run_id.
pub fn run_status() -> &'static str {
    "SELECT status FROM etl_meta.runs WHERE run_id = $1"
}

/// Whether a session is alive: PostgreSQL `pg_stat_activity`, Redshift `STV_SESSIONS`
/// (<https://docs.aws.amazon.com/redshift/latest/dg/r_STV_SESSIONS.html>: `process`, the session's
/// PID). `$1` pid.
pub fn session_alive(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "SELECT 1 FROM pg_stat_activity WHERE pid = $1",
        Dialect::Redshift => "SELECT 1 FROM stv_sessions WHERE process = $1",
    }
}

/// Runs, newest first. `$1` limit.
pub fn list_runs() -> &'static str {
    "SELECT run_id, job, status, started_at, finished_at, error FROM etl_meta.runs \
     ORDER BY started_at DESC LIMIT $1"
}

/// A run's steps in plan order. `$1` run_id.
pub fn list_steps() -> &'static str {
    "SELECT step_id, status, pid, label, started_at, finished_at, rows, rejected, sqlstate, error, attempts \
     FROM etl_meta.steps WHERE run_id = $1 ORDER BY seq"
}

/// Steps of a run that are running: `(step_id, pid, label)`. `$1` run_id.
pub fn running_steps() -> &'static str {
    "SELECT step_id, pid, label FROM etl_meta.steps WHERE run_id = $1 AND status = 'running'"
}

/// The columns of `etl_meta.load_errors` filled by [`insert_load_errors`], in order.
pub const LOAD_ERROR_COLUMNS: usize = 11;

/// `INSERT INTO etl_meta.load_errors (...) VALUES (...), ...` for `rows` rows of
/// [`LOAD_ERROR_COLUMNS`] parameters each (`$1`..), with the logged time from the server.
pub fn insert_load_errors(dialect: Dialect, rows: usize) -> String {
    let mut out = String::from(
        "INSERT INTO etl_meta.load_errors (run_id, step_id, table_name, filename, line_number, \
         colname, position, err_code, err_reason, raw_line, raw_field_value, logged_at) VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..LOAD_ERROR_COLUMNS {
            out.push_str(&format!("${}, ", r * LOAD_ERROR_COLUMNS + c + 1));
        }
        out.push_str(now(dialect));
        out.push(')');
    }
    out
}

/// A step's load errors, first lines first. `$1` run_id, `$2` step_id, `$3` limit.
pub fn list_load_errors() -> &'static str {
    "SELECT filename, line_number, colname, position, err_code, err_reason, raw_line, raw_field_value \
     FROM etl_meta.load_errors WHERE run_id = $1 AND step_id = $2 \
     ORDER BY filename, line_number LIMIT $3"
}

/// The request for a step of several statements that must commit together (a load on Redshift:
/// `[DELETE ...;] COPY ...;` or an upsert's statements): `BEGIN; <statements>; <journal success>;
/// COMMIT` in one simple-protocol request, so that the data and the journal row commit together
/// even if the client is gone by then. `statements` exclude `BEGIN` and `COMMIT`.
///
/// With `copy_count`, on Redshift, the journal row also records `pg_last_copy_count()`, the rows
/// loaded by the session's last COPY (Redshift's COPY command tag carries no row count; verify on
/// a cluster). PostgreSQL has no such function: the submitter records the COPY's count itself.
pub fn tracked_block(
    dialect: Dialect,
    statements: &[&str],
    run_id: &str,
    step_id: &str,
    copy_count: bool,
) -> String {
    let mut out = String::from("BEGIN;\n");
    for s in statements {
        // The newline keeps a trailing `-- comment` from swallowing the `;`.
        out.push_str(s);
        out.push_str("\n;\n");
    }
    let mut done = succeed_step_inline(dialect, run_id, step_id);
    if copy_count && dialect == Dialect::Redshift {
        done = done.replacen(
            " WHERE run_id = ",
            ", rows = pg_last_copy_count() WHERE run_id = ",
            1,
        );
    }
    out.push_str(&done);
    out.push_str(";\nCOMMIT");
    out
}

// Conditional conclusions (the tracker's): a conclusion is written only over the attempt it
// concerns and only while that attempt is unfinished, so a late `failed` can never overwrite a
// committed `succeeded`.

/// One step's row as the tracker observes it. `$1` run_id, `$2` step_id. Columns: status (text),
/// attempts (int4), rows (int8), sqlstate (text), error (text), started_at (timestamp).
pub fn observe_step() -> &'static str {
    "SELECT status, attempts, rows, sqlstate, error, started_at \
     FROM etl_meta.steps WHERE run_id = $1 AND step_id = $2"
}

/// Concludes a step — `succeeded`, `failed` or `cancelled` — only if it is still `pending` or
/// `running` and (with `attempt`) still at that attempt. `$1` run_id, `$2` step_id, `$3` status,
/// `$4` rows (int8, kept when NULL), `$5` sqlstate, `$6` error, and with `attempt` `$7` the
/// attempt (int4). Returns the number of rows changed: 0 when the step had already ended or
/// another attempt started.
pub fn conclude_step(dialect: Dialect, attempt: bool) -> String {
    let mut out = format!(
        "UPDATE etl_meta.steps SET status = $3, rows = COALESCE($4, rows), sqlstate = $5, \
         error = $6, finished_at = {} \
         WHERE run_id = $1 AND step_id = $2 AND status IN ('pending', 'running')",
        now(dialect)
    );
    if attempt {
        out.push_str(" AND attempts = $7");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::{PostgreSqlDialect, RedshiftSqlDialect};
    use sqlparser::parser::Parser;

    #[test]
    fn journal_statements_parse_in_both_dialects() {
        let mut all: Vec<String> = create_journal().iter().map(|s| s.to_string()).collect();
        for d in [Dialect::Redshift, Dialect::Postgres] {
            all.extend([
                insert_run(d),
                finish_run(d),
                start_step(d),
                succeed_step(d),
                fail_step(d),
                succeed_step_inline(d, "run-1", "transform:0:1"),
                insert_load_errors(d, 2),
                conclude_step(d, true),
                conclude_step(d, false),
            ]);
        }
        all.extend(
            [
                restart_run(),
                run_job(),
                insert_step(),
                step_statuses(),
                step_row(),
                list_runs(),
                list_steps(),
                running_steps(),
                list_load_errors(),
                observe_step(),
            ]
            .map(str::to_owned),
        );
        for s in &all {
            Parser::parse_sql(&PostgreSqlDialect {}, s).unwrap_or_else(|e| panic!("{e}: {s}"));
            Parser::parse_sql(&RedshiftSqlDialect {}, s).unwrap_or_else(|e| panic!("{e}: {s}"));
        }
    }

    #[test]
    fn inline_completion_quotes_its_values() {
        assert_eq!(
            succeed_step_inline(Dialect::Redshift, "r'1", "t\\x"),
            "UPDATE etl_meta.steps SET status = 'succeeded', finished_at = GETDATE() \
             WHERE run_id = 'r''1' AND step_id = 't\\\\x'"
        );
        assert!(insert_load_errors(Dialect::Postgres, 2).contains("($12, $13,"));
    }

    #[test]
    fn blocks_commit_the_journal_with_the_data() {
        let r = tracked_block(
            Dialect::Redshift,
            &[
                "DELETE FROM \"s\".\"t\"",
                "COPY \"s\".\"t\" FROM 's3://b/k' -- c",
            ],
            "r'1",
            "load:s.t",
            true,
        );
        assert!(
            r.starts_with("BEGIN;\nDELETE FROM \"s\".\"t\"\n;\nCOPY"),
            "{r}"
        );
        assert!(
            r.contains("-- c\n;\nUPDATE etl_meta.steps SET status = 'succeeded'"),
            "{r}"
        );
        assert!(
            r.contains("rows = pg_last_copy_count() WHERE run_id = 'r''1'"),
            "{r}"
        );
        assert!(r.ends_with(";\nCOMMIT"), "{r}");
        let p = tracked_block(Dialect::Postgres, &["DELETE FROM t"], "r", "s", true);
        assert!(!p.contains("pg_last_copy_count"), "{p}");
    }

    #[test]
    fn conclusions_are_conditional() {
        assert_eq!(
            conclude_step(Dialect::Redshift, true),
            "UPDATE etl_meta.steps SET status = $3, rows = COALESCE($4, rows), sqlstate = $5, \
             error = $6, finished_at = GETDATE() WHERE run_id = $1 AND step_id = $2 \
             AND status IN ('pending', 'running') AND attempts = $7"
        );
        assert!(
            conclude_step(Dialect::Postgres, false)
                .ends_with("AND status IN ('pending', 'running')")
        );
    }
}
