//! Statement labels, and the queries the tracker observes a statement with (Redshift system views /
//! PostgreSQL `pg_stat_activity`), cancels it with, and ends its session with. Ordinary queries:
//! values are bound as `$n` parameters, never formatted in.
//!
//! The queries only gather rows; what they mean is decided by `track::decide`, a pure function.
//! Every Redshift query reads only columns its view's page in the Amazon Redshift Database
//! Developer Guide documents, with no expression on them (the golden test checks each column
//! against the page):
//!
//! | query | view | page |
//! |---|---|---|
//! | [`redshift_session`] | `STV_SESSIONS` | <https://docs.aws.amazon.com/redshift/latest/dg/r_STV_SESSIONS.html> |
//! | [`redshift_inflight`] | `STV_INFLIGHT` | <https://docs.aws.amazon.com/redshift/latest/dg/r_STV_INFLIGHT.html> |
//! | [`redshift_recents`] | `STV_RECENTS` | <https://docs.aws.amazon.com/redshift/latest/dg/r_STV_RECENTS.html> |
//! | [`redshift_history`] | `SYS_QUERY_HISTORY` | <https://docs.aws.amazon.com/redshift/latest/dg/SYS_QUERY_HISTORY.html> |
//! | [`redshift_transactions`] | `SYS_TRANSACTION_HISTORY`, `SYS_QUERY_HISTORY` | <https://docs.aws.amazon.com/redshift/latest/dg/SYS_TRANSACTION_HISTORY.html> |
//! | [`cancel_statement`] | — | <https://docs.aws.amazon.com/redshift/latest/dg/PG_CANCEL_BACKEND.html> |
//! | [`terminate_session`] | — | <https://docs.aws.amazon.com/redshift/latest/dg/PG_TERMINATE_BACKEND.html> |

use super::{Dialect, push_literal};

/// The longest label Redshift keeps (`STL_QUERY.label` is cut at 30 characters).
pub const MAX_LABEL: usize = 30;

/// What `STV_INFLIGHT.label` keeps of the query group: 15 characters
/// (<https://docs.aws.amazon.com/redshift/latest/dg/r_query_group.html>).
pub const INFLIGHT_LABEL: usize = 15;

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

/// The session with PID `$1` (int4), if it exists: `(process int4, starttime timestamp)`. A
/// session that started after a statement was submitted is another session with a reused PID.
pub fn redshift_session() -> &'static str {
    "SELECT process, starttime FROM stv_sessions WHERE process = $1"
}

/// What session `$1` (int4) runs on the compute nodes now, one row per slice:
/// `(pid int4, label bpchar, starttime timestamp, xid int8)`. The label is the query group cut to
/// 15 characters; leader-node work (BEGIN, COMMIT, the gaps between the statements of a block)
/// never shows here.
pub fn redshift_inflight() -> &'static str {
    "SELECT pid, label, starttime, xid FROM stv_inflight WHERE pid = $1"
}

/// The statements of session `$1` (int4) that are running or waiting in a queue:
/// `(pid int4, status bpchar, starttime timestamp)`. (A finished statement's `pid` is -1.)
pub fn redshift_recents() -> &'static str {
    "SELECT pid, status, starttime FROM stv_recents WHERE pid = $1 AND status = 'Running'"
}

/// The statements session `$1` (int4) began at or after `$2` (timestamp, UTC), oldest first —
/// running and finished, the tracker's own included: `(query_id int8, transaction_id int8,
/// query_label bpchar, status bpchar, start_time timestamp, end_time timestamp, returned_rows
/// int8, error_message bpchar, query_text bpchar)`.
pub fn redshift_history() -> &'static str {
    "SELECT query_id, transaction_id, query_label, status, start_time, end_time, returned_rows, \
     error_message, query_text FROM sys_query_history \
     WHERE session_id = $1 AND start_time >= $2 ORDER BY start_time LIMIT 1000"
}

/// Whether the transactions of those statements committed: `(transaction_id int8, status bpchar)`
/// with status `committed` or `rolledback`, for the same `$1` session and `$2` start. Visible to
/// superusers only: a regular user gets an error or no rows, and the tracker then knows nothing.
pub fn redshift_transactions() -> &'static str {
    "SELECT transaction_id, status FROM sys_transaction_history \
     WHERE transaction_id IN (SELECT transaction_id FROM sys_query_history \
     WHERE session_id = $1 AND start_time >= $2)"
}

/// The PostgreSQL session with PID `$1` (int4): `(pid int4, application_name text, state text,
/// backend_start timestamp (UTC), query text)`
/// (<https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-ACTIVITY-VIEW>).
pub fn postgres_session() -> &'static str {
    "SELECT pid, application_name, state, (backend_start AT TIME ZONE 'UTC') AS backend_start, \
     query FROM pg_stat_activity WHERE pid = $1"
}

/// Cancels the statement running in session `pid` (outside a transaction block):
/// `SELECT pg_cancel_backend(pid)`, which both warehouses accept (Redshift's `CANCEL pid` does the
/// same).
pub fn cancel_statement(pid: i32) -> String {
    format!("SELECT pg_cancel_backend({pid})")
}

/// Cancels the statement of session `$1` only if the session still carries label `$2` (PIDs are
/// reused), returning whether a signal was sent (PostgreSQL).
pub fn cancel_labelled_postgres() -> &'static str {
    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE pid = $1 AND application_name = $2"
}

/// Ends session `$1` only if it still carries label `$2`, returning whether a signal was sent
/// (PostgreSQL).
pub fn terminate_labelled_postgres() -> &'static str {
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = $1 AND application_name = $2"
}

/// The session's PID and the server's clock (UTC, without time zone), read when a statement is
/// submitted and by each observation.
pub fn session_info(dialect: Dialect) -> String {
    format!("SELECT pg_backend_pid(), {}", super::journal::now(dialect))
}

/// Ends session `pid`, rolling back its transaction and releasing its locks: the only cancel that
/// works inside a Redshift transaction block.
pub fn terminate_session(pid: i32) -> String {
    format!("SELECT pg_terminate_backend({pid})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::{PostgreSqlDialect, RedshiftSqlDialect};
    use sqlparser::parser::Parser;

    fn parses(dialect: Dialect, sql: &str) {
        let r = match dialect {
            Dialect::Redshift => Parser::parse_sql(&RedshiftSqlDialect {}, sql),
            Dialect::Postgres => Parser::parse_sql(&PostgreSqlDialect {}, sql),
        };
        assert_eq!(r.unwrap_or_else(|e| panic!("{e}: {sql}")).len(), 1, "{sql}");
    }

    /// SQL words that are not columns.
    const KEYWORDS: &[&str] = &[
        "select", "from", "where", "and", "in", "order", "by", "limit", "running",
    ];

    /// Each Redshift status query, the page of each view it reads, and that page's documented
    /// columns (Amazon Redshift Database Developer Guide, read for this test).
    /// (query name, query, [(view page, documented columns)]).
    type Documented = (
        &'static str,
        &'static str,
        Vec<(&'static str, &'static [&'static str])>,
    );

    fn documented() -> Vec<Documented> {
        const SESSIONS: &[&str] = &[
            "starttime",
            "process",
            "user_name",
            "db_name",
            "timeout_sec",
        ];
        const INFLIGHT: &[&str] = &[
            "userid",
            "slice",
            "query",
            "label",
            "xid",
            "pid",
            "starttime",
            "text",
            "suspended",
            "insert_pristine",
            "concurrency_scaling_status",
        ];
        const RECENTS: &[&str] = &[
            "userid",
            "status",
            "starttime",
            "duration",
            "user_name",
            "db_name",
            "query",
            "pid",
        ];
        const QUERY_HISTORY: &[&str] = &[
            "user_id",
            "query_id",
            "query_label",
            "transaction_id",
            "session_id",
            "database_name",
            "query_type",
            "status",
            "result_cache_hit",
            "start_time",
            "end_time",
            "elapsed_time",
            "queue_time",
            "execution_time",
            "error_message",
            "returned_rows",
            "returned_bytes",
            "query_text",
            "redshift_version",
        ];
        const TRANSACTION_HISTORY: &[&str] = &[
            "user_id",
            "transaction_id",
            "isolation_level",
            "status",
            "transaction_start_time",
            "commit_start_time",
            "commit_end_time",
            "blocks_committed",
            "undo_transaction_id",
        ];
        vec![
            (
                redshift_session(),
                "r_STV_SESSIONS.html",
                vec![("stv_sessions", SESSIONS)],
            ),
            (
                redshift_inflight(),
                "r_STV_INFLIGHT.html",
                vec![("stv_inflight", INFLIGHT)],
            ),
            (
                redshift_recents(),
                "r_STV_RECENTS.html",
                vec![("stv_recents", RECENTS)],
            ),
            (
                redshift_history(),
                "SYS_QUERY_HISTORY.html",
                vec![("sys_query_history", QUERY_HISTORY)],
            ),
            (
                redshift_transactions(),
                "SYS_TRANSACTION_HISTORY.html",
                vec![
                    ("sys_transaction_history", TRANSACTION_HISTORY),
                    ("sys_query_history", QUERY_HISTORY),
                ],
            ),
        ]
    }

    #[test]
    fn redshift_status_queries_read_only_documented_columns() {
        for (sql, page, views) in documented() {
            parses(Dialect::Redshift, sql);
            let lower = sql.to_ascii_lowercase();
            // No expression on a system view's column: no function call, no arithmetic, no cast.
            for banned in ["(", "::", " - ", " + ", "extract", "trim", "getdate"] {
                let outside_subquery = lower.replace("in (select", "in select");
                assert!(
                    !outside_subquery.contains(banned),
                    "{page}: no expressions on system views ({banned:?}): {sql}"
                );
            }
            let words: Vec<&str> = lower
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty() && !w.chars().all(|c| c.is_ascii_digit()))
                .collect();
            for w in words {
                if KEYWORDS.contains(&w) || views.iter().any(|(v, _)| *v == w) {
                    continue;
                }
                assert!(
                    views.iter().any(|(_, cols)| cols.contains(&w)),
                    "{page}: {w:?} is not a column the page documents: {sql}"
                );
            }
        }
    }

    #[test]
    fn golden_status_queries() {
        // https://docs.aws.amazon.com/redshift/latest/dg/r_STV_SESSIONS.html
        assert_eq!(
            redshift_session(),
            "SELECT process, starttime FROM stv_sessions WHERE process = $1"
        );
        // https://docs.aws.amazon.com/redshift/latest/dg/r_STV_INFLIGHT.html — the label is
        // compared by the decision core (15 characters kept), not by TRIM in SQL.
        assert_eq!(
            redshift_inflight(),
            "SELECT pid, label, starttime, xid FROM stv_inflight WHERE pid = $1"
        );
        // https://docs.aws.amazon.com/redshift/latest/dg/r_STV_RECENTS.html — `Running` covers
        // statements running and waiting in a queue (the page's second example).
        assert_eq!(
            redshift_recents(),
            "SELECT pid, status, starttime FROM stv_recents WHERE pid = $1 AND status = 'Running'"
        );
        // https://docs.aws.amazon.com/redshift/latest/dg/SYS_QUERY_HISTORY.html
        assert_eq!(
            redshift_history(),
            "SELECT query_id, transaction_id, query_label, status, start_time, end_time, \
             returned_rows, error_message, query_text FROM sys_query_history \
             WHERE session_id = $1 AND start_time >= $2 ORDER BY start_time LIMIT 1000"
        );
        // https://docs.aws.amazon.com/redshift/latest/dg/SYS_TRANSACTION_HISTORY.html (the join
        // SYS_QUERY_HISTORY's page recommends to tell whether a query's transaction committed).
        assert_eq!(
            redshift_transactions(),
            "SELECT transaction_id, status FROM sys_transaction_history \
             WHERE transaction_id IN (SELECT transaction_id FROM sys_query_history \
             WHERE session_id = $1 AND start_time >= $2)"
        );
        // https://docs.aws.amazon.com/redshift/latest/dg/PG_CANCEL_BACKEND.html and
        // https://docs.aws.amazon.com/redshift/latest/dg/PG_TERMINATE_BACKEND.html
        assert_eq!(cancel_statement(42), "SELECT pg_cancel_backend(42)");
        assert_eq!(terminate_session(42), "SELECT pg_terminate_backend(42)");
        assert_eq!(
            session_info(Dialect::Redshift),
            "SELECT pg_backend_pid(), GETDATE()"
        );
        for s in [
            cancel_statement(42),
            terminate_session(42),
            session_info(Dialect::Redshift),
            set_label(Dialect::Redshift, "etl-x"),
        ] {
            parses(Dialect::Redshift, &s);
        }
        for s in [
            postgres_session(),
            cancel_labelled_postgres(),
            terminate_labelled_postgres(),
        ] {
            parses(Dialect::Postgres, s);
        }
        assert_eq!(
            set_label(Dialect::Redshift, "etl-it's"),
            "SET query_group TO 'etl-it''s'"
        );
        assert_eq!(
            set_label(Dialect::Postgres, "etl-x"),
            "SET application_name TO 'etl-x'"
        );
    }
}
