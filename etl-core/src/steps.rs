//! One step of a job at a time, for an orchestrator that runs each step in its own invocation —
//! the state machine's Lambda functions: create the tables ([`Runner::create_tables`]), load one
//! table ([`Runner::load_table`]), submit a transform statement ([`Runner::submit_transform`]) or
//! the unload ([`Runner::submit_unload`]); [`crate::track::poll`] tells how a submitted one stands.
//!
//! Every step is journaled (`etl_meta`, see [`crate::journal`]) under the run id it is given, and
//! is safe to run again: a step the journal shows succeeded is not run twice, a step still running
//! on the server is not submitted twice, and a step's data commits together with its journal row.
//!
//! The dialects differ where the warehouses do:
//! - Redshift: a load is submitted as one request `BEGIN; [DELETE ...;] COPY ... FROM 's3://...';
//!   <journal>; COMMIT` ([`crate::track::submit_block`]) and returns at once; a table given as a list
//!   of files is read through a COPY manifest that the step writes under the run's folder
//!   (`<runs>/<run id>/_manifests/<schema>.<table>.manifest`). Transforms and the UNLOAD are
//!   submitted the same way ([`crate::track::submit`]).
//! - PostgreSQL: there is no server-side COPY from S3 nor UNLOAD, so a load and the unload run
//!   here, on the client, before the call returns: their handle is already final. Transforms are
//!   submitted as on Redshift, after the compatibility rewrite ([`sql::compat`]).
//!
//! ```no_run
//! # async fn demo(job: &etl_core::Job, warehouse: &etl_core::warehouse::Warehouse) -> etl_core::Result<()> {
//! use etl_core::steps::{Runner, StepOptions};
//! let runner = Runner::new(job, warehouse, "run-1", StepOptions::default())?;
//! let plan = runner.create_tables().await?;
//! for table in &plan.tables {
//!     let submission = runner.load_table(table.index).await?;
//!     let state = etl_core::track::poll(warehouse, submission.handle()).await?;
//! }
//! # Ok(()) }
//! ```

use crate::error::{Error, Result};
use crate::exec::{Executor, Guard, Orphans, Previous};
use crate::job::{Files, Job, Table};
use crate::journal;
use crate::load::client::{self, LoadSettings, SourceFile};
use crate::plan::{self, PlanOptions, Step, StepKind};
use crate::sql::{Dialect, IamRole, S3Url};
use crate::track::{self, Handle, Submitted};
use crate::warehouse::Warehouse;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt as _, PutPayload};

/// Settings of a stepwise run that are not in the manifest.
#[derive(Debug, Clone, Default)]
pub struct StepOptions {
    /// `IAM_ROLE` of Redshift's COPY and UNLOAD, replacing the job's.
    pub iam_role: Option<IamRole>,
    /// Where runs write their files (`s3://bucket/prefix/runs/`): a Redshift load of a list of
    /// files writes its COPY manifest below `<runs_url><run id>/`. Without it, the manifests go next
    /// to the input, as `etl plan` shows them.
    pub runs_url: Option<S3Url>,
    /// Client-side load settings (PostgreSQL).
    pub load: LoadSettings,
    /// The longest a step that runs in this process (a client-side load or unload) may take: a
    /// Lambda passes its invocation's remaining time less a margin.
    pub deadline: Option<std::time::Duration>,
}

/// One table of the load plan: its position is what [`Runner::load_table`] takes back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableRef {
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Position in the manifest's tables (0-based).
    pub index: usize,
}

/// What [`Runner::create_tables`] reports: the tables to load and the number of transform
/// statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablesPlan {
    /// Every table, in manifest order.
    pub tables: Vec<TableRef>,
    /// Transform statements, across all transform files.
    pub transform_count: usize,
}

/// A step handed to the warehouse.
#[derive(Debug)]
pub enum Submission {
    /// Submitted by this call and running on its own connection: keep it to learn how it ends
    /// ([`Submitted::finish`]), or drop it — the statement goes on and journals its own success.
    Submitted(Submitted),
    /// Nothing is running on this process's behalf: the step ran here (client-side), or an earlier
    /// attempt's statement is still running or done. Poll the handle.
    Known(Handle),
}

impl Submission {
    /// The handle to poll.
    pub fn handle(&self) -> &Handle {
        match self {
            Submission::Submitted(s) => &s.handle,
            Submission::Known(h) => h,
        }
    }
}

/// The steps of one job on one warehouse under one run id.
#[derive(Debug)]
pub struct Runner<'a> {
    job: &'a Job,
    warehouse: &'a Warehouse,
    run_id: String,
    steps: Vec<Step>,
    options: StepOptions,
}

impl<'a> Runner<'a> {
    /// Plans `job` for the warehouse's dialect.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad run id; [`Error::InvalidJob`] when the job cannot run on
    /// this warehouse (a local input on Redshift, names PostgreSQL would truncate).
    pub fn new(
        job: &'a Job,
        warehouse: &'a Warehouse,
        run_id: &str,
        options: StepOptions,
    ) -> Result<Self> {
        journal::check_run_id(run_id)?;
        let dialect = warehouse.dialect();
        if dialect == Dialect::Postgres {
            job.check_postgres()?;
        }
        let plan_options = PlanOptions {
            iam_role: options.iam_role.clone(),
            copy_manifests: options
                .runs_url
                .as_ref()
                .map(|r| r.join(&format!("{run_id}/"))),
            ..PlanOptions::default()
        };
        let steps = plan::build(job, dialect, &plan_options)?;
        Ok(Runner {
            job,
            warehouse,
            run_id: run_id.to_owned(),
            steps,
            options,
        })
    }

    /// The plan's steps.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The number of transform statements.
    pub fn transform_count(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s.kind, StepKind::Transform { .. }))
            .count()
    }

    fn dialect(&self) -> Dialect {
        self.warehouse.dialect()
    }

    /// The tables to load, in manifest order.
    pub fn tables(&self) -> Vec<TableRef> {
        self.job
            .tables
            .iter()
            .enumerate()
            .map(|(index, t)| TableRef {
                schema: t.name.schema.as_str().to_owned(),
                table: t.name.table.as_str().to_owned(),
                index,
            })
            .collect()
    }

    /// Creates the journal, registers the run and its steps, installs the compatibility functions
    /// on PostgreSQL, and runs the create-tables step (schemas and tables, `IF NOT EXISTS`, in one
    /// transaction with its journal row) unless the journal shows it done.
    ///
    /// # Errors
    /// [`Error::Connect`], [`Error::Query`] (journaled as the step's failure), [`Error::InvalidInput`]
    /// when the run id belongs to another job.
    pub async fn create_tables(&self) -> Result<TablesPlan> {
        let dialect = self.dialect();
        let conn = self.warehouse.get().await?;
        journal::ensure(&**conn).await?;
        if dialect == Dialect::Postgres {
            // Redshift's functions for the transforms (NVL, DATEADD, GETDATE, ...): idempotent.
            crate::exec::install_compat(&conn).await?;
        }
        let ids: Vec<(String, usize)> = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i + 1))
            .collect();
        let start =
            journal::begin_run(&**conn, dialect, &self.run_id, &self.job.name, &ids).await?;
        let digests: Vec<(String, String)> = self
            .steps
            .iter()
            .map(|s| (s.id.clone(), s.digest()))
            .collect();
        journal::check_plan(&**conn, &self.run_id, &digests, &start.succeeded).await?;
        drop(conn);
        let plan = TablesPlan {
            tables: self.tables(),
            transform_count: self.transform_count(),
        };
        let Some((i, step)) = self.find(|k| *k == StepKind::CreateTables) else {
            return Ok(plan);
        };
        if start.succeeded.contains(&step.id) {
            tracing::info!(run = %self.run_id, "tables already created in this run");
            return Ok(plan);
        }
        self.exec()
            .create_tables(i + 1, step, &self.guard())
            .await?;
        Ok(plan)
    }

    /// Loads table `index` (its position in the manifest). Redshift: writes the COPY manifest if
    /// the table is a list of files, submits the load and returns. PostgreSQL: loads it here, from
    /// the job's input (S3 or a folder), and returns a handle whose state is final — `Failed` when
    /// rows were rejected past MAXERROR or the server refused the data.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an index out of range; [`Error::InvalidJob`] when the table's
    /// files are missing; [`Error::Connect`], [`Error::Storage`]; any error a retry may fix.
    pub async fn load_table(&self, index: usize) -> Result<Submission> {
        let Some((i, step)) = self.find(|k| *k == StepKind::Load(index)) else {
            return Err(Error::invalid(
                "table index",
                format!(
                    "{index} is out of range: the job has {} table(s)",
                    self.job.tables.len()
                ),
            ));
        };
        if let Some(handle) = self.earlier_attempt(i, step).await? {
            return Ok(Submission::Known(handle));
        }
        let table = &self.job.tables[index];
        match self.dialect() {
            Dialect::Redshift => {
                if let (Files::List(_), Some(runs)) = (&table.files, &self.options.runs_url) {
                    self.write_copy_manifest(table, &runs.join(&format!("{}/", self.run_id)))
                        .await?;
                }
                let submitted = self.exec().submit(i + 1, step).await?;
                Ok(Submission::Submitted(submitted))
            }
            Dialect::Postgres => {
                let files = client::resolve_files(self.job, table).await?;
                let outcome = self
                    .exec()
                    .load_here(
                        i + 1,
                        step,
                        table,
                        &files,
                        self.options.load,
                        &self.guard(),
                        &|_: client::Progress| {},
                    )
                    .await;
                let error = match outcome {
                    Ok(r) => {
                        tracing::info!(table = %table.name, rows = r.rows, rejected = r.rejected, files = r.files, "loaded");
                        None
                    }
                    Err(f) => Some(f.error),
                };
                self.known(i, step, error).await.map(Submission::Known)
            }
        }
    }

    /// Submits transform statement `index` (0-based, across all transform files).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an index out of range; [`Error::Connect`], [`Error::Query`].
    pub async fn submit_transform(&self, index: usize) -> Result<Submission> {
        let found = self
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s.kind, StepKind::Transform { .. }))
            .nth(index);
        let Some((i, step)) = found else {
            return Err(Error::invalid(
                "transform index",
                format!(
                    "{index} is out of range: the job has {} transform statement(s)",
                    self.transform_count()
                ),
            ));
        };
        if let Some(handle) = self.earlier_attempt(i, step).await? {
            return Ok(Submission::Known(handle));
        }
        // The PostgreSQL plan holds the transforms as rewritten for PostgreSQL (plan::build).
        let submitted = self.exec().submit(i + 1, step).await?;
        Ok(Submission::Submitted(submitted))
    }

    /// Submits the unload (Redshift), or runs it here (PostgreSQL: `COPY (query) TO STDOUT` written
    /// in UNLOAD's file layout, to S3 or a folder), returning a final handle. A job without an
    /// unload gets a step that succeeds at once.
    ///
    /// # Errors
    /// [`Error::Connect`], [`Error::Query`], [`Error::Storage`].
    pub async fn submit_unload(&self) -> Result<Submission> {
        let Some((i, step)) = self.find(|k| matches!(k, StepKind::Unload { .. })) else {
            return self.nothing_to_unload().await.map(Submission::Known);
        };
        if let Some(handle) = self.earlier_attempt(i, step).await? {
            return Ok(Submission::Known(handle));
        }
        match self.dialect() {
            Dialect::Redshift => {
                let submitted = self.exec().submit(i + 1, step).await?;
                Ok(Submission::Submitted(submitted))
            }
            Dialect::Postgres => {
                let error = match self
                    .exec()
                    .unload_here(i + 1, step, None, &self.guard())
                    .await
                {
                    Ok(report) => {
                        tracing::info!(rows = report.rows, files = report.files.len(), "unloaded");
                        None
                    }
                    Err(e) => Some(e),
                };
                self.known(i, step, error).await.map(Submission::Known)
            }
        }
    }

    fn exec(&self) -> Executor<'_> {
        Executor::new(self.job, self.warehouse, &self.run_id)
    }

    /// A Lambda's in-process steps stop before the invocation's deadline, cancelled on the server.
    fn guard(&self) -> Guard {
        Guard {
            cancel: tokio_util::sync::CancellationToken::new(),
            timeout: self.options.deadline,
        }
    }

    fn find(&self, pred: impl Fn(&StepKind) -> bool) -> Option<(usize, &Step)> {
        self.steps.iter().enumerate().find(|(_, s)| pred(&s.kind))
    }

    /// Registers a step the journal does not know (create-tables ran under another run id).
    async fn register(&self, i: usize, step: &Step) -> Result<()> {
        let conn = self.warehouse.get().await?;
        journal::begin_run(
            &**conn,
            self.dialect(),
            &self.run_id,
            &self.job.name,
            &[(step.id.clone(), i + 1)],
        )
        .await?;
        Ok(())
    }

    /// What an earlier attempt of this step left: a handle when the journal shows it succeeded, or
    /// running and the server agrees; `None` when it must be (re)submitted. Registers the step when
    /// the journal does not know it.
    async fn earlier_attempt(&self, i: usize, step: &Step) -> Result<Option<Handle>> {
        if self.exec().journaled(i + 1, step).await?.is_none() {
            self.register(i, step).await?;
            return Ok(None);
        }
        let previous = self
            .exec()
            .previous(i + 1, step, Orphans::Report, &self.guard(), &|_, _| {})
            .await?;
        Ok(match previous {
            Previous::Succeeded(h) => {
                tracing::info!(step = %step.id, "already succeeded in this run");
                Some(h)
            }
            Previous::Running(h) => {
                tracing::info!(step = %step.id, pid = h.pid, "an earlier attempt is still running");
                Some(h)
            }
            Previous::Run => None,
        })
    }

    /// The handle of a step that ran here (its journal row is final); an error a retry may fix is
    /// returned instead.
    async fn known(&self, i: usize, step: &Step, error: Option<Error>) -> Result<Handle> {
        if let Some(e) = error
            && e.is_retryable()
        {
            return Err(e);
        }
        match self.exec().journaled(i + 1, step).await? {
            Some((row, handle)) => {
                if let Some(e) = &row.error {
                    tracing::warn!(step = %step.id, error = %e, "step failed");
                }
                Ok(handle)
            }
            None => Err(Error::Internal(format!(
                "step {} ran but the journal does not know it",
                step.id
            ))),
        }
    }

    /// Writes the COPY manifest of a table given as a list of files, below `folder`, where the
    /// plan's COPY reads it.
    async fn write_copy_manifest(&self, table: &Table, folder: &S3Url) -> Result<()> {
        let files = client::resolve_files(self.job, table).await?;
        let body = copy_manifest(&files);
        let url = plan::copy_manifest_url(folder, table);
        let store = crate::storage::s3_store(&url)?;
        store
            .put(&ObjectPath::from(url.key()), PutPayload::from(body))
            .await
            .map_err(|source| Error::Storage {
                action: "cannot write the COPY manifest",
                location: url.to_string(),
                source,
            })?;
        tracing::info!(manifest = %url, files = files.len(), "wrote the COPY manifest");
        Ok(())
    }

    /// A job without an unload: an `unload` step that succeeds at once, so that the state
    /// machine's poll finds it.
    async fn nothing_to_unload(&self) -> Result<Handle> {
        let step = Step {
            id: "unload".into(),
            kind: StepKind::Unload {
                query: String::new(),
            },
            body: crate::plan::Body::Transaction(Vec::new()),
        };
        let i = self.steps.len();
        self.register(i, &step).await?;
        let conn = self.warehouse.get().await?;
        let handle =
            track::begin(&conn, self.dialect(), &self.run_id, &step.id, i + 1, true).await?;
        journal::succeed_step(
            &**conn,
            self.dialect(),
            &self.run_id,
            &step.id,
            Some(0),
            None,
        )
        .await?;
        Ok(handle)
    }
}

/// The COPY manifest of a table's files
/// (<https://docs.aws.amazon.com/redshift/latest/dg/loading-data-files-using-manifest.html>):
/// every file mandatory, so a missing one fails the COPY instead of loading less.
pub fn copy_manifest(files: &[SourceFile]) -> Vec<u8> {
    let entries: Vec<serde_json::Value> = files
        .iter()
        .map(|f| {
            serde_json::json!({
                "url": f.name,
                "mandatory": true,
                "meta": {"content_length": f.size},
            })
        })
        .collect();
    let mut body =
        serde_json::to_vec_pretty(&serde_json::json!({ "entries": entries })).unwrap_or_default();
    body.push(b'\n');
    body
}
