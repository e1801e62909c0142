//! The job manifest: the user's contract.
//!
//! A manifest is JSON (see the README for a complete example). [`Job::from_path`] reads and validates
//! it: unknown fields are rejected, every name becomes an [`Ident`], every type comes from the
//! [`ColumnType`] allow-list, and every problem is reported with its JSON path
//! (`schemas[0].tables[2].columns[5].type`) and the rule broken — all problems at once, not just the
//! first. Local input files and transform files are checked before anything runs.

pub mod format;
mod manifest;
pub mod redshift_rules;
mod remote;
pub mod types;

pub use format::{Compression, DateFormat, Format, FormatSpec, TimeFormat};
pub use types::ColumnType;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, ManifestIssue, Result};
use crate::sql::{IamRole, Ident, S3Url, TableName};
use manifest::{RawJob, RawTable, RawUnload};

/// One column of a table, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name.
    pub name: Ident,
    /// Redshift type.
    pub ty: ColumnType,
    /// Whether NULL is allowed (`NOT NULL` otherwise; a NULL in the input rejects the row).
    pub nullable: bool,
    /// Redshift `ENCODE` (compression encoding); ignored by PostgreSQL.
    pub encode: Option<String>,
    /// Redshift `DISTKEY`; ignored by PostgreSQL.
    pub distkey: bool,
    /// Position in Redshift's compound `SORTKEY` (1-based); ignored by PostgreSQL.
    pub sortkey: Option<u16>,
}

/// Where files live: a local folder or an S3 prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local path (absolute, or relative to the current directory).
    Local(PathBuf),
    /// An S3 location.
    S3(S3Url),
}

impl Location {
    /// Parses `s3://...` or a local path relative to `base`.
    fn parse(text: &str, base: &Path) -> std::result::Result<Location, String> {
        if text.starts_with("s3://") {
            S3Url::parse(text).map(Location::S3)
        } else if text.contains("://") {
            Err(format!(
                "{text:?}: only local paths and s3:// locations are supported"
            ))
        } else if text.is_empty() {
            Err("must not be empty".into())
        } else {
            Ok(Location::Local(base.join(text)))
        }
    }

    /// A location below this one.
    pub fn join(&self, relative: &str) -> Location {
        match self {
            Location::Local(p) => Location::Local(p.join(relative)),
            Location::S3(u) => Location::S3(u.join(relative)),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3(u) => write!(f, "{u}"),
        }
    }
}

/// Which files feed a table, relative to the job's input location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Files {
    /// These files, in order.
    List(Vec<String>),
    /// Every file whose name starts with this prefix (Redshift's `FROM 's3://b/prefix'` semantics).
    Prefix(String),
}

/// How rows are written into an existing table. Every method is atomic: one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadMethod {
    /// Add the rows.
    Append,
    /// Delete every row, then load (DELETE, not TRUNCATE: Redshift's TRUNCATE commits).
    Replace,
    /// Load into a staging table, delete the target rows whose keys match, insert. When several input
    /// rows share a key, one is kept: the first by the remaining columns in descending order (NULLs
    /// last) — a rule that does not depend on file order, which Redshift does not preserve.
    Upsert {
        /// Key columns.
        keys: Vec<Ident>,
    },
}

/// Redshift `DISTSTYLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistStyle {
    /// `AUTO`.
    Auto,
    /// `EVEN`.
    Even,
    /// `KEY` (with the column marked `distkey`).
    Key,
    /// `ALL`.
    All,
}

/// A table of the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// `schema.table`.
    pub name: TableName,
    /// Columns in file order.
    pub columns: Vec<Column>,
    /// The input files.
    pub files: Files,
    /// The resolved format (defaults, then the job's `format`, then the table's).
    pub format: Format,
    /// How rows are written.
    pub load: LoadMethod,
    /// Redshift `DISTSTYLE`.
    pub diststyle: Option<DistStyle>,
    /// JSON path of the table in the manifest, for messages (`schemas[0].tables[1]`).
    pub json_path: String,
}

/// A transformation SQL file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    /// The path as written in the manifest.
    pub name: String,
    /// Where it is.
    pub location: Location,
    /// Its text (read by [`Job::from_path`]; empty until read otherwise).
    pub sql: String,
}

/// UNLOAD output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnloadFormat {
    /// `FORMAT AS CSV`.
    Csv,
    /// Delimited text (Redshift's default UNLOAD format).
    Text,
}

/// What to unload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnloadSource {
    /// A query (no outer LIMIT, as UNLOAD requires).
    Query(String),
    /// A whole table.
    Table(TableName),
}

/// Output compression of UNLOAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnloadCompression {
    /// Plain files.
    None,
    /// `GZIP`.
    Gzip,
    /// `ZSTD`.
    Zstd,
    /// `BZIP2`.
    Bzip2,
}

/// What happens when output files already exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    /// Fail (UNLOAD's default).
    Fail,
    /// `ALLOWOVERWRITE`: replace files of the same names.
    Allow,
    /// `CLEANPATH`: delete every file under the prefix first.
    Clean,
}

/// The unload step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unload {
    /// What to unload.
    pub source: UnloadSource,
    /// Name prefix of the output files (`out/result_` gives `out/result_0000_part_00`).
    pub to: Location,
    /// `HEADER` (in every file).
    pub header: bool,
    /// CSV or delimited text.
    pub format: UnloadFormat,
    /// `DELIMITER` (default `,` for CSV, `|` for text).
    pub delimiter: u8,
    /// Output compression.
    pub compression: UnloadCompression,
    /// `PARALLEL ON|OFF`.
    pub parallel: bool,
    /// `MAXFILESIZE n MB`.
    pub max_file_size_mb: Option<u32>,
    /// Existing-file policy.
    pub overwrite: Overwrite,
    /// Write a `manifest` file listing the output files.
    pub manifest: bool,
    /// `NULL AS` (default: empty string).
    pub null_as: Option<String>,
    /// `ADDQUOTES` (text format only).
    pub add_quotes: bool,
    /// `ESCAPE` (text format only).
    pub escape: bool,
    /// `EXTENSION` added to every file name.
    pub extension: Option<String>,
}

/// What to do with an existing stack of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IfExists {
    /// Use the running cluster.
    Reuse,
    /// Delete it and create a new one.
    Recreate,
}

/// The on-demand Redshift cluster's options (AWS runs only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// CloudFormation stack name (default: `<job name>-redshift`).
    pub stack_name: String,
    /// Reuse or recreate an existing stack.
    pub if_exists: IfExists,
    /// Delete the stack after a successful run.
    pub delete_on_success: bool,
    /// Delete the stack after a failed run, if this run created it.
    pub delete_on_failure: bool,
    /// Node type override.
    pub node_type: Option<String>,
    /// Node count override.
    pub number_of_nodes: Option<u32>,
}

/// Redshift-specific settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedshiftOptions {
    /// `IAM_ROLE` for COPY and UNLOAD (`default` when not given).
    pub iam_role: IamRole,
    /// `REGION` of the S3 bucket, when it differs from the cluster's.
    pub region: Option<String>,
}

/// A validated job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Job name: lower-case letters, digits, `-` and `_`.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The manifest file (or URL) this job came from.
    pub origin: String,
    /// Where the input files are.
    pub input: Location,
    /// Schemas in manifest order.
    pub schemas: Vec<Ident>,
    /// Tables in manifest order.
    pub tables: Vec<Table>,
    /// Transformation SQL files, in order.
    pub transforms: Vec<Transform>,
    /// The unload step.
    pub unload: Option<Unload>,
    /// Cluster options.
    pub cluster: ClusterOptions,
    /// Redshift options.
    pub redshift: RedshiftOptions,
    /// Per-statement timeout.
    pub statement_timeout: Option<Duration>,
    /// How many tables load at once (default 20).
    pub concurrency: usize,
}

/// The default number of tables loaded at once: the original design's Map concurrency.
pub const DEFAULT_CONCURRENCY: usize = 20;

const ENCODINGS: &[&str] = &[
    "raw",
    "az64",
    "bytedict",
    "delta",
    "delta32k",
    "lzo",
    "mostly8",
    "mostly16",
    "mostly32",
    "runlength",
    "text255",
    "text32k",
    "zstd",
];

/// Collects issues while walking the manifest.
struct Issues(Vec<ManifestIssue>);

impl Issues {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ManifestIssue {
            path: path.into(),
            message: message.into(),
        });
    }
}

impl Job {
    /// Reads, validates and resolves a manifest file, reads its transform SQL files and checks that
    /// every local input file exists: [`Job::read`] then [`Job::check_inputs`].
    ///
    /// # Errors
    /// [`Error::InvalidJob`] listing every problem with its JSON path; [`Error::Io`] when the
    /// manifest itself cannot be read.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Job> {
        let job = Job::read(path)?;
        job.check_inputs()?;
        Ok(job)
    }

    /// Reads and validates a manifest file and reads its transform SQL files, without looking at the
    /// input files (for plans against an S3 copy of them).
    ///
    /// # Errors
    /// [`Error::InvalidJob`] listing every problem with its JSON path; [`Error::Io`] when the
    /// manifest itself cannot be read.
    pub fn read(path: impl AsRef<Path>) -> Result<Job> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io("cannot read job manifest", path.display(), e))?;
        let base = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut job = Job::parse(&text, &path.display().to_string(), base)?;
        job.read_transforms()?;
        Ok(job)
    }

    /// Validates manifest text without touching any file. Relative local paths are resolved
    /// against `base`.
    ///
    /// # Errors
    /// [`Error::InvalidJob`] listing every problem with its JSON path.
    pub fn parse(text: &str, origin: &str, base: &Path) -> Result<Job> {
        let invalid = |issues: Vec<ManifestIssue>| Error::InvalidJob {
            file: origin.into(),
            issues,
        };
        let de = &mut serde_json::Deserializer::from_str(text);
        let raw: RawJob = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let (line, column) = (inner.line(), inner.column());
            let mut message = inner.to_string();
            // serde_json appends " at line L column C"; say it once, our way.
            if let Some(cut) = message.rfind(" at line ") {
                message.truncate(cut);
            }
            invalid(vec![ManifestIssue {
                path: if path == "." || path == "?" {
                    "$".into()
                } else {
                    path
                },
                message: format!("{message} (line {line}, column {column})"),
            }])
        })?;
        let mut issues = Issues(Vec::new());
        let job = validate(raw, origin, base, &mut issues);
        if issues.0.is_empty() {
            Ok(job)
        } else {
            Err(invalid(issues.0))
        }
    }

    /// Checks what only matters on PostgreSQL (local runs): names PostgreSQL would truncate.
    ///
    /// # Errors
    /// [`Error::InvalidJob`] naming each name longer than 63 bytes.
    pub fn check_postgres(&self) -> Result<()> {
        let mut issues = Issues(Vec::new());
        let too_long = |what: &str, n: &Ident| {
            format!(
                "{what} {:?} is {} bytes; Redshift allows 127 but PostgreSQL keeps only 63 \
                 (it would silently truncate it): shorten it to run this job locally",
                n.as_str(),
                n.as_str().len()
            )
        };
        for table in &self.tables {
            if !table.name.schema.fits_postgres() {
                issues.push(
                    format!("{}.schema", table.json_path),
                    too_long("schema", &table.name.schema),
                );
            }
            if !table.name.table.fits_postgres() {
                issues.push(
                    format!("{}.name", table.json_path),
                    too_long("table", &table.name.table),
                );
            }
            for (i, c) in table.columns.iter().enumerate() {
                if !c.name.fits_postgres() {
                    issues.push(
                        format!("{}.columns[{i}].name", table.json_path),
                        too_long("column", &c.name),
                    );
                }
            }
        }
        self.invalid(issues)
    }

    /// Things that work but deserve a word: names that are Redshift reserved words (the engine
    /// quotes them; SQL written by hand must too).
    pub fn warnings(&self) -> Vec<ManifestIssue> {
        let mut out = Vec::new();
        let note = |path: String, name: &Ident| ManifestIssue {
            path,
            message: format!(
                "{:?} is a Redshift reserved word: etl quotes it, write it quoted (\"{}\") in your SQL, or rename it",
                name.as_str(),
                name.as_str()
            ),
        };
        let mut seen_schemas = HashSet::new();
        for table in &self.tables {
            let schema_path = table
                .json_path
                .rsplit_once(".tables")
                .map_or("", |(s, _)| s);
            if table.name.schema.is_redshift_reserved()
                && seen_schemas.insert(table.name.schema.clone())
            {
                out.push(note(format!("{schema_path}.name"), &table.name.schema));
            }
            if table.name.table.is_redshift_reserved() {
                out.push(note(format!("{}.name", table.json_path), &table.name.table));
            }
            for (i, c) in table.columns.iter().enumerate() {
                if c.name.is_redshift_reserved() {
                    out.push(note(
                        format!("{}.columns[{i}].name", table.json_path),
                        &c.name,
                    ));
                }
            }
        }
        out
    }

    /// Looks a table up by name.
    pub fn table(&self, name: &TableName) -> Option<&Table> {
        self.tables.iter().find(|t| &t.name == name)
    }

    fn invalid(&self, issues: Issues) -> Result<()> {
        if issues.0.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidJob {
                file: self.origin.clone().into(),
                issues: issues.0,
            })
        }
    }

    fn read_transforms(&mut self) -> Result<()> {
        let mut issues = Issues(Vec::new());
        for (i, t) in self.transforms.iter_mut().enumerate() {
            if let Location::Local(p) = &t.location {
                match std::fs::read_to_string(p) {
                    Ok(sql) => t.sql = sql,
                    Err(e) => issues.push(
                        format!("transform[{i}]"),
                        format!("cannot read {}: {e}", p.display()),
                    ),
                }
            }
        }
        self.invalid(issues)
    }

    /// Checks that a local input folder exists and holds every file of every table (S3 inputs are
    /// checked by the loader before anything runs).
    ///
    /// # Errors
    /// [`Error::InvalidJob`] naming each table whose files are missing.
    pub fn check_inputs(&self) -> Result<()> {
        let mut issues = Issues(Vec::new());
        if let Location::Local(dir) = &self.input {
            if !dir.is_dir() {
                issues.push(
                    "input",
                    format!("the input folder {} does not exist", dir.display()),
                );
            } else {
                for table in &self.tables {
                    match local_files(dir, &table.files) {
                        Ok(files) if files.is_empty() => issues.push(
                            format!("{}.files", table.json_path),
                            format!("no file in {} matches this prefix", dir.display()),
                        ),
                        Ok(_) => {}
                        Err(missing) => issues.push(format!("{}.files", table.json_path), missing),
                    }
                }
            }
        }
        self.invalid(issues)
    }
}

/// Lists the local files of a table, sorted by name for prefixes.
///
/// # Errors
/// A message naming the first missing file.
pub fn local_files(dir: &Path, files: &Files) -> std::result::Result<Vec<PathBuf>, String> {
    match files {
        Files::List(names) => names
            .iter()
            .map(|n| {
                let p = dir.join(n);
                if p.is_file() {
                    Ok(p)
                } else {
                    Err(format!("the file {} does not exist", p.display()))
                }
            })
            .collect(),
        Files::Prefix(prefix) => {
            let full = dir.join(prefix);
            let (parent, stem) = if prefix.ends_with('/') || prefix.is_empty() {
                (full.clone(), String::new())
            } else {
                (
                    full.parent().unwrap_or(dir).to_path_buf(),
                    full.file_name()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                )
            };
            let mut out = Vec::new();
            collect_prefix(&parent, &stem, &mut out)
                .map_err(|e| format!("cannot list {}: {e}", parent.display()))?;
            out.sort();
            Ok(out)
        }
    }
}

/// Like S3 prefix matching: every file below `dir` whose path relative to `dir` starts with `stem`.
fn collect_prefix(dir: &Path, stem: &str, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_dir() {
            if name.starts_with(stem) {
                collect_prefix(&path, "", out)?;
            }
        } else if name.starts_with(stem) {
            out.push(path);
        }
    }
    Ok(())
}

fn ident(issues: &mut Issues, path: String, name: &str) -> Option<Ident> {
    match Ident::new(name) {
        Ok(i) => Some(i),
        Err(e) => {
            issues.push(path, e);
            None
        }
    }
}

fn placeholder() -> Ident {
    Ident::new("invalid").expect("valid placeholder")
}

/// Why a schema name cannot hold a job's tables, if it cannot: the engine's journal schema
/// (`etl_meta`: a table there could overwrite the journal), and the system schemas — `pg_*`
/// names are reserved by both warehouses' CREATE SCHEMA
/// (<https://www.postgresql.org/docs/current/sql-createschema.html>,
/// <https://docs.aws.amazon.com/redshift/latest/dg/r_CREATE_SCHEMA.html>), `information_schema`
/// is the catalog's, and Redshift keeps `catalog_history` for its system tables.
pub fn reserved_schema(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if lower == crate::sql::journal::SCHEMA {
        Some(format!(
            "{name:?} is the engine's journal schema (runs, steps, locks): a job table there could \
             overwrite the journal; put the table in another schema"
        ))
    } else if lower.starts_with("pg_")
        || lower == "information_schema"
        || lower == "catalog_history"
    {
        Some(format!(
            "{name:?} is a system schema (names starting with pg_, information_schema and \
             catalog_history are reserved): pick another schema name"
        ))
    } else {
        None
    }
}

fn validate(raw: RawJob, origin: &str, base: &Path, issues: &mut Issues) -> Job {
    if raw.name.is_empty()
        || raw.name.len() > 64
        || !raw
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        issues.push(
            "name",
            format!(
                "{:?} must be 1 to 64 lower-case letters, digits, '-' or '_' (it names stacks, labels and files)",
                raw.name
            ),
        );
    }
    let input = Location::parse(&raw.input, base).unwrap_or_else(|e| {
        issues.push("input", e);
        Location::Local(base.to_path_buf())
    });

    let job_format = match &raw.format {
        None => Format::default(),
        Some(spec) => Format::default().apply(spec).unwrap_or_else(|errs| {
            for (field, e) in errs {
                issues.push(format!("format.{field}"), e);
            }
            Format::default()
        }),
    };
    if job_format.max_error > redshift_rules::MAX_MAXERROR {
        issues.push("format.maxerror", maxerror_message(job_format.max_error));
    }

    if raw.schemas.is_empty() {
        issues.push("schemas", "must list at least one schema");
    }
    let mut schemas = Vec::new();
    let mut tables = Vec::new();
    let mut seen_schemas = HashSet::new();
    for (si, raw_schema) in raw.schemas.into_iter().enumerate() {
        let spath = format!("schemas[{si}]");
        let schema = ident(issues, format!("{spath}.name"), &raw_schema.name);
        if let Some(s) = &schema
            && let Some(why) = reserved_schema(s.as_str())
        {
            issues.push(format!("{spath}.name"), why);
        }
        if let Some(s) = &schema
            && !seen_schemas.insert(s.clone())
        {
            issues.push(
                format!("{spath}.name"),
                format!("duplicate schema {:?}", s.as_str()),
            );
        }
        if raw_schema.tables.is_empty() {
            issues.push(format!("{spath}.tables"), "must list at least one table");
        }
        let mut seen_tables = HashSet::new();
        for (ti, raw_table) in raw_schema.tables.into_iter().enumerate() {
            let tpath = format!("{spath}.tables[{ti}]");
            let table = validate_table(
                raw_table,
                schema.clone().unwrap_or_else(placeholder),
                &tpath,
                &job_format,
                issues,
            );
            if !seen_tables.insert(table.name.table.clone()) {
                issues.push(
                    format!("{tpath}.name"),
                    format!(
                        "duplicate table {:?} in this schema",
                        table.name.table.as_str()
                    ),
                );
            }
            tables.push(table);
        }
        schemas.push(schema.unwrap_or_else(placeholder));
    }

    let transforms = raw
        .transform
        .iter()
        .enumerate()
        .map(|(i, name)| Transform {
            name: name.clone(),
            location: Location::parse(name, base).unwrap_or_else(|e| {
                issues.push(format!("transform[{i}]"), e);
                Location::Local(base.join(name))
            }),
            sql: String::new(),
        })
        .collect();

    let unload = raw.unload.map(|u| validate_unload(u, base, issues));

    let cluster = match raw.cluster {
        None => ClusterOptions {
            stack_name: format!("{}-redshift", raw.name.replace('_', "-")),
            if_exists: IfExists::Reuse,
            delete_on_success: false,
            delete_on_failure: true,
            node_type: None,
            number_of_nodes: None,
        },
        Some(c) => {
            let stack_name = c
                .stack_name
                .unwrap_or_else(|| format!("{}-redshift", raw.name.replace('_', "-")));
            let valid_stack = !stack_name.is_empty()
                && stack_name.len() <= 128
                && stack_name.as_bytes()[0].is_ascii_alphabetic()
                && stack_name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !valid_stack {
                issues.push(
                    "cluster.stack_name",
                    format!("{stack_name:?} is not a CloudFormation stack name (a letter, then letters, digits and '-', at most 128)"),
                );
            }
            let if_exists = match c.if_exists.as_deref() {
                None | Some("reuse") => IfExists::Reuse,
                Some("recreate") => IfExists::Recreate,
                Some(other) => {
                    issues.push(
                        "cluster.if_exists",
                        format!("{other:?} must be \"reuse\" or \"recreate\""),
                    );
                    IfExists::Reuse
                }
            };
            if c.number_of_nodes == Some(0) || c.number_of_nodes.is_some_and(|n| n > 128) {
                issues.push("cluster.number_of_nodes", "must be 1 to 128");
            } else if let Err((field, message)) =
                redshift_rules::check_nodes(c.node_type.as_deref(), c.number_of_nodes)
            {
                issues.push(format!("cluster.{field}"), message);
            }
            ClusterOptions {
                stack_name,
                if_exists,
                delete_on_success: c.delete_on_success,
                delete_on_failure: c.delete_on_failure,
                node_type: c.node_type,
                number_of_nodes: c.number_of_nodes,
            }
        }
    };

    let redshift = match raw.redshift {
        None => RedshiftOptions {
            iam_role: IamRole::default_role(),
            region: None,
        },
        Some(r) => RedshiftOptions {
            iam_role: match r.iam_role {
                None => IamRole::default_role(),
                Some(text) => IamRole::parse(&text).unwrap_or_else(|e| {
                    issues.push("redshift.iam_role", e);
                    IamRole::default_role()
                }),
            },
            region: r.region.inspect(|region| {
                let ok = region.len() <= 32
                    && region.split('-').count() >= 3
                    && region
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !ok {
                    issues.push(
                        "redshift.region",
                        format!("{region:?} is not an AWS region like eu-west-1"),
                    );
                }
            }),
        },
    };

    if raw.statement_timeout_seconds == Some(0) {
        issues.push(
            "statement_timeout_seconds",
            "must be at least 1 (omit it for no timeout)",
        );
    }
    if raw.concurrency == Some(0) {
        issues.push("concurrency", "must be at least 1");
    }

    Job {
        name: raw.name,
        description: raw.description,
        origin: origin.to_owned(),
        input,
        schemas,
        tables,
        transforms,
        unload,
        cluster,
        redshift,
        statement_timeout: raw.statement_timeout_seconds.map(Duration::from_secs),
        concurrency: raw.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
    }
}

fn maxerror_message(n: u64) -> String {
    format!(
        "{n} is above Redshift's limit of {} rejected rows; COPY refuses it \
         (https://docs.aws.amazon.com/redshift/latest/dg/copy-parameters-data-load.html#copy-maxerror)",
        redshift_rules::MAX_MAXERROR
    )
}

fn validate_table(
    raw: RawTable,
    schema: Ident,
    tpath: &str,
    job_format: &Format,
    issues: &mut Issues,
) -> Table {
    let name = ident(issues, format!("{tpath}.name"), &raw.name).unwrap_or_else(placeholder);
    if raw.columns.is_empty() {
        issues.push(format!("{tpath}.columns"), "must list at least one column");
    }
    if raw.columns.len() > 1600 {
        issues.push(
            format!("{tpath}.columns"),
            "Redshift tables have at most 1600 columns",
        );
    }
    let mut columns = Vec::new();
    let mut seen = HashSet::new();
    let mut sortkeys = HashSet::new();
    let mut distkeys = 0;
    for (ci, c) in raw.columns.into_iter().enumerate() {
        let cpath = format!("{tpath}.columns[{ci}]");
        let cname = ident(issues, format!("{cpath}.name"), &c.name).unwrap_or_else(placeholder);
        if !seen.insert(cname.clone()) {
            issues.push(
                format!("{cpath}.name"),
                format!("duplicate column {:?}", cname.as_str()),
            );
        }
        let ty = ColumnType::parse(&c.ty).unwrap_or_else(|e| {
            issues.push(format!("{cpath}.type"), e);
            ColumnType::Varchar(256)
        });
        let encode = c.encode.map(|e| e.to_ascii_lowercase());
        if let Some(e) = &encode
            && !ENCODINGS.contains(&e.as_str())
        {
            issues.push(
                format!("{cpath}.encode"),
                format!(
                    "{e:?} is not a Redshift encoding; use one of {}",
                    ENCODINGS.join(", ")
                ),
            );
        } else if let Some(e) = &encode
            && let Err(message) = redshift_rules::check_encoding(e, &ty)
        {
            issues.push(format!("{cpath}.encode"), message);
        }
        if c.distkey {
            distkeys += 1;
            if distkeys > 1 {
                issues.push(
                    format!("{cpath}.distkey"),
                    "a table has at most one DISTKEY column",
                );
            }
        }
        if let Some(k) = c.sortkey
            && (k == 0 || !sortkeys.insert(k))
        {
            issues.push(
                format!("{cpath}.sortkey"),
                format!("sortkey positions must be distinct and start at 1, got {k}"),
            );
        }
        columns.push(Column {
            name: cname,
            ty,
            nullable: c.nullable,
            encode,
            distkey: c.distkey,
            sortkey: c.sortkey,
        });
    }
    if !sortkeys.is_empty() {
        let max = *sortkeys.iter().max().unwrap_or(&0) as usize;
        if max != sortkeys.len() {
            issues.push(
                format!("{tpath}.columns"),
                format!(
                    "sortkey positions must be 1 to {} without gaps",
                    sortkeys.len()
                ),
            );
        }
    }

    let files = parse_files(&raw.files, &format!("{tpath}.files"), issues);

    let format = match &raw.format {
        None => job_format.clone(),
        Some(spec) => job_format.apply(spec).unwrap_or_else(|errs| {
            for (field, e) in errs {
                issues.push(format!("{tpath}.format.{field}"), e);
            }
            job_format.clone()
        }),
    };
    if raw.format.is_some()
        && format.max_error > redshift_rules::MAX_MAXERROR
        && format.max_error != job_format.max_error
    {
        issues.push(
            format!("{tpath}.format.maxerror"),
            maxerror_message(format.max_error),
        );
    }

    let load = match raw.load {
        None => LoadMethod::Append,
        Some(l) => match l.method.as_str() {
            "append" | "replace" if !l.keys.is_empty() => {
                issues.push(
                    format!("{tpath}.load.keys"),
                    "keys apply only to \"upsert\"",
                );
                LoadMethod::Append
            }
            "append" => LoadMethod::Append,
            "replace" => LoadMethod::Replace,
            "upsert" => {
                if l.keys.is_empty() {
                    issues.push(
                        format!("{tpath}.load.keys"),
                        "upsert needs at least one key column",
                    );
                }
                let keys = l
                    .keys
                    .iter()
                    .enumerate()
                    .filter_map(|(ki, k)| {
                        let kpath = format!("{tpath}.load.keys[{ki}]");
                        let key = ident(issues, kpath.clone(), k)?;
                        if !columns.iter().any(|c| c.name == key) {
                            issues.push(kpath, format!("{k:?} is not a column of this table"));
                        }
                        Some(key)
                    })
                    .collect();
                LoadMethod::Upsert { keys }
            }
            other => {
                issues.push(
                    format!("{tpath}.load.method"),
                    format!("{other:?} must be \"append\", \"replace\" or \"upsert\""),
                );
                LoadMethod::Append
            }
        },
    };

    let diststyle = raw
        .diststyle
        .as_deref()
        .map(|d| match d.to_ascii_lowercase().as_str() {
            "auto" => DistStyle::Auto,
            "even" => DistStyle::Even,
            "key" => DistStyle::Key,
            "all" => DistStyle::All,
            _ => {
                issues.push(
                    format!("{tpath}.diststyle"),
                    format!("{d:?} must be auto, even, key or all"),
                );
                DistStyle::Auto
            }
        });
    match (diststyle, distkeys) {
        (Some(DistStyle::Key), 0) => issues.push(
            format!("{tpath}.diststyle"),
            "DISTSTYLE KEY needs a column with \"distkey\": true",
        ),
        (Some(s), 1..) if s != DistStyle::Key => issues.push(
            format!("{tpath}.diststyle"),
            "a DISTKEY column implies DISTSTYLE KEY",
        ),
        _ => {}
    }

    Table {
        name: TableName::new(schema, name),
        columns,
        files,
        format,
        load,
        diststyle,
        json_path: tpath.to_owned(),
    }
}

fn check_relative(name: &str, path: &str, issues: &mut Issues) -> bool {
    if name.is_empty() {
        issues.push(path, "a file name must not be empty");
        return false;
    }
    if name.starts_with('/') || name.contains("://") || name.split('/').any(|p| p == "..") {
        issues.push(
            path,
            format!("{name:?} must be relative to the job's input, without '..'"),
        );
        return false;
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        issues.push(
            path,
            format!("{name:?} contains the control character {c:?}"),
        );
        return false;
    }
    true
}

fn parse_files(value: &serde_json::Value, path: &str, issues: &mut Issues) -> Files {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            check_relative(s, path, issues);
            Files::List(vec![s.clone()])
        }
        Value::Array(items) => {
            if items.is_empty() {
                issues.push(path, "must list at least one file");
            }
            let mut names = Vec::new();
            let mut seen = HashSet::new();
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => {
                        if check_relative(s, &format!("{path}[{i}]"), issues) && !seen.insert(s) {
                            issues.push(format!("{path}[{i}]"), format!("{s:?} is listed twice"));
                        }
                        names.push(s.clone());
                    }
                    _ => issues.push(format!("{path}[{i}]"), "must be a file name (string)"),
                }
            }
            Files::List(names)
        }
        Value::Object(map) => {
            if let Some(k) = map.keys().find(|k| *k != "prefix") {
                issues.push(
                    format!("{path}.{k}"),
                    "unknown field; the only field is \"prefix\"",
                );
            }
            match map.get("prefix") {
                Some(Value::String(p)) => {
                    if !p.is_empty() {
                        check_relative(p, &format!("{path}.prefix"), issues);
                    }
                    Files::Prefix(p.clone())
                }
                _ => {
                    issues.push(format!("{path}.prefix"), "must be a string");
                    Files::Prefix(String::new())
                }
            }
        }
        _ => {
            issues.push(
                path,
                "must be a file name, a list of file names, or {\"prefix\": \"...\"}",
            );
            Files::List(Vec::new())
        }
    }
}

fn validate_unload(u: RawUnload, base: &Path, issues: &mut Issues) -> Unload {
    let source = match (u.query, u.query_file, u.table) {
        (Some(q), None, None) => {
            if q.trim().is_empty() {
                issues.push("unload.query", "must not be empty");
            }
            UnloadSource::Query(q)
        }
        (None, Some(f), None) => {
            // Read here so that `parse` stays I/O free only for S3 manifests; local files are read.
            match Location::parse(&f, base) {
                Ok(Location::Local(p)) => match std::fs::read_to_string(&p) {
                    Ok(q) => UnloadSource::Query(q),
                    Err(e) => {
                        issues.push(
                            "unload.query_file",
                            format!("cannot read {}: {e}", p.display()),
                        );
                        UnloadSource::Query(String::new())
                    }
                },
                Ok(Location::S3(_)) => {
                    issues.push(
                        "unload.query_file",
                        "must be a local file; use \"query\" for S3 manifests",
                    );
                    UnloadSource::Query(String::new())
                }
                Err(e) => {
                    issues.push("unload.query_file", e);
                    UnloadSource::Query(String::new())
                }
            }
        }
        (None, None, Some(t)) => UnloadSource::Table(TableName::parse(&t).unwrap_or_else(|e| {
            issues.push("unload.table", e);
            TableName::new(placeholder(), placeholder())
        })),
        _ => {
            issues.push(
                "unload",
                "give exactly one of \"query\", \"query_file\" or \"table\"",
            );
            UnloadSource::Query(String::new())
        }
    };
    if let UnloadSource::Query(q) = &source {
        let trimmed = q.trim().trim_end_matches(';').trim_end();
        if trimmed.contains(';') {
            issues.push("unload.query", "must be a single statement");
        }
        let lower = trimmed.to_ascii_lowercase();
        let outer_limit = lower.rsplit_once("limit").is_some_and(|(_, tail)| {
            let tail = tail.trim();
            !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit())
        });
        if outer_limit {
            issues.push(
                "unload.query",
                "UNLOAD does not allow an outer LIMIT; wrap it: select * from (select ... limit n)",
            );
        }
    }
    let to = Location::parse(&u.to, base).unwrap_or_else(|e| {
        issues.push("unload.to", e);
        Location::Local(base.to_path_buf())
    });
    let format = match u.format.as_deref() {
        None | Some("csv") => UnloadFormat::Csv,
        Some("text") => UnloadFormat::Text,
        Some(other) => {
            issues.push(
                "unload.format",
                format!("{other:?} must be \"csv\" or \"text\""),
            );
            UnloadFormat::Csv
        }
    };
    let default_delim = if format == UnloadFormat::Csv {
        b','
    } else {
        b'|'
    };
    let delimiter = match u.delimiter.as_deref() {
        None => default_delim,
        Some(d) if d.len() == 1 && d.is_ascii() && !matches!(d, "\n" | "\r" | "\"") => {
            d.as_bytes()[0]
        }
        Some(d) => {
            issues.push(
                "unload.delimiter",
                format!("{d:?} must be one ASCII character other than a quote or a line break"),
            );
            default_delim
        }
    };
    let compression = match u.compression.as_deref() {
        None | Some("none") => UnloadCompression::None,
        Some("gzip") => UnloadCompression::Gzip,
        Some("zstd") => UnloadCompression::Zstd,
        Some("bzip2") => UnloadCompression::Bzip2,
        Some(other) => {
            issues.push(
                "unload.compression",
                format!("{other:?} must be none, gzip, zstd or bzip2"),
            );
            UnloadCompression::None
        }
    };
    if let Some(mb) = u.max_file_size_mb
        && !(5..=6200).contains(&mb)
    {
        issues.push(
            "unload.max_file_size_mb",
            format!("{mb} must be 5 to 6200 (Redshift's MAXFILESIZE range in MB)"),
        );
    }
    let overwrite = match u.overwrite.as_deref() {
        None | Some("fail") => Overwrite::Fail,
        Some("allow") => Overwrite::Allow,
        Some("clean") => Overwrite::Clean,
        Some(other) => {
            issues.push(
                "unload.overwrite",
                format!("{other:?} must be \"fail\", \"allow\" (ALLOWOVERWRITE) or \"clean\" (CLEANPATH)"),
            );
            Overwrite::Fail
        }
    };
    if format == UnloadFormat::Csv && (u.addquotes || u.escape) {
        issues.push(
            "unload.format",
            "ADDQUOTES and ESCAPE apply to the text format only (CSV quotes by itself)",
        );
    }
    if let Some(ext) = &u.extension
        && (ext.is_empty()
            || !ext
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-'))
    {
        issues.push(
            "unload.extension",
            format!("{ext:?} must be letters, digits, '.', '_' or '-'"),
        );
    }
    if let Some(n) = &u.null_as
        && n.contains('\0')
    {
        issues.push("unload.null_as", "must not contain NUL");
    }
    Unload {
        source,
        to,
        header: u.header,
        format,
        delimiter,
        compression,
        parallel: u.parallel,
        max_file_size_mb: u.max_file_size_mb,
        overwrite,
        manifest: u.manifest,
        null_as: u.null_as,
        add_quotes: u.addquotes,
        escape: u.escape,
        extension: u.extension,
    }
}

#[cfg(test)]
mod tests;
