//! The client-side load: a table's files (local or S3) → decompression and Redshift's COPY rules
//! ([`parse_file`]) → `COPY ... FROM STDIN` on the caller's session.
//!
//! Parsing runs on blocking threads and hands batches over a bounded channel to the async side,
//! which writes them to the COPY stream: memory stays bounded by a few batches whatever the file
//! size. Rows past MAXERROR stop the load: the COPY is aborted (the caller rolls its transaction
//! back) and [`Error::LoadRejected`] says why, with the first errors.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _};

use super::{
    Batch, CopyEncoding, LoadError, RowParser, binary_copy_header, binary_copy_trailer, parse_file,
};
use crate::error::{Error, Result};
use crate::job::{Files, Job, Location, Table, local_files};
use crate::storage::Store;

/// Load errors kept in memory (and stored in the journal) per table; more are counted only.
pub const MAX_KEPT_ERRORS: usize = 10_000;

/// One input file of a table.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// How errors and progress name it: the S3 URL or the local path.
    pub name: String,
    /// Its size in bytes (compressed).
    pub size: u64,
    place: Place,
}

#[derive(Clone)]
enum Place {
    Local(PathBuf),
    Object(Arc<dyn ObjectStore>, ObjectPath),
}

impl std::fmt::Debug for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Local(p) => write!(f, "Local({})", p.display()),
            Place::Object(_, p) => write!(f, "Object({p})"),
        }
    }
}

/// Finds a table's files before anything runs: every listed file must exist, a prefix must match
/// at least one object.
///
/// # Errors
/// [`Error::InvalidJob`] naming the table's JSON path when files are missing; [`Error::Storage`]
/// when S3 cannot be listed.
pub async fn resolve_files(job: &Job, table: &Table) -> Result<Vec<SourceFile>> {
    let missing = |message: String| Error::InvalidJob {
        file: job.origin.clone().into(),
        issues: vec![crate::error::ManifestIssue {
            path: format!("{}.files", table.json_path),
            message,
        }],
    };
    match &job.input {
        Location::Local(dir) => {
            let paths = local_files(dir, &table.files).map_err(missing)?;
            if paths.is_empty() {
                return Err(missing(format!(
                    "no file in {} matches this prefix",
                    dir.display()
                )));
            }
            paths
                .into_iter()
                .map(|p| {
                    let size = std::fs::metadata(&p)
                        .map_err(|e| Error::io("cannot read", p.display(), e))?
                        .len();
                    Ok(SourceFile {
                        name: p.display().to_string(),
                        size,
                        place: Place::Local(p),
                    })
                })
                .collect()
        }
        Location::S3(_) => {
            let store = Store::open(&job.input)?;
            let objects = match &table.files {
                Files::Prefix(prefix) => {
                    let found = store.list_prefix(prefix).await?;
                    if found.is_empty() {
                        let (_, display) = store.child(prefix);
                        return Err(missing(format!("no object matches the prefix {display}")));
                    }
                    found
                }
                Files::List(names) => {
                    let mut found = Vec::new();
                    for n in names {
                        let (path, display) = store.child(n);
                        match store.store.head(&path).await {
                            Ok(meta) => found.push((path, meta.size)),
                            Err(object_store::Error::NotFound { .. }) => {
                                return Err(missing(format!("{display} does not exist")));
                            }
                            Err(e) => {
                                return Err(Error::Storage {
                                    action: "cannot read",
                                    location: display,
                                    source: e,
                                });
                            }
                        }
                    }
                    found
                }
            };
            let bucket = match &job.input {
                Location::S3(u) => u.bucket().to_owned(),
                Location::Local(_) => unreachable!("matched above"),
            };
            Ok(objects
                .into_iter()
                .map(|(path, size)| SourceFile {
                    name: format!("s3://{bucket}/{path}"),
                    size,
                    place: Place::Object(Arc::clone(&store.store), path),
                })
                .collect())
        }
    }
}

/// Progress of one table load, reported after every batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Rows sent so far.
    pub rows: u64,
    /// Rows rejected so far.
    pub rejected: u64,
    /// Compressed input bytes read so far (whole files, as they finish).
    pub bytes: u64,
}

/// What a table load did.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Rows loaded (as counted by the server).
    pub rows: u64,
    /// Rows rejected.
    pub rejected: u64,
    /// The first [`MAX_KEPT_ERRORS`] rejected rows.
    pub errors: Vec<LoadError>,
    /// Files read.
    pub files: usize,
    /// Compressed bytes read.
    pub bytes_in: u64,
    /// Decompressed bytes parsed.
    pub bytes_out: u64,
    /// Wall time.
    pub seconds: f64,
}

/// Settings of a client-side load.
#[derive(Debug, Clone, Copy)]
pub struct LoadSettings {
    /// Worker threads per file for conversion, besides the reading thread (0: parse on the reading
    /// thread only). `None`: one thread per CPU across the tables loading at once
    /// ([`LoadSettings::auto_workers`]).
    pub workers: Option<usize>,
    /// The COPY encoding; must match the `COPY ... FROM STDIN` statement.
    pub encoding: CopyEncoding,
    /// Files of one table parsed at once (default 1: one file after another, each with
    /// `workers`).
    pub parallel_files: Option<usize>,
}

impl Default for LoadSettings {
    fn default() -> Self {
        LoadSettings {
            workers: None,
            encoding: CopyEncoding::Binary,
            parallel_files: None,
        }
    }
}

impl LoadSettings {
    /// Files parsed at once and workers per file for this table. The table's share of the CPUs
    /// (`workers + 1` threads) goes to parser workers of one file at a time — except for bzip2,
    /// whose decompression is the slowest stage and runs on the reading thread, where it goes to
    /// files read in parallel. Measured with 5M rows in 8 files on 2 CPUs: gzip 2.14 s one file at a
    /// time with a worker, 2.15 s two files at once (the table's one server backend is the limit);
    /// bzip2 4.6–4.9 s one at a time, 3.6–4.3 s two at once.
    fn threads(&self, parser: &RowParser, files: &[SourceFile]) -> (usize, usize) {
        let budget = self.workers.unwrap_or_else(|| Self::auto_workers(1)) + 1;
        let n = files.len().max(1);
        match self.parallel_files {
            Some(p) => {
                let p = p.clamp(1, n);
                (p, self.workers.unwrap_or_else(|| Self::auto_workers(p)))
            }
            None if files.iter().all(|f| {
                parser.compression.for_file(&f.name) == crate::job::Compression::Bzip2
            }) =>
            {
                let p = budget.min(n);
                (p, (budget / p).saturating_sub(1))
            }
            None => (1, budget - 1),
        }
    }

    /// Workers per file when `tables` load at once: the CPUs shared out, less each table's reading
    /// thread. Three tables on two CPUs parse on their reading threads only; one table on eight CPUs
    /// gets seven workers. More threads than CPUs only cost memory (measured: 40 MiB instead of
    /// 32 MiB at 10M rows, for the same time).
    pub fn auto_workers(tables: usize) -> usize {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cpus / tables.max(1)).saturating_sub(1)
    }
}

/// Reads an object store stream on the async side and hands its chunks to a blocking reader.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            // Called on the parser's blocking thread, never on the runtime.
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

fn open(file: &SourceFile) -> Result<Box<dyn Read + Send>> {
    match &file.place {
        Place::Local(p) => {
            let f = std::fs::File::open(p).map_err(|e| Error::io("cannot open", p.display(), e))?;
            Ok(Box::new(std::io::BufReader::with_capacity(256 * 1024, f)))
        }
        Place::Object(store, path) => {
            let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
            let store = Arc::clone(store);
            let path = path.clone();
            tokio::spawn(async move {
                let stream = match store.get(&path).await {
                    Ok(r) => r.into_stream(),
                    Err(e) => {
                        let _ = tx.send(Err(std::io::Error::other(e))).await;
                        return;
                    }
                };
                futures::pin_mut!(stream);
                while let Some(chunk) = stream.next().await {
                    let item = chunk.map_err(std::io::Error::other);
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        return;
                    }
                }
            });
            Ok(Box::new(ChannelReader {
                rx,
                current: Bytes::new(),
            }))
        }
    }
}

enum Message {
    Batch(Batch),
    FileDone(super::FileStats),
    FileFailed(Error),
}

/// Streams `files` through `parser` into `copy_sql` (a `COPY ... FROM STDIN` in the parser's
/// encoding) on `client`, which should be inside the caller's transaction.
///
/// `max_error` is the table's MAXERROR: one rejected row more aborts the COPY and returns
/// [`Error::LoadRejected`] (the caller rolls back and may store `errors` from
/// [`LoadRejection`]). `progress` is called after each batch.
///
/// # Errors
/// [`Error::LoadRejected`], [`Error::Query`] (the server refused a row or the statement),
/// [`Error::Io`] / [`Error::Storage`] reading a file.
pub async fn copy_files(
    client: &tokio_postgres::Client,
    copy_sql: &str,
    table: &Table,
    files: &[SourceFile],
    parser: Arc<RowParser>,
    settings: LoadSettings,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> std::result::Result<LoadReport, LoadFailure> {
    let start = Instant::now();
    let context = format!("load {}", table.name);
    let max_error = table.format.max_error;
    let mut report = LoadReport {
        files: files.len(),
        ..LoadReport::default()
    };
    let sink = client
        .copy_in::<_, Bytes>(copy_sql)
        .await
        .map_err(|e| LoadFailure::new(Error::query(&context, &e), &report))?;
    futures::pin_mut!(sink);
    let binary = settings.encoding == CopyEncoding::Binary;
    if binary {
        sink.send(Bytes::from_static(binary_copy_header()))
            .await
            .map_err(|e| LoadFailure::new(Error::query(&context, &e), &report))?;
    }
    let mut sent_rows = 0u64;
    // Up to `parallel` files parse at once, each on its own blocking thread (plus its workers), into
    // one channel; their batches interleave in the one COPY stream (row order across files does not
    // matter to a table; line numbers stay per file).
    let (parallel, workers) = settings.threads(&parser, files);
    // Two batches per file in the channel: enough to overlap parsing and sending.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(2 * parallel);
    let spawn = |file: &SourceFile| -> Result<(), Error> {
        let reader = open(file)?;
        let parser = Arc::clone(&parser);
        let name = file.name.clone();
        let tx = tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = parse_file(reader, &name, &parser, workers, &mut |batch| {
                tx.blocking_send(Message::Batch(batch))
                    .map_err(|_| Error::Cancelled {
                        context: format!("parsing {name}"),
                    })
            });
            // If the receiver is gone the load has already stopped: nothing to report.
            let _ = tx.blocking_send(match result {
                Ok(stats) => Message::FileDone(stats),
                Err(e) => Message::FileFailed(e),
            });
        });
        Ok(())
    };
    let mut next = 0;
    let mut running = 0;
    while running < parallel && next < files.len() {
        spawn(&files[next]).map_err(|e| LoadFailure::new(e, &report))?;
        next += 1;
        running += 1;
    }
    while running > 0 {
        // The sender kept for spawning keeps the channel open: every file ends with a message.
        let Some(msg) = rx.recv().await else { break };
        match msg {
            Message::Batch(batch) => {
                report.rejected += batch.errors.len() as u64;
                let room = MAX_KEPT_ERRORS.saturating_sub(report.errors.len());
                report.errors.extend(batch.errors.into_iter().take(room));
                if report.rejected > max_error {
                    // Dropping the receiver stops the parsers; dropping the sink aborts the COPY.
                    let err = rejection(table, &report);
                    return Err(LoadFailure::new(err, &report));
                }
                if !batch.data.is_empty() {
                    sent_rows += batch.rows;
                    sink.send(Bytes::from(batch.data))
                        .await
                        .map_err(|e| LoadFailure::new(Error::query(&context, &e), &report))?;
                }
                report.rows = sent_rows;
            }
            Message::FileDone(stats) => {
                report.bytes_in += stats.bytes_in;
                report.bytes_out += stats.bytes_out;
                running -= 1;
                if next < files.len() {
                    spawn(&files[next]).map_err(|e| LoadFailure::new(e, &report))?;
                    next += 1;
                    running += 1;
                }
            }
            Message::FileFailed(e) => return Err(LoadFailure::new(e, &report)),
        }
        progress(Progress {
            rows: sent_rows,
            rejected: report.rejected,
            bytes: report.bytes_in,
        });
    }
    drop(tx);
    if binary {
        sink.send(Bytes::from_static(binary_copy_trailer()))
            .await
            .map_err(|e| LoadFailure::new(Error::query(&context, &e), &report))?;
    }
    let rows = sink
        .finish()
        .await
        .map_err(|e| LoadFailure::new(Error::query(&context, &e), &report))?;
    if rows != sent_rows {
        return Err(LoadFailure::new(
            Error::Internal(format!(
                "{context}: sent {sent_rows} rows but the server loaded {rows}"
            )),
            &report,
        ));
    }
    report.rows = rows;
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

/// A failed load: the error, and what was read before it (the rejected rows to journal).
#[derive(Debug)]
pub struct LoadFailure {
    /// Why it failed.
    pub error: Error,
    /// Rows rejected before the failure.
    pub rejected: u64,
    /// The first rejected rows.
    pub errors: Vec<LoadError>,
}

impl LoadFailure {
    fn new(error: Error, report: &LoadReport) -> Self {
        LoadFailure {
            error,
            rejected: report.rejected,
            errors: report.errors.clone(),
        }
    }
}

/// Formats a load error like a row of STL_LOAD_ERRORS.
pub fn describe(e: &LoadError) -> String {
    let column = e
        .column
        .as_deref()
        .map(|c| format!(", column {c}"))
        .unwrap_or_default();
    format!(
        "{} line {}{column}: {} (code {}) — raw line: {:?}",
        e.file, e.line, e.reason, e.code, e.raw_line
    )
}

fn rejection(table: &Table, report: &LoadReport) -> Error {
    Error::LoadRejected {
        table: table.name.to_string(),
        rejected: report.rejected,
        max_errors: table.format.max_error,
        first: report.errors.first().map(describe).unwrap_or_default(),
    }
}
