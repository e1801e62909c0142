//! `etl stage`: the on-premise export step. Uploads a job's local input files to S3, optionally
//! split into parts for Redshift's parallel COPY, writes each table's COPY manifest where the plan
//! reads it ([`plan::copy_manifest_url`]), uploads the transform SQL, and last a copy of the job
//! manifest rewritten for S3 — the URL that `etl start` takes.
//!
//! # Layout under the target prefix `s3://bucket/prefix/`
//!
//! ```text
//! <file as named in the input folder>           files uploaded as they are (no split)
//! parts/<schema>.<table>/part-00000.gz          split parts (gz, bz2, zst or no extension)
//! _manifests/<schema>.<table>.manifest          one COPY manifest per table
//! <transform path as written>                   transform SQL (sql/<n>_<name> when outside the manifest's folder)
//! <manifest file name>                          the rewritten job manifest, uploaded last
//! ```
//!
//! The rewritten manifest's `input` is the prefix and every table's `files` is the explicit list
//! of its objects, so the COPY always goes through a manifest: Redshift's `FROM 's3://b/x'` is a
//! key prefix, and a stale object from an earlier staging would be loaded too. `unload.query_file`
//! becomes `unload.query` (the functions read only the manifest), and a local `unload.to` must be
//! replaced with an S3 location ([`StageOptions::unload_to`]).
//!
//! # Splitting
//!
//! Redshift loads one table's files in parallel, one file per slice at a time, so the fastest
//! COPY reads a number of similar-sized files that is a multiple of the cluster's slices
//! (<https://docs.aws.amazon.com/redshift/latest/dg/t_splitting-data-files.html>). With a
//! [`Split`], every table's input — all its files, in order — is cut into that many parts:
//! on record boundaries (line feeds; with `CSV`, not inside a quoted field; with `ESCAPE`, not after
//! a backslash), each part starting with the header lines that `IGNOREHEADER` skips (taken from the
//! first file; the other files' header lines are dropped), and recompressed with the table's
//! compression. Parts are balanced by compressed input position (for inputs under 8 MB, by
//! decompressed size, measured in a first pass).
//!
//! Everything streams: a file is read, decompressed, cut and recompressed on a blocking thread in
//! 64 KB steps, and uploaded with S3 multipart uploads, so memory stays bounded whatever the file
//! size. The part size follows the object's size ([`multipart_part_size`]): 8 MiB, or larger when
//! 8 MiB parts would need more than S3's 10,000 parts (an object over 78 GiB), with fewer parts in
//! flight as they grow (at most 4, and at most 32 MiB buffered per object unless one part is
//! larger). An upload that fails or is cancelled is
//! aborted (no multipart upload is left behind).

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::StreamExt as _;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload, WriteMultipart};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::job::{Compression, Files, Format, Job, Location, UnloadSource};
use crate::plan;
use crate::sql::S3Url;

/// Default `--part-size`: the largest part, compressed, when splitting by slices.
pub const DEFAULT_PART_SIZE_MB: u64 = 256;

/// The smallest multipart chunk used (S3's minimum part is 5 MiB).
const CHUNK: usize = 8 * 1024 * 1024;
/// Multipart chunks in flight per object, at most.
const IN_FLIGHT: usize = 4;
/// Bytes of chunks in flight per object, beyond which fewer chunks are in flight (never fewer than one).
const IN_FLIGHT_BYTES: usize = IN_FLIGHT * CHUNK;

/// S3's multipart limits (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html>):
/// at most 10,000 parts, each 5 MiB to 5 GiB (the last may be smaller), objects up to 5 TiB.
const MAX_PARTS: u64 = 10_000;
const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;

/// The multipart part size for an object of about `len` bytes: 8 MiB, or the smallest whole
/// number of MiB that keeps it within S3's 10,000 parts.
///
/// # Errors
/// The reason, when S3 cannot hold an object that large (over 5 TiB).
pub fn multipart_part_size(len: u64) -> std::result::Result<usize, String> {
    if len > MAX_OBJECT_SIZE {
        return Err(format!(
            "{len} bytes is more than S3's largest object (5 TiB): split it (--parts or --slices) \
             (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html)"
        ));
    }
    let needed = len.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    let size = needed.max(CHUNK as u64).min(MAX_PART_SIZE);
    usize::try_from(size).map_err(|_| format!("a {size}-byte part does not fit in memory here"))
}

/// How many chunks of `chunk` bytes may be in flight per object.
fn in_flight(chunk: usize) -> usize {
    (IN_FLIGHT_BYTES / chunk).clamp(1, IN_FLIGHT)
}
/// Bytes read (decompressed) per step of the splitter.
const STEP: usize = 64 * 1024;
/// Compressed bytes pulled from a file at a time: the granularity of the part balancing.
const READ_BUF: usize = 16 * 1024;
/// Below this total compressed size, a table is measured in a first pass.
const MEASURE_BELOW: u64 = 8 * 1024 * 1024;
/// Bytes the splitter hands to the uploader at a time.
const SEND: usize = 1024 * 1024;

/// How to cut each table's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Upload every file as it is.
    None,
    /// Exactly this many parts per table (fewer when the table has fewer records).
    Parts(u32),
    /// A multiple of the cluster's slices: `slices × k` parts, `k` the smallest that keeps each
    /// part at most `part_size` bytes (compressed).
    Slices {
        /// The cluster's slice count (nodes × slices per node).
        slices: u32,
        /// The largest part wanted, in bytes.
        part_size: u64,
    },
}

impl Split {
    /// How many parts a table of `bytes` (compressed) is cut into; `None` when not splitting.
    pub fn parts_for(&self, bytes: u64) -> Option<u32> {
        match *self {
            Split::None => None,
            Split::Parts(n) => Some(n.max(1)),
            Split::Slices { slices, part_size } => {
                let slices = u64::from(slices.max(1));
                let per_round = slices.saturating_mul(part_size.max(1));
                let rounds = bytes.div_ceil(per_round).max(1);
                Some(u32::try_from(slices * rounds).unwrap_or(u32::MAX))
            }
        }
    }
}

/// What to stage where.
#[derive(Debug, Clone)]
pub struct StageOptions {
    /// The target prefix (a `/` is added when missing).
    pub to: S3Url,
    /// How to cut the tables' input.
    pub split: Split,
    /// Where UNLOAD writes, replacing the manifest's `unload.to` (required when that is local).
    pub unload_to: Option<S3Url>,
    /// Tables staged at once.
    pub concurrency: usize,
    /// Stops the work; uploads in progress are aborted.
    pub cancel: CancellationToken,
}

/// Progress reports, for bars or log lines.
#[derive(Debug)]
pub enum StageEvent<'a> {
    /// Staging starts: every table's input size.
    Started {
        /// `(table, input bytes)` in manifest order.
        tables: &'a [(String, u64)],
    },
    /// A table starts.
    TableStarted {
        /// `schema.table`.
        table: &'a str,
        /// Its input size in bytes.
        bytes: u64,
        /// The parts it is cut into, when splitting.
        parts: Option<u32>,
    },
    /// Input bytes of a table handled so far (cumulative).
    Progress {
        /// `schema.table`.
        table: &'a str,
        /// Bytes of its input read and handed to the upload.
        bytes: u64,
    },
    /// A table is done.
    TableFinished {
        /// What was written for it.
        table: &'a StagedTable,
    },
    /// A small object (COPY manifest, SQL, job manifest) was written.
    Uploaded {
        /// Where.
        url: &'a S3Url,
        /// Its size.
        bytes: u64,
    },
}

/// Receives [`StageEvent`]s (from several tasks at once).
pub trait StageObserver: Send + Sync {
    /// One event.
    fn event(&self, event: StageEvent<'_>);
}

/// Ignores every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl StageObserver for Quiet {
    fn event(&self, _: StageEvent<'_>) {}
}

/// One object of a table's input on S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedObject {
    /// Where it is.
    pub url: S3Url,
    /// Its size in bytes (the COPY manifest's `content_length`).
    pub bytes: u64,
    /// Records written into it (split parts only; header lines not counted).
    pub records: Option<u64>,
}

/// What was staged for one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedTable {
    /// `schema.table`.
    pub table: String,
    /// Its objects, in load order.
    pub objects: Vec<StagedObject>,
    /// Its COPY manifest (`None` for a prefix on an input that was already on S3).
    pub copy_manifest: Option<S3Url>,
    /// Input bytes read (local files) or listed (S3).
    pub input_bytes: u64,
}

/// What [`stage`] did.
#[derive(Debug, Clone)]
pub struct StageReport {
    /// The rewritten job manifest: what `etl start` takes.
    pub job_url: S3Url,
    /// Every table, in manifest order.
    pub tables: Vec<StagedTable>,
    /// The transform SQL objects, in order.
    pub transforms: Vec<S3Url>,
}

/// Stages the job manifest at `job_path` to S3, with the environment's S3 settings
/// ([`crate::storage::s3_store`]: `AWS_*` variables, `AWS_ENDPOINT_URL`).
///
/// # Errors
/// [`Error::InvalidJob`] for a manifest that is invalid or cannot run on AWS as staged (a local
/// `unload.to` without [`StageOptions::unload_to`], an input file outside the input folder);
/// [`Error::InvalidInput`] for options that do not fit; [`Error::Io`] and [`Error::Storage`] for
/// files that cannot be read or objects that cannot be written; [`Error::Cancelled`].
pub async fn stage(
    job_path: &Path,
    options: &StageOptions,
    observer: &dyn StageObserver,
) -> Result<StageReport> {
    let store = crate::storage::s3_store(&options.to)?;
    stage_with_store(job_path, store, options, observer).await
}

/// [`stage`] into a given object store holding `options.to`'s bucket (tests use an in-memory one).
///
/// # Errors
/// As [`stage`].
pub async fn stage_with_store(
    job_path: &Path,
    store: Arc<dyn ObjectStore>,
    options: &StageOptions,
    observer: &dyn StageObserver,
) -> Result<StageReport> {
    let text = std::fs::read_to_string(job_path)
        .map_err(|e| Error::io("cannot read job manifest", job_path.display(), e))?;
    let job = Job::from_path(job_path)?;
    let mut raw: Value =
        serde_json::from_str(&text).map_err(|e| Error::invalid("job manifest", e.to_string()))?;
    let to = folder(&options.to);
    let manifest_dir = match job_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };

    // Everything that can be checked is checked before the first upload.
    let unload_to = check_unload(&job, options)?;
    let work = plan_tables(&job, options)?;
    let transforms = plan_transforms(&job, &manifest_dir, &to)?;
    let job_name = job_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "job.json".into());
    let job_url = to.join(&job_name);
    object_path(&job_url)?;

    let sizes: Vec<(String, u64)> = work.iter().map(|w| (w.name.clone(), w.bytes)).collect();
    observer.event(StageEvent::Started { tables: &sizes });

    // The tables, a few at once; each one runs to its end (or its abort) even when another fails.
    let failed = options.cancel.child_token();
    let results: Vec<Result<StagedTable>> = futures::stream::iter(work.iter())
        .map(|w| {
            let store = store.clone();
            let failed = failed.clone();
            async move {
                let r = stage_table(w, store, &failed, observer).await;
                if r.is_err() {
                    failed.cancel();
                }
                r
            }
        })
        .buffered(options.concurrency.max(1))
        .collect()
        .await;
    let mut tables = Vec::with_capacity(results.len());
    let mut first_error = None;
    for r in results {
        match r {
            Ok(t) => tables.push(t),
            // A table stopped because another failed: report the cause, not the stop.
            Err(e)
                if first_error.is_none()
                    || matches!(first_error, Some(Error::Cancelled { .. })) =>
            {
                first_error = Some(e)
            }
            Err(_) => {}
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }

    // COPY manifests, then the SQL, then the job manifest: once it exists, everything it names does.
    for (w, t) in work.iter().zip(&tables) {
        if let Some(url) = &t.copy_manifest {
            let body = copy_manifest(&t.objects);
            put_small(&store, url, body, observer).await?;
        }
        rewrite_files(&mut raw, &w.json_path, &to, t)?;
    }
    for t in &transforms {
        if let Some((url, sql)) = &t.upload {
            put_small(&store, url, sql.clone().into_bytes(), observer).await?;
        }
    }
    rewrite_manifest(&mut raw, &job, &to, &transforms, unload_to.as_ref())?;
    let body = serde_json::to_string_pretty(&raw)
        .map_err(|e| Error::Internal(format!("cannot write the job manifest: {e}")))?;
    // The functions must accept what we upload.
    let staged = Job::parse(&body, &job_url.to_string(), Path::new("."))?;
    plan::build(
        &staged,
        crate::sql::Dialect::Redshift,
        &plan::PlanOptions::default(),
    )?;
    put_small(&store, &job_url, format!("{body}\n").into_bytes(), observer).await?;

    Ok(StageReport {
        job_url,
        tables,
        transforms: transforms
            .into_iter()
            .filter_map(|t| t.upload.map(|(url, _)| url))
            .collect(),
    })
}

/// `url` as a folder: with a trailing `/` (unless it is the bucket's root).
fn folder(url: &S3Url) -> S3Url {
    if url.key().is_empty() || url.key().ends_with('/') {
        url.clone()
    } else {
        url.with_suffix("/")
    }
}

/// The object store path of an S3 URL's key, exactly as written (`%` and other characters kept).
fn object_path(url: &S3Url) -> Result<ObjectPath> {
    ObjectPath::parse(url.key()).map_err(|e| Error::invalid("S3 key", format!("{url}: {e}")))
}

fn check_unload(job: &Job, options: &StageOptions) -> Result<Option<S3Url>> {
    match (&job.unload, &options.unload_to) {
        (None, Some(_)) => Err(Error::invalid(
            "--unload-to",
            "the job has no \"unload\" section",
        )),
        (Some(_), Some(u)) => Ok(Some(u.clone())),
        (Some(u), None) => match &u.to {
            Location::S3(_) => Ok(None),
            Location::Local(p) => Err(Error::InvalidJob {
                file: job.origin.clone().into(),
                issues: vec![crate::error::ManifestIssue {
                    path: "unload.to".into(),
                    message: format!(
                        "is the local path {}, and Redshift's UNLOAD writes to S3: pass \
                         --unload-to s3://bucket/prefix/name_ (or set an s3:// target)",
                        p.display()
                    ),
                }],
            }),
        },
        (None, None) => Ok(None),
    }
}

/// One table's work, decided before anything is uploaded.
#[derive(Debug)]
struct TableWork {
    name: String,
    json_path: String,
    kind: WorkKind,
    bytes: u64,
    copy_manifest: S3Url,
    /// Whether the table's files are given as a list (a prefix on S3 needs no COPY manifest).
    listed: bool,
}

#[derive(Debug)]
enum WorkKind {
    /// Upload these local files as they are, to these URLs.
    Copy(Vec<(PathBuf, S3Url, u64)>),
    /// Cut these local files into parts.
    Split {
        files: Vec<(PathBuf, Compression, u64)>,
        parts: u32,
        format: Box<Format>,
        output: Compression,
        folder: S3Url,
    },
    /// Already on S3: look the listed objects' sizes up.
    OnS3(Vec<S3Url>),
}

fn plan_tables(job: &Job, options: &StageOptions) -> Result<Vec<TableWork>> {
    let to = folder(&options.to);
    let mut out = Vec::new();
    let mut issues = Vec::new();
    for table in &job.tables {
        let name = table.name.to_string();
        // Where the plan reads it: below the input, which is the target unless already on S3.
        let copy_manifest = match &job.input {
            Location::S3(input) => plan::copy_manifest_url(input, table),
            Location::Local(_) => plan::copy_manifest_url(&to, table),
        };
        let listed = matches!(table.files, Files::List(_));
        let (kind, bytes) = match &job.input {
            Location::S3(input) => {
                if options.split != Split::None {
                    return Err(Error::invalid(
                        "--parts/--slices",
                        format!(
                            "the job's input is already on S3 ({input}); `etl stage` splits local files only"
                        ),
                    ));
                }
                let urls = match &table.files {
                    Files::List(names) => names.iter().map(|n| input.join(n)).collect(),
                    Files::Prefix(_) => Vec::new(),
                };
                (WorkKind::OnS3(urls), 0)
            }
            Location::Local(dir) => {
                let files = crate::job::local_files(dir, &table.files)
                    .map_err(|m| Error::invalid(format!("{}.files", table.json_path), m))?;
                let mut sized = Vec::new();
                for f in files {
                    let len = std::fs::metadata(&f)
                        .map_err(|e| Error::io("cannot read", f.display(), e))?
                        .len();
                    sized.push((f, len));
                }
                let bytes = sized.iter().map(|(_, n)| n).sum::<u64>();
                match options.split.parts_for(bytes) {
                    None => {
                        let mut copies = Vec::new();
                        for (f, len) in sized {
                            match relative_key(dir, &f) {
                                Some(rel) => copies.push((f, to.join(&rel), len)),
                                None => issues.push(crate::error::ManifestIssue {
                                    path: format!("{}.files", table.json_path),
                                    message: format!(
                                        "{} is outside the input folder {}: move it inside to stage it",
                                        f.display(),
                                        dir.display()
                                    ),
                                }),
                            }
                        }
                        (WorkKind::Copy(copies), bytes)
                    }
                    Some(parts) => {
                        let files: Vec<_> = sized
                            .into_iter()
                            .map(|(f, len)| {
                                let c = table.format.compression.for_file(&f.to_string_lossy());
                                (f, c, len)
                            })
                            .collect();
                        let output = files.first().map_or(Compression::None, |(_, c, _)| *c);
                        let folder = to.join(&format!("parts/{}/", plan::table_key(table)));
                        (
                            WorkKind::Split {
                                files,
                                parts,
                                format: Box::new(table.format.clone()),
                                output,
                                folder,
                            },
                            bytes,
                        )
                    }
                }
            }
        };
        object_path(&copy_manifest)?;
        out.push(TableWork {
            name,
            json_path: table.json_path.clone(),
            kind,
            bytes,
            copy_manifest,
            listed,
        });
    }
    if issues.is_empty() {
        Ok(out)
    } else {
        Err(Error::InvalidJob {
            file: job.origin.clone().into(),
            issues,
        })
    }
}

/// `file` relative to `dir` with `/` separators, if it is inside it.
fn relative_key(dir: &Path, file: &Path) -> Option<String> {
    let dir = std::path::absolute(dir).ok()?;
    let file = std::path::absolute(file).ok()?;
    let rel = file.strip_prefix(&dir).ok()?;
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?.to_owned()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Where a transform goes and what the rewritten manifest calls it.
#[derive(Debug)]
struct TransformPlan {
    /// The name in the rewritten manifest.
    name: String,
    /// The object to write and its SQL (`None`: already on S3).
    upload: Option<(S3Url, String)>,
}

fn plan_transforms(job: &Job, manifest_dir: &Path, to: &S3Url) -> Result<Vec<TransformPlan>> {
    let mut out = Vec::new();
    for (i, t) in job.transforms.iter().enumerate() {
        match &t.location {
            Location::S3(u) => out.push(TransformPlan {
                name: u.to_string(),
                upload: None,
            }),
            Location::Local(p) => {
                let name = match relative_key(manifest_dir, p) {
                    Some(rel) => rel,
                    None => {
                        let file = p
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_else(|| "transform.sql".into());
                        format!("sql/{i:02}_{file}")
                    }
                };
                let url = to.join(&name);
                object_path(&url)?;
                out.push(TransformPlan {
                    name,
                    upload: Some((url, t.sql.clone())),
                });
            }
        }
    }
    Ok(out)
}

/// The COPY manifest of a table's objects
/// (<https://docs.aws.amazon.com/redshift/latest/dg/loading-data-files-using-manifest.html>).
pub fn copy_manifest(objects: &[StagedObject]) -> Vec<u8> {
    let entries: Vec<Value> = objects
        .iter()
        .map(|o| {
            json!({
                "url": o.url.to_string(),
                "mandatory": true,
                "meta": {"content_length": o.bytes},
            })
        })
        .collect();
    let mut body = serde_json::to_vec_pretty(&json!({ "entries": entries }))
        .expect("JSON values always serialize");
    body.push(b'\n');
    body
}

/// Sets the table's `files` to its objects, relative to the new input prefix `to` (an input that
/// was already on S3 keeps its names).
fn rewrite_files(raw: &mut Value, json_path: &str, to: &S3Url, table: &StagedTable) -> Result<()> {
    let names: Option<Vec<String>> = table
        .objects
        .iter()
        .map(|o| {
            (o.url.bucket() == to.bucket())
                .then(|| o.url.key().strip_prefix(to.key()).map(str::to_owned))
                .flatten()
        })
        .collect();
    let Some(names) = names.filter(|n| !n.is_empty()) else {
        return Ok(());
    };
    let node = json_node(raw, json_path)
        .ok_or_else(|| Error::Internal(format!("{json_path} not found in the manifest")))?;
    node["files"] = json!(names);
    Ok(())
}

/// `schemas[1].tables[2]` → that object of the manifest.
fn json_node<'v>(raw: &'v mut Value, path: &str) -> Option<&'v mut Value> {
    let mut node = raw;
    for seg in path.split('.') {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, Some(rest.strip_suffix(']')?.parse::<usize>().ok()?)),
            None => (seg, None),
        };
        node = node.get_mut(name)?;
        if let Some(i) = index {
            node = node.get_mut(i)?;
        }
    }
    Some(node)
}

fn rewrite_manifest(
    raw: &mut Value,
    job: &Job,
    to: &S3Url,
    transforms: &[TransformPlan],
    unload_to: Option<&S3Url>,
) -> Result<()> {
    let obj = raw
        .as_object_mut()
        .ok_or_else(|| Error::Internal("the manifest is not a JSON object".into()))?;
    if matches!(job.input, Location::Local(_)) {
        obj.insert("input".into(), json!(to.to_string()));
    }
    if !transforms.is_empty() {
        obj.insert(
            "transform".into(),
            json!(
                transforms
                    .iter()
                    .map(|t| t.name.clone())
                    .collect::<Vec<_>>()
            ),
        );
    }
    if let (Some(unload), Some(Value::Object(u))) = (&job.unload, obj.get_mut("unload")) {
        if u.contains_key("query_file")
            && let UnloadSource::Query(q) = &unload.source
        {
            u.remove("query_file");
            u.insert("query".into(), json!(q));
        }
        if let Some(target) = unload_to {
            u.insert("to".into(), json!(target.to_string()));
        }
    }
    Ok(())
}

async fn put_small(
    store: &Arc<dyn ObjectStore>,
    url: &S3Url,
    body: Vec<u8>,
    observer: &dyn StageObserver,
) -> Result<()> {
    let bytes = body.len() as u64;
    store
        .put(&object_path(url)?, PutPayload::from(body))
        .await
        .map_err(|e| Error::Storage {
            action: "cannot write",
            location: url.to_string(),
            source: e,
        })?;
    observer.event(StageEvent::Uploaded { url, bytes });
    Ok(())
}

async fn stage_table(
    work: &TableWork,
    store: Arc<dyn ObjectStore>,
    cancel: &CancellationToken,
    observer: &dyn StageObserver,
) -> Result<StagedTable> {
    let parts = match &work.kind {
        WorkKind::Split { parts, .. } => Some(*parts),
        _ => None,
    };
    observer.event(StageEvent::TableStarted {
        table: &work.name,
        bytes: work.bytes,
        parts,
    });
    let objects = match &work.kind {
        WorkKind::Copy(files) => {
            let mut objects = Vec::new();
            let mut done = 0u64;
            for (file, url, _) in files {
                let bytes = upload_file(&store, file, url, cancel, &mut |n| {
                    observer.event(StageEvent::Progress {
                        table: &work.name,
                        bytes: done + n,
                    });
                })
                .await?;
                done += bytes;
                objects.push(StagedObject {
                    url: url.clone(),
                    bytes,
                    records: None,
                });
            }
            objects
        }
        WorkKind::Split {
            files,
            parts,
            format,
            output,
            folder,
        } => {
            split_table(
                &work.name, files, *parts, format, *output, folder, &store, cancel, observer,
            )
            .await?
        }
        WorkKind::OnS3(urls) => {
            let mut objects = Vec::new();
            for url in urls {
                let store = crate::storage::s3_store(url)?;
                let meta = store
                    .head(&object_path(url)?)
                    .await
                    .map_err(|e| Error::Storage {
                        action: "cannot find",
                        location: url.to_string(),
                        source: e,
                    })?;
                objects.push(StagedObject {
                    url: url.clone(),
                    bytes: meta.size,
                    records: None,
                });
            }
            objects
        }
    };
    let staged = StagedTable {
        table: work.name.clone(),
        input_bytes: work.bytes.max(objects.iter().map(|o| o.bytes).sum()),
        objects,
        // A prefix already on S3 is loaded by prefix, as the plan says; everything else by manifest.
        copy_manifest: (work.listed || !matches!(work.kind, WorkKind::OnS3(_)))
            .then(|| work.copy_manifest.clone()),
    };
    observer.event(StageEvent::TableFinished { table: &staged });
    Ok(staged)
}

fn storage_error(action: &'static str, url: &S3Url, e: object_store::Error) -> Error {
    Error::Storage {
        action,
        location: url.to_string(),
        source: e,
    }
}

/// Uploads one local file as it is; returns its size.
async fn upload_file(
    store: &Arc<dyn ObjectStore>,
    file: &Path,
    url: &S3Url,
    cancel: &CancellationToken,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<u64> {
    use tokio::io::AsyncReadExt as _;
    let path = object_path(url)?;
    let mut f = tokio::fs::File::open(file)
        .await
        .map_err(|e| Error::io("cannot open", file.display(), e))?;
    let len = f
        .metadata()
        .await
        .map_err(|e| Error::io("cannot read", file.display(), e))?
        .len();
    let chunk = multipart_part_size(len)
        .map_err(|why| Error::invalid("input file", format!("{}: {why}", file.display())))?;
    if len < CHUNK as u64 {
        let mut body = Vec::with_capacity(len as usize);
        f.read_to_end(&mut body)
            .await
            .map_err(|e| Error::io("cannot read", file.display(), e))?;
        let n = body.len() as u64;
        store
            .put(&path, PutPayload::from(body))
            .await
            .map_err(|e| storage_error("cannot write", url, e))?;
        progress(n);
        return Ok(n);
    }
    let upload = store
        .put_multipart(&path)
        .await
        .map_err(|e| storage_error("cannot start the upload of", url, e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, chunk);
    let mut buf = vec![0u8; 1024 * 1024];
    let mut total = 0u64;
    let outcome: Result<()> = async {
        loop {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled {
                    context: format!("upload of {}", file.display()),
                });
            }
            let n = f
                .read(&mut buf)
                .await
                .map_err(|e| Error::io("cannot read", file.display(), e))?;
            if n == 0 {
                return Ok(());
            }
            writer
                .wait_for_capacity(in_flight(chunk))
                .await
                .map_err(|e| storage_error("cannot upload", url, e))?;
            writer.write(&buf[..n]);
            total += n as u64;
            progress(total);
        }
    }
    .await;
    match outcome {
        Ok(()) => {
            writer
                .finish()
                .await
                .map_err(|e| storage_error("cannot complete the upload of", url, e))?;
            Ok(total)
        }
        Err(e) => {
            let _ = writer.abort().await;
            Err(e)
        }
    }
}

/// What the splitter thread tells the uploader.
enum Msg {
    /// A new part starts.
    Begin,
    /// Compressed bytes of the current part.
    Data(Bytes),
    /// The current part is complete; it holds this many records.
    End(u64),
    /// Input bytes handled so far.
    Progress(u64),
}

#[allow(clippy::too_many_arguments)]
async fn split_table(
    name: &str,
    files: &[(PathBuf, Compression, u64)],
    parts: u32,
    format: &Format,
    output: Compression,
    folder: &S3Url,
    store: &Arc<dyn ObjectStore>,
    cancel: &CancellationToken,
    observer: &dyn StageObserver,
) -> Result<Vec<StagedObject>> {
    // A part's size is known only once it is written: size the multipart chunks for the whole
    // table, twice over (recompression may grow it; a plain part cut from compressed input, far more).
    let total: u64 = files.iter().map(|f| f.2).sum();
    let expands = output == Compression::None && files.iter().any(|f| f.1 != Compression::None);
    let estimate = total.saturating_mul(if expands { 20 } else { 2 });
    let chunk = multipart_part_size(estimate.min(MAX_OBJECT_SIZE))
        .map_err(|why| Error::invalid("input", format!("{name}: {why}")))?;
    let (tx, mut rx) = mpsc::channel::<Msg>(8);
    let splitter = {
        let files = files.to_vec();
        let format = format.clone();
        let cancel = cancel.clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut s = Splitter::new(&format, output, parts, &files, tx, &cancel, &name)?;
            s.run()
        })
    };

    let mut objects = Vec::new();
    let mut current: Option<(WriteMultipart, S3Url, u64)> = None;
    let uploaded: Result<()> = async {
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Begin => {
                    let url =
                        folder.join(&format!("part-{:05}{}", objects.len(), extension(output)));
                    let upload = store
                        .put_multipart(&object_path(&url)?)
                        .await
                        .map_err(|e| storage_error("cannot start the upload of", &url, e))?;
                    current = Some((WriteMultipart::new_with_chunk_size(upload, chunk), url, 0));
                }
                Msg::Data(bytes) => {
                    let (w, url, n) = current
                        .as_mut()
                        .ok_or_else(|| Error::Internal("part data before its start".into()))?;
                    w.wait_for_capacity(in_flight(chunk))
                        .await
                        .map_err(|e| storage_error("cannot upload", url, e))?;
                    *n += bytes.len() as u64;
                    w.put(bytes);
                }
                Msg::End(records) => {
                    let (w, url, n) = current
                        .take()
                        .ok_or_else(|| Error::Internal("part end before its start".into()))?;
                    w.finish()
                        .await
                        .map_err(|e| storage_error("cannot complete the upload of", &url, e))?;
                    objects.push(StagedObject {
                        url,
                        bytes: n,
                        records: Some(records),
                    });
                }
                Msg::Progress(bytes) => observer.event(StageEvent::Progress { table: name, bytes }),
            }
        }
        Ok(())
    }
    .await;
    if uploaded.is_err() {
        // Stop the splitter (its sends fail once the receiver is gone).
        drop(rx);
    }
    if let Some((w, _, _)) = current.take() {
        let _ = w.abort().await;
    }
    let split = splitter
        .await
        .map_err(|e| Error::Internal(format!("the splitter thread failed: {e}")))?;
    uploaded?;
    split?;
    Ok(objects)
}

fn extension(c: Compression) -> &'static str {
    match c {
        Compression::Gzip => ".gz",
        Compression::Bzip2 => ".bz2",
        Compression::Zstd => ".zst",
        Compression::None | Compression::Auto => "",
    }
}

/// Finds record ends in a stream, with the same rules as the loader's parser: a line feed ends a
/// record, except after a backslash with `ESCAPE`, or inside a quoted field with `CSV` (a quote
/// opens a field only at its start; `qq` inside quotes is a quote).
#[derive(Debug, Clone)]
struct Scanner {
    mode: ScanMode,
    escaped: bool,
    in_quote: bool,
    quote_pending: bool,
    field_start: bool,
}

#[derive(Debug, Clone, Copy)]
enum ScanMode {
    Lines,
    Escape,
    Csv { quote: u8, delimiter: u8 },
}

impl Scanner {
    fn new(format: &Format) -> Scanner {
        let mode = match format.csv_quote {
            Some(quote) => ScanMode::Csv {
                quote,
                delimiter: format.delimiter,
            },
            None if format.escape => ScanMode::Escape,
            None => ScanMode::Lines,
        };
        Scanner {
            mode,
            escaped: false,
            in_quote: false,
            quote_pending: false,
            field_start: true,
        }
    }

    /// The offset just past the first record end in `buf`, having consumed up to it; `None` when
    /// `buf` ends no record (all of it consumed).
    fn next_end(&mut self, buf: &[u8]) -> Option<usize> {
        match self.mode {
            ScanMode::Lines => memchr::memchr(b'\n', buf).map(|i| i + 1),
            ScanMode::Escape => {
                for (i, &b) in buf.iter().enumerate() {
                    if self.escaped {
                        self.escaped = false;
                    } else if b == b'\\' {
                        self.escaped = true;
                    } else if b == b'\n' {
                        return Some(i + 1);
                    }
                }
                None
            }
            ScanMode::Csv { quote, delimiter } => {
                for (i, &b) in buf.iter().enumerate() {
                    if self.in_quote {
                        if !self.quote_pending {
                            self.quote_pending = b == quote;
                            continue;
                        }
                        self.quote_pending = false;
                        if b == quote {
                            continue; // `qq`: a quote inside the field
                        }
                        self.in_quote = false;
                        self.field_start = false;
                    }
                    if b == b'\n' {
                        self.field_start = true;
                        return Some(i + 1);
                    }
                    if b == quote && self.field_start {
                        self.in_quote = true;
                        self.field_start = false;
                        continue;
                    }
                    self.field_start = b == delimiter;
                }
                None
            }
        }
    }

    /// Inside a quoted field that no quote has closed yet.
    fn open_quote(&self) -> bool {
        self.in_quote && !self.quote_pending
    }
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn open_decoded(
    path: &Path,
    compression: Compression,
    count: Arc<AtomicU64>,
) -> Result<Box<dyn Read>> {
    let file =
        std::fs::File::open(path).map_err(|e| Error::io("cannot open", path.display(), e))?;
    let raw = std::io::BufReader::with_capacity(READ_BUF, Counting { inner: file, count });
    Ok(match compression {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(raw)),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(raw)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(raw)
                .map_err(|e| Error::io("cannot start zstd decompression of", path.display(), e))?,
        ),
        Compression::None | Compression::Auto => Box::new(raw),
    })
}

/// Hands compressed output to the uploader in [`SEND`]-byte pieces.
struct Sink {
    tx: mpsc::Sender<Msg>,
    buf: Vec<u8>,
}

impl Sink {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(SEND)));
        self.tx
            .blocking_send(Msg::Data(data))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the upload stopped"))
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        if self.buf.len() >= SEND {
            self.send()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// A part's compressor.
enum Encoder {
    Plain(Sink),
    Gzip(flate2::write::GzEncoder<Sink>),
    Bzip2(bzip2::write::BzEncoder<Sink>),
    Zstd(zstd::stream::write::Encoder<'static, Sink>),
}

impl Encoder {
    fn new(c: Compression, sink: Sink) -> std::io::Result<Encoder> {
        Ok(match c {
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                sink,
                flate2::Compression::default(),
            )),
            Compression::Bzip2 => Encoder::Bzip2(bzip2::write::BzEncoder::new(
                sink,
                bzip2::Compression::default(),
            )),
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(sink, 3)?),
            Compression::None | Compression::Auto => Encoder::Plain(sink),
        })
    }

    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Encoder::Plain(w) => w.write_all(data),
            Encoder::Gzip(w) => w.write_all(data),
            Encoder::Bzip2(w) => w.write_all(data),
            Encoder::Zstd(w) => w.write_all(data),
        }
    }

    fn finish(self) -> std::io::Result<Sink> {
        let mut sink = match self {
            Encoder::Plain(w) => w,
            Encoder::Gzip(w) => w.finish()?,
            Encoder::Bzip2(w) => w.finish()?,
            Encoder::Zstd(w) => w.finish()?,
        };
        sink.send()?;
        Ok(sink)
    }
}

/// Cuts one table's files into parts (runs on a blocking thread).
struct Splitter<'a> {
    format: &'a Format,
    output: Compression,
    parts: u32,
    files: &'a [(PathBuf, Compression, u64)],
    tx: mpsc::Sender<Msg>,
    cancel: &'a CancellationToken,
    name: &'a str,
    /// Total size in the unit of `position`.
    total: u64,
    /// Measure positions in decompressed bytes (small inputs) rather than compressed ones.
    decompressed: bool,
    header: Vec<u8>,
    current: Option<(Encoder, u64)>,
    /// Index of the current (or next) part.
    part: u32,
}

impl<'a> Splitter<'a> {
    fn new(
        format: &'a Format,
        output: Compression,
        parts: u32,
        files: &'a [(PathBuf, Compression, u64)],
        tx: mpsc::Sender<Msg>,
        cancel: &'a CancellationToken,
        name: &'a str,
    ) -> Result<Splitter<'a>> {
        let compressed: u64 = files.iter().map(|(_, _, n)| n).sum();
        let decompressed = compressed < MEASURE_BELOW && parts > 1;
        let total = if decompressed {
            let mut n = 0u64;
            for (path, c, _) in files {
                let mut r = open_decoded(path, *c, Arc::new(AtomicU64::new(0)))?;
                n += std::io::copy(&mut r, &mut std::io::sink())
                    .map_err(|e| Error::io("cannot read or decompress", path.display(), e))?;
            }
            n
        } else {
            compressed
        };
        Ok(Splitter {
            format,
            output,
            parts: parts.max(1),
            files,
            tx,
            cancel,
            name,
            total,
            decompressed,
            header: Vec::new(),
            current: None,
            part: 0,
        })
    }

    /// Where part `k` starts, in the unit of the position.
    fn boundary(&self, k: u32) -> u64 {
        (u128::from(self.total) * u128::from(k) / u128::from(self.parts)) as u64
    }

    fn switch_due(&self, position: u64) -> bool {
        self.current.is_some()
            && self.part + 1 < self.parts
            && position >= self.boundary(self.part + 1)
    }

    fn send(&self, msg: Msg) -> Result<()> {
        self.tx.blocking_send(msg).map_err(|_| Error::Cancelled {
            context: format!("staging of {}", self.name),
        })
    }

    fn io(&self, path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
        let display = path.display().to_string();
        move |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                Error::Cancelled {
                    context: format!("staging of {}", self.name),
                }
            } else {
                Error::io("cannot compress a part of", display.clone(), e)
            }
        }
    }

    /// Writes body bytes to the current part, starting one first if needed.
    fn write(&mut self, data: &[u8], records: u64, path: &Path) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if !self.header.is_empty() && !self.header.ends_with(b"\n") {
            // A first file made of header lines only, the last without a line feed.
            self.header.push(b'\n');
        }
        if self.current.is_none() {
            self.send(Msg::Begin)?;
            let sink = Sink {
                tx: self.tx.clone(),
                buf: Vec::with_capacity(SEND),
            };
            let mut enc = Encoder::new(self.output, sink).map_err(self.io(path))?;
            enc.write_all(&self.header).map_err(self.io(path))?;
            self.current = Some((enc, 0));
        }
        let result = {
            let (enc, n) = self.current.as_mut().expect("just started");
            *n += records;
            enc.write_all(data)
        };
        result.map_err(self.io(path))
    }

    fn finish_part(&mut self, path: &Path) -> Result<()> {
        if let Some((enc, records)) = self.current.take() {
            enc.finish().map_err(self.io(path))?;
            self.send(Msg::End(records))?;
            self.part += 1;
        }
        Ok(())
    }

    fn run(&mut self) -> Result<()> {
        let compressed = Arc::new(AtomicU64::new(0));
        let mut decompressed = 0u64;
        let mut buf = vec![0u8; STEP];
        for (fi, (path, compression, _)) in self.files.iter().enumerate() {
            let mut reader = open_decoded(path, *compression, compressed.clone())?;
            let mut scanner = Scanner::new(self.format);
            let mut header_left = self.format.ignore_header;
            let mut mid_record = false;
            loop {
                if self.cancel.is_cancelled() {
                    return Err(Error::Cancelled {
                        context: format!("staging of {}", self.name),
                    });
                }
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(Error::io("cannot read or decompress", path.display(), e));
                    }
                };
                decompressed += n as u64;
                let mut data = &buf[..n];
                while header_left > 0 && !data.is_empty() {
                    let end = scanner.next_end(data);
                    let cut = end.unwrap_or(data.len());
                    if fi == 0 {
                        self.header.extend_from_slice(&data[..cut]);
                    }
                    data = &data[cut..];
                    if end.is_some() {
                        header_left -= 1;
                    }
                }
                let piece_end = decompressed;
                while !data.is_empty() {
                    let position = if self.decompressed {
                        piece_end - data.len() as u64
                    } else {
                        compressed.load(Ordering::Relaxed)
                    };
                    if self.switch_due(position) {
                        if !mid_record {
                            self.finish_part(path)?;
                            continue;
                        }
                        // Finish the record in progress, then cut.
                        match scanner.next_end(data) {
                            Some(end) => {
                                self.write(&data[..end], 1, path)?;
                                data = &data[end..];
                                mid_record = false;
                                self.finish_part(path)?;
                            }
                            None => {
                                self.write(data, 0, path)?;
                                data = &[];
                            }
                        }
                        continue;
                    }
                    // Up to the next boundary (decompressed positions are exact), or all of it.
                    let take = if self.decompressed && self.part + 1 < self.parts {
                        let left = self.boundary(self.part + 1).saturating_sub(position);
                        usize::try_from(left)
                            .unwrap_or(usize::MAX)
                            .clamp(1, data.len())
                    } else {
                        data.len()
                    };
                    let (piece, rest) = data.split_at(take);
                    // Count the records and keep the scanner's state.
                    let mut records = 0u64;
                    let mut scan = piece;
                    let mut offset = 0;
                    let mut last_end = None;
                    while let Some(end) = scanner.next_end(scan) {
                        records += 1;
                        offset += end;
                        last_end = Some(offset);
                        scan = &scan[end..];
                    }
                    mid_record = last_end != Some(piece.len());
                    self.write(piece, records, path)?;
                    data = rest;
                }
                self.send(Msg::Progress(compressed.load(Ordering::Relaxed)))?;
            }
            if scanner.open_quote() {
                return Err(Error::invalid(
                    "input file",
                    format!(
                        "{} ends inside a quoted field: it cannot be split safely (fix the file, \
                         or stage without --parts/--slices)",
                        path.display()
                    ),
                ));
            }
            if mid_record {
                // The last record has no line feed: end it, so the next file's first record does
                // not join it (the loader reads a final record with or without one alike).
                self.write(b"\n", 1, path)?;
            }
        }
        self.finish_part(Path::new(self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_parts_fit_s3s_limits() {
        const GIB: u64 = 1024 * MIB;
        // Small and medium objects: 8 MiB parts, four in flight.
        assert_eq!(multipart_part_size(0).unwrap(), CHUNK);
        assert_eq!(multipart_part_size(50 * GIB).unwrap(), CHUNK);
        assert_eq!(in_flight(CHUNK), IN_FLIGHT);
        // 8 MiB × 10,000 parts is 78.1 GiB: beyond it the parts grow, by whole MiB.
        for len in [
            10_000 * CHUNK as u64,
            10_000 * CHUNK as u64 + 1,
            80 * GIB,
            100 * GIB,
            1024 * GIB,
            MAX_OBJECT_SIZE,
        ] {
            let part = multipart_part_size(len).unwrap() as u64;
            assert!(len.div_ceil(part) <= MAX_PARTS, "{len}: {part}-byte parts");
            assert!((5 * MIB..=MAX_PART_SIZE).contains(&part), "{len}: {part}");
            assert_eq!(part % MIB, 0);
        }
        assert_eq!(multipart_part_size(100 * GIB).unwrap() as u64, 11 * MIB);
        // Fewer parts in flight as they grow; never none.
        assert_eq!(in_flight(11 * MIB as usize), 2);
        assert_eq!(in_flight(525 * MIB as usize), 1);
        // More than S3 holds in one object.
        let err = multipart_part_size(MAX_OBJECT_SIZE + 1).unwrap_err();
        assert!(err.contains("5 TiB") && err.contains("qfacts"), "{err}");
    }
    use object_store::memory::InMemory;

    fn scan_all(format: &Format, data: &[u8], step: usize) -> Vec<usize> {
        let mut s = Scanner::new(format);
        let mut ends = Vec::new();
        let mut base = 0;
        for piece in data.chunks(step) {
            let mut off = 0;
            while let Some(e) = s.next_end(&piece[off..]) {
                off += e;
                ends.push(base + off);
            }
            base += piece.len();
        }
        ends
    }

    #[test]
    fn record_ends_whatever_the_piece_size() {
        let csv = Format {
            csv_quote: Some(b'"'),
            remove_quotes: false,
            delimiter: b',',
            ..Format::default()
        };
        let data = b"a,\"x\ny\",1\n\"q\"\"\n\",2\nb,c\"d\ne\n";
        for step in 1..data.len() {
            assert_eq!(scan_all(&csv, data, step), [10, 19, 25, 27], "step {step}");
        }
        let esc = Format {
            escape: true,
            ..Format::default()
        };
        let data = b"a\\\nb|1\nc\\\\\nd\n";
        for step in 1..data.len() {
            assert_eq!(scan_all(&esc, data, step), [7, 11, 13], "step {step}");
        }
        let plain = Format::default();
        assert_eq!(scan_all(&plain, b"a\\\nb\n\"c\nd\"\n", 3), [3, 5, 8, 11]);
    }

    #[test]
    fn slices_give_a_multiple_of_slices() {
        let mb = 1024 * 1024;
        let s = Split::Slices {
            slices: 4,
            part_size: 256 * mb,
        };
        assert_eq!(s.parts_for(10), Some(4));
        assert_eq!(s.parts_for(1024 * mb), Some(4));
        assert_eq!(s.parts_for(1024 * mb + 1), Some(8));
        assert_eq!(Split::Parts(3).parts_for(0), Some(3));
        assert_eq!(Split::None.parts_for(5), None);
    }

    #[test]
    fn json_paths_find_tables() {
        let mut v = json!({"schemas": [{"tables": [{"name": "a"}, {"name": "b"}]}]});
        assert_eq!(
            json_node(&mut v, "schemas[0].tables[1]").unwrap()["name"],
            "b"
        );
        assert!(json_node(&mut v, "schemas[1].tables[0]").is_none());
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn gunzip(data: &[u8]) -> String {
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(data)
            .read_to_string(&mut s)
            .unwrap();
        s
    }

    #[tokio::test]
    async fn splits_into_parts_with_headers_and_writes_the_manifests() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data/t")).unwrap();
        // Two files, the second without a final line feed; 1000 rows in all.
        let mut a = String::from("id|name\n");
        for i in 0..600 {
            a.push_str(&format!("{i}|row {i}\n"));
        }
        let mut b = String::from("id|name\n");
        for i in 600..1000 {
            b.push_str(&format!("{i}|row {i}"));
            if i < 999 {
                b.push('\n');
            }
        }
        std::fs::write(dir.path().join("data/t/a.gz"), gz(a.as_bytes())).unwrap();
        std::fs::write(dir.path().join("data/t/b.gz"), gz(b.as_bytes())).unwrap();
        std::fs::write(dir.path().join("model.sql"), "select 1;").unwrap();
        let job = dir.path().join("job.json");
        std::fs::write(
            &job,
            r#"{"name": "t", "input": "data/", "transform": ["model.sql"],
                "schemas": [{"name": "s", "tables": [{"name": "t", "files": {"prefix": "t/"},
                "columns": [{"name": "id", "type": "int"}, {"name": "name", "type": "varchar(20)"}]}]}],
                "unload": {"query": "select 1", "to": "out/x_"}}"#,
        )
        .unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let options = StageOptions {
            to: S3Url::parse("s3://bucket/stage").unwrap(),
            split: Split::Parts(4),
            unload_to: None,
            concurrency: 2,
            cancel: CancellationToken::new(),
        };
        // A local unload target cannot run on AWS.
        let err = stage_with_store(&job, store.clone(), &options, &Quiet)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("unload.to"), "{err}");

        let options = StageOptions {
            unload_to: Some(S3Url::parse("s3://bucket/out/x_").unwrap()),
            ..options
        };
        let report = stage_with_store(&job, store.clone(), &options, &Quiet)
            .await
            .unwrap();
        assert_eq!(report.job_url.to_string(), "s3://bucket/stage/job.json");
        let t = &report.tables[0];
        assert_eq!(t.objects.len(), 4);
        let mut seen = Vec::new();
        for o in &t.objects {
            let got = store
                .get(&object_path(&o.url).unwrap())
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert_eq!(got.len() as u64, o.bytes);
            let text = gunzip(&got);
            let mut lines = text.lines();
            assert_eq!(lines.next(), Some("id|name"), "header in {}", o.url);
            let rows: Vec<u32> = lines
                .map(|l| l.split('|').next().unwrap().parse().unwrap())
                .collect();
            assert_eq!(rows.len() as u64, o.records.unwrap());
            assert!(text.ends_with('\n'));
            seen.extend(rows);
        }
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());

        let manifest = store
            .get(&ObjectPath::parse("stage/_manifests/s.t.manifest").unwrap())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let manifest: Value = serde_json::from_slice(&manifest).unwrap();
        let entries = manifest["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(
            entries[0]["url"],
            "s3://bucket/stage/parts/s.t/part-00000.gz"
        );
        assert_eq!(entries[0]["mandatory"], true);
        assert_eq!(entries[0]["meta"]["content_length"], t.objects[0].bytes);

        let staged = store
            .get(&ObjectPath::parse("stage/job.json").unwrap())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let staged: Value = serde_json::from_slice(&staged).unwrap();
        assert_eq!(staged["input"], "s3://bucket/stage/");
        assert_eq!(staged["transform"], json!(["model.sql"]));
        assert_eq!(staged["unload"]["to"], "s3://bucket/out/x_");
        assert_eq!(
            staged["schemas"][0]["tables"][0]["files"][3],
            "parts/s.t/part-00003.gz"
        );
        let sql = store
            .get(&ObjectPath::parse("stage/model.sql").unwrap())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&sql[..], b"select 1;");
    }
}
