//! The one public error type of `etl-core`.
//!
//! Every variant carries the context a user needs to act: which file and line, which JSON path, which
//! statement, which SQLSTATE. Query methods ([`Error::sqlstate`], [`Error::is_retryable`],
//! [`Error::kind`]) replace downcasting.

use std::fmt;
use std::path::PathBuf;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One problem found in a job manifest: where (a JSON path such as
/// `schemas[0].tables[2].columns[5].type`) and which rule was broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestIssue {
    /// JSON path of the offending value (`$` for the document itself).
    pub path: String,
    /// The rule that was broken, and how to fix it.
    pub message: String,
}

impl fmt::Display for ManifestIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A database error with the fields psql shows: SQLSTATE, message, detail, hint and position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError {
    /// Five-character SQLSTATE, e.g. `42P01`; `None` when the error did not come from the server.
    pub sqlstate: Option<String>,
    /// Severity as reported by the server (`ERROR`, `FATAL`).
    pub severity: Option<String>,
    /// The primary message.
    pub message: String,
    /// Optional detail line.
    pub detail: Option<String>,
    /// Optional hint line.
    pub hint: Option<String>,
    /// 1-based character position in the statement text, if the server reported one.
    pub position: Option<u32>,
}

impl DbError {
    /// Extracts the server fields from a tokio-postgres error (or its text when the error is not from
    /// the server, e.g. a broken connection).
    pub fn from_pg(err: &tokio_postgres::Error) -> Self {
        match err.as_db_error() {
            Some(db) => DbError {
                sqlstate: Some(db.code().code().to_owned()),
                severity: Some(db.severity().to_owned()),
                message: db.message().to_owned(),
                detail: db.detail().map(str::to_owned),
                hint: db.hint().map(str::to_owned),
                position: match db.position() {
                    Some(tokio_postgres::error::ErrorPosition::Original(p)) => Some(*p),
                    _ => None,
                },
            },
            None => {
                let mut message = err.to_string();
                let mut source = std::error::Error::source(err);
                while let Some(s) = source {
                    message.push_str(": ");
                    message.push_str(&s.to_string());
                    source = s.source();
                }
                DbError {
                    sqlstate: err.code().map(|c| c.code().to_owned()),
                    severity: None,
                    message,
                    detail: None,
                    hint: None,
                    position: None,
                }
            }
        }
    }
}

/// Where a server-reported position (1-based, in characters) falls in `sql`: 1-based line and
/// column, and the text of that line.
pub fn locate(sql: &str, position: u32) -> Option<(usize, usize, &str)> {
    let offset = sql
        .char_indices()
        .nth(position.checked_sub(1)? as usize)
        .map(|(i, _)| i)
        .unwrap_or(sql.len());
    let line_start = sql[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = sql[offset..].find('\n').map_or(sql.len(), |i| offset + i);
    let line = 1 + sql[..offset].matches('\n').count();
    let column = 1 + sql[line_start..offset].chars().count();
    Some((line, column, &sql[line_start..line_end]))
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sqlstate {
            Some(code) => write!(f, "{} (SQLSTATE {code})", self.message)?,
            None => f.write_str(&self.message)?,
        }
        if let Some(d) = &self.detail {
            write!(f, "\nDETAIL: {d}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\nHINT: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DbError {}

/// A coarse classification of errors, stable across versions; the Lambda adapter maps it to the error
/// names the state machine's Retry/Catch use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The job manifest or an option is invalid: fix the input.
    InvalidJob,
    /// A SQL statement failed on the server.
    QueryFailed,
    /// Input data was rejected (load errors past MAXERROR).
    LoadRejected,
    /// A transient condition: retrying later may succeed.
    Retryable,
    /// A statement ran past its timeout and was cancelled.
    Timeout,
    /// The operation was cancelled (Ctrl-C, `etl cancel`).
    Cancelled,
    /// The environment is missing something (PostgreSQL binaries, a file, permissions).
    Environment,
    /// The CloudFormation stack failed.
    StackFailed,
    /// Anything else.
    Internal,
}

/// Errors of `etl-core`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The job manifest could not be read or broke one or more rules.
    #[error("invalid job manifest {}:{}", file.display(), ManifestIssues(issues))]
    InvalidJob {
        /// The manifest file.
        file: PathBuf,
        /// Every problem found, each with its JSON path.
        issues: Vec<ManifestIssue>,
    },

    /// A value given outside a manifest (a flag, an environment variable, an API argument) is invalid.
    #[error("invalid {what}: {message}")]
    InvalidInput {
        /// What was being parsed, e.g. `identifier`, `--database-url`.
        what: String,
        /// The rule broken and how to fix it.
        message: String,
    },

    /// Could not connect to the warehouse (after retries, if any).
    #[error("cannot connect to {target} after {attempts} attempt(s)")]
    Connect {
        /// `host:port/dbname` (never the password).
        target: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last error.
        #[source]
        source: Box<DbError>,
    },

    /// A statement failed on the server.
    #[error("{context} failed")]
    Query {
        /// Which statement: step name, file, statement number and line.
        context: String,
        /// The server's error.
        #[source]
        source: Box<DbError>,
    },

    /// A file could not be read or written.
    #[error("{action} {path}")]
    Io {
        /// What was being done (`cannot read`, `cannot create`).
        action: &'static str,
        /// The file or object path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// Object storage (S3 or a local folder) failed.
    #[error("{action} {location}")]
    Storage {
        /// What was being done.
        action: &'static str,
        /// `s3://bucket/key` or a local path.
        location: String,
        /// The object store error.
        #[source]
        source: object_store::Error,
    },

    /// Rows were rejected while loading a table and MAXERROR was exceeded.
    #[error(
        "load of {table} rejected {rejected} row(s), more than MAXERROR {max_errors}; the table was left as it was. First error: {first}"
    )]
    LoadRejected {
        /// `schema.table`.
        table: String,
        /// Rows rejected before the load stopped.
        rejected: u64,
        /// The MAXERROR in force.
        max_errors: u64,
        /// The first error, formatted like STL_LOAD_ERRORS.
        first: String,
    },

    /// A statement ran past its timeout and was cancelled on the server.
    #[error(
        "{context} timed out after {seconds:.1}s and was cancelled on the server; raise the statement timeout or make the statement cheaper"
    )]
    Timeout {
        /// Which statement.
        context: String,
        /// The elapsed time.
        seconds: f64,
    },

    /// The run was cancelled.
    #[error("cancelled: {context}")]
    Cancelled {
        /// What was running.
        context: String,
    },

    /// Something the engine needs is missing from this machine.
    #[error("{message}")]
    Environment {
        /// What is missing and how to install it.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// An AWS API call failed.
    #[error("{operation} failed: {message}")]
    Aws {
        /// The API operation (`CloudFormation.CreateStack`).
        operation: String,
        /// The service's message.
        message: String,
        /// Whether a retry may succeed (throttling, a resource in transition).
        retryable: bool,
    },

    /// The CloudFormation stack ended in a failed state.
    #[error("stack {stack} is {status}: {reason}")]
    StackFailed {
        /// Stack name.
        stack: String,
        /// The CloudFormation status (`CREATE_FAILED`, `ROLLBACK_COMPLETE`, ...).
        status: String,
        /// The first failure reason from the stack events.
        reason: String,
    },

    /// Another run of the same job is active on this warehouse: one run of a job at a time.
    #[error(
        "job {job} is already running on this warehouse: run {run_id} ({owner}, since {since} UTC); \
         wait for it (etl run --wait), or stop it (etl cancel {run_id})"
    )]
    RunActive {
        /// The job.
        job: String,
        /// The active run.
        run_id: String,
        /// Where it runs: host, client PID, server session.
        owner: String,
        /// When it started.
        since: String,
    },

    /// A bug or an unexpected state: please report it.
    #[error("internal error: {0}")]
    Internal(String),
}

struct ManifestIssues<'a>(&'a [ManifestIssue]);

impl fmt::Display for ManifestIssues<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for issue in self.0 {
            write!(f, "\n  {issue}")?;
        }
        Ok(())
    }
}

/// SQLSTATE classes and codes that a retry can fix: connection failures, serialization failures,
/// deadlocks, too many connections, the server shutting down or starting up.
fn sqlstate_is_retryable(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "40001" | "40P01" | "53300" | "57P01" | "57P02" | "57P03"
        )
}

impl Error {
    /// Wraps a tokio-postgres error with the statement it came from.
    pub fn query(context: impl Into<String>, err: &tokio_postgres::Error) -> Self {
        let source = DbError::from_pg(err);
        if source.sqlstate.as_deref() == Some("57014") {
            // query_canceled: surfaced as a cancellation, the caller may turn it into a timeout.
            return Error::Cancelled {
                context: context.into(),
            };
        }
        Error::Query {
            context: context.into(),
            source: Box::new(source),
        }
    }

    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidInput {
            what: what.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(action: &'static str, path: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.to_string(),
            source,
        }
    }

    /// The SQLSTATE of the server error behind this error, if any.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Query { source, .. } | Error::Connect { source, .. } => {
                source.sqlstate.as_deref()
            }
            Error::Cancelled { .. } | Error::Timeout { .. } => Some("57014"),
            _ => None,
        }
    }

    /// The server error behind this error, if any.
    pub fn db_error(&self) -> Option<&DbError> {
        match self {
            Error::Query { source, .. } | Error::Connect { source, .. } => Some(&**source),
            _ => None,
        }
    }

    /// Whether retrying the same operation later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Connect { source, .. } => match source.sqlstate.as_deref() {
                // Bad password, unknown database or role: retrying will not help.
                Some(code) => sqlstate_is_retryable(code),
                None => true,
            },
            Error::Query { source, .. } => source
                .sqlstate
                .as_deref()
                .map(sqlstate_is_retryable)
                // No SQLSTATE means the connection broke mid-statement.
                .unwrap_or(true),
            Error::Aws { retryable, .. } => *retryable,
            // The other run will end: a later attempt (a Lambda retry) may go ahead.
            Error::RunActive { .. } => true,
            Error::Storage { source, .. } => matches!(
                source,
                object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }
            ),
            _ => false,
        }
    }

    /// The coarse class of this error.
    pub fn kind(&self) -> ErrorKind {
        if self.is_retryable() {
            return ErrorKind::Retryable;
        }
        match self {
            Error::InvalidJob { .. } | Error::InvalidInput { .. } => ErrorKind::InvalidJob,
            Error::Query { .. } | Error::Connect { .. } => ErrorKind::QueryFailed,
            Error::LoadRejected { .. } => ErrorKind::LoadRejected,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Cancelled { .. } => ErrorKind::Cancelled,
            Error::Environment { .. } | Error::Io { .. } | Error::Storage { .. } => {
                ErrorKind::Environment
            }
            Error::StackFailed { .. } => ErrorKind::StackFailed,
            Error::Aws { .. } | Error::Internal(_) => ErrorKind::Internal,
            Error::RunActive { .. } => ErrorKind::Retryable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_errors_list_every_issue_with_its_path() {
        let err = Error::InvalidJob {
            file: "job.json".into(),
            issues: vec![
                ManifestIssue {
                    path: "schemas[0].name".into(),
                    message: "must not be empty".into(),
                },
                ManifestIssue {
                    path: "unload.to".into(),
                    message: "is required".into(),
                },
            ],
        };
        assert_eq!(
            err.to_string(),
            "invalid job manifest job.json:\n  schemas[0].name: must not be empty\n  unload.to: is required"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidJob);
    }

    #[test]
    fn locates_positions() {
        let sql = "select 1,\n  nope from t";
        assert_eq!(locate(sql, 13), Some((2, 3, "  nope from t")));
        assert_eq!(locate(sql, 1), Some((1, 1, "select 1,")));
        assert_eq!(locate("é x", 3), Some((1, 3, "é x")));
        assert_eq!(locate(sql, 0), None);
    }

    #[test]
    fn retryable_sqlstates() {
        let db = |code: &str| DbError {
            sqlstate: Some(code.into()),
            severity: None,
            message: "m".into(),
            detail: None,
            hint: None,
            position: None,
        };
        let q = |code| Error::Query {
            context: "x".into(),
            source: Box::new(db(code)),
        };
        assert!(q("08006").is_retryable());
        assert!(q("40001").is_retryable());
        assert!(!q("42P01").is_retryable());
        assert_eq!(q("42601").sqlstate(), Some("42601"));
        let c = Error::Connect {
            target: "h".into(),
            attempts: 3,
            source: Box::new(db("28P01")),
        };
        assert!(!c.is_retryable(), "a bad password is not retryable");
    }
}
