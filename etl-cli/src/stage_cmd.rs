//! `etl stage`: upload a job's local input to S3 (optionally split for Redshift's parallel COPY),
//! write the COPY manifests, the transform SQL and the rewritten job manifest; print its URL.

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use clap::Args;
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use etl_core::aws::stage::{self, Split, StageEvent, StageObserver, StageOptions};
use etl_core::sql::S3Url;

use crate::Failure;

/// `etl stage` flags.
#[derive(Debug, Args)]
pub struct StageArgs {
    /// The job manifest (JSON) whose local input files to stage.
    job: PathBuf,

    /// Where to put everything: an S3 prefix (the job bucket's input prefix, e.g.
    /// s3://my-jobs/input/recommendations/, which Redshift may read).
    #[arg(long, value_name = "S3_URL", value_parser = parse_s3)]
    to: S3Url,

    /// Cut each table's input into exactly N compressed parts.
    #[arg(long, value_name = "N", conflicts_with_all = ["slices", "part_size"],
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    parts: Option<u32>,

    /// Cut each table's input into a multiple of N parts: the cluster's slices (nodes × slices per
    /// node), so that every slice loads a part at once.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    slices: Option<u32>,

    /// With --slices: the largest part wanted, in MB of compressed input (default 256).
    #[arg(long, value_name = "MB", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    part_size: Option<u64>,

    /// Where UNLOAD writes (replaces the manifest's unload.to; required when that is local).
    #[arg(long, value_name = "S3_URL", value_parser = parse_s3)]
    unload_to: Option<S3Url>,

    /// Tables staged at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    concurrency: usize,

    /// The permanent stack the job will run on: refuse, before uploading anything, a job whose
    /// --to or unload bucket, or redshift.region, its network cannot reach.
    #[arg(long, value_name = "NAME")]
    stack: Option<String>,
}

fn parse_s3(s: &str) -> Result<S3Url, String> {
    S3Url::parse(s)
}

/// Byte progress bars on a terminal; one line per table otherwise.
struct Progress {
    bars: Option<MultiProgress>,
    total: Option<ProgressBar>,
    tables: Mutex<HashMap<String, (ProgressBar, u64)>>,
}

impl Progress {
    fn new() -> Progress {
        let bars = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress {
            bars,
            total: None,
            tables: Mutex::new(HashMap::new()),
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

    fn style(template: &str) -> ProgressStyle {
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ")
    }
}

impl StageObserver for Progress {
    fn event(&self, event: StageEvent<'_>) {
        match event {
            StageEvent::Started { tables } => {
                let total: u64 = tables.iter().map(|(_, b)| b).sum();
                if let Some(bar) = &self.total {
                    bar.set_length(total);
                } else {
                    self.line(format!(
                        "staging {} table(s), {}",
                        tables.len(),
                        HumanBytes(total)
                    ));
                }
            }
            StageEvent::TableStarted {
                table,
                bytes,
                parts,
            } => {
                if let Some(mp) = &self.bars {
                    let bar = mp.insert_from_back(1, ProgressBar::new(bytes));
                    bar.set_style(Self::style(
                        "{prefix:>28} [{bar:30}] {bytes}/{total_bytes} {msg}",
                    ));
                    bar.set_prefix(table.to_owned());
                    if let Some(p) = parts {
                        bar.set_message(format!("→ {p} parts"));
                    }
                    if let Ok(mut t) = self.tables.lock() {
                        t.insert(table.to_owned(), (bar, 0));
                    }
                }
            }
            StageEvent::Progress { table, bytes } => {
                if let Ok(mut t) = self.tables.lock()
                    && let Some((bar, done)) = t.get_mut(table)
                {
                    bar.set_position(bytes);
                    if let Some(total) = &self.total {
                        total.inc(bytes.saturating_sub(*done));
                    }
                    *done = bytes;
                }
            }
            StageEvent::TableFinished { table } => {
                if let Ok(mut t) = self.tables.lock()
                    && let Some((bar, done)) = t.remove(&table.table)
                {
                    if let Some(total) = &self.total {
                        total.inc(table.input_bytes.saturating_sub(done));
                    }
                    bar.finish_and_clear();
                }
                let bytes: u64 = table.objects.iter().map(|o| o.bytes).sum();
                let records: Option<u64> = table.objects.iter().map(|o| o.records).sum();
                let mut text = format!(
                    "{}: {} object(s), {}",
                    table.table,
                    table.objects.len(),
                    HumanBytes(bytes)
                );
                if let Some(r) = records {
                    text.push_str(&format!(", {r} rows"));
                }
                self.line(text);
            }
            StageEvent::Uploaded { .. } => {}
        }
    }
}

/// Runs `etl stage`.
pub async fn run(args: StageArgs) -> Result<(), Failure> {
    if let Some(stack) = &args.stack {
        let job = etl_core::Job::read(&args.job)?;
        crate::reach_check(stack, &job, Some(&args.to), args.unload_to.as_ref()).await?;
    }
    let split = match (args.parts, args.slices, args.part_size) {
        (Some(n), _, _) => Split::Parts(n),
        (None, Some(slices), size) => Split::Slices {
            slices,
            part_size: size.unwrap_or(stage::DEFAULT_PART_SIZE_MB) * 1024 * 1024,
        },
        (None, None, Some(size)) => Split::Slices {
            slices: 1,
            part_size: size * 1024 * 1024,
        },
        (None, None, None) => Split::None,
    };
    let cancel = CancellationToken::new();
    let options = StageOptions {
        to: args.to.clone(),
        split,
        unload_to: args.unload_to.clone(),
        concurrency: args.concurrency.max(1),
        cancel: cancel.clone(),
    };
    let mut progress = Progress::new();
    if let Some(mp) = &progress.bars {
        let total = mp.add(ProgressBar::new(0));
        total.set_style(Progress::style(
            "{prefix:>28} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {eta}",
        ));
        total.set_prefix("total");
        total.enable_steady_tick(Duration::from_millis(200));
        progress.total = Some(total);
    }
    let on_ctrl_c = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("etl: interrupted, aborting the uploads…");
                cancel.cancel();
            }
        })
    };
    let result = stage::stage(&args.job, &options, &progress).await;
    on_ctrl_c.abort();
    if let Some(total) = &progress.total {
        total.finish_and_clear();
    }
    let report = match result {
        Ok(r) => r,
        Err(_) if cancel.is_cancelled() => return Err(Failure::Interrupted),
        Err(e) => return Err(e.into()),
    };
    let objects: usize = report.tables.iter().map(|t| t.objects.len()).sum();
    let bytes: u64 = report
        .tables
        .iter()
        .flat_map(|t| &t.objects)
        .map(|o| o.bytes)
        .sum();
    progress.line(format!(
        "staged {} table(s): {objects} object(s), {}, {} COPY manifest(s), {} SQL file(s); start it with: etl start {}",
        report.tables.len(),
        HumanBytes(bytes),
        report.tables.iter().filter(|t| t.copy_manifest.is_some()).count(),
        report.transforms.len(),
        report.job_url
    ));
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", report.job_url)?;
    out.flush()?;
    Ok(())
}
