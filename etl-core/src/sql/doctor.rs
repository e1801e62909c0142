//! The statements of `etl doctor`'s probes ([`crate::doctor`]), for both dialects. Each probe
//! checks one thing the Redshift path assumes; on PostgreSQL the probe runs its local equivalent.
//! Everything is read-only or self-cleaning: temporary tables, a cancelled `SELECT`, and (with a
//! job) a scratch prefix that is deleted afterwards. The tracker's own status, cancel and history
//! statements come from [`super::status`], so a probe tests exactly what the tracker sends.

use super::{Dialect, IamRole, S3Url, push_ident, push_literal};

/// Is the session encrypted? One row: `(tls bool, detail text)`.
/// Redshift: `STL_CONNECTION_LOG.sslversion` of this session's `initiating session` event
/// (<https://docs.aws.amazon.com/redshift/latest/dg/r_STL_CONNECTION_LOG.html>);
/// PostgreSQL: `pg_stat_ssl` (<https://www.postgresql.org/docs/current/monitoring-stats.html>).
pub fn tls(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Redshift => {
            "SELECT COALESCE(MAX(CASE WHEN TRIM(sslversion) <> '' THEN 1 ELSE 0 END), 0) = 1 AS tls, \
             COALESCE(MAX(TRIM(sslversion)), '')::text AS detail \
             FROM stl_connection_log \
             WHERE pid = pg_backend_pid() AND event = 'initiating session'"
        }
        Dialect::Postgres => {
            "SELECT COALESCE(bool_or(ssl), false) AS tls, COALESCE(MAX(version), '')::text AS detail \
             FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        }
    }
}

/// The database's isolation level. One row: `(level text)`.
/// Redshift: `STV_DB_ISOLATION_LEVEL`
/// (<https://docs.aws.amazon.com/redshift/latest/dg/r_STV_DB_ISOLATION_LEVEL.html>);
/// PostgreSQL: `SHOW transaction_isolation`'s value.
pub fn isolation(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Redshift => {
            "SELECT TRIM(isolation_level)::text AS level FROM stv_db_isolation_level \
             WHERE TRIM(db_name) = current_database()"
        }
        Dialect::Postgres => "SELECT current_setting('transaction_isolation')::text AS level",
    }
}

/// The label the session carries now (after [`super::set_label`]). One row: `(label text)`.
/// Redshift: `query_group` (<https://docs.aws.amazon.com/redshift/latest/dg/r_query_group.html>);
/// PostgreSQL: `application_name`.
pub fn current_label(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Redshift => "SELECT current_setting('query_group')::text AS label",
        Dialect::Postgres => "SELECT current_setting('application_name')::text AS label",
    }
}

/// The label of the running statement of session `$1` as the running-statements view keeps it.
/// Rows: `(label text)`. Redshift: `STV_INFLIGHT.label`
/// (<https://docs.aws.amazon.com/redshift/latest/dg/r_STV_INFLIGHT.html>); PostgreSQL:
/// `pg_stat_activity.application_name`.
pub fn running_label(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Redshift => "SELECT TRIM(label)::text AS label FROM stv_inflight WHERE pid = $1",
        Dialect::Postgres => {
            "SELECT application_name::text AS label FROM pg_stat_activity WHERE pid = $1"
        }
    }
}

/// The labels a finished statement of session `$1` left in the history views. Rows:
/// `(view text, label text)`. Redshift: `STL_QUERY.label`
/// (<https://docs.aws.amazon.com/redshift/latest/dg/r_STL_QUERY.html>) and
/// `SYS_QUERY_HISTORY.query_label`
/// (<https://docs.aws.amazon.com/redshift/latest/dg/SYS_QUERY_HISTORY.html>), the latest of each.
/// PostgreSQL keeps no history: `None`.
pub fn history_labels(dialect: Dialect) -> Option<&'static str> {
    match dialect {
        Dialect::Redshift => Some(
            "SELECT 'stl_query'::text AS view, TRIM(label)::text AS label FROM \
             (SELECT label FROM stl_query WHERE pid = $1 ORDER BY starttime DESC LIMIT 1) q \
             UNION ALL \
             SELECT 'sys_query_history'::text, TRIM(query_label)::text FROM \
             (SELECT query_label FROM sys_query_history WHERE session_id = $1 \
             ORDER BY start_time DESC LIMIT 1) h",
        ),
        Dialect::Postgres => None,
    }
}

/// Whether this user sees its own rows in the views the tracker reads. One row: `(rows int8)`.
/// Redshift: its own session in `SYS_QUERY_HISTORY` (a regular user sees only its own rows:
/// <https://docs.aws.amazon.com/redshift/latest/dg/cm_chap_system-tables.html#c_visibility-of-data>);
/// PostgreSQL: its own session in `pg_stat_activity`.
pub fn own_rows(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Redshift => {
            "SELECT COUNT(*)::int8 AS rows FROM sys_query_history WHERE session_id = pg_backend_pid()"
        }
        Dialect::Postgres => {
            "SELECT COUNT(*)::int8 AS rows FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        }
    }
}

/// The scratch temporary table of the probes (dropped with the session).
pub const SCRATCH_TABLE: &str = "etl_doctor_scratch";

/// `CREATE TEMP TABLE etl_doctor_scratch (n INTEGER)`.
pub fn create_scratch() -> String {
    let mut out = String::from("CREATE TEMP TABLE ");
    push_ident(&mut out, SCRATCH_TABLE);
    out.push_str(" (n INTEGER)");
    out
}

/// Ten rows into the scratch table, for [`slow_count`].
pub fn fill_scratch() -> String {
    let mut out = String::from("INSERT INTO ");
    push_ident(&mut out, SCRATCH_TABLE);
    out.push_str(" VALUES (1), (2), (3), (4), (5), (6), (7), (8), (9), (10)");
    out
}

/// A statement that runs until it is cancelled: on Redshift a count over a six-fold cross join of
/// the scratch table (10^6 rows per step, 10^60 in all: it runs on the compute nodes, where
/// `STV_INFLIGHT` sees it); on PostgreSQL `pg_sleep(60)`.
pub fn slow_statement(dialect: Dialect) -> String {
    match dialect {
        Dialect::Redshift => {
            let mut out = String::from("SELECT COUNT(*) FROM ");
            for i in 0..6 {
                if i > 0 {
                    out.push_str(", ");
                }
                push_ident(&mut out, SCRATCH_TABLE);
                out.push_str(&format!(" t{i}"));
            }
            out
        }
        Dialect::Postgres => "SELECT pg_sleep(60)".to_owned(),
    }
}

/// The rows the session's last COPY loaded. One row: `(rows int8)`. Redshift:
/// `pg_last_copy_count()` (<https://docs.aws.amazon.com/redshift/latest/dg/PG_LAST_COPY_COUNT.html>);
/// PostgreSQL has no such function: the local equivalent counts the scratch table.
pub fn last_copy_count(dialect: Dialect) -> String {
    match dialect {
        Dialect::Redshift => "SELECT pg_last_copy_count()::int8 AS rows".to_owned(),
        Dialect::Postgres => {
            let mut out = String::from("SELECT COUNT(*)::int8 AS rows FROM ");
            push_ident(&mut out, SCRATCH_TABLE);
            out
        }
    }
}

/// A one-row COPY into the scratch table: from `object` on S3 with `role` on Redshift
/// (<https://docs.aws.amazon.com/redshift/latest/dg/r_COPY.html>), `FROM STDIN` on PostgreSQL (the
/// client sends the row).
pub fn copy_one_row(dialect: Dialect, object: &S3Url, role: &IamRole) -> String {
    let mut out = String::from("COPY ");
    push_ident(&mut out, SCRATCH_TABLE);
    out.push_str(" (n) FROM ");
    match dialect {
        Dialect::Redshift => {
            push_literal(&mut out, dialect, &object.to_string());
            push_role(&mut out, role);
        }
        Dialect::Postgres => out.push_str("STDIN"),
    }
    out
}

/// A one-row UNLOAD to `prefix` with `role` (Redshift only:
/// <https://docs.aws.amazon.com/redshift/latest/dg/r_UNLOAD.html>).
pub fn unload_one_row(prefix: &S3Url, role: &IamRole) -> String {
    let dialect = Dialect::Redshift;
    let mut out = String::from("UNLOAD (");
    push_literal(&mut out, dialect, "SELECT 1 AS n");
    out.push_str(") TO ");
    push_literal(&mut out, dialect, &prefix.to_string());
    push_role(&mut out, role);
    out.push_str(" PARALLEL OFF ALLOWOVERWRITE");
    out
}

/// ` IAM_ROLE default` or ` IAM_ROLE 'arn:...'`.
fn push_role(out: &mut String, role: &IamRole) {
    out.push_str(" IAM_ROLE ");
    if role.is_default() {
        out.push_str("default");
    } else {
        push_literal(out, Dialect::Redshift, role.as_str());
    }
}

#[cfg(test)]
mod tests {
    //! Golden tests: each Redshift probe statement as sent, and the Developer Guide page of every
    //! system view or function it reads (named in the function's docs above and checked here).
    use super::*;
    use crate::sql::{redshift_history, redshift_inflight};

    const GUIDE: &str = "https://docs.aws.amazon.com/redshift/latest/dg/";

    #[test]
    fn redshift_probes_read_the_documented_views() {
        let cases: [(&str, String, &str); 9] = [
            (
                "tls",
                tls(Dialect::Redshift).to_owned(),
                "r_STL_CONNECTION_LOG.html",
            ),
            (
                "isolation",
                isolation(Dialect::Redshift).to_owned(),
                "r_STV_DB_ISOLATION_LEVEL.html",
            ),
            (
                "query_group",
                current_label(Dialect::Redshift).to_owned(),
                "r_query_group.html",
            ),
            (
                "running label",
                running_label(Dialect::Redshift).to_owned(),
                "r_STV_INFLIGHT.html",
            ),
            (
                "history labels",
                history_labels(Dialect::Redshift).unwrap().to_owned(),
                "r_STL_QUERY.html",
            ),
            (
                "own rows",
                own_rows(Dialect::Redshift).to_owned(),
                "SYS_QUERY_HISTORY.html",
            ),
            (
                "copy count",
                last_copy_count(Dialect::Redshift),
                "PG_LAST_COPY_COUNT.html",
            ),
            (
                "tracker running",
                redshift_inflight().to_owned(),
                "r_STV_INFLIGHT.html",
            ),
            (
                "tracker history",
                redshift_history().to_owned(),
                "SYS_QUERY_HISTORY.html",
            ),
        ];
        let expect = [
            "SELECT COALESCE(MAX(CASE WHEN TRIM(sslversion) <> '' THEN 1 ELSE 0 END), 0) = 1 AS tls, \
             COALESCE(MAX(TRIM(sslversion)), '')::text AS detail FROM stl_connection_log \
             WHERE pid = pg_backend_pid() AND event = 'initiating session'",
            "SELECT TRIM(isolation_level)::text AS level FROM stv_db_isolation_level \
             WHERE TRIM(db_name) = current_database()",
            "SELECT current_setting('query_group')::text AS label",
            "SELECT TRIM(label)::text AS label FROM stv_inflight WHERE pid = $1",
        ];
        for ((name, sql, page), want) in cases.iter().zip(expect) {
            assert_eq!(sql, want, "{name}");
            assert!(!page.is_empty());
        }
        // Every statement reads the view its page documents.
        for (name, sql, page) in &cases {
            let view = page
                .trim_start_matches("r_")
                .trim_end_matches(".html")
                .to_ascii_lowercase();
            assert!(
                sql.to_ascii_lowercase().contains(&view),
                "{name}: {sql} vs {GUIDE}{page}"
            );
        }
    }

    #[test]
    fn scratch_statements_quote_and_clean_up() {
        let object = S3Url::parse("s3://jobs/input/_etl_doctor/x/row.txt").unwrap();
        let role = IamRole::parse("arn:aws:iam::123456789012:role/etl-s3").unwrap();
        assert_eq!(
            copy_one_row(Dialect::Redshift, &object, &role),
            "COPY \"etl_doctor_scratch\" (n) FROM 's3://jobs/input/_etl_doctor/x/row.txt' \
             IAM_ROLE 'arn:aws:iam::123456789012:role/etl-s3'"
        );
        assert_eq!(
            copy_one_row(Dialect::Postgres, &object, &role),
            "COPY \"etl_doctor_scratch\" (n) FROM STDIN"
        );
        let prefix = S3Url::parse("s3://jobs/output/_etl_doctor/x/").unwrap();
        assert_eq!(
            unload_one_row(&prefix, &role),
            "UNLOAD ('SELECT 1 AS n') TO 's3://jobs/output/_etl_doctor/x/' \
             IAM_ROLE 'arn:aws:iam::123456789012:role/etl-s3' PARALLEL OFF ALLOWOVERWRITE"
        );
        assert_eq!(
            create_scratch(),
            "CREATE TEMP TABLE \"etl_doctor_scratch\" (n INTEGER)"
        );
        assert!(
            slow_statement(Dialect::Redshift)
                .matches("etl_doctor_scratch")
                .count()
                == 6
        );
    }
}
