//! `etl doctor`: the assumptions the Redshift path makes, checked against a real warehouse in one
//! command — what no test here can verify without a cluster. Each probe is read-only or cleans up
//! after itself (temporary tables, a `SELECT` it cancels, a scratch prefix it deletes), and reports
//! one [`Finding`]: ok, failed or skipped, with the documentation page of what it checks and what
//! to change when it fails. On PostgreSQL every probe runs its local equivalent (the views and
//! functions the local run uses instead). The statements are in [`crate::sql::doctor`]; the
//! tracker's own status, cancel and history statements come from [`crate::sql`]'s status queries, so
//! the probes test exactly what the tracker sends.
//!
//! ```no_run
//! # async fn demo(w: &etl_core::warehouse::Warehouse) {
//! for f in etl_core::doctor::run(w, None).await {
//!     println!("{f}");
//! }
//! # }
//! ```

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::SinkExt as _;
use tokio_postgres::Client;

use object_store::ObjectStoreExt as _;

use crate::error::Error;
use crate::job::{Job, Location};
use crate::sql::{self, Dialect, S3Url, doctor as q};
use crate::storage::Store;
use crate::warehouse::{SslMode, Warehouse};

/// A probe's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The assumption holds.
    Ok,
    /// It does not: see the finding's fix.
    Failed,
    /// Not checked (needs `--job`, or does not apply to this warehouse).
    Skipped,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that a width (`{:<8}`) applies.
        f.pad(match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        })
    }
}

/// One probe's result: one line of `etl doctor`'s output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The probe's name.
    pub probe: &'static str,
    /// Its verdict.
    pub status: Status,
    /// What it saw.
    pub detail: String,
    /// The page that documents what it checks.
    pub doc: &'static str,
    /// What to change when it failed (or how to run it when skipped).
    pub fix: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<8}{:<16}{}", self.status, self.probe, self.detail)?;
        if self.status != Status::Ok && !self.fix.is_empty() {
            write!(f, "; {}", self.fix)?;
        }
        write!(f, " ({})", self.doc)
    }
}

/// The probes, in the order they run, with the page each follows (Redshift's; PostgreSQL runs the
/// local equivalent).
pub const PROBES: &[(&str, &str)] = &[
    (
        "tls",
        "https://docs.aws.amazon.com/redshift/latest/mgmt/connecting-ssl-support.html",
    ),
    (
        "isolation",
        "https://docs.aws.amazon.com/redshift/latest/dg/r_STV_DB_ISOLATION_LEVEL.html",
    ),
    (
        "query_group",
        "https://docs.aws.amazon.com/redshift/latest/dg/r_query_group.html",
    ),
    (
        "status-running",
        "https://docs.aws.amazon.com/redshift/latest/dg/r_STV_INFLIGHT.html",
    ),
    (
        "label-lengths",
        "https://docs.aws.amazon.com/redshift/latest/dg/r_STL_QUERY.html",
    ),
    (
        "cancel",
        "https://docs.aws.amazon.com/redshift/latest/dg/PG_CANCEL_BACKEND.html",
    ),
    (
        "status-history",
        "https://docs.aws.amazon.com/redshift/latest/dg/SYS_QUERY_HISTORY.html",
    ),
    (
        "own-rows",
        "https://docs.aws.amazon.com/redshift/latest/dg/cm_chap_system-tables.html#c_visibility-of-data",
    ),
    (
        "copy-count",
        "https://docs.aws.amazon.com/redshift/latest/dg/PG_LAST_COPY_COUNT.html",
    ),
    (
        "s3-copy",
        "https://docs.aws.amazon.com/redshift/latest/dg/copy-usage_notes-access-permissions.html",
    ),
    (
        "s3-unload",
        "https://docs.aws.amazon.com/redshift/latest/dg/r_UNLOAD.html",
    ),
];

fn doc(probe: &str) -> &'static str {
    PROBES
        .iter()
        .find(|(p, _)| *p == probe)
        .map(|(_, d)| *d)
        .unwrap_or("")
}

fn finding(
    probe: &'static str,
    status: Status,
    detail: impl Into<String>,
    fix: impl Into<String>,
) -> Finding {
    Finding {
        probe,
        status,
        detail: detail.into(),
        doc: doc(probe),
        fix: fix.into(),
    }
}

/// How long a probe waits for the server to show what it looks for (history views lag).
const WAIT: Duration = Duration::from_secs(15);

/// Runs every probe against `warehouse`; with `job`, also the COPY and UNLOAD of one row under a
/// scratch prefix of the job's input and unload locations, with the job's IAM role. Never fails
/// as a whole: a probe that cannot run reports why.
pub async fn run(warehouse: &Warehouse, job: Option<&Job>) -> Vec<Finding> {
    let dialect = warehouse.dialect();
    let mut out = Vec::new();
    let label = format!("etl-doctor-{}", nonce());
    let label = &label[..label.len().min(sql::MAX_LABEL)];

    let client = match warehouse.connect_one().await {
        Ok(c) => c,
        Err(e) => {
            out.push(finding(
                "tls",
                Status::Failed,
                format!("cannot connect: {e}"),
                "",
            ));
            return out;
        }
    };
    out.push(tls(&client, warehouse).await);
    out.push(isolation(&client, dialect).await);
    out.push(query_group(&client, dialect, label).await);
    out.extend(running_and_cancel(warehouse, &client, label).await);
    out.push(own_rows(&client, dialect).await);
    out.push(copy_count(&client, dialect).await);
    out.extend(s3(warehouse, job).await);
    out
}

fn nonce() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{:x}{:x}",
        t.as_secs() & 0xff_ffff,
        std::process::id() & 0xffff
    )
}

fn query_error(sql: &str, e: &tokio_postgres::Error) -> String {
    crate::journal::error_text(&Error::query(sql, e))
}

async fn tls(client: &Client, warehouse: &Warehouse) -> Finding {
    let dialect = warehouse.dialect();
    let sql = q::tls(dialect);
    let (on, detail): (bool, String) = match client.query_one(sql, &[]).await {
        Ok(row) => (row.get(0), row.get(1)),
        Err(e) => {
            return finding(
                "tls",
                Status::Failed,
                query_error(sql, &e),
                "a superuser or the master user sees the connection log",
            );
        }
    };
    let options = warehouse.options();
    if on {
        return finding(
            "tls",
            Status::Ok,
            format!("encrypted ({detail}), sslmode={}", options.sslmode),
            "",
        );
    }
    let local = options.host.starts_with('/')
        || matches!(options.host.as_str(), "localhost" | "127.0.0.1" | "::1");
    if dialect == Dialect::Postgres && local {
        finding(
            "tls",
            Status::Ok,
            format!(
                "not encrypted: a local PostgreSQL (sslmode={})",
                options.sslmode
            ),
            "",
        )
    } else {
        finding(
            "tls",
            Status::Failed,
            format!(
                "the connection is not encrypted (sslmode={})",
                options.sslmode
            ),
            format!(
                "connect with sslmode={} (PGSSLMODE or ?sslmode=); cfn/redshift.yaml's parameter group sets require_ssl",
                SslMode::VerifyFull
            ),
        )
    }
}

async fn isolation(client: &Client, dialect: Dialect) -> Finding {
    let sql = q::isolation(dialect);
    match client.query_opt(sql, &[]).await {
        Ok(Some(row)) => {
            let level: String = row.get(0);
            let note = if level.to_ascii_lowercase().contains("serializ") {
                ": concurrent transactions that read and write one table (the journal) may fail with ERROR 1023 and are retried"
            } else {
                ""
            };
            finding("isolation", Status::Ok, format!("{level}{note}"), "")
        }
        Ok(None) => finding(
            "isolation",
            Status::Failed,
            "no row for this database",
            "check the database name",
        ),
        Err(e) => finding("isolation", Status::Failed, query_error(sql, &e), ""),
    }
}

async fn query_group(client: &Client, dialect: Dialect, label: &str) -> Finding {
    let set = sql::set_label(dialect, label);
    if let Err(e) = client.batch_execute(&set).await {
        return finding(
            "query_group",
            Status::Failed,
            query_error(&set, &e),
            "the tracker labels every statement this way",
        );
    }
    let sql = q::current_label(dialect);
    match client.query_one(sql, &[]).await {
        Ok(row) => {
            let got: String = row.get(0);
            if got == label {
                finding(
                    "query_group",
                    Status::Ok,
                    format!("{label:?} ({} characters) kept", label.len()),
                    "",
                )
            } else {
                finding(
                    "query_group",
                    Status::Failed,
                    format!("set {label:?}, the session says {got:?}"),
                    format!(
                        "labels must fit what the server keeps ({} characters here)",
                        got.len()
                    ),
                )
            }
        }
        Err(e) => finding("query_group", Status::Failed, query_error(sql, &e), ""),
    }
}

/// Starts a labelled statement that runs until cancelled in a session of its own, finds it with the
/// tracker's running query, reads the label each view keeps, cancels it the tracker's way, then
/// finds it in the history (Redshift).
async fn running_and_cancel(warehouse: &Warehouse, observer: &Client, label: &str) -> Vec<Finding> {
    let dialect = warehouse.dialect();
    // The tracker's own observation queries (`track::observe`): by PID; the label is matched
    // as the tracker matches it.
    let running_sql = match dialect {
        Dialect::Redshift => sql::redshift_inflight(),
        Dialect::Postgres => sql::postgres_session(),
    };
    let mut out = Vec::new();
    let worker = match warehouse.connect_one().await {
        Ok(c) => c,
        Err(e) => {
            out.push(finding(
                "status-running",
                Status::Failed,
                format!("cannot open a second session: {e}"),
                "",
            ));
            return out;
        }
    };
    let setup = {
        let mut s = vec![sql::set_label(dialect, label)];
        if dialect == Dialect::Redshift {
            s.push(q::create_scratch());
            s.push(q::fill_scratch());
        }
        s.join("; ")
    };
    if let Err(e) = worker.batch_execute(&setup).await {
        out.push(finding(
            "status-running",
            Status::Failed,
            query_error(&setup, &e),
            "",
        ));
        return out;
    }
    let info = sql::session_info(dialect);
    let (pid, submitted): (i32, chrono::NaiveDateTime) = match worker.query_one(&info, &[]).await {
        Ok(row) => (row.get(0), row.get(1)),
        Err(e) => {
            out.push(finding(
                "status-running",
                Status::Failed,
                query_error(&info, &e),
                "",
            ));
            return out;
        }
    };
    let slow = q::slow_statement(dialect);
    let running = tokio::spawn(async move {
        let r = worker.batch_execute(&slow).await;
        (
            r.map_err(|e| (e.code().map(|c| c.code().to_owned()), e.to_string())),
            worker,
        )
    });

    // The tracker's running query sees it.
    let start = Instant::now();
    let mut seen = None;
    while start.elapsed() < WAIT {
        match observer.query(running_sql, &[&pid]).await {
            Ok(rows) if !rows.is_empty() => {
                let ours = rows.iter().find_map(|r| {
                    let l: String = r.get(1);
                    let live = match dialect {
                        Dialect::Redshift => Some("running".to_owned()),
                        Dialect::Postgres => r.get::<_, Option<String>>(2),
                    };
                    (l.trim_end() == label && live.as_deref() != Some("idle"))
                        .then(|| live.unwrap_or_default())
                });
                if ours.is_some() {
                    seen = ours;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => {
                out.push(finding(
                    "status-running",
                    Status::Failed,
                    query_error(running_sql, &e),
                    "the tracker polls with this statement",
                ));
                break;
            }
        }
    }
    if out.is_empty() {
        out.push(match &seen {
            Some(state) => finding("status-running", Status::Ok, format!("the tracker's query sees session {pid} ({state})"), ""),
            None => finding(
                "status-running",
                Status::Failed,
                format!("the tracker's query did not see session {pid} labelled {label:?} within {}s", WAIT.as_secs()),
                "the running view must show the statement by pid and label (a label cut shorter than the tracker's never matches)",
            ),
        });
    }
    // The label the running view keeps.
    let kept = observer
        .query(q::running_label(dialect), &[&pid])
        .await
        .ok()
        .and_then(|rows| rows.first().map(|r| r.get::<_, String>(0)));

    // Cancel it the tracker's way.
    let cancel_result = match dialect {
        Dialect::Redshift => observer
            .batch_execute(&sql::cancel_statement(pid))
            .await
            .map(|_| true),
        Dialect::Postgres => observer
            .query(sql::cancel_labelled_postgres(), &[&pid, &label])
            .await
            .map(|rows| !rows.is_empty()),
    };
    let ended = tokio::time::timeout(WAIT, running).await;
    out.push(match (cancel_result, ended) {
        (Err(e), _) => finding(
            "cancel",
            Status::Failed,
            format!("the cancel was refused: {e}"),
            "the tracker cancels with pg_cancel_backend(pid)",
        ),
        (Ok(_), Ok(Ok((Err((Some(code), _)), _)))) if code == "57014" => finding(
            "cancel",
            Status::Ok,
            "the statement ended with 57014 (query_canceled)",
            "",
        ),
        (Ok(_), Ok(Ok((r, _)))) => finding(
            "cancel",
            Status::Failed,
            format!("the statement ended otherwise: {r:?}"),
            "the tracker expects a cancelled statement to fail with SQLSTATE 57014",
        ),
        (Ok(_), _) => finding(
            "cancel",
            Status::Failed,
            format!(
                "the statement still ran {}s after the cancel",
                WAIT.as_secs()
            ),
            "inside a transaction block only pg_terminate_backend(pid) stops it",
        ),
    });

    // The history, and the labels each view keeps.
    let mut lengths = vec![format!(
        "{}: {}",
        if dialect == Dialect::Redshift {
            "stv_inflight"
        } else {
            "pg_stat_activity"
        },
        kept.as_deref()
            .map(|k| k.len().to_string())
            .unwrap_or_else(|| "-".into())
    )];
    let history_sql = (dialect == Dialect::Redshift).then(sql::redshift_history);
    match history_sql {
        Some(history) => {
            let start = Instant::now();
            let mut found = None;
            let mut failure = None;
            while start.elapsed() < WAIT && found.is_none() && failure.is_none() {
                match observer.query(history, &[&pid, &submitted]).await {
                    Ok(rows) if !rows.is_empty() => {
                        found = rows.iter().find_map(|r| {
                            let l: Option<String> = r.get(2);
                            let status: Option<String> = r.get(3);
                            (l.as_deref().map(str::trim_end) == Some(label))
                                .then(|| status.unwrap_or_default().trim_end().to_owned())
                        });
                        if found.is_none() {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                    Ok(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                    Err(e) => failure = Some(query_error(history, &e)),
                }
            }
            out.push(match (found, failure) {
                (Some(s), _) => finding(
                    "status-history",
                    Status::Ok,
                    format!("the tracker's history query found it ({s})"),
                    "",
                ),
                (None, Some(e)) => finding("status-history", Status::Failed, e, ""),
                (None, None) => finding(
                    "status-history",
                    Status::Failed,
                    format!(
                        "no history row for session {pid} labelled {label:?} within {}s",
                        WAIT.as_secs()
                    ),
                    "the tracker decides a finished statement's outcome from this view",
                ),
            });
            if let Some(labels) = q::history_labels(dialect)
                && let Ok(rows) = observer.query(labels, &[&pid]).await
            {
                for r in rows {
                    let (view, l): (String, String) = (r.get(0), r.get(1));
                    lengths.push(format!("{view}: {}", l.len()));
                }
            }
        }
        None => out.push(finding(
            "status-history",
            Status::Skipped,
            "PostgreSQL keeps no statement history: the journal is the witness",
            "",
        )),
    }
    let short = lengths
        .iter()
        .filter_map(|l| l.rsplit(": ").next()?.parse::<usize>().ok())
        .any(|n| n < label.len());
    out.push(finding(
        "label-lengths",
        if short { Status::Failed } else { Status::Ok },
        format!(
            "a {}-character label kept as {}",
            label.len(),
            lengths.join(", ")
        ),
        "keep the tracker's labels within the shortest length a view keeps",
    ));
    out
}

async fn own_rows(client: &Client, dialect: Dialect) -> Finding {
    let sql = q::own_rows(dialect);
    match client.query_one(sql, &[]).await {
        Ok(row) => {
            let n: i64 = row.get(0);
            if n > 0 {
                finding(
                    "own-rows",
                    Status::Ok,
                    format!("this user sees its own session ({n} rows)"),
                    "",
                )
            } else {
                finding(
                    "own-rows",
                    Status::Failed,
                    "this user sees none of its own rows",
                    "grant the user SYSLOG ACCESS, or run as the master user",
                )
            }
        }
        Err(e) => finding("own-rows", Status::Failed, query_error(sql, &e), ""),
    }
}

async fn copy_count(client: &Client, dialect: Dialect) -> Finding {
    if dialect == Dialect::Redshift {
        return finding(
            "copy-count",
            Status::Skipped,
            "a COPY on Redshift reads S3",
            "run with --job: the one-row COPY of s3-copy checks the command tag and pg_last_copy_count()",
        );
    }
    let create = q::create_scratch();
    if let Err(e) = client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {}; {create}",
            sql::quote_ident(q::SCRATCH_TABLE)
        ))
        .await
    {
        return finding("copy-count", Status::Failed, query_error(&create, &e), "");
    }
    let role = sql::IamRole::default_role();
    let copy = q::copy_one_row(
        dialect,
        &S3Url::parse("s3://unused/x").unwrap_or_else(|_| unreachable!()),
        &role,
    );
    let tag = async {
        let sink = client.copy_in::<_, Bytes>(copy.as_str()).await?;
        futures::pin_mut!(sink);
        sink.send(Bytes::from_static(b"1\n")).await?;
        sink.finish().await
    }
    .await;
    let count = q::last_copy_count(dialect);
    match tag {
        Err(e) => finding("copy-count", Status::Failed, query_error(&copy, &e), ""),
        Ok(tag) => match client.query_one(count.as_str(), &[]).await {
            Ok(row) => {
                let rows: i64 = row.get(0);
                if tag == 1 && rows == 1 {
                    finding(
                        "copy-count",
                        Status::Ok,
                        "the COPY tag and the table both say 1 row",
                        "",
                    )
                } else {
                    finding(
                        "copy-count",
                        Status::Failed,
                        format!("COPY tag {tag}, table {rows}"),
                        "the journal records the COPY tag's count",
                    )
                }
            }
            Err(e) => finding("copy-count", Status::Failed, query_error(&count, &e), ""),
        },
    }
}

/// With a job: one row through the job's input location (COPY) and unload location (UNLOAD), under
/// `_etl_doctor/<nonce>/`, deleted afterwards. PostgreSQL: the client writes, reads back and
/// deletes the scratch object itself, which is what the local run does with those locations.
async fn s3(warehouse: &Warehouse, job: Option<&Job>) -> Vec<Finding> {
    let Some(job) = job else {
        return ["s3-copy", "s3-unload"]
            .into_iter()
            .map(|p| {
                finding(
                    p,
                    Status::Skipped,
                    "no job given",
                    "run with --job job.json to check the job's buckets and IAM role",
                )
            })
            .collect();
    };
    let dialect = warehouse.dialect();
    let scratch = format!("_etl_doctor/{}/", nonce());
    let mut out = Vec::new();
    let unload_to = job.unload.as_ref().map(|u| u.to.clone());
    for (probe, location) in [
        ("s3-copy", Some(job.input.clone())),
        ("s3-unload", unload_to),
    ] {
        let Some(location) = location else {
            out.push(finding(
                probe,
                Status::Skipped,
                "the job unloads nothing",
                "",
            ));
            continue;
        };
        let result = match (dialect, &location) {
            (Dialect::Redshift, Location::S3(url)) => {
                redshift_s3(warehouse, job, probe, url, &scratch).await
            }
            (Dialect::Redshift, Location::Local(p)) => Err(format!(
                "{} is a local folder: on Redshift it must be on S3 (etl stage)",
                p.display()
            )),
            (Dialect::Postgres, _) => local_store(&location, &scratch).await,
        };
        out.push(match result {
            Ok(detail) => finding(probe, Status::Ok, detail, ""),
            Err(detail) => finding(
                probe,
                Status::Failed,
                detail,
                "the IAM role (redshift.iam_role) needs the bucket in its policy, and the bucket must be one the stack reaches (ReachableBuckets)",
            ),
        });
    }
    out
}

fn scratch_url(location: &S3Url, scratch: &str) -> S3Url {
    let base = if location.key().is_empty() || location.key().ends_with('/') {
        location.clone()
    } else {
        // A name prefix (out/result_): scratch next to it.
        match location.key().rfind('/') {
            Some(i) => S3Url::parse(&format!(
                "s3://{}/{}",
                location.bucket(),
                &location.key()[..=i]
            ))
            .unwrap_or_else(|_| location.clone()),
            None => S3Url::parse(&format!("s3://{}/", location.bucket()))
                .unwrap_or_else(|_| location.clone()),
        }
    };
    base.join(scratch)
}

async fn redshift_s3(
    warehouse: &Warehouse,
    job: &Job,
    probe: &str,
    location: &S3Url,
    scratch: &str,
) -> std::result::Result<String, String> {
    let prefix = scratch_url(location, scratch);
    let store = Store::open(&Location::S3(prefix.clone())).map_err(|e| e.to_string())?;
    let role = &job.redshift.iam_role;
    let client = warehouse.connect_one().await.map_err(|e| e.to_string())?;
    let result = async {
        if probe == "s3-copy" {
            let (object, shown) = store.child("row.txt");
            store
                .store
                .put(&object, Bytes::from_static(b"1\n").into())
                .await
                .map_err(|e| format!("cannot write {shown}: {e}"))?;
            let url = S3Url::parse(&shown).map_err(|e| e.to_string())?;
            let setup = q::create_scratch();
            client
                .batch_execute(&setup)
                .await
                .map_err(|e| query_error(&setup, &e))?;
            let copy = q::copy_one_row(Dialect::Redshift, &url, role);
            let tag = client
                .execute(copy.as_str(), &[])
                .await
                .map_err(|e| query_error(&copy, &e))?;
            let count = q::last_copy_count(Dialect::Redshift);
            let rows: i64 = client
                .query_one(count.as_str(), &[])
                .await
                .map_err(|e| query_error(&count, &e))?
                .get(0);
            if tag == 1 && rows == 1 {
                Ok(format!(
                    "COPY of {shown} with {}: tag 1, pg_last_copy_count() 1",
                    role.as_str()
                ))
            } else {
                Err(format!(
                    "COPY of {shown}: tag {tag}, pg_last_copy_count() {rows} (expected 1 and 1)"
                ))
            }
        } else {
            let unload = q::unload_one_row(&prefix, role);
            client
                .batch_execute(&unload)
                .await
                .map_err(|e| query_error(&unload, &e))?;
            let files = store.list_prefix("").await.map_err(|e| e.to_string())?;
            if files.is_empty() {
                Err(format!("UNLOAD to {prefix} wrote nothing"))
            } else {
                Ok(format!(
                    "UNLOAD to {prefix} with {}: {} file(s)",
                    role.as_str(),
                    files.len()
                ))
            }
        }
    }
    .await;
    cleanup(&store).await;
    result
}

async fn local_store(location: &Location, scratch: &str) -> std::result::Result<String, String> {
    let scratch_location = match location {
        Location::S3(url) => Location::S3(scratch_url(url, scratch)),
        Location::Local(p) => {
            let dir = if p.is_dir() {
                p.clone()
            } else {
                p.parent().map(|d| d.to_path_buf()).unwrap_or_default()
            };
            Location::Local(dir.join(scratch))
        }
    };
    let store = Store::open(&scratch_location).map_err(|e| e.to_string())?;
    let (object, shown) = store.child("row.txt");
    let result = async {
        store
            .store
            .put(&object, Bytes::from_static(b"1\n").into())
            .await
            .map_err(|e| format!("cannot write {shown}: {e}"))?;
        let back = store
            .store
            .get(&object)
            .await
            .map_err(|e| format!("cannot read {shown}: {e}"))?
            .bytes()
            .await
            .map_err(|e| format!("cannot read {shown}: {e}"))?;
        if back.as_ref() == b"1\n" {
            Ok(format!(
                "wrote, read back and deleted {shown} (the local run's client-side COPY/UNLOAD)"
            ))
        } else {
            Err(format!("{shown} read back differently"))
        }
    }
    .await;
    cleanup(&store).await;
    if let Location::Local(p) = &scratch_location {
        // The scratch folders themselves.
        let _ = std::fs::remove_dir(p);
        if let Some(parent) = p.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
    result
}

/// Deletes every object under the scratch prefix.
async fn cleanup(store: &Store) {
    if let Ok(objects) = store.list_prefix("").await {
        for (path, _) in objects {
            let _ = store.store.delete(&path).await;
        }
    }
}

/// Whether any finding failed.
pub fn any_failed(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.status == Status::Failed)
}
