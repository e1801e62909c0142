//! `etl run`: the whole job on one machine.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use clap::Args;
use comfy_table::{Cell, CellAlignment, Table};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use etl_core::cluster::Local;
use etl_core::job::Location;
use etl_core::journal::Status;
use etl_core::load::CopyEncoding;
use etl_core::load::client::{LoadSettings, describe};
use etl_core::pipeline::{self, Event, Observer, RunOptions, RunReport};
use etl_core::plan::StepKind;
use etl_core::warehouse::{Retry, Warehouse};
use etl_core::{Error, Job};

use crate::Failure;
use crate::conn::ConnArgs;

/// `etl run` flags.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The job manifest (JSON).
    job: PathBuf,

    #[command(flatten)]
    conn: ConnArgs,

    /// Keep the throwaway PostgreSQL running after the run and print how to connect to it.
    #[arg(long)]
    keep: bool,

    /// Resume this run (steps journaled as succeeded are skipped), or name a new one.
    #[arg(long, value_name = "ID")]
    run_id: Option<String>,

    /// Tables loaded at once (default: the manifest's `concurrency`, 20).
    #[arg(long, value_name = "N")]
    concurrency: Option<usize>,

    /// Parser worker threads per input file (default: the CPUs shared among the tables loading at
    /// once).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,

    /// Cancel any statement running longer than this (default: the manifest's).
    #[arg(long, value_name = "SECONDS")]
    statement_timeout: Option<u64>,

    /// Write the unload here instead of the manifest's `unload.to` (a path prefix or s3://...).
    #[arg(long, value_name = "PREFIX")]
    unload_to: Option<String>,

    /// Run the transforms as written: don't install the Redshift compatibility functions (NVL,
    /// DATEADD, ...) in `public` and don't rewrite Redshift-only syntax (bare date parts, SYSDATE,
    /// DECODE, LISTAGG ... WITHIN GROUP).
    #[arg(long)]
    no_compat: bool,

    /// Refuse to run a transform that uses a construct the PostgreSQL rehearsal cannot reproduce
    /// (otherwise a warning).
    #[arg(long)]
    strict: bool,

    /// Files of one table parsed at once (default 1; for measurements).
    #[arg(long, hide = true, value_name = "N")]
    parallel_files: Option<usize>,

    /// Stream rows in PostgreSQL's text COPY format instead of binary (for comparison).
    #[arg(long, hide = true)]
    text_copy: bool,

    /// Print the run report as JSON on stdout.
    #[arg(long)]
    json: bool,

    /// When another run of this job is active on the warehouse, wait for it to end instead of
    /// refusing.
    #[arg(long)]
    wait: bool,

    /// On resume, cancel a statement an earlier attempt left running on the server (its client
    /// was killed) and run the step again, instead of waiting for it.
    #[arg(long)]
    cancel_orphans: bool,
}

/// Progress bars on a terminal, plain lines otherwise.
struct Progress {
    bars: Option<MultiProgress>,
    active: Mutex<HashMap<String, ProgressBar>>,
}

impl Progress {
    fn new() -> Self {
        let bars = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress {
            bars,
            active: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, text: String) {
        match &self.bars {
            Some(mp) => {
                let _ = mp.println(text);
            }
            None => eprintln!("{text}"),
        }
    }
}

fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

impl Observer for Progress {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::RunStarted {
                run_id,
                resumed,
                skipped,
            } => {
                if resumed {
                    self.line(format!(
                        "resuming run {run_id} ({skipped} step(s) already done)"
                    ));
                } else {
                    self.line(format!("run {run_id}"));
                }
            }
            Event::StepStarted { step, bytes } => {
                if let (Some(mp), Some(total)) = (&self.bars, bytes) {
                    let bar = mp.add(ProgressBar::new(total));
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{prefix:>24} [{bar:30}] {bytes}/{total_bytes} {msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    bar.set_prefix(step.id.clone());
                    bar.enable_steady_tick(Duration::from_millis(200));
                    if let Ok(mut active) = self.active.lock() {
                        active.insert(step.id.clone(), bar);
                    }
                } else {
                    match bytes {
                        Some(b) => self.line(format!("{}: started ({})", step.id, human_bytes(b))),
                        None => self.line(format!("{}: started", step.id)),
                    }
                }
            }
            Event::WaitingForOrphan { step, pid, seconds } => {
                self.line(format!(
                    "{}: an earlier attempt is still running on the server (session {pid}, for \
                     {seconds:.0}s); waiting for it to finish (--cancel-orphans cancels it instead)",
                    step.id
                ));
            }
            Event::Progress { step, progress } => {
                if let Ok(active) = self.active.lock()
                    && let Some(bar) = active.get(step)
                {
                    bar.set_position(progress.bytes);
                    bar.set_message(format!(
                        "{} rows, {} rejected",
                        progress.rows, progress.rejected
                    ));
                }
            }
            Event::StepFinished { report } => {
                if let Ok(mut active) = self.active.lock()
                    && let Some(bar) = active.remove(&report.id)
                {
                    bar.finish_and_clear();
                }
                let mut text = format!(
                    "{}: {}",
                    report.id,
                    if report.skipped {
                        "skipped (done before)"
                    } else {
                        report.status.as_str()
                    }
                );
                if !report.skipped {
                    text.push_str(&format!(" in {:.2}s", report.seconds));
                    if let Some(rows) = report.rows {
                        text.push_str(&format!(", {rows} rows"));
                        if report.seconds > 0.0 && matches!(report.kind, StepKind::Load(_)) {
                            text.push_str(&format!(
                                " ({:.0} rows/s, {}/s)",
                                rows as f64 / report.seconds,
                                human_bytes((report.bytes as f64 / report.seconds) as u64)
                            ));
                        }
                    }
                    if report.rejected > 0 {
                        text.push_str(&format!(", {} rejected", report.rejected));
                    }
                }
                self.line(text);
            }
        }
    }
}

fn summary(report: &RunReport) -> Table {
    let mut table = Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header(["step", "status", "time", "rows", "rejected"]);
    for s in &report.steps {
        let status = if s.skipped {
            "skipped".to_owned()
        } else {
            s.status.to_string()
        };
        table.add_row(vec![
            Cell::new(&s.id),
            Cell::new(status),
            Cell::new(if s.skipped || s.status == Status::Pending {
                String::new()
            } else {
                format!("{:.2}s", s.seconds)
            })
            .set_alignment(CellAlignment::Right),
            Cell::new(s.rows.map(|r| r.to_string()).unwrap_or_default())
                .set_alignment(CellAlignment::Right),
            Cell::new(if s.rejected > 0 {
                s.rejected.to_string()
            } else {
                String::new()
            })
            .set_alignment(CellAlignment::Right),
        ]);
    }
    table
}

fn report_json(report: &RunReport) -> serde_json::Value {
    serde_json::json!({
        "run_id": report.run_id,
        "resumed": report.resumed,
        "seconds": report.seconds,
        "status": if report.error.is_some() { "failed" } else { "succeeded" },
        "error": report.error.as_ref().map(etl_core::journal::error_text),
        "steps": report.steps.iter().map(|s| serde_json::json!({
            "id": s.id,
            "status": s.status,
            "skipped": s.skipped,
            "seconds": s.seconds,
            "rows": s.rows,
            "rejected": s.rejected,
            "files": s.files,
            "error": s.error,
            "load_errors": s.load_errors.iter().take(100).map(|e| serde_json::json!({
                "file": e.file, "line": e.line, "column": e.column, "position": e.position,
                "code": e.code, "reason": e.reason, "raw_line": e.raw_line, "raw_field": e.raw_field,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// Runs `etl run`.
pub async fn run(args: RunArgs) -> Result<(), Failure> {
    let job = Job::from_path(&args.job)?;
    job.check_postgres()?;
    for w in job.warnings() {
        eprintln!("etl: note: {w}");
    }
    crate::plan_cmd::compat_check(&job, args.strict && !args.no_compat, args.no_compat)?;
    let unload_to = match &args.unload_to {
        None => None,
        Some(t) if t.starts_with("s3://") => Some(Location::S3(
            t.parse().map_err(|e: Error| Failure::Usage(e.into()))?,
        )),
        Some(t) => Some(Location::Local(PathBuf::from(t))),
    };
    if args.keep && args.conn.given() {
        return Err(Failure::Usage(anyhow::anyhow!(
            "--keep keeps the throwaway PostgreSQL; it makes no sense with --database-url or --secret-id"
        )));
    }

    let concurrency = args.concurrency.unwrap_or(job.concurrency).max(1);
    // The local server and its pool: one connection per table loading at once, and one spare.
    let (local, options) = match args.conn.given() {
        true => (None, args.conn.options().await?),
        false => {
            eprintln!("starting a throwaway PostgreSQL…");
            let local = Local::start().await?;
            let options = local.connect_options();
            (Some(local), options)
        }
    };
    let warehouse = Warehouse::connect_with(
        options,
        concurrency + 1,
        Retry::for_up_to(crate::conn::CONNECT_RETRY),
    )
    .await?;
    let cancel = tokio_util::sync::CancellationToken::new();
    let on_ctrl_c = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("etl: interrupted, cancelling running statements…");
                cancel.cancel();
            }
        })
    };
    let load = LoadSettings {
        workers: args.workers,
        encoding: if args.text_copy {
            CopyEncoding::Text
        } else {
            CopyEncoding::Binary
        },
        parallel_files: args.parallel_files,
    };
    let progress = Progress::new();
    let report = pipeline::run(
        &job,
        &warehouse,
        RunOptions {
            run_id: args.run_id.clone(),
            concurrency: Some(concurrency),
            load,
            statement_timeout: args.statement_timeout.map(Duration::from_secs),
            unload_to,
            compat: !args.no_compat,
            cancel: cancel.clone(),
            orphans: if args.cancel_orphans {
                etl_core::exec::Orphans::Cancel
            } else {
                etl_core::exec::Orphans::Wait
            },
            wait: args.wait,
        },
        &progress,
    )
    .await;
    on_ctrl_c.abort();
    drop(warehouse);

    eprintln!("{}", summary(&report));
    for s in &report.steps {
        if !s.load_errors.is_empty() {
            eprintln!("{}: {} rejected row(s); the first:", s.id, s.rejected);
            for e in s.load_errors.iter().take(5) {
                eprintln!("  {}", describe(e));
            }
            eprintln!(
                "  (all of them: etl_meta.load_errors where run_id = '{}')",
                report.run_id
            );
        }
        if !s.files.is_empty() {
            eprintln!("{}: wrote {}", s.id, s.files.join(", "));
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report_json(&report)).unwrap_or_default()
        );
    }
    let mut resume_with = args
        .conn
        .given()
        .then(|| "<the same --database-url or --secret-id>".to_owned());
    if let Some(local) = local {
        if args.keep {
            let kept = local.keep();
            eprintln!(
                "the PostgreSQL server keeps running:\n  psql '{url}'\n  try Redshift SQL on it: \
                 etl sql --dialect redshift --database-url '{url}' -c '...'\n  stop it with: {}",
                kept.stop_command(),
                url = kept.options.url(),
            );
            resume_with = Some(format!("--database-url '{}'", kept.options.url()));
        } else {
            drop(local);
        }
    }
    match report.error {
        None => {
            eprintln!("run {} succeeded in {:.2}s", report.run_id, report.seconds);
            Ok(())
        }
        Some(e) if cancel.is_cancelled() && e.kind() == etl_core::ErrorKind::Cancelled => {
            Err(Failure::Interrupted)
        }
        Some(e @ Error::RunActive { .. }) => Err(Failure::Failed(e.into())),
        Some(e) => {
            let hint = match resume_with {
                Some(conn) => format!(
                    "fix the problem, then resume: etl run {} {conn} --run-id {}",
                    args.job.display(),
                    report.run_id
                ),
                None => "fix the problem and run again (the throwaway database is gone; \
                         with --keep a run can be resumed with --run-id)"
                    .to_owned(),
            };
            // A step that ran and failed is exit 1 whatever failed in it (a statement, a full
            // disk, a cancel by someone else); usage errors before any step ran stay exit 2.
            let step_failed = report
                .steps
                .iter()
                .any(|s| matches!(s.status, Status::Failed | Status::Cancelled));
            Err(match Failure::from(e) {
                Failure::Failed(e) => Failure::Failed(anyhow::anyhow!("{e:#}\n  {hint}")),
                Failure::Usage(e) if step_failed => {
                    Failure::Failed(anyhow::anyhow!("{e:#}\n  {hint}"))
                }
                // Cancelled from elsewhere (`etl cancel`, pg_cancel_backend): the run failed with
                // the server's message; it was not interrupted.
                Failure::Interrupted => Failure::Failed(anyhow::anyhow!(
                    "{}\n  {hint}",
                    report
                        .steps
                        .iter()
                        .find_map(|s| s.error.clone())
                        .unwrap_or_else(|| "the run was cancelled".into())
                )),
                other => other,
            })
        }
    }
}
