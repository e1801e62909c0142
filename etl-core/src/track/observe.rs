//! Gathers the observations [`super::decide`] judges, and nothing else: the journal row (first, for
//! the attempt's start, and again last), the poller's PID and clock, then the server's rows about
//! the handle's session. The queries are in [`crate::sql`] (`redshift_*`, `postgres_session`),
//! each checked against its view's Developer Guide page.

use tokio_postgres::Client;

use super::Handle;
use super::decide::{
    ActivityRow, HistoryRow, InflightRow, Live, Observation, RecentRow, SessionRow, TransactionRow,
    from_journal,
};
use crate::error::{Error, Result};
use crate::journal;
use crate::sql::{self, Dialect};

fn db(context: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| Error::query(context, &e)
}

/// Observes the statement behind `handle` from `client`'s session.
///
/// # Errors
/// [`Error::Query`] when a query fails (except `SYS_TRANSACTION_HISTORY`, which only superusers
/// may read: then its rows are unknown).
pub async fn observe(client: &Client, handle: &Handle) -> Result<Observation> {
    let before = journal::observe_step(client, &handle.run_id, &handle.step_id).await?;
    let since = before
        .as_ref()
        .and_then(|r| r.started_at)
        .unwrap_or(handle.submitted_at);
    let info = client
        .query_one(&sql::session_info(handle.dialect), &[])
        .await
        .map_err(db("read the server's clock"))?;
    let (observer_pid, now) = (info.get(0), info.get(1));
    let done = before.as_ref().is_none_or(|r| from_journal(r).is_some());
    if done {
        return Ok(Observation {
            journal: before,
            since,
            observer_pid,
            now,
            live: Live::NotRead,
        });
    }
    let pid = &handle.pid;
    let live = match handle.dialect {
        Dialect::Redshift => {
            let sessions = client
                .query(sql::redshift_session(), &[pid])
                .await
                .map_err(db("read STV_SESSIONS"))?
                .iter()
                .map(|r| SessionRow {
                    process: r.get(0),
                    starttime: r.get(1),
                })
                .collect();
            let inflight = client
                .query(sql::redshift_inflight(), &[pid])
                .await
                .map_err(db("read STV_INFLIGHT"))?
                .iter()
                .map(|r| InflightRow {
                    pid: r.get(0),
                    label: r.get::<_, Option<String>>(1).unwrap_or_default(),
                    starttime: r.get(2),
                    xid: r.get(3),
                })
                .collect();
            let recents = client
                .query(sql::redshift_recents(), &[pid])
                .await
                .map_err(db("read STV_RECENTS"))?
                .iter()
                .map(|r| RecentRow {
                    pid: r.get(0),
                    status: r.get(1),
                    starttime: r.get(2),
                })
                .collect();
            let history = client
                .query(sql::redshift_history(), &[pid, &since])
                .await
                .map_err(db("read SYS_QUERY_HISTORY"))?
                .iter()
                .map(|r| HistoryRow {
                    query_id: r.get(0),
                    transaction_id: r.get(1),
                    label: r.get::<_, Option<String>>(2).unwrap_or_default(),
                    status: r.get::<_, Option<String>>(3).unwrap_or_default(),
                    start_time: r.get(4),
                    end_time: r.get(5),
                    returned_rows: r.get(6),
                    error: r.get(7),
                    text: r.get::<_, Option<String>>(8).unwrap_or_default(),
                })
                .collect();
            // Superusers only: a regular user learns nothing here.
            let transactions = match client
                .query(sql::redshift_transactions(), &[pid, &since])
                .await
            {
                Ok(rows) => Some(
                    rows.iter()
                        .map(|r| TransactionRow {
                            transaction_id: r.get(0),
                            status: r.get::<_, Option<String>>(1).unwrap_or_default(),
                        })
                        .collect(),
                ),
                Err(e) => {
                    tracing::debug!(error = %e, "SYS_TRANSACTION_HISTORY is not readable");
                    None
                }
            };
            Live::Redshift {
                sessions,
                inflight,
                recents,
                history,
                transactions,
            }
        }
        Dialect::Postgres => {
            let activity = client
                .query_opt(sql::postgres_session(), &[pid])
                .await
                .map_err(db("read pg_stat_activity"))?
                .map(|r| ActivityRow {
                    pid: r.get(0),
                    application_name: r.get::<_, Option<String>>(1).unwrap_or_default(),
                    state: r.get(2),
                    backend_start: r
                        .get::<_, Option<chrono::NaiveDateTime>>(3)
                        .unwrap_or(chrono::NaiveDateTime::MAX),
                    query: r.get::<_, Option<String>>(4).unwrap_or_default(),
                });
            Live::Postgres { activity }
        }
    };
    // Last: a block commits its journal row with it, so what the journal says now, after the
    // session was seen gone, is final.
    let journal = journal::observe_step(client, &handle.run_id, &handle.step_id).await?;
    Ok(Observation {
        journal,
        since,
        observer_pid,
        now,
        live,
    })
}
