//! Statement labels, status and cancel queries (Redshift system tables / PostgreSQL
//! `pg_stat_activity`). Ordinary queries: values are bound as `$n` parameters, never formatted in.

use super::{Dialect, push_literal};

/// The longest label Redshift keeps (`STL_QUERY.label` is cut at 30 characters).
pub const MAX_LABEL: usize = 30;

/// Tags the session's following statements with `label`: `SET query_group TO '...'` on Redshift,
/// `SET application_name TO '...'` on PostgreSQL. The label is validated by the caller
/// (`[a-z0-9_:.-]`, at most 30 characters) and quoted here regardless.
pub fn set_label(dialect: Dialect, label: &str) -> String {
    let mut out = String::from(match dialect {
        Dialect::Redshift => "SET query_group TO ",
        Dialect::Postgres => "SET application_name TO ",
    });
    push_literal(&mut out, dialect, label);
    out
}

/// The queries that tell a statement's state from its session PID, label and start time.
#[derive(Debug, Clone, Copy)]
pub struct StatusQuery {
    /// Is it still running? Parameters: `$1` pid (int4), `$2` label (text). Returns one row per
    /// running statement: `(state text, seconds float8)`.
    pub running: &'static str,
    /// What happened to it? Parameters: `$1` pid (int4), `$2` label (text), `$3` submitted-at
    /// (timestamp, UTC). Returns at most one row: `(status text, rows int8, error text)`.
    /// PostgreSQL keeps no history: `None`, the journal is the only witness.
    pub history: Option<&'static str>,
}

/// The status queries for `dialect`.
///
/// Redshift: `STV_INFLIGHT` for running statements (by pid and label — a PID alone is reused, and
/// `STV_RECENTS.pid` turns to -1 once a statement ends), `SYS_QUERY_HISTORY` for the outcome
/// (`status` in planning / queued / running / returning / failed / canceled / success).
pub fn status_query(dialect: Dialect) -> StatusQuery {
    match dialect {
        Dialect::Redshift => StatusQuery {
            running: "SELECT 'running'::text AS state, \
                      EXTRACT(EPOCH FROM (GETDATE() - starttime))::float8 AS seconds \
                      FROM stv_inflight WHERE pid = $1 AND TRIM(label) = $2",
            history: Some(
                "SELECT TRIM(status)::text AS status, returned_rows::int8 AS rows, \
                 TRIM(error_message)::text AS error \
                 FROM sys_query_history \
                 WHERE session_id = $1 AND TRIM(query_label) = $2 AND start_time >= $3 \
                 ORDER BY start_time DESC LIMIT 1",
            ),
        },
        // `active`: running; `idle in transaction (aborted)`: failed, not rolled back yet; a session
        // that is idle or gone has finished.
        Dialect::Postgres => StatusQuery {
            running: "SELECT state::text AS state, \
                      EXTRACT(EPOCH FROM (clock_timestamp() - query_start))::float8 AS seconds \
                      FROM pg_stat_activity WHERE pid = $1 AND application_name = $2 \
                      AND state IS DISTINCT FROM 'idle'",
            history: None,
        },
    }
}

/// Cancels the statement running in session `pid` (outside a transaction block):
/// `SELECT pg_cancel_backend(pid)`, which both warehouses accept (Redshift's `CANCEL pid` does the
/// same).
pub fn cancel_statement(pid: i32) -> String {
    format!("SELECT pg_cancel_backend({pid})")
}

/// Cancels the statement of session `$1` only if the session still carries label `$2` (PIDs are
/// reused). PostgreSQL: one statement returning whether a signal was sent; Redshift checks with
/// [`StatusQuery::running`] first, then uses [`cancel_statement`] or [`terminate_session`].
pub fn cancel_labelled_postgres() -> &'static str {
    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE pid = $1 AND application_name = $2"
}

/// The session's PID and the server's clock (UTC, without time zone), read when a statement is
/// submitted.
pub fn session_info(dialect: Dialect) -> String {
    format!("SELECT pg_backend_pid(), {}", super::journal::now(dialect))
}

/// Ends session `pid`, rolling back its transaction: the only cancel that works inside a Redshift
/// transaction block.
pub fn terminate_session(pid: i32) -> String {
    format!("SELECT pg_terminate_backend({pid})")
}
