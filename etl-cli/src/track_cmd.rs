//! `etl status`, `etl cancel` and `etl statement`: the journal and statement tracking from the
//! command line.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use comfy_table::Table;

use etl_core::journal;
use etl_core::sql::{self, Dialect};
use etl_core::track::{self, Handle, State};
use etl_core::warehouse::{Retry, Warehouse};

use crate::Failure;
use crate::conn::ConnArgs;
use crate::output::Format;

/// `etl status` flags.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A run id: its steps. Without it: the latest runs.
    run_id: Option<String>,
    #[command(flatten)]
    conn: ConnArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// How many runs to list.
    #[arg(long, default_value_t = 20)]
    limit: i64,
}

/// `etl cancel` flags.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The run whose running statements to cancel.
    run_id: String,
    #[command(flatten)]
    conn: ConnArgs,
}

/// `etl statement` subcommands.
#[derive(Debug, Subcommand)]
pub enum StatementCommand {
    /// Submit a statement as a journaled step; print its handle (JSON) at once.
    Submit(SubmitArgs),
    /// Print what the statement behind a handle is doing (JSON).
    Status(HandleArgs),
    /// Wait until the statement ends; exit 0 when it succeeded, 1 otherwise.
    Wait(WaitArgs),
    /// Cancel the statement behind a handle (only if its session still carries its label).
    Cancel(HandleArgs),
}

/// `etl statement submit` flags.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The run the statement belongs to.
    #[arg(long)]
    run_id: String,
    /// The step's id within the run.
    #[arg(long)]
    step: String,
    /// The statement.
    #[arg(
        short = 'c',
        long = "command",
        conflicts_with = "file",
        required_unless_present = "file"
    )]
    command: Option<String>,
    /// A file holding the statement.
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// Stay until the statement ends, then print its state.
    #[arg(long)]
    wait: bool,
}

/// A handle given on the command line.
#[derive(Debug, Args)]
pub struct HandleArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The handle: JSON text, a file holding it, or `-` for stdin.
    handle: String,
}

/// `etl statement wait` flags.
#[derive(Debug, Args)]
pub struct WaitArgs {
    #[command(flatten)]
    handle: HandleArgs,
    /// Give up after this many seconds (exit 1, the statement keeps running).
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
}

async fn warehouse(conn: &ConnArgs) -> Result<Warehouse, Failure> {
    Ok(Warehouse::connect_with(
        conn.options().await?,
        2,
        Retry::for_up_to(crate::conn::CONNECT_RETRY),
    )
    .await?)
}

fn read_handle(text: &str) -> anyhow::Result<Handle> {
    let json = if text == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the handle from stdin")?;
        s
    } else if text.trim_start().starts_with('{') {
        text.to_owned()
    } else {
        std::fs::read_to_string(text)
            .with_context(|| format!("cannot read the handle file {text}"))?
    };
    serde_json::from_str(&json)
        .context("not a statement handle (JSON printed by `etl statement submit`)")
}

fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value).map_err(anyhow::Error::from)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

fn state_failure(state: &State) -> Option<Failure> {
    match state {
        State::Succeeded { .. } => None,
        State::Failed { sqlstate, message } => Some(Failure::Failed(anyhow::anyhow!(
            "the statement failed: {message}{}",
            sqlstate
                .as_deref()
                .map(|s| format!(" (SQLSTATE {s})"))
                .unwrap_or_default()
        ))),
        State::Cancelled => Some(Failure::Failed(anyhow::anyhow!(
            "the statement was cancelled"
        ))),
        State::Running => Some(Failure::Failed(anyhow::anyhow!(
            "the statement is still running"
        ))),
        State::Unknown { reason } => Some(Failure::Failed(anyhow::anyhow!(
            "cannot tell how the statement ended: {reason}"
        ))),
    }
}

/// Runs `etl statement ...`.
pub async fn statement(cmd: StatementCommand) -> Result<(), Failure> {
    match cmd {
        StatementCommand::Submit(args) => {
            let text = match (&args.command, &args.file) {
                (Some(c), _) => c.clone(),
                (None, Some(f)) => std::fs::read_to_string(f)
                    .map_err(|e| etl_core::Error::io("cannot read", f.display(), e))?,
                (None, None) => unreachable!("clap requires one"),
            };
            let wh = warehouse(&args.conn).await?;
            let conn = wh.get().await?;
            journal::ensure(&**conn).await?;
            journal::begin_run(
                &**conn,
                wh.dialect(),
                &args.run_id,
                "adhoc",
                &[(args.step.clone(), 1)],
            )
            .await?;
            drop(conn);
            let submitted = track::submit(
                &wh,
                &args.run_id,
                &args.step,
                1,
                text.trim().trim_end_matches(';'),
            )
            .await?;
            print_json(&submitted.handle)?;
            if args.wait {
                let handle = submitted.handle.clone();
                let result = submitted.finish(&wh).await;
                print_json(&track::poll(&wh, &handle).await?)?;
                result?;
            }
            Ok(())
        }
        StatementCommand::Status(args) => {
            let handle = read_handle(&args.handle).map_err(Failure::Usage)?;
            let wh = warehouse(&args.conn).await?;
            print_json(&track::poll(&wh, &handle).await?)
        }
        StatementCommand::Wait(args) => {
            let handle = read_handle(&args.handle.handle).map_err(Failure::Usage)?;
            let wh = warehouse(&args.handle.conn).await?;
            let state = track::wait(
                &wh,
                &handle,
                Instant::now() + Duration::from_secs(args.timeout),
            )
            .await?;
            print_json(&state)?;
            state_failure(&state).map_or(Ok(()), Err)
        }
        StatementCommand::Cancel(args) => {
            let handle = read_handle(&args.handle).map_err(Failure::Usage)?;
            let wh = warehouse(&args.conn).await?;
            let sent = track::cancel(&wh, &handle).await?;
            if !sent {
                eprintln!(
                    "etl: nothing to cancel: session {} no longer runs {}",
                    handle.pid, handle.label
                );
            }
            Ok(())
        }
    }
}

fn ts(t: Option<chrono::NaiveDateTime>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Runs `etl status`.
pub async fn status(args: StatusArgs) -> Result<(), Failure> {
    let wh = warehouse(&args.conn).await?;
    let conn = wh.get().await?;
    journal::ensure(&**conn).await?;
    let db = |e: tokio_postgres::Error| etl_core::Error::query("read the journal", &e);
    match &args.run_id {
        None => {
            let rows = conn
                .query(sql::journal::list_runs(), &[&args.limit])
                .await
                .map_err(db)?;
            let runs: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "run_id": r.get::<_, String>(0),
                        "job": r.get::<_, String>(1),
                        "status": r.get::<_, String>(2),
                        "started_at": ts(r.get(3)),
                        "finished_at": ts(r.get(4)),
                        "error": r.get::<_, Option<String>>(5),
                    })
                })
                .collect();
            render(
                args.format,
                &[
                    "run_id",
                    "job",
                    "status",
                    "started_at",
                    "finished_at",
                    "error",
                ],
                &runs,
            )
        }
        Some(run_id) => {
            let rows = conn
                .query(sql::journal::list_steps(), &[run_id])
                .await
                .map_err(db)?;
            if rows.is_empty() {
                return Err(Failure::Failed(anyhow::anyhow!(
                    "no run {run_id:?} in the journal (etl status lists the runs)"
                )));
            }
            let steps: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "step": r.get::<_, String>(0),
                        "status": r.get::<_, String>(1),
                        "pid": r.get::<_, Option<i32>>(2),
                        "label": r.get::<_, Option<String>>(3),
                        "started_at": ts(r.get(4)),
                        "finished_at": ts(r.get(5)),
                        "rows": r.get::<_, Option<i64>>(6),
                        "rejected": r.get::<_, Option<i64>>(7),
                        "sqlstate": r.get::<_, Option<String>>(8),
                        "error": r.get::<_, Option<String>>(9),
                        "attempts": r.get::<_, i32>(10),
                    })
                })
                .collect();
            render(
                args.format,
                &[
                    "step",
                    "status",
                    "started_at",
                    "finished_at",
                    "rows",
                    "rejected",
                    "attempts",
                    "sqlstate",
                    "error",
                ],
                &steps,
            )
        }
    }
}

fn render(format: Format, columns: &[&str], rows: &[serde_json::Value]) -> Result<(), Failure> {
    let cell = |v: &serde_json::Value| match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match format {
        Format::Json => print_json(&rows),
        Format::Csv => {
            let mut out = crate::output::printer(Format::Csv, Box::new(std::io::stdout().lock()));
            out.begin(
                &columns.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                None,
            )?;
            for r in rows {
                let values: Vec<String> = columns.iter().map(|c| cell(&r[*c])).collect();
                let opt: Vec<Option<&str>> = columns
                    .iter()
                    .zip(&values)
                    .map(|(c, v)| (!r[*c].is_null()).then_some(v.as_str()))
                    .collect();
                out.row(&opt)?;
            }
            out.end()?;
            Ok(())
        }
        Format::Table => {
            let mut table = Table::new();
            table
                .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
                .set_header(columns.to_vec());
            for r in rows {
                table.add_row(columns.iter().map(|c| {
                    let mut text = cell(&r[*c]);
                    if text.chars().count() > 80 {
                        text = text.chars().take(77).collect::<String>() + "...";
                    }
                    text
                }));
            }
            println!("{table}");
            Ok(())
        }
    }
}

/// Runs `etl cancel`.
pub async fn cancel(args: CancelArgs) -> Result<(), Failure> {
    journal::check_run_id(&args.run_id)?;
    let wh = warehouse(&args.conn).await?;
    let conn = wh.get().await?;
    let rows = conn
        .query(sql::journal::running_steps(), &[&args.run_id])
        .await
        .map_err(|e| etl_core::Error::query("read the journal", &e))?;
    if rows.is_empty() {
        eprintln!("etl: run {} has no running step", args.run_id);
        return Ok(());
    }
    for r in rows {
        let (step, pid, label): (String, Option<i32>, Option<String>) =
            (r.get(0), r.get(1), r.get(2));
        let (Some(pid), Some(label)) = (pid, label) else {
            continue;
        };
        let handle = Handle {
            run_id: args.run_id.clone(),
            step_id: step.clone(),
            pid,
            label,
            submitted_at: chrono::NaiveDateTime::default(),
            dialect: wh.dialect(),
            in_block: wh.dialect() == Dialect::Redshift,
            attempt: None,
        };
        let sent = track::cancel(&wh, &handle).await?;
        eprintln!(
            "{step}: {}",
            if sent {
                "cancel requested"
            } else {
                "not running any more"
            }
        );
    }
    Ok(())
}
