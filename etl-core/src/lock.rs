//! One run of a job at a time per warehouse.
//!
//! Two runs of one job at once corrupt each other's data: each REPLACE's `DELETE` cannot see the
//! other's uncommitted COPY, so both sets of rows survive; the same run id in two processes loads
//! every table twice. So a run holds the job's **run lock** while it runs:
//!
//! - **PostgreSQL**: a session-level advisory lock (`pg_try_advisory_lock`, keys from the job's
//!   name) on a session of its own. The server releases it when that session ends — also when the
//!   process is killed — so a lock is never left behind.
//! - **Redshift** has no advisory locks: a row in `etl_meta.locks`, read and written under
//!   `LOCK etl_meta.locks` (which serialises the lock's readers and writers), naming the owner's
//!   session. A row whose session no longer exists (`STV_SESSIONS`) or whose run is no longer
//!   `running` in the journal is stale and is taken over.
//!
//! Either way `etl_meta.locks` says who holds the lock (run id, host, client PID, session, start),
//! so that a refused run can say where the active one runs and how to stop it.

use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::sql::{self, Dialect, journal as q};
use crate::warehouse::Warehouse;

/// The job's run lock, held until [`RunLock::release`] or until the value (and its session) is
/// dropped.
pub struct RunLock {
    client: Client,
    dialect: Dialect,
    job: String,
    run_id: String,
    keys: (i32, i32),
}

impl std::fmt::Debug for RunLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunLock")
            .field("job", &self.job)
            .field("run_id", &self.run_id)
            .finish_non_exhaustive()
    }
}

/// The advisory lock's two keys: a constant class (`"ETL\0"`) and the FNV-1a hash of the job's name.
fn keys(job: &str) -> (i32, i32) {
    let mut h: u32 = 0x811c_9dc5;
    for b in job.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (0x4554_4c00, h as i32)
}

fn db(context: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| Error::query(context, &e)
}

/// This machine's name, for the lock's owner.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown host".into())
}

/// Takes the run lock of `job` for `run_id`. When another run holds it: [`Error::RunActive`] at
/// once, naming that run, or with `wait` waits until it is free (cancelled by `cancel`).
/// The journal (`etl_meta`) must exist.
///
/// # Errors
/// [`Error::RunActive`], [`Error::Cancelled`], [`Error::Connect`], [`Error::Query`].
pub async fn acquire(
    warehouse: &Warehouse,
    job: &str,
    run_id: &str,
    wait: bool,
    cancel: &CancellationToken,
) -> Result<RunLock> {
    let dialect = warehouse.dialect();
    let client = warehouse.connect_one().await?;
    let lock = RunLock {
        client,
        dialect,
        job: job.to_owned(),
        run_id: run_id.to_owned(),
        keys: keys(job),
    };
    match dialect {
        Dialect::Postgres => lock.take_advisory(warehouse, wait, cancel).await?,
        Dialect::Redshift => loop {
            match lock.take_row().await {
                Err(Error::RunActive { .. }) if wait => {
                    tokio::select! {
                        () = cancel.cancelled() => return Err(Error::Cancelled {
                            context: format!("waiting for the active run of job {job}"),
                        }),
                        () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                    }
                }
                other => break other?,
            }
        },
    }
    Ok(lock)
}

impl RunLock {
    async fn take_advisory(
        &self,
        warehouse: &Warehouse,
        wait: bool,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let (k1, k2) = self.keys;
        let taken: bool = self
            .client
            .query_one(q::try_run_lock(), &[&k1, &k2])
            .await
            .map_err(db("take the job's run lock"))?
            .get(0);
        if !taken {
            if !wait {
                return Err(self.active().await);
            }
            tracing::info!(job = %self.job, "waiting for the job's active run to end");
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&k1, &k2];
            let blocking = self.client.query_one(q::wait_run_lock(), &params);
            tokio::select! {
                r = blocking => { r.map_err(db("wait for the job's run lock"))?; }
                () = cancel.cancelled() => {
                    if let Ok(tls) = crate::warehouse::tls_connector(warehouse.options()) {
                        let _ = self.client.cancel_token().cancel_query(tls).await;
                    }
                    return Err(Error::Cancelled {
                        context: format!("waiting for the active run of job {}", self.job),
                    });
                }
            }
        }
        self.write_owner(false).await
    }

    /// Redshift: the lock row, under `LOCK etl_meta.locks`.
    async fn take_row(&self) -> Result<()> {
        self.write_owner(true).await
    }

    /// Records this run as the owner. With `check`, first refuses when a live owner holds it
    /// (the row and the check in one transaction under the table lock).
    async fn write_owner(&self, check: bool) -> Result<()> {
        let c = &self.client;
        c.batch_execute(sql::BEGIN)
            .await
            .map_err(db("take the job's run lock"))?;
        let r = async {
            if check {
                c.batch_execute(q::lock_locks_table())
                    .await
                    .map_err(db("lock etl_meta.locks"))?;
                if let Some(owner) = self.owner().await?
                    && owner.run_id != self.run_id
                    && self.is_alive(&owner).await?
                {
                    return Err(owner.into_error(&self.job));
                }
            }
            c.execute(q::clear_lock(), &[&self.job])
                .await
                .map_err(db("take the job's run lock"))?;
            let pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
            c.execute(
                &q::write_lock(self.dialect),
                &[&self.job, &self.run_id, &host(), &pid],
            )
            .await
            .map_err(db("take the job's run lock"))?;
            c.batch_execute(sql::COMMIT)
                .await
                .map_err(db("take the job's run lock"))?;
            Ok(())
        }
        .await;
        if r.is_err() {
            let _ = c.batch_execute(sql::ROLLBACK).await;
        }
        r
    }

    async fn owner(&self) -> Result<Option<Owner>> {
        let row = self
            .client
            .query_opt(q::lock_owner(), &[&self.job])
            .await
            .map_err(db("read the job's run lock"))?;
        Ok(row.map(|r| Owner {
            run_id: r.get(0),
            host: r.get(1),
            client_pid: r.get(2),
            session_pid: r.get(3),
            started_at: r.get(4),
        }))
    }

    /// Redshift: whether the owner's session exists and its run is still running.
    async fn is_alive(&self, owner: &Owner) -> Result<bool> {
        let running = self
            .client
            .query_opt(q::run_status(), &[&owner.run_id])
            .await
            .map_err(db("read the journal"))?
            .is_some_and(|r| r.get::<_, String>(0) == "running");
        if !running {
            return Ok(false);
        }
        let Some(pid) = owner.session_pid else {
            return Ok(true);
        };
        Ok(self
            .client
            .query_opt(q::session_alive(self.dialect), &[&pid])
            .await
            .map_err(db("ask the server about the lock's session"))?
            .is_some())
    }

    /// The error for a lock held by another run, with who holds it.
    async fn active(&self) -> Error {
        match self.owner().await {
            Ok(Some(owner)) => owner.into_error(&self.job),
            _ => Error::RunActive {
                job: self.job.clone(),
                run_id: "(unknown)".into(),
                owner: "another session holds the job's lock".into(),
                since: "?".into(),
            },
        }
    }

    /// Releases the lock: the owner row, then the advisory lock (the session's end would too).
    pub async fn release(self) {
        let _ = self
            .client
            .execute(q::release_lock(), &[&self.job, &self.run_id])
            .await;
        if self.dialect == Dialect::Postgres {
            let (k1, k2) = self.keys;
            let _ = self
                .client
                .query_one(q::release_run_lock(), &[&k1, &k2])
                .await;
        }
    }
}

/// Who holds a job's run lock.
struct Owner {
    run_id: String,
    host: Option<String>,
    client_pid: Option<i32>,
    session_pid: Option<i32>,
    started_at: chrono::NaiveDateTime,
}

impl Owner {
    fn into_error(self, job: &str) -> Error {
        let mut owner = format!(
            "host {}, pid {}",
            self.host.as_deref().unwrap_or("?"),
            self.client_pid.map_or("?".into(), |p| p.to_string())
        );
        if let Some(s) = self.session_pid {
            owner.push_str(&format!(", server session {s}"));
        }
        Error::RunActive {
            job: job.to_owned(),
            run_id: self.run_id,
            owner,
            since: self.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::keys;

    #[test]
    fn keys_are_stable_and_per_job() {
        assert_eq!(keys("recommendations"), keys("recommendations"));
        assert_ne!(keys("recommendations").1, keys("billing").1);
        assert_eq!(keys("x").0, 0x4554_4c00);
    }
}
