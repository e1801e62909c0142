//! AWS access (cargo feature `aws`): one shared SDK configuration, the warehouse credentials from
//! Secrets Manager ([`secrets`]) and the on-demand Redshift stack's lifecycle in CloudFormation
//! ([`stack`]).
//!
//! Configuration comes from the usual places (environment, profile, a Lambda's container
//! credentials) through `aws-config`, which also honours `AWS_ENDPOINT_URL` and the per-service
//! `AWS_ENDPOINT_URL_<SERVICE>` (`AWS_ENDPOINT_URL_SECRETS_MANAGER`,
//! `AWS_ENDPOINT_URL_CLOUDFORMATION`, ...): the tests point every client at a moto server that way.
//!
//! ```no_run
//! # async fn demo() -> etl_core::Result<()> {
//! use etl_core::aws::{self, secrets::Secrets, stack::Stacks};
//! let config = aws::config().await;
//! let stacks = Stacks::new(config);
//! println!("{}", stacks.status("etl-redshift").await?);
//! let secrets = Secrets::new(config);
//! let options = secrets.connect_options("arn:aws:secretsmanager:eu-west-1:123456789012:secret:etl").await?;
//! # Ok(()) }
//! ```
//!
//! API failures become [`Error::Aws`] with `retryable` set for throttling, timeouts, network
//! failures and server errors, so the state machine's `EtlRetryable` retries them.

pub mod deploy;
pub mod secrets;
pub mod sfn;
pub mod stack;
pub mod stage;

pub use aws_config::SdkConfig;
/// The CloudFormation SDK, re-exported for callers that need its types.
pub use aws_sdk_cloudformation as cloudformation;
/// The Secrets Manager SDK, re-exported for callers that need its types.
pub use aws_sdk_secretsmanager as secretsmanager;

use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use tokio::sync::OnceCell;

use crate::error::Error;

/// The process's SDK configuration, loaded once (region, credentials, endpoint overrides) and shared
/// by every client. Loading reads no secret and makes no network call until a client needs
/// credentials.
pub async fn config() -> &'static SdkConfig {
    static CONFIG: OnceCell<SdkConfig> = OnceCell::const_new();
    CONFIG
        .get_or_init(|| aws_config::defaults(aws_config::BehaviorVersion::latest()).load())
        .await
}

/// Error codes that say "try again later".
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "PriorRequestNotComplete",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalServiceError",
    "InternalServiceErrorException",
    "InternalError",
];

/// Whether an AWS error code is transient.
pub fn is_retryable_code(code: &str) -> bool {
    RETRYABLE_CODES.contains(&code)
}

/// The service's error code and message of an SDK error, if the service answered.
pub(crate) fn code_and_message<E, R>(err: &SdkError<E, R>) -> (Option<&str>, Option<&str>)
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(_) => (err.code(), err.message()),
        _ => (None, None),
    }
}

/// Converts an SDK error into [`Error::Aws`]: retryable for throttling and server-side failures,
/// timeouts and network failures (no answer, or an answer that could not be read).
pub(crate) fn sdk_error<E, R>(operation: &str, err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let (retryable, message) = match &err {
        SdkError::ServiceError(_) => {
            let code = err.code().unwrap_or("Unknown");
            let message = err.message().unwrap_or("no message");
            (is_retryable_code(code), format!("{code}: {message}"))
        }
        SdkError::TimeoutError(_) => (true, "timed out".to_owned()),
        SdkError::DispatchFailure(e) => (
            !e.is_user(),
            format!("cannot send the request: {}", chain(&err)),
        ),
        SdkError::ResponseError(_) => (true, format!("unreadable response: {}", chain(&err))),
        _ => (false, chain(&err)),
    };
    Error::Aws {
        operation: operation.to_owned(),
        message,
        retryable,
    }
}

/// The error's sources on one line (the SDK's top-level message alone says "dispatch failure").
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_retryable() {
        assert!(is_retryable_code("Throttling"));
        assert!(is_retryable_code("TooManyRequestsException"));
        assert!(!is_retryable_code("ValidationError"));
        assert!(!is_retryable_code("AccessDenied"));
    }
}
