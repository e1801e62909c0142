//! etl-core
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod job;
pub mod load;
pub mod sql;

pub use error::{Error, ErrorKind, Result};
