//! `etl start` and `etl watch`: Step Functions executions of the ETL state machine.
//!
//! [`ExecutionInput`] is the input `asl/README.md` documents (the manifest's S3 URL, the cluster
//! settings, the load concurrency); [`Executions::start`] starts an execution with it, and
//! [`Executions::watch`] follows one through `GetExecutionHistory` until it ends, handing every new
//! [`HistoryEvent`] to an observer (state entered and exited, task failures with their cause).
//!
//! ```no_run
//! # async fn demo() -> etl_core::Result<()> {
//! use etl_core::aws::sfn::{ExecutionInput, Executions};
//! let config = etl_core::aws::config().await;
//! let arn = etl_core::aws::sfn::state_machine_from_stack(config, "etl").await?;
//! let input = ExecutionInput::new("s3://jobs/input/recommendations/job.json".parse()?);
//! let executions = Executions::new(config);
//! let execution = executions.start(&arn, "recommendations-1", &input).await?;
//! let done = executions.watch(&execution, std::time::Duration::from_secs(5), &mut |e| println!("{}", e.kind)).await?;
//! println!("{}", done.status);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sfn::Client;
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent as SfnEvent};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::stack::Stacks;
use super::{SdkConfig, code_and_message, sdk_error};
use crate::Job;
use crate::error::{Error, Result};
use crate::job::IfExists;
use crate::sql::S3Url;

/// The permanent stack's output holding the state machine's ARN.
pub const OUTPUT_STATE_MACHINE: &str = "StateMachineArn";

/// Most tables loaded at once that the state machine accepts (`asl/README.md`).
pub const MAX_CONCURRENCY: u32 = 40;

/// The execution input of `asl/README.md`. Fields left `None` take the state machine's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionInput {
    /// The job manifest on S3.
    pub manifest: S3Url,
    /// `cluster.if_exists`.
    pub if_exists: Option<IfExists>,
    /// `cluster.delete_on_success`.
    pub delete_on_success: Option<bool>,
    /// `cluster.delete_on_failure`.
    pub delete_on_failure: Option<bool>,
    /// `cluster.stack_name` (must start with `<ProjectName>-redshift`).
    pub stack_name: Option<String>,
    /// `concurrency`, 1 to [`MAX_CONCURRENCY`].
    pub concurrency: Option<u32>,
}

impl ExecutionInput {
    /// The input for the manifest at `manifest`, everything else at the state machine's defaults.
    pub fn new(manifest: S3Url) -> Self {
        ExecutionInput {
            manifest,
            if_exists: None,
            delete_on_success: None,
            delete_on_failure: None,
            stack_name: None,
            concurrency: None,
        }
    }

    /// The JSON the state machine receives.
    pub fn to_json(&self) -> Value {
        let mut cluster = serde_json::Map::new();
        if let Some(i) = self.if_exists {
            cluster.insert(
                "if_exists".into(),
                json!(match i {
                    IfExists::Reuse => "reuse",
                    IfExists::Recreate => "recreate",
                }),
            );
        }
        if let Some(d) = self.delete_on_success {
            cluster.insert("delete_on_success".into(), json!(d));
        }
        if let Some(d) = self.delete_on_failure {
            cluster.insert("delete_on_failure".into(), json!(d));
        }
        if let Some(s) = &self.stack_name {
            cluster.insert("stack_name".into(), json!(s));
        }
        let mut input = json!({ "manifest": self.manifest.to_string() });
        if !cluster.is_empty() {
            input["cluster"] = Value::Object(cluster);
        }
        if let Some(c) = self.concurrency {
            input["concurrency"] = json!(c);
        }
        input
    }

    /// Checks what the state machine's `ValidateInput` would refuse.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field.
    pub fn check(&self) -> Result<()> {
        if let Some(c) = self.concurrency
            && !(1..=MAX_CONCURRENCY).contains(&c)
        {
            return Err(Error::invalid(
                "concurrency",
                format!("{c} must be 1 to {MAX_CONCURRENCY} (the state machine's limit)"),
            ));
        }
        Ok(())
    }
}

/// Checks an execution name: 1 to 80 letters, digits, `-` and `_` (Step Functions allows more,
/// but CloudWatch Logs and the run id it becomes do not).
///
/// # Errors
/// [`Error::InvalidInput`].
pub fn check_execution_name(name: &str) -> Result<()> {
    let ok = (1..=80).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "execution name",
            format!("{name:?} must be 1 to 80 letters, digits, '-' or '_'"),
        ))
    }
}

/// `<job name>-<UTC time>`, e.g. `recommendations-20250101-120000`: a new name (and so a new run
/// id) for every start.
pub fn default_execution_name(job_name: &str, now: DateTime<Utc>) -> String {
    let stamp = now.format("%Y%m%d-%H%M%S").to_string();
    let mut base: String = job_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    base.truncate(80 - stamp.len() - 1);
    format!("{base}-{stamp}")
}

/// Reads and validates the job manifest at `url`, as `etl start` does before it starts anything:
/// what it needs is the job's name and its cluster and concurrency settings. The input files and
/// the transform SQL are not read (the functions do that); an `unload.query_file` is not read
/// either (it is checked as if it were a query).
///
/// # Errors
/// [`Error::InvalidJob`] for a missing or invalid manifest; [`Error::Storage`] when S3 cannot be
/// read.
pub async fn read_job(url: &S3Url) -> Result<Job> {
    use object_store::ObjectStoreExt as _;
    let origin = url.to_string();
    let invalid = |message: String| Error::InvalidJob {
        file: origin.clone().into(),
        issues: vec![crate::error::ManifestIssue {
            path: "$".into(),
            message,
        }],
    };
    let store = crate::storage::s3_store(url)?;
    let path = object_store::path::Path::parse(url.key())
        .map_err(|e| Error::invalid("S3 key", format!("{url}: {e}")))?;
    let storage = |source| Error::Storage {
        action: "cannot read",
        location: origin.clone(),
        source,
    };
    let bytes = match store.get(&path).await {
        Ok(r) => r.bytes().await.map_err(storage)?,
        Err(object_store::Error::NotFound { .. }) => {
            return Err(invalid(format!("the manifest {url} does not exist")));
        }
        Err(e) => return Err(storage(e)),
    };
    let mut text = String::from_utf8(bytes.to_vec())
        .map_err(|_| invalid(format!("{url} is not UTF-8 text")))?;
    if let Ok(mut raw) = serde_json::from_str::<Value>(&text)
        && let Some(unload) = raw.get_mut("unload").and_then(Value::as_object_mut)
        && unload.remove("query_file").is_some()
    {
        unload.insert("query".into(), json!("select 1"));
        text = raw.to_string();
    }
    Job::parse(&text, &origin, std::path::Path::new(""))
}

/// The state machine's ARN from the permanent stack's `StateMachineArn` output.
///
/// # Errors
/// [`Error::InvalidInput`] when the stack does not exist or has no such output; [`Error::Aws`].
pub async fn state_machine_from_stack(config: &SdkConfig, stack: &str) -> Result<String> {
    let Some(s) = Stacks::new(config).describe(stack).await? else {
        return Err(Error::invalid(
            "--stack",
            format!(
                "there is no stack {stack:?}: deploy it (etl deploy), or pass --state-machine ARN"
            ),
        ));
    };
    s.output(OUTPUT_STATE_MACHINE)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::invalid(
                "--stack",
                format!(
                    "stack {stack:?} ({}) has no output {OUTPUT_STATE_MACHINE}: pass --state-machine ARN",
                    s.cfn_status
                ),
            )
        })
}

/// One event of an execution's history, flattened to what a person follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEvent {
    /// Its id (1, 2, ... in order).
    pub id: i64,
    /// The event it follows.
    pub previous_id: i64,
    /// When it happened.
    pub timestamp: Option<DateTime<Utc>>,
    /// Step Functions' event type, e.g. `TaskStateEntered`, `LambdaFunctionFailed`.
    pub kind: String,
    /// The state it belongs to: named by the event itself or by the event it follows.
    pub state: Option<String>,
    /// The error name of a failure.
    pub error: Option<String>,
    /// The cause of a failure.
    pub cause: Option<String>,
    /// A Map iteration's index.
    pub index: Option<i32>,
}

impl HistoryEvent {
    /// A state was entered (`...StateEntered`).
    pub fn is_entered(&self) -> bool {
        self.kind.ends_with("StateEntered")
    }

    /// A state was left (`...StateExited`).
    pub fn is_exited(&self) -> bool {
        self.kind.ends_with("StateExited")
    }

    /// The state's type from the event type (`Task`, `Choice`, `Map`, ...), for state events.
    pub fn state_type(&self) -> Option<&str> {
        self.kind
            .strip_suffix("StateEntered")
            .or_else(|| self.kind.strip_suffix("StateExited"))
    }

    /// A failure, a timeout or an abort (of a task, a Lambda call, a Map iteration or the
    /// execution).
    pub fn is_failure(&self) -> bool {
        ["Failed", "TimedOut", "Aborted"]
            .iter()
            .any(|s| self.kind.ends_with(s))
    }

    fn from_sfn(e: &SfnEvent) -> HistoryEvent {
        let (mut error, mut cause) = (None, None);
        let mut set = |e: Option<&str>, c: Option<&str>| {
            error = e.map(str::to_owned);
            cause = c.map(str::to_owned);
        };
        if let Some(d) = e.task_failed_event_details() {
            set(d.error(), d.cause());
        } else if let Some(d) = e.task_timed_out_event_details() {
            set(d.error(), d.cause());
        } else if let Some(d) = e.task_start_failed_event_details() {
            set(d.error(), d.cause());
        } else if let Some(d) = e.task_submit_failed_event_details() {
            set(d.error(), d.cause());
        } else if let Some(d) = e.lambda_function_failed_event_details() {
            set(d.error(), d.cause());
        } else if let Some(d) = e.lambda_function_timed_out_event_details() {
            set(d.error(), d.cause());
        } else if let Some(d) = e.lambda_function_start_failed_event_details() {
            set(d.error(), d.cause());
        } else if let Some(d) = e.lambda_function_schedule_failed_event_details() {
            set(d.error(), d.cause());
        } else if let Some(d) = e.activity_failed_event_details() {
            set(d.error(), d.cause());
        } else if let Some(d) = e.execution_failed_event_details() {
            set(d.error(), d.cause());
        } else if let Some(d) = e.execution_aborted_event_details() {
            set(d.error(), d.cause());
        } else if let Some(d) = e.execution_timed_out_event_details() {
            set(d.error(), d.cause());
        } else if let Some(d) = e.map_run_failed_event_details() {
            set(d.error(), d.cause());
        } else if let Some(d) = e.evaluation_failed_event_details() {
            set(d.error(), d.cause());
        }
        let iteration = e
            .map_iteration_started_event_details()
            .or(e.map_iteration_succeeded_event_details())
            .or(e.map_iteration_failed_event_details())
            .or(e.map_iteration_aborted_event_details());
        let state = e
            .state_entered_event_details()
            .map(|d| d.name().to_owned())
            .or_else(|| e.state_exited_event_details().map(|d| d.name().to_owned()))
            .or_else(|| iteration.and_then(|d| d.name()).map(str::to_owned));
        let t = e.timestamp();
        HistoryEvent {
            id: e.id(),
            previous_id: e.previous_event_id(),
            timestamp: DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()),
            kind: e.r#type().as_str().to_owned(),
            state,
            error,
            cause,
            index: iteration.map(|d| d.index()),
        }
    }
}

/// An execution's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// Its ARN.
    pub arn: String,
    /// Its name (the run id).
    pub name: Option<String>,
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED`, `PENDING_REDRIVE`.
    pub status: String,
    /// The error name of a failed execution.
    pub error: Option<String>,
    /// Its cause.
    pub cause: Option<String>,
    /// The output of a successful execution (JSON).
    pub output: Option<String>,
    /// When it started.
    pub started: Option<DateTime<Utc>>,
    /// When it stopped.
    pub stopped: Option<DateTime<Utc>>,
}

impl Execution {
    /// Still running.
    pub fn is_running(&self) -> bool {
        self.status == ExecutionStatus::Running.as_str()
    }

    /// Ended successfully.
    pub fn succeeded(&self) -> bool {
        self.status == ExecutionStatus::Succeeded.as_str()
    }
}

fn time(t: &aws_sdk_sfn::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos())
}

/// A Step Functions client.
#[derive(Debug, Clone)]
pub struct Executions {
    client: Client,
}

impl Executions {
    /// A client with the shared configuration.
    pub fn new(config: &SdkConfig) -> Self {
        Executions {
            client: Client::new(config),
        }
    }

    /// Starts an execution named `name`; returns its ARN.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an input the state machine refuses before it starts, an unknown
    /// state machine, a name already used; [`Error::Aws`] for anything else.
    pub async fn start(
        &self,
        state_machine: &str,
        name: &str,
        input: &ExecutionInput,
    ) -> Result<String> {
        input.check()?;
        check_execution_name(name)?;
        let out = self
            .client
            .start_execution()
            .state_machine_arn(state_machine)
            .name(name)
            .input(input.to_json().to_string())
            .send()
            .await;
        match out {
            Ok(out) => Ok(out.execution_arn().to_owned()),
            Err(e) => {
                let (code, message) = code_and_message(&e);
                let what = match code {
                    Some("StateMachineDoesNotExist" | "InvalidArn" | "StateMachineDeleting") => {
                        Some("--state-machine")
                    }
                    Some("ExecutionAlreadyExists" | "InvalidName") => Some("--name"),
                    Some("InvalidExecutionInput") => Some("execution input"),
                    _ => None,
                };
                match what {
                    Some(what) => Err(Error::invalid(
                        what,
                        format!("{}: {}", code.unwrap_or("?"), message.unwrap_or("refused")),
                    )),
                    None => Err(sdk_error("StepFunctions.StartExecution", e)),
                }
            }
        }
    }

    /// Describes an execution.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an unknown execution; [`Error::Aws`].
    pub async fn describe(&self, arn: &str) -> Result<Execution> {
        let out = match self
            .client
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) => {
                let (code, message) = code_and_message(&e);
                if matches!(code, Some("ExecutionDoesNotExist" | "InvalidArn")) {
                    return Err(Error::invalid(
                        "execution ARN",
                        format!("{arn}: {}", message.unwrap_or("does not exist")),
                    ));
                }
                return Err(sdk_error("StepFunctions.DescribeExecution", e));
            }
        };
        Ok(Execution {
            arn: out.execution_arn().to_owned(),
            name: out.name().map(str::to_owned),
            status: out.status().as_str().to_owned(),
            error: out.error().map(str::to_owned),
            cause: out.cause().map(str::to_owned),
            output: out.output().map(str::to_owned),
            started: time(out.start_date()),
            stopped: out.stop_date().and_then(time),
        })
    }

    /// The events after `after` (an event id; 0 for all), oldest first.
    ///
    /// # Errors
    /// [`Error::Aws`].
    pub async fn events_after(&self, arn: &str, after: i64) -> Result<Vec<HistoryEvent>> {
        let mut out: Vec<HistoryEvent> = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .get_execution_history()
                .execution_arn(arn)
                .reverse_order(true)
                .max_results(500)
                .include_execution_data(false)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_error("StepFunctions.GetExecutionHistory", e))?;
            let events = page.events();
            let descending = events.first().map(SfnEvent::id) >= events.last().map(SfnEvent::id);
            let mut reached_seen = false;
            for e in events {
                if e.id() > after {
                    out.push(HistoryEvent::from_sfn(e));
                } else {
                    reached_seen = true;
                }
            }
            token = page.next_token().map(str::to_owned);
            // Newest first: once an old event shows up, the rest is old too.
            if token.is_none() || (reached_seen && descending) {
                break;
            }
        }
        out.sort_by_key(|e| e.id);
        out.dedup_by_key(|e| e.id);
        Ok(out)
    }

    /// Follows an execution until it ends, calling `observer` with every event (the history so
    /// far first), polling every `poll`. Returns the ended execution. Task events that do not name
    /// their state get the name of the state they belong to.
    ///
    /// # Errors
    /// As [`Executions::describe`] and [`Executions::events_after`].
    pub async fn watch(
        &self,
        arn: &str,
        poll: Duration,
        observer: &mut (dyn FnMut(&HistoryEvent) + Send),
    ) -> Result<Execution> {
        let mut last = 0i64;
        let mut states: HashMap<i64, String> = HashMap::new();
        let mut deliver = |events: Vec<HistoryEvent>, last: &mut i64| {
            for mut e in events {
                if e.state.is_none() {
                    e.state = states.get(&e.previous_id).cloned();
                }
                if let Some(s) = &e.state {
                    states.insert(e.id, s.clone());
                }
                *last = e.id;
                observer(&e);
            }
        };
        // An unknown execution is refused here, before any history is asked for.
        self.describe(arn).await?;
        loop {
            let events = self.events_after(arn, last).await?;
            deliver(events, &mut last);
            let execution = self.describe(arn).await?;
            if !execution.is_running() {
                // Events written after the first look.
                let events = self.events_after(arn, last).await?;
                deliver(events, &mut last);
                return Ok(execution);
            }
            tokio::time::sleep(poll).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_as_documented() {
        let mut input = ExecutionInput::new(S3Url::parse("s3://jobs/input/r/job.json").unwrap());
        assert_eq!(
            input.to_json(),
            json!({"manifest": "s3://jobs/input/r/job.json"})
        );
        input.if_exists = Some(IfExists::Recreate);
        input.delete_on_success = Some(true);
        input.delete_on_failure = Some(false);
        input.stack_name = Some("etl-redshift-2".into());
        input.concurrency = Some(8);
        assert_eq!(
            input.to_json(),
            json!({
                "manifest": "s3://jobs/input/r/job.json",
                "cluster": {"if_exists": "recreate", "delete_on_success": true,
                            "delete_on_failure": false, "stack_name": "etl-redshift-2"},
                "concurrency": 8
            })
        );
        input.check().unwrap();
        input.concurrency = Some(41);
        assert!(input.check().is_err());
    }

    #[test]
    fn execution_names() {
        let now = DateTime::<Utc>::from_timestamp(1_735_732_800, 0).unwrap();
        assert_eq!(
            default_execution_name("recommendations", now),
            "recommendations-20250101-120000"
        );
        let long = default_execution_name(&"x".repeat(100), now);
        assert_eq!(long.len(), 80);
        check_execution_name(&long).unwrap();
        assert!(check_execution_name("a b").is_err());
        assert!(check_execution_name("").is_err());
    }

    #[test]
    fn event_classes() {
        let ev = |kind: &str| HistoryEvent {
            id: 1,
            previous_id: 0,
            timestamp: None,
            kind: kind.into(),
            state: None,
            error: None,
            cause: None,
            index: None,
        };
        assert!(ev("TaskStateEntered").is_entered());
        assert_eq!(ev("ChoiceStateExited").state_type(), Some("Choice"));
        assert!(ev("LambdaFunctionFailed").is_failure());
        assert!(ev("ExecutionTimedOut").is_failure());
        assert!(!ev("TaskSucceeded").is_failure());
    }
}
