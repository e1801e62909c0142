//! Loading tables: the client-side path (files → Redshift COPY semantics → `COPY ... FROM STDIN`)
//! and the server-side path (Redshift `COPY ... FROM 's3://...'`).
//!
//! The client-side parser is the performance core:
//! - [`parse_file`] streams one file (gzip, bzip2, zstd or plain) through a [`RowParser`] compiled
//!   once per table, on the calling thread plus worker threads, and hands [`Batch`]es of encoded
//!   tuples to a sink in file order;
//! - [`datetime`] holds the DATEFORMAT / TIMEFORMAT rules, `value` the number and boolean rules,
//!   `parser` the record and field rules (see their docs for the Redshift pages they follow and the
//!   choices made where the documentation is silent).
//!
//! ```no_run
//! use etl_core::load::{CopyEncoding, RowParser, binary_copy_header, binary_copy_trailer, parse_file};
//! # fn demo(columns: &[etl_core::job::Column], format: &etl_core::job::Format) -> etl_core::Result<()> {
//! let parser = RowParser::new(columns, format, CopyEncoding::Binary)
//!     .map_err(|m| etl_core::Error::invalid("format", m))?;
//! let mut copy_in = Vec::new();
//! copy_in.extend_from_slice(binary_copy_header());
//! let file = std::fs::File::open("users.txt.gz").map_err(|e| etl_core::Error::io("cannot open", "users.txt.gz", e))?;
//! let stats = parse_file(file, "users.txt.gz", &parser, 2, &mut |batch| {
//!     copy_in.extend_from_slice(&batch.data);
//!     Ok(())
//! })?;
//! copy_in.extend_from_slice(binary_copy_trailer());
//! println!("{} rows, {} rejected", stats.rows, stats.rejected);
//! # Ok(()) }
//! ```

pub mod client;
pub mod datetime;
mod parser;
mod stream;
mod value;

#[cfg(test)]
mod tests;

pub use parser::{Batch, CopyEncoding, LoadError, RowParser};
// For `etl init`'s sampler, which reads files with the loader's own record and field rules.
pub(crate) use parser::{RecordEnd, Scratch, SplitField};
pub(crate) use stream::decoder;
pub use stream::{
    CHUNK_BYTES, FileStats, MAX_RECORD_BYTES, binary_copy_header, binary_copy_trailer, parse_file,
    parse_file_with_chunk,
};
