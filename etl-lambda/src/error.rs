//! The errors a function reports: a closed set of names that the state machine's `Retry` and
//! `Catch` use (`asl/README.md`, "Errors"), each with a message.
//!
//! Step Functions takes the Lambda error response's `errorType` as the error name. lambda_runtime
//! 1.x builds that response from the handler's error through `Into<Diagnostic>`; its blanket
//! conversions use the Rust type name (`etl_lambda::HandlerError` would be useless to the state
//! machine), so [`HandlerError`] converts itself, with its [`ErrorName`] as `errorType`.

use std::fmt;

use etl_core::ErrorKind;
use lambda_runtime::Diagnostic;

/// The error names the state machine knows, and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorName {
    /// Transient (connection refused, DNS not resolvable yet, throttling, a cluster in
    /// transition): the state machine retries.
    EtlRetryable,
    /// The manifest or the input is invalid.
    EtlInvalidJob,
    /// A SQL statement failed (or a load rejected its data).
    EtlQueryFailed,
    /// The stack could not be created or used.
    EtlStackFailed,
    /// A statement timed out.
    EtlTimeout,
    /// Anything else: a bug, or a function deployed without its settings.
    EtlInternal,
}

impl ErrorName {
    /// Every name.
    pub const ALL: [ErrorName; 6] = [
        ErrorName::EtlRetryable,
        ErrorName::EtlInvalidJob,
        ErrorName::EtlQueryFailed,
        ErrorName::EtlStackFailed,
        ErrorName::EtlTimeout,
        ErrorName::EtlInternal,
    ];

    /// The name as Step Functions sees it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorName::EtlRetryable => "EtlRetryable",
            ErrorName::EtlInvalidJob => "EtlInvalidJob",
            ErrorName::EtlQueryFailed => "EtlQueryFailed",
            ErrorName::EtlStackFailed => "EtlStackFailed",
            ErrorName::EtlTimeout => "EtlTimeout",
            ErrorName::EtlInternal => "EtlInternal",
        }
    }

    /// The name for an engine error class.
    pub fn of(kind: ErrorKind) -> ErrorName {
        match kind {
            ErrorKind::Retryable => ErrorName::EtlRetryable,
            ErrorKind::InvalidJob => ErrorName::EtlInvalidJob,
            ErrorKind::QueryFailed | ErrorKind::LoadRejected | ErrorKind::Cancelled => {
                ErrorName::EtlQueryFailed
            }
            ErrorKind::StackFailed => ErrorName::EtlStackFailed,
            ErrorKind::Timeout => ErrorName::EtlTimeout,
            _ => ErrorName::EtlInternal,
        }
    }
}

impl fmt::Display for ErrorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A handler's failure: the name the state machine acts on and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    /// The error name (`errorType`).
    pub name: ErrorName,
    /// What failed, where, and what to do (`errorMessage`); never a secret.
    pub message: String,
}

impl HandlerError {
    /// An error with `name`.
    pub fn new(name: ErrorName, message: impl Into<String>) -> Self {
        HandlerError {
            name,
            message: message.into(),
        }
    }

    /// An invalid event or input.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorName::EtlInvalidJob, message)
    }

    /// A function deployed without a setting it needs, or a bug.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorName::EtlInternal, message)
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for HandlerError {}

impl From<etl_core::Error> for HandlerError {
    fn from(e: etl_core::Error) -> Self {
        HandlerError {
            name: ErrorName::of(e.kind()),
            message: etl_core::journal::error_text(&e),
        }
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Diagnostic {
        Diagnostic {
            error_type: e.name.as_str().to_owned(),
            error_message: e.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_get_their_names() {
        let cases: [(etl_core::Error, ErrorName); 7] = [
            (etl_core::Error::invalid("x", "y"), ErrorName::EtlInvalidJob),
            (
                etl_core::Error::Aws {
                    operation: "o".into(),
                    message: "Throttling".into(),
                    retryable: true,
                },
                ErrorName::EtlRetryable,
            ),
            (
                etl_core::Error::Aws {
                    operation: "o".into(),
                    message: "AccessDenied".into(),
                    retryable: false,
                },
                ErrorName::EtlInternal,
            ),
            (
                etl_core::Error::StackFailed {
                    stack: "s".into(),
                    status: "ROLLBACK_COMPLETE".into(),
                    reason: "r".into(),
                },
                ErrorName::EtlStackFailed,
            ),
            (
                etl_core::Error::Timeout {
                    context: "c".into(),
                    seconds: 1.0,
                },
                ErrorName::EtlTimeout,
            ),
            (
                etl_core::Error::LoadRejected {
                    table: "t".into(),
                    rejected: 2,
                    max_errors: 1,
                    first: "f".into(),
                },
                ErrorName::EtlQueryFailed,
            ),
            (
                etl_core::Error::Internal("bug".into()),
                ErrorName::EtlInternal,
            ),
        ];
        for (e, name) in cases {
            assert_eq!(HandlerError::from(e).name, name);
        }
    }

    #[test]
    fn diagnostics_carry_the_name_as_error_type() {
        let d: Diagnostic = HandlerError::new(ErrorName::EtlTimeout, "too long").into();
        assert_eq!(d.error_type, "EtlTimeout");
        assert_eq!(d.error_message, "too long");
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"errorType": "EtlTimeout", "errorMessage": "too long"})
        );
    }
}
