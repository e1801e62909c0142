//! `etl start` and `etl watch`: run a staged job on AWS through the Step Functions state machine,
//! and follow an execution state by state.

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use etl_core::aws::sfn::{self, ExecutionInput, Executions, HistoryEvent};
use etl_core::job::IfExists;
use etl_core::sql::S3Url;

use crate::Failure;

/// `etl start` flags.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The staged job manifest on S3 (what `etl stage` printed).
    job: String,

    /// The state machine's ARN (default: the `StateMachineArn` output of --stack).
    #[arg(long, value_name = "ARN")]
    state_machine: Option<String>,

    /// The permanent stack whose `StateMachineArn` output names the state machine.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "etl",
        conflicts_with = "state_machine"
    )]
    stack: String,

    /// Use a running cluster if there is one (the default, unless the manifest says otherwise).
    #[arg(long, conflicts_with = "recreate")]
    reuse: bool,

    /// Delete an existing cluster and create a new one.
    #[arg(long)]
    recreate: bool,

    /// Delete the cluster after a successful run (the manifest's cluster.delete_on_success otherwise).
    #[arg(long)]
    delete_on_success: bool,

    /// Keep a cluster this run created when the run fails (to investigate; it keeps billing).
    #[arg(long)]
    keep_on_failure: bool,

    /// The Redshift stack to use (must start with `<ProjectName>-redshift`; default: the
    /// manifest's cluster.stack_name, else the state machine's).
    #[arg(long, value_name = "NAME")]
    cluster_stack: Option<String>,

    /// Tables loaded at once, 1 to 40 (default: the manifest's concurrency).
    #[arg(long, value_name = "N")]
    concurrency: Option<u32>,

    /// The execution's name, which is also the run id (default: <job name>-<UTC time>).
    #[arg(long, value_name = "EXECUTION")]
    name: Option<String>,
}

/// `etl watch` flags.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The execution's ARN (what `etl start` printed).
    execution: String,

    /// Show every event (Pass, Choice and Wait states, Lambda calls), not only the steps.
    #[arg(long)]
    all: bool,

    /// Seconds between looks at the execution's history.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    poll: f64,
}

/// Runs `etl start`: prints the execution's ARN on stdout.
pub async fn start(args: StartArgs) -> Result<(), Failure> {
    let url = S3Url::parse(&args.job).map_err(|e| {
        Failure::Usage(anyhow::anyhow!(
            "{e}: give the staged manifest's S3 URL (what `etl stage` printed)"
        ))
    })?;
    // The functions read the manifest there; check it before anything starts.
    let job = sfn::read_job(&url).await?;
    let config = etl_core::aws::config().await;
    let state_machine = match args.state_machine {
        Some(arn) => arn,
        None => {
            // What the deployment's network reaches (etl_core::reach): refuse now, not on the cluster.
            crate::reach_check(&args.stack, &job, None, None).await?;
            sfn::state_machine_from_stack(config, &args.stack).await?
        }
    };

    let mut input = ExecutionInput::new(url);
    input.if_exists = Some(if args.recreate {
        IfExists::Recreate
    } else if args.reuse {
        IfExists::Reuse
    } else {
        job.cluster.if_exists
    });
    input.delete_on_success = Some(args.delete_on_success || job.cluster.delete_on_success);
    input.delete_on_failure = Some(!args.keep_on_failure && job.cluster.delete_on_failure);
    // The manifest's default stack name (<job name>-redshift) is not one the functions may
    // create: leave the state machine's default (<ProjectName>-redshift) then.
    let manifest_default = format!("{}-redshift", job.name.replace('_', "-"));
    input.stack_name = args.cluster_stack.or_else(|| {
        (job.cluster.stack_name != manifest_default).then(|| job.cluster.stack_name.clone())
    });
    let concurrency = args.concurrency.unwrap_or_else(|| {
        u32::try_from(job.concurrency)
            .unwrap_or(u32::MAX)
            .min(sfn::MAX_CONCURRENCY)
    });
    input.concurrency = Some(concurrency);
    let name = args
        .name
        .unwrap_or_else(|| sfn::default_execution_name(&job.name, chrono::Utc::now()));

    let arn = Executions::new(config)
        .start(&state_machine, &name, &input)
        .await?;
    eprintln!("started {name} on {state_machine}; follow it with: etl watch {arn}");
    let mut out = std::io::stdout().lock();
    writeln!(out, "{arn}")?;
    out.flush()?;
    Ok(())
}

/// Prints events as lines, and the current state on a spinner when stderr is a terminal.
struct Printer {
    all: bool,
    spinner: Option<ProgressBar>,
    entered: HashMap<String, chrono::DateTime<chrono::Utc>>,
}

/// State types that only move data around: shown with --all.
const PLUMBING: &[&str] = &["Pass", "Choice", "Wait"];

impl Printer {
    fn line(&self, text: String) {
        match &self.spinner {
            Some(s) => s.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn event(&mut self, e: &HistoryEvent) {
        let time = e
            .timestamp
            .map(|t| t.format("%H:%M:%S").to_string())
            .unwrap_or_else(|| "--:--:--".into());
        let state = e.state.as_deref().unwrap_or("");
        let plumbing = e.state_type().is_some_and(|t| PLUMBING.contains(&t));
        if e.is_entered() {
            if let (Some(t), Some(s)) = (e.timestamp, &e.state) {
                self.entered.insert(s.clone(), t);
            }
            if let Some(s) = &self.spinner {
                s.set_message(format!("{state} ({})", e.state_type().unwrap_or("")));
            }
        }
        let failure = || {
            let mut text = e.error.clone().unwrap_or_else(|| e.kind.clone());
            if let Some(c) = &e.cause {
                text.push_str(": ");
                text.push_str(c);
            }
            text
        };
        let text = if e.is_failure() {
            let what = if e.kind.starts_with("Execution") {
                "execution".to_owned()
            } else {
                state.to_owned()
            };
            Some(format!("{time}  {what:<28} {:<9} {}", "failed", failure()))
        } else if self.all {
            let mut t = format!("{time}  {state:<28} {}", e.kind);
            if let Some(i) = e.index {
                t.push_str(&format!(" [{i}]"));
            }
            Some(t)
        } else if e.is_entered() && !plumbing {
            Some(format!(
                "{time}  {state:<28} {:<9} ({})",
                "started",
                e.state_type().unwrap_or("")
            ))
        } else if e.is_exited() && !plumbing {
            let took = match (
                e.timestamp,
                e.state.as_ref().and_then(|s| self.entered.get(s)),
            ) {
                (Some(end), Some(start)) => {
                    format!("{:.1}s", (end - *start).num_milliseconds() as f64 / 1000.0)
                }
                _ => String::new(),
            };
            Some(format!("{time}  {state:<28} {:<9} {took}", "done"))
        } else if e.kind == "ExecutionSucceeded" {
            Some(format!("{time}  {:<28} succeeded", "execution"))
        } else {
            None
        };
        if let Some(t) = text {
            self.line(t);
        }
    }
}

/// Runs `etl watch`: exits 0 when the execution succeeded (its output on stdout), 1 when it
/// failed, timed out or was aborted.
pub async fn watch(args: WatchArgs) -> Result<(), Failure> {
    let config = etl_core::aws::config().await;
    let executions = Executions::new(config);
    let spinner = std::io::stderr().is_terminal().then(|| {
        let s = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        s.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        s.enable_steady_tick(Duration::from_millis(120));
        s
    });
    let mut printer = Printer {
        all: args.all,
        spinner: spinner.clone(),
        entered: HashMap::new(),
    };
    let poll = Duration::from_secs_f64(args.poll.max(0.05));
    let mut observer = |e: &HistoryEvent| printer.event(e);
    let execution = tokio::select! {
        r = executions.watch(&args.execution, poll, &mut observer) => r,
        _ = tokio::signal::ctrl_c() => {
            if let Some(s) = &spinner {
                s.finish_and_clear();
            }
            eprintln!(
                "etl: stopped watching; the execution goes on (stop it with: aws stepfunctions \
                 stop-execution --execution-arn {})",
                args.execution
            );
            return Err(Failure::Interrupted);
        }
    };
    if let Some(s) = &spinner {
        s.finish_and_clear();
    }
    let execution = execution?;
    let name = execution
        .name
        .clone()
        .unwrap_or_else(|| execution.arn.clone());
    let took = match (execution.started, execution.stopped) {
        (Some(a), Some(b)) => format!(" in {}s", (b - a).num_seconds()),
        _ => String::new(),
    };
    if execution.succeeded() {
        eprintln!("execution {name} SUCCEEDED{took}");
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", execution.output.as_deref().unwrap_or("{}"))?;
        out.flush()?;
        return Ok(());
    }
    let mut message = format!("execution {name} {}{took}", execution.status);
    if let Some(e) = &execution.error {
        message.push_str(&format!(": {e}"));
    }
    if let Some(c) = &execution.cause {
        message.push_str(&format!(": {c}"));
    }
    Err(Failure::Failed(anyhow::anyhow!(message)))
}
