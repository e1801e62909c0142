//! The state machine's Lambda functions: one binary per Task (`src/bin/<name>.rs`, named as
//! `asl/README.md` lists them), each a few lines that hand one handler of this library to
//! [`runtime::run`].
//!
//! Handlers are plain `async fn(Event, &Resources) -> Result<Output, HandlerError>`: typed, serde
//! events (unknown fields rejected, so a renamed field in the state machine fails loudly) and
//! outputs that match the state machine's `Parameters` and `ResultPath`; tests call them directly.
//! [`Resources`] holds what a container builds once (AWS clients, the secret, the warehouse pool).
//! Errors carry one of the names the state machine's Retry/Catch use ([`ErrorName`]).
//!
//! | binary | handler | event → output |
//! |---|---|---|
//! | `etl-stack-status` | [`stack::status`] | [`stack::StackEvent`] → [`etl_core::aws::stack::StackStatus`] |
//! | `etl-stack-create` | [`stack::create`] | [`stack::CreateEvent`] → [`stack::CreateOutput`] |
//! | `etl-stack-outputs` | [`stack::outputs`] | [`stack::StackEvent`] → [`WarehouseAddress`] |
//! | `etl-stack-delete` | [`stack::delete`] | [`stack::StackEvent`] → [`stack::DeleteOutput`] |
//! | `etl-create-tables` | [`job::create_tables`] | [`job::CreateTablesEvent`] → [`job::CreateTablesOutput`] |
//! | `etl-load-table` | [`job::load_table`] | [`job::LoadTableEvent`] → [`job::StatementHandle`] |
//! | `etl-submit` | [`job::submit`] | [`job::SubmitEvent`] → [`job::StatementHandle`] |
//! | `etl-statement-status` | [`job::status`] | [`job::StatusRequest`] → [`job::StatusOutput`] |
//!
//! ```no_run
//! // src/bin/etl-stack-status.rs
//! fn main() -> std::process::ExitCode {
//!     etl_lambda::runtime::run("etl-stack-status", etl_lambda::stack::status)
//! }
//! ```
//!
//! Run any binary with `--invoke` (or off Lambda) to invoke it once with the event on stdin; see
//! [`runtime`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod job;
pub mod resources;
pub mod runtime;
pub mod stack;

pub use error::{ErrorName, HandlerError};
pub use resources::{Resources, Settings, WarehouseAddress};
