//! Redshift's UNLOAD, on the client: the query runs on PostgreSQL as `COPY (query) TO STDOUT`, and
//! the engine writes the files Redshift's
//! [UNLOAD](https://docs.aws.amazon.com/redshift/latest/dg/r_UNLOAD.html) would write — same
//! names, same text — to a local folder or to S3 (through [`Store`]).
//!
//! What it reproduces (each point cites the page it follows; `layout`, `render` and `sink` hold
//! the details):
//! - file names: `<prefix><slice>_part_<part>` with PARALLEL ON, `<prefix>000`, `<prefix>001`, ...
//!   with PARALLEL OFF, `.gz` / `.zst` / `.bz2` or the EXTENSION after them, `<prefix>manifest`;
//! - PARALLEL ON writes one or more files per slice: the local engine simulates
//!   [`UnloadOptions::slices`] slices and deals the rows out round-robin (row `i` to slice
//!   `i % slices`), so each file keeps the query's order. Every slice writes at least one file,
//!   as "one or more files per slice" says, even when it gets no row. PARALLEL OFF writes one
//!   file after the other, in the query's order;
//! - MAXFILESIZE (default and maximum 6.2 GB, i.e. 6200 MB; a MB is 1024 × 1024 bytes here, the
//!   documentation does not say) limits each file as written, after compression, and starts the
//!   next part when a file is full;
//! - HEADER in every file, rendered by the same rules as the data;
//! - CSV, or delimited text with DELIMITER, NULL AS, ADDQUOTES and ESCAPE, by the reference's
//!   rules (PostgreSQL's text COPY is re-rendered on the client: PostgreSQL's own CSV quotes an
//!   empty string, Redshift's does not); numbers print as Redshift prints them
//!   (`extra_float_digits = 0` on the session during the unload);
//! - MANIFEST: `{"entries":[{"url":...}]}` listing every data file;
//! - existing files: by default "UNLOAD fails if it finds files that it would possibly overwrite".
//!   The engine cannot know in advance how many parts it will write, so any object under the
//!   prefix counts (Redshift's own message for this is that the destination "is not empty").
//!   ALLOWOVERWRITE replaces files of the same names and leaves the others; CLEANPATH "removes
//!   existing files located in the Amazon S3 path specified in the TO clause" — every object whose
//!   key starts with the prefix — before writing. The manifest model cannot ask for both.
//!
//! A failed or cancelled unload leaves none of its files: each file becomes visible only once
//! complete (a single PUT or a completed multipart upload; a local file is renamed into place),
//! and on failure the files already complete are deleted. (Files that CLEANPATH deleted, or that
//! ALLOWOVERWRITE replaced, stay gone — as on Redshift.)
//!
//! ```no_run
//! use etl_core::unload::{UnloadOptions, unload_postgres};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo(client: &tokio_postgres::Client, job: &etl_core::Job) -> etl_core::Result<()> {
//! let spec = job.unload.as_ref().expect("the job unloads");
//! let report = unload_postgres(client, spec, &UnloadOptions::default(), &CancellationToken::new()).await?;
//! for file in &report.files {
//!     println!("{} ({} rows, {} bytes)", file.location, file.rows, file.bytes);
//! }
//! # Ok(()) }
//! ```

mod layout;
mod render;
mod sink;

use futures::StreamExt as _;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt as _, PutPayload};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::job::{Location, Overwrite, Unload};
use crate::sql::{CopyToStdout, unload_query};
use crate::storage::Store;

use layout::{MANIFEST, Naming, manifest_json};
use render::Renderer;
use sink::{Output, Written};

/// Slices simulated for PARALLEL ON unless [`UnloadOptions::slices`] says otherwise (a
/// two-slice node, the smallest Redshift cluster).
pub const DEFAULT_SLICES: usize = 2;

/// The largest file UNLOAD writes, and the default MAXFILESIZE: 6.2 GB, in MB.
pub const MAX_FILE_SIZE_MB: u32 = 6200;

const MB: u64 = 1024 * 1024;

/// How the local unload runs, beyond the job's unload options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnloadOptions {
    /// Slices simulated for PARALLEL ON (at least 1): each writes its own files.
    pub slices: usize,
    /// Writes here instead of the job's `unload.to` (a name prefix, or a folder ending with `/`).
    pub to: Option<Location>,
    /// Runs this query instead of the job's `unload.source`: the plan's query, rewritten for
    /// PostgreSQL by the compatibility layer ([`crate::plan::StepKind::Unload`]).
    pub query: Option<String>,
}

impl Default for UnloadOptions {
    fn default() -> Self {
        UnloadOptions {
            slices: DEFAULT_SLICES,
            to: None,
            query: None,
        }
    }
}

impl UnloadOptions {
    /// Simulates `slices` slices for PARALLEL ON.
    pub fn with_slices(mut self, slices: usize) -> Self {
        self.slices = slices;
        self
    }

    /// Writes to `to` instead of the job's `unload.to`.
    pub fn with_to(mut self, to: Location) -> Self {
        self.to = Some(to);
        self
    }

    /// Runs `query` instead of the job's `unload.source` (the plan's query, as rewritten).
    pub fn with_query(mut self, query: impl Into<String>) -> Self {
        self.query = Some(query.into());
        self
    }
}

/// One file an unload wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnloadedFile {
    /// `s3://bucket/key`, or the local path.
    pub location: String,
    /// Data rows in the file (the header line is not counted).
    pub rows: u64,
    /// The file's size as written (compressed, if compressed).
    pub bytes: u64,
}

/// What an unload wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnloadReport {
    /// The data files, in name order.
    pub files: Vec<UnloadedFile>,
    /// Data rows in all files.
    pub rows: u64,
    /// Where the manifest is, when MANIFEST was asked for.
    pub manifest: Option<String>,
}

/// Runs `spec`'s query on PostgreSQL through `client` and writes the files Redshift's UNLOAD would
/// write (see the [module docs](self)).
///
/// The session gets `SET extra_float_digits = 0` for the unload and `RESET extra_float_digits`
/// after it (except after a cancel, when the session may still be busy with the COPY).
/// Cancelling `cancel` stops the unload at once and deletes what it wrote; it does not
/// cancel the statement on the server, which the caller does with the client's `cancel_token()`
/// (and the connection's TLS settings) if it wants the session back quickly.
///
/// # Errors
/// - [`Error::InvalidInput`] when `options.slices` is 0, or when files already exist under the
///   prefix and `spec.overwrite` is [`Overwrite::Fail`] (nothing is written then);
/// - [`Error::Query`] when the query fails (before or while rows stream; its files are deleted);
/// - [`Error::Cancelled`] when `cancel` fires, or the server cancels the query;
/// - [`Error::Storage`] / [`Error::Io`] when the destination cannot be listed, cleaned or written;
/// - [`Error::Internal`] when PostgreSQL's COPY output is not what the engine expects.
pub async fn unload_postgres(
    client: &Client,
    spec: &Unload,
    options: &UnloadOptions,
    cancel: &CancellationToken,
) -> Result<UnloadReport> {
    if options.slices == 0 {
        return Err(Error::invalid(
            "unload slices",
            "must be at least 1 (the slices simulated for PARALLEL ON)",
        ));
    }
    let store = Store::open(options.to.as_ref().unwrap_or(&spec.to))?;
    let context = format!("unload to {}", store.display);
    let query = options
        .query
        .clone()
        .unwrap_or_else(|| unload_query(&spec.source));

    // The query's columns, before anything is written or cleaned: a query that does not compile
    // fails here and leaves the destination as it was.
    let statement = tokio::select! {
        biased;
        () = cancel.cancelled() => return Err(cancelled(&context)),
        s = client.prepare(&query) => s.map_err(|e| Error::query(&context, &e))?,
    };
    let columns = statement.columns();
    let mut renderer = Renderer::new(
        spec,
        columns
            .iter()
            .map(|c| render::is_character(c.type_()))
            .collect(),
    );
    let mut header = Vec::new();
    if spec.header {
        renderer.header(columns.iter().map(|c| c.name()), &mut header);
    }
    drop(statement);

    let existing = objects_under(&store).await?;
    match spec.overwrite {
        Overwrite::Fail if !existing.is_empty() => {
            return Err(Error::invalid(
                "unload destination",
                format!(
                    "{} already holds {} object(s), such as {}; UNLOAD does not overwrite files: \
                     set the job's unload \"overwrite\" to \"allow\" (ALLOWOVERWRITE) or \"clean\" \
                     (CLEANPATH), or unload to another prefix",
                    store.display,
                    existing.len(),
                    display_of(&store, &existing[0]),
                ),
            ));
        }
        Overwrite::Clean => {
            for path in &existing {
                store
                    .store
                    .delete(path)
                    .await
                    .map_err(|source| Error::Storage {
                        action: "cannot delete (CLEANPATH)",
                        location: display_of(&store, path),
                        source,
                    })?;
            }
        }
        Overwrite::Fail | Overwrite::Allow => {}
    }

    client
        .batch_execute(CopyToStdout::SET_FLOAT_DIGITS)
        .await
        .map_err(|e| Error::query(&context, &e))?;
    let slices = if spec.parallel { options.slices } else { 1 };
    let limit = u64::from(spec.max_file_size_mb.unwrap_or(MAX_FILE_SIZE_MB)) * MB;
    let mut output = Output::new(
        store.clone(),
        Naming::new(spec),
        spec.compression,
        limit,
        header,
        slices,
    );
    let result = write_all(client, &query, &mut renderer, &mut output, cancel, &context).await;
    let result = match result {
        Ok(()) => complete(&store, spec, &mut output).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(report) => {
            reset_session(client).await;
            Ok(report)
        }
        Err(e) => {
            output.discard(Vec::new()).await;
            // After a cancel the session may still be busy with the COPY: do not wait for it.
            if !matches!(e, Error::Cancelled { .. }) {
                reset_session(client).await;
            }
            Err(e)
        }
    }
}

fn cancelled(context: &str) -> Error {
    Error::Cancelled {
        context: context.to_owned(),
    }
}

/// Streams the COPY's rows into the files.
async fn write_all(
    client: &Client,
    query: &str,
    renderer: &mut Renderer,
    output: &mut Output,
    cancel: &CancellationToken,
    context: &str,
) -> Result<()> {
    let copy = CopyToStdout::local_unload(query).to_string();
    let stream = tokio::select! {
        biased;
        () = cancel.cancelled() => return Err(cancelled(context)),
        s = client.copy_out(copy.as_str()) => s.map_err(|e| Error::query(context, &e))?,
    };
    let mut stream = std::pin::pin!(stream);
    let slices = output.slices() as u64;
    let mut line = Vec::new();
    let mut row: u64 = 0;
    loop {
        let item = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(cancelled(context)),
            item = stream.next() => item,
        };
        let Some(item) = item else {
            return Ok(());
        };
        // PostgreSQL sends each row of a COPY TO STDOUT as one CopyData message
        // (<https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-COPY>).
        let data = item.map_err(|e| Error::query(context, &e))?;
        let Some(fields) = data.strip_suffix(b"\n") else {
            return Err(Error::Internal(format!(
                "{context}: a COPY data message that is not one row ({} bytes)",
                data.len()
            )));
        };
        line.clear();
        renderer
            .row(fields, &mut line)
            .map_err(|m| Error::Internal(format!("{context}: row {}: {m}", row + 1)))?;
        output.write_row((row % slices) as usize, &line).await?;
        row += 1;
    }
}

/// Completes the files and writes the manifest.
async fn complete(store: &Store, spec: &Unload, output: &mut Output) -> Result<UnloadReport> {
    let written = output.finish().await?;
    let manifest = if spec.manifest {
        let (path, location) = store.child(MANIFEST);
        let text = manifest_json(written.iter().map(|w| w.location.as_str()));
        if let Err(source) = store.store.put(&path, PutPayload::from(text)).await {
            output.discard(written).await;
            return Err(Error::Storage {
                action: "cannot write the manifest",
                location,
                source,
            });
        }
        Some(location)
    } else {
        None
    };
    Ok(report(written, manifest))
}

fn report(written: Vec<Written>, manifest: Option<String>) -> UnloadReport {
    let files: Vec<UnloadedFile> = written
        .into_iter()
        .map(|w| UnloadedFile {
            location: w.location,
            rows: w.rows,
            bytes: w.bytes,
        })
        .collect();
    UnloadReport {
        rows: files.iter().map(|f| f.rows).sum(),
        files,
        manifest,
    }
}

async fn reset_session(client: &Client) {
    if let Err(e) = client.batch_execute(CopyToStdout::RESET_FLOAT_DIGITS).await {
        tracing::warn!(error = %e, "cannot reset extra_float_digits after the unload");
    }
}

/// Every object whose key starts with the store's prefix (a name prefix, or a folder).
async fn objects_under(store: &Store) -> Result<Vec<ObjectPath>> {
    let key = store.path.as_ref();
    let (folder, prefix) = if key.is_empty() {
        (None, String::new())
    } else if store.is_dir {
        (Some(store.path.clone()), format!("{key}/"))
    } else {
        // A name prefix: list its folder, keep the names that start with it (S3's key prefixes).
        let folder = key.rfind('/').map(|i| ObjectPath::from(&key[..i]));
        (folder, key.to_owned())
    };
    let listed: Vec<_> = store
        .store
        .list(folder.as_ref())
        .map(|m| m.map(|m| m.location))
        .collect()
        .await;
    let mut out = Vec::new();
    for item in listed {
        match item {
            Ok(path) if path.as_ref().starts_with(prefix.as_str()) => out.push(path),
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => {
                return Err(Error::Storage {
                    action: "cannot list",
                    location: store.display.clone(),
                    source,
                });
            }
        }
    }
    out.sort();
    Ok(out)
}

/// How to show an object under the store's prefix.
fn display_of(store: &Store, path: &ObjectPath) -> String {
    let rest = &path.as_ref()[store.path.as_ref().len().min(path.as_ref().len())..];
    let rest = if store.is_dir {
        rest.trim_start_matches('/')
    } else {
        rest
    };
    store.child(rest).1
}
