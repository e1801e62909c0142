//! A function's `main`: JSON logs, the resources built once, and either the Lambda runtime loop or
//! the local invoke path.
//!
//! **Local invoke**: run a binary with `--invoke`, or anywhere `AWS_LAMBDA_RUNTIME_API` is unset
//! (i.e. not on Lambda). It reads one event (JSON) on stdin, runs the handler, prints the result as
//! one JSON line on stdout and exits 0 — or prints `{"errorType": ..., "errorMessage": ...}` (what
//! Lambda would report) and exits 1. Logs go to stderr. A statement the handler submitted keeps
//! running on its connection, as it would in a (frozen) Lambda container: the process waits for it
//! after printing the result, journals how it ended, then exits. Tests and the local state machine
//! run drive the real code this way.

use std::future::Future;
use std::io::{Read as _, Write as _};
use std::process::ExitCode;
use std::sync::OnceLock;

use lambda_runtime::{LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::HandlerError;
use crate::resources::{Resources, Settings};

/// Sends JSON log lines to stderr, filtered by `RUST_LOG` (default `info`). Safe to call twice.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Deserializes `event` into the handler's input and runs it. An event that does not fit the
/// handler's type (a missing or unknown field) is `EtlInvalidJob`, naming the field.
///
/// # Errors
/// The handler's error.
pub async fn dispatch<E, O, F, Fut>(
    handler: F,
    event: serde_json::Value,
    res: &'static Resources,
) -> Result<serde_json::Value, HandlerError>
where
    E: DeserializeOwned,
    O: Serialize,
    F: Fn(E, &'static Resources) -> Fut,
    Fut: Future<Output = Result<O, HandlerError>>,
{
    let event: E = parse_event(event)?;
    let output = handler(event, res).await?;
    serde_json::to_value(output)
        .map_err(|e| HandlerError::internal(format!("cannot encode the result: {e}")))
}

fn parse_event<E: DeserializeOwned>(event: serde_json::Value) -> Result<E, HandlerError> {
    serde_json::from_value(event).map_err(|e| HandlerError::invalid(format!("invalid event: {e}")))
}

/// Whether this process runs locally (`--invoke`, or not on Lambda).
pub fn is_local() -> bool {
    std::env::args().skip(1).any(|a| a == "--invoke")
        || std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none()
}

/// The `main` of a function binary: runs `handler` under the Lambda runtime, or once on the event
/// from stdin (see the [module docs](self)).
pub fn run<E, O, F, Fut>(name: &'static str, handler: F) -> ExitCode
where
    E: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
    F: Fn(E, &'static Resources) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<O, HandlerError>> + Send + 'static,
{
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    static RESOURCES: OnceLock<Resources> = OnceLock::new();
    let res: &'static Resources = RESOURCES.get_or_init(|| Resources::new(Settings::from_env()));
    if is_local() {
        runtime.block_on(invoke_once(name, handler, res))
    } else {
        runtime.block_on(async move {
            let service = service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
                // Journal the end of statements earlier invocations submitted, if they ended.
                res.settle(true).await;
                let result = dispatch(handler, event.payload, res).await;
                if let Err(e) = &result {
                    tracing::error!(function = name, error = %e.name, detail = %e.message, "failed");
                }
                result
            });
            match lambda_runtime::run(service).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(function = name, error = %e, "the Lambda runtime stopped");
                    ExitCode::FAILURE
                }
            }
        })
    }
}

/// The local invoke path: one event from stdin, one result on stdout.
async fn invoke_once<E, O, F, Fut>(
    name: &'static str,
    handler: F,
    res: &'static Resources,
) -> ExitCode
where
    E: DeserializeOwned,
    O: Serialize,
    F: Fn(E, &'static Resources) -> Fut,
    Fut: Future<Output = Result<O, HandlerError>>,
{
    let mut input = String::new();
    let result = match std::io::stdin().read_to_string(&mut input) {
        Err(e) => Err(HandlerError::invalid(format!(
            "cannot read the event from stdin: {e}"
        ))),
        Ok(_) => match serde_json::from_str::<serde_json::Value>(&input) {
            Err(e) => Err(HandlerError::invalid(format!(
                "the event on stdin is not JSON: {e}"
            ))),
            Ok(event) => dispatch(handler, event, res).await,
        },
    };
    let (line, code) = match result {
        Ok(output) => (output, ExitCode::SUCCESS),
        Err(e) => {
            tracing::error!(function = name, error = %e.name, detail = %e.message, "failed");
            let d: lambda_runtime::Diagnostic = e.into();
            (
                serde_json::to_value(&d).unwrap_or(serde_json::Value::Null),
                ExitCode::FAILURE,
            )
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
    drop(stdout);
    // As a frozen Lambda container would, keep the submitted statements' sessions until they end.
    res.settle(false).await;
    code
}
