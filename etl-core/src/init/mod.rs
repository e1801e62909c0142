//! `etl init`: a job manifest written from Hive `CREATE TABLE` statements ([`hive`]), from a sample
//! of the exported files ([`sample`]), or both.
//!
//! - **From the DDL**: one table per statement, in a schema named after its Hive database (`default`
//!   becomes `public`, since `default` is a Redshift reserved word) or `--schema`; the COPY format
//!   that reads what Hive's SerDe wrote; Redshift types for Hive's (see [`map_hive_type`]).
//! - **From a sample**: the files are read with the loader's own parser; the delimiter, quoting,
//!   escapes, a header row and compression are detected, and each column gets the narrowest type
//!   every sampled value loads into (see [`sample`]).
//! - **Both**: the DDL decides the format and the types; the sample sizes the VARCHAR lengths and
//!   the rows it would reject are reported (values that contradict the DDL's types).
//!
//! The manifest is checked with the project's own validation ([`crate::Job::parse`]) before it is
//! returned, and — with a sample — the sampled rows are loaded through a [`crate::load::RowParser`]
//! built from it, so what the report says loads is what a load accepts.

pub mod hive;
pub mod sample;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::job::types::{MAX_PRECISION, MAX_VARCHAR};
use crate::job::{Column, ColumnType, Compression, Format, FormatSpec};
use crate::sql::Ident;
use crate::{Error, Result};
use hive::{HiveColumn, HiveTable, HiveType, RowFormat, Storage};
use sample::{Decision, HeaderMode, SampleFile};

/// What `etl init` reads and how.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// Hive DDL: (name for messages, text).
    pub hive_ddl: Option<(String, String)>,
    /// A folder of exported files (one sub-folder or file per table), or one file.
    pub sample: Option<PathBuf>,
    /// At most this many data rows per table are read.
    pub rows: u64,
    /// Schema for every table (instead of the Hive database; default `public` without DDL).
    pub schema: Option<String>,
    /// Job name (default: from the DDL file or the sample folder).
    pub name: Option<String>,
    /// The manifest's `input` (default: the sample folder, relative to `manifest_dir`, or `data/`).
    pub input: Option<String>,
    /// `Some(true)`: the files have one header line; `Some(false)`: none; `None`: detect (sample
    /// without DDL) or the DDL's `skip.header.line.count`.
    pub header: Option<bool>,
    /// Map ARRAY, MAP, STRUCT, UNIONTYPE and BINARY to VARCHAR(65535) holding Hive's text form
    /// instead of refusing them.
    pub complex_as_varchar: bool,
    /// Where the manifest will be written (relative paths in it are relative to this folder).
    pub manifest_dir: PathBuf,
}

/// The manifest and the report.
#[derive(Debug, Clone)]
pub struct InitOutput {
    /// The job manifest, pretty-printed JSON; it passes [`crate::Job::parse`].
    pub manifest: String,
    /// How each column's type was decided and what to check by hand, for stderr.
    pub report: String,
}

/// The default number of rows sampled per table.
pub const DEFAULT_SAMPLE_ROWS: u64 = 100_000;

#[derive(Serialize)]
struct OutJob {
    name: String,
    description: String,
    input: String,
    format: FormatSpec,
    schemas: Vec<OutSchema>,
}

#[derive(Serialize)]
struct OutSchema {
    name: String,
    tables: Vec<OutTable>,
}

#[derive(Serialize)]
struct OutTable {
    name: String,
    files: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<FormatSpec>,
    columns: Vec<OutColumn>,
}

#[derive(Serialize)]
struct OutColumn {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    nullable: bool,
}

/// One table being planned.
struct Planned {
    schema: String,
    name: String,
    columns: Vec<(String, ColumnType, bool)>,
    format: Format,
    files: serde_json::Value,
    report: Vec<String>,
    check: Vec<String>,
}

fn invalid(what: impl Into<String>, message: impl Into<String>) -> Error {
    Error::InvalidInput {
        what: what.into(),
        message: message.into(),
    }
}

/// A name as Redshift will hold it: lower case (Redshift folds names; the manifest refuses upper
/// case), blanks and control characters replaced by `_`.
fn name_of(raw: &str, fallback: &str) -> String {
    let s: String = raw
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if s.is_empty() || Ident::new(s.clone()).is_err() {
        fallback.to_owned()
    } else {
        s
    }
}

fn job_name(raw: &str) -> String {
    let s: String = raw
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-').to_owned();
    if s.is_empty() {
        "hive-import".into()
    } else {
        s
    }
}

/// How a delimiter is written in the manifest: the character, or octal `\ddd` when it is not a
/// printable character (Redshift's DELIMITER accepts both:
/// <https://docs.aws.amazon.com/redshift/latest/dg/copy-parameters-data-format.html>).
fn delimiter_text(b: u8) -> String {
    if b.is_ascii_graphic() && b != b'\\' || b == b' ' {
        (b as char).to_string()
    } else {
        format!("\\{b:03o}")
    }
}

fn shown_byte(b: u8) -> String {
    match b {
        b'\t' => "tab".into(),
        0x01 => "\\001 (Ctrl-A)".into(),
        b if b.is_ascii_graphic() => format!("'{}'", b as char),
        b => format!("\\{b:03o}"),
    }
}

/// Every field of the format written out, so nothing depends on the manifest's defaults (which are
/// the original design's `|`, header, REMOVEQUOTES, EMPTYASNULL, BLANKSASNULL, GZIP).
fn spec_of(f: &Format) -> FormatSpec {
    FormatSpec {
        delimiter: Some(delimiter_text(f.delimiter)),
        ignoreheader: Some(f.ignore_header),
        removequotes: Some(f.remove_quotes),
        csv: Some(f.csv_quote.is_some()),
        quote: f.csv_quote.map(|q| (q as char).to_string()),
        emptyasnull: Some(f.empty_as_null),
        blanksasnull: Some(f.blanks_as_null),
        null_as: Some(f.null_as.clone()),
        escape: Some(f.escape),
        fillrecord: f.fill_record.then_some(true),
        compression: Some(f.compression),
        dateformat: Some("auto".into()),
        timeformat: Some("auto".into()),
        ..FormatSpec::default()
    }
}

/// The fields of `table` that differ from `job`.
fn spec_diff(job: &FormatSpec, table: &FormatSpec) -> Option<FormatSpec> {
    let j = serde_json::to_value(job).expect("a FormatSpec serializes");
    let t = serde_json::to_value(table).expect("a FormatSpec serializes");
    let (serde_json::Value::Object(j), serde_json::Value::Object(t)) = (j, t) else {
        return None;
    };
    let mut diff = serde_json::Map::new();
    for (k, v) in &t {
        if j.get(k) != Some(v) {
            diff.insert(k.clone(), v.clone());
        }
    }
    // FILLRECORD set for the job but not for the table is turned off again (a quote only applies
    // with CSV, which the table sets).
    if j.contains_key("fillrecord") && !t.contains_key("fillrecord") {
        diff.insert("fillrecord".into(), serde_json::Value::Bool(false));
    }
    if diff.is_empty() {
        None
    } else {
        serde_json::from_value(serde_json::Value::Object(diff)).ok()
    }
}

/// Hive's reading of a one-character SerDe property (`LazySerDeParameters.getByte`): a value that
/// is a number (`"9"`, `"124"`) is that byte, anything else its first character.
fn hive_byte(value: &str) -> std::result::Result<u8, String> {
    let b = match value.parse::<i8>() {
        Ok(n) if n >= 0 => n as u8,
        Ok(n) => return Err(format!("{value:?} is byte {n}, not an ASCII character")),
        Err(_) => {
            let c = value.chars().next().ok_or("is empty")?;
            if !c.is_ascii() {
                return Err(format!(
                    "{c:?} is not an ASCII character; Redshift's DELIMITER is one ASCII character"
                ));
            }
            c as u8
        }
    };
    if b == 0 {
        return Err("NUL cannot be a Redshift delimiter".into());
    }
    Ok(b)
}

/// The Redshift type for a Hive type, how it was chosen, and what to check; `Err` refuses the
/// column with what to do instead. Limits: VARCHAR 65535 bytes, CHAR 4096 bytes of single-byte
/// characters (<https://docs.aws.amazon.com/redshift/latest/dg/r_Character_types.html>), DECIMAL
/// precision 38 (<https://docs.aws.amazon.com/redshift/latest/dg/r_Numeric_types201.html>).
///
/// # Errors
/// The refusal: a type Redshift (or this project) cannot hold, and how to export it instead.
pub fn map_hive_type(
    ty: &HiveType,
    complex_as_varchar: bool,
) -> std::result::Result<(ColumnType, String, Vec<String>), String> {
    let mut warn = Vec::new();
    let chars = |n: u32, what: &str, warn: &mut Vec<String>| {
        let bytes = u64::from(n) * 4;
        if bytes > u64::from(MAX_VARCHAR) {
            warn.push(format!(
                "{what}({n}) needs up to {bytes} bytes, more than Redshift's 65535-byte VARCHAR: \
                 VARCHAR(65535) holds {n} characters only if enough of them take fewer than 4 bytes"
            ));
        }
        bytes.min(u64::from(MAX_VARCHAR)) as u32
    };
    let ok = |t: ColumnType, why: &str| (t, why.to_owned());
    let (t, why) = match ty {
        HiveType::TinyInt => ok(
            ColumnType::SmallInt,
            "TINYINT (1 byte) → SMALLINT, Redshift's smallest integer",
        ),
        HiveType::SmallInt => ok(ColumnType::SmallInt, "SMALLINT → SMALLINT"),
        HiveType::Int => ok(ColumnType::Integer, "INT → INTEGER"),
        HiveType::BigInt => ok(ColumnType::BigInt, "BIGINT → BIGINT"),
        HiveType::Float => ok(ColumnType::Real, "FLOAT (4 bytes) → REAL"),
        HiveType::Double => ok(ColumnType::Double, "DOUBLE → DOUBLE PRECISION"),
        HiveType::Boolean => ok(ColumnType::Boolean, "BOOLEAN → BOOLEAN"),
        HiveType::Date => ok(ColumnType::Date, "DATE → DATE"),
        HiveType::Timestamp => ok(
            ColumnType::Timestamp,
            "TIMESTAMP → TIMESTAMP (Redshift keeps microseconds; Hive's nanoseconds are rounded)",
        ),
        HiveType::TimestampLocalTz => ok(
            ColumnType::TimestampTz,
            "TIMESTAMP WITH LOCAL TIME ZONE → TIMESTAMPTZ",
        ),
        HiveType::Decimal(p, s) => {
            if *p == 0 || *p > u32::from(MAX_PRECISION) || s > p {
                return Err(format!(
                    "DECIMAL({p},{s}) is outside Redshift's DECIMAL (precision 1 to 38, scale at \
                     most the precision): export it as STRING or DOUBLE"
                ));
            }
            (
                ColumnType::Decimal {
                    precision: *p as u8,
                    scale: *s as u8,
                },
                format!("DECIMAL({p},{s}) → DECIMAL({p},{s})"),
            )
        }
        HiveType::String => {
            warn.push(
                "STRING has no length: VARCHAR(65535), Redshift's maximum, so no value is rejected \
                 for its length; give --sample DIR to size it from the data"
                    .into(),
            );
            ok(ColumnType::Varchar(MAX_VARCHAR), "STRING → VARCHAR(65535)")
        }
        HiveType::Varchar(n) => {
            let b = chars(*n, "VARCHAR", &mut warn);
            (
                ColumnType::Varchar(b),
                format!(
                    "VARCHAR({n}) counts characters, Redshift counts bytes and a UTF-8 character \
                     takes up to 4: VARCHAR({b})"
                ),
            )
        }
        HiveType::Char(n) => {
            let b = chars(*n, "CHAR", &mut warn);
            (
                ColumnType::Varchar(b),
                format!(
                    "CHAR({n}): Redshift's CHAR holds single-byte characters only, so VARCHAR({b}) \
                     (4 bytes per character) holds any {n} characters; Hive's padding spaces load as written"
                ),
            )
        }
        HiveType::Binary if complex_as_varchar => ok(
            ColumnType::Varchar(MAX_VARCHAR),
            "BINARY → VARCHAR(65535) holding the Base64 text Hive writes",
        ),
        HiveType::Complex(t) if complex_as_varchar => (
            ColumnType::Varchar(MAX_VARCHAR),
            format!(
                "{t} → VARCHAR(65535) holding Hive's text form (items separated by \\002, map keys by \\003)"
            ),
        ),
        HiveType::Binary | HiveType::Complex(_) => {
            return Err(format!(
                "{ty} has no Redshift column type in this project: export it as a STRING (e.g. \
                 to_json(...) or concat_ws(...) in the SELECT that writes the files, or base64(...) \
                 for BINARY), leave the column out, or give --complex-as-varchar to load Hive's text form"
            ));
        }
        HiveType::Other(t) => {
            return Err(format!(
                "{t} is not a Hive column type this reader knows: cast it to STRING in the export"
            ));
        }
    };
    Ok((t, why, warn))
}

/// The COPY format that reads what a Hive table's SerDe wrote, with notes for the report.
fn hive_format(t: &HiveTable, report: &mut Vec<String>, check: &mut Vec<String>) -> Result<Format> {
    let what = || format!("table {}", t.name);
    match &t.storage {
        Storage::Default => {}
        Storage::As(f) if f == "TEXTFILE" => {}
        Storage::InputFormat(c) if c.ends_with("TextInputFormat") => {}
        other => {
            let f = match other {
                Storage::As(f) => format!("STORED AS {f}"),
                Storage::InputFormat(c) => format!("INPUTFORMAT '{c}'"),
                Storage::By(c) => format!("STORED BY '{c}'"),
                Storage::Default => unreachable!(),
            };
            return Err(invalid(
                what(),
                format!(
                    "{f} files are not delimited text, the only input this project loads: export \
                     the table as text (INSERT OVERWRITE DIRECTORY '...' ROW FORMAT DELIMITED \
                     FIELDS TERMINATED BY '|' SELECT ...) and give that DDL, or use --sample on the export"
                ),
            ));
        }
    }
    let mut f = Format {
        delimiter: 0x01,
        ignore_header: 0,
        remove_quotes: false,
        empty_as_null: false,
        blanks_as_null: false,
        null_as: "\\N".into(),
        compression: Compression::None,
        ..Format::default()
    };
    let serde = match &t.row_format {
        RowFormat::Serde { class } => class.as_str(),
        _ => "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
    };
    let bad = |m: String| invalid(what(), m);
    if serde.ends_with("LazySimpleSerDe") {
        let (fields, escaped, lines, null) = match &t.row_format {
            RowFormat::Delimited {
                fields,
                escaped,
                lines,
                null,
                ..
            } => (fields.clone(), escaped.clone(), lines.clone(), null.clone()),
            _ => (None, None, None, None),
        };
        let prop = |k: &str| t.property(k).map(str::to_owned);
        let delim = fields
            .or_else(|| prop("field.delim"))
            .or_else(|| prop("serialization.format"));
        if let Some(d) = &delim {
            f.delimiter = hive_byte(d).map_err(|e| bad(format!("field delimiter {e}")))?;
            if matches!(f.delimiter, b'\n' | b'\r') {
                return Err(bad("a line break cannot be the field delimiter".into()));
            }
            if d.parse::<i8>().is_ok() && *d != (f.delimiter as char).to_string() {
                check.push(format!(
                    "the field delimiter is written {d:?}: Hive reads a number as that byte value \
                     (LazySerDeParameters.getByte), so the delimiter is {}",
                    shown_byte(f.delimiter)
                ));
            }
        }
        report.push(format!(
            "LazySimpleSerDe: fields delimited by {}{}",
            shown_byte(f.delimiter),
            if delim.is_none() {
                " (no delimiter given: Hive's default)"
            } else {
                ""
            }
        ));
        if let Some(e) = escaped.or_else(|| prop("escape.delim")) {
            let b = hive_byte(&e).map_err(|e| bad(format!("escape character {e}")))?;
            if b != b'\\' {
                return Err(bad(format!(
                    "the escape character is {}: Redshift's ESCAPE is the backslash only; export with ESCAPED BY '\\\\'",
                    shown_byte(b)
                )));
            }
            f.escape = true;
            report.push("ESCAPED BY '\\\\': ESCAPE".into());
            if t.property("serialization.escape.crlf")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
            {
                check.push(
                    "serialization.escape.crlf is true: Hive writes line breaks as \\r and \\n, which \
                     COPY's ESCAPE loads as the letters r and n"
                        .into(),
                );
            }
        }
        if let Some(l) = lines.or_else(|| prop("line.delim"))
            && l != "\n"
        {
            return Err(bad(format!(
                "lines terminated by {l:?}: COPY reads records ending in a line feed only"
            )));
        }
        if let Some(n) = null.or_else(|| prop("serialization.null.format")) {
            f.null_as = n;
        }
        report.push(format!(
            "NULL AS {:?}{}",
            f.null_as,
            if f.null_as == "\\N" {
                " (Hive's default serialization.null.format)"
            } else {
                ""
            }
        ));
        if let Some(enc) = prop("serialization.encoding") {
            let e = enc.to_ascii_lowercase().replace('-', "");
            if e != "utf8" {
                return Err(bad(format!(
                    "serialization.encoding is {enc}: COPY reads UTF-8 only; convert the files (iconv -f {enc} -t UTF-8)"
                )));
            }
        }
    } else if serde.ends_with("OpenCSVSerde") {
        let ch = |k: &str, default: u8| -> Result<u8> {
            match t.property(k) {
                None => Ok(default),
                Some(v) => {
                    let c = v
                        .chars()
                        .next()
                        .ok_or_else(|| bad(format!("{k} is empty")))?;
                    if !c.is_ascii() || c == '\0' {
                        return Err(bad(format!("{k} {c:?} is not an ASCII character")));
                    }
                    Ok(c as u8)
                }
            }
        };
        let sep = ch("separatorChar", b',')?;
        let quote = ch("quoteChar", b'"')?;
        let esc = ch("escapeChar", b'\\')?;
        f.delimiter = sep;
        f.null_as = "\\N".into();
        if quote == b'"' && esc == b'\\' {
            f.remove_quotes = true;
            f.escape = true;
            report.push(format!(
                "OpenCSVSerde (separator {}, quote '\"', escape '\\'): it quotes every field and \
                 writes \\\" and \\\\ inside quotes, which REMOVEQUOTES with ESCAPE reads",
                shown_byte(sep)
            ));
        } else {
            f.csv_quote = Some(quote);
            report.push(format!(
                "OpenCSVSerde (separator {}, quote {}, escape {}): CSV with QUOTE {}",
                shown_byte(sep),
                shown_byte(quote),
                shown_byte(esc),
                shown_byte(quote)
            ));
            if esc != quote {
                check.push(format!(
                    "OpenCSVSerde writes the quote inside a value as {}{}, CSV reads it doubled: \
                     check values that contain {}",
                    esc as char, quote as char, quote as char
                ));
            }
        }
        report.push(
            "OpenCSVSerde reads every column as a string: the declared types are used, check \
             that the values fit them"
                .into(),
        );
    } else {
        return Err(bad(format!(
            "the SerDe {serde} does not write delimited text COPY reads: export the table with \
             ROW FORMAT DELIMITED (LazySimpleSerDe) or OpenCSVSerde"
        )));
    }
    if let Some(h) = t.table_property("skip.header.line.count") {
        f.ignore_header = h.trim().parse().map_err(|_| {
            bad(format!(
                "skip.header.line.count {h:?} is not a whole number"
            ))
        })?;
        report.push(format!(
            "IGNOREHEADER {} (TBLPROPERTIES skip.header.line.count)",
            f.ignore_header
        ));
    }
    if let Some(n) = t.table_property("skip.footer.line.count")
        && n.trim() != "0"
    {
        check.push(format!(
            "skip.footer.line.count is {n}: COPY cannot skip footer lines; remove them from the \
             files, or they are rejected rows"
        ));
    }
    Ok(f)
}

/// Lists a table's files below `dir`, Hadoop's hidden files (`_SUCCESS`, `.crc`) left out.
fn list_files(root: &Path, dir: &Path, out: &mut Vec<SampleFile>, hidden: &mut bool) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io("cannot list", dir.display(), e))?
        .filter_map(std::result::Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if name.starts_with('_') || name.starts_with('.') {
            *hidden = true;
            continue;
        }
        if path.is_dir() {
            list_files(root, &path, out, hidden)?;
        } else {
            out.push(sample_file(root, &path)?);
        }
    }
    Ok(())
}

fn sample_file(root: &Path, path: &Path) -> Result<SampleFile> {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let name = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/");
    Ok(SampleFile {
        path: path.to_path_buf(),
        compression: sample::sniff_compression(path)?,
        name,
    })
}

/// The tables of a sample folder: each sub-folder is a table (all files below it), each file at
/// the top a table named after it without extensions. A sample that is one file is one table.
fn sample_tables(root: &Path) -> Result<Vec<(String, Vec<SampleFile>, serde_json::Value)>> {
    if root.is_file() {
        let parent = root.parent().unwrap_or(Path::new("."));
        let f = sample_file(parent, root)?;
        let stem = f.name.split('.').next().unwrap_or("t").to_owned();
        let files = serde_json::Value::String(f.name.clone());
        return Ok(vec![(stem, vec![f], files)]);
    }
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(root)
        .map_err(|e| Error::io("cannot list", root.display(), e))?
        .filter_map(std::result::Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('_') || name.starts_with('.') {
            continue;
        }
        let path = e.path();
        if path.is_dir() {
            out.push(dir_table(root, &path, &name)?);
        } else {
            let f = sample_file(root, &path)?;
            let stem = name.split('.').next().unwrap_or(&name).to_owned();
            let files = serde_json::Value::String(f.name.clone());
            out.push((stem, vec![f], files));
        }
    }
    Ok(out)
}

fn dir_table(
    root: &Path,
    dir: &Path,
    name: &str,
) -> Result<(String, Vec<SampleFile>, serde_json::Value)> {
    let mut files = Vec::new();
    let mut hidden = false;
    list_files(root, dir, &mut files, &mut hidden)?;
    let spec = if hidden {
        serde_json::Value::Array(
            files
                .iter()
                .map(|f| serde_json::Value::String(f.name.clone()))
                .collect(),
        )
    } else {
        serde_json::json!({ "prefix": format!("{name}/") })
    };
    Ok((name.to_owned(), files, spec))
}

/// The files of a DDL table in the sample folder: `<location's last folder>/`, `<table>/` or
/// `<table>.*`.
fn find_sample(
    root: &Path,
    t: &HiveTable,
    only: bool,
) -> Result<Option<(Vec<SampleFile>, serde_json::Value)>> {
    let mut names = Vec::new();
    if let Some(loc) = &t.location
        && let Some(last) = loc.trim_end_matches('/').rsplit('/').next()
    {
        names.push(last.to_owned());
    }
    names.push(t.name.clone());
    for n in &names {
        let d = root.join(n);
        if d.is_dir() {
            let (_, files, spec) = dir_table(root, &d, n)?;
            return Ok(Some((files, spec)));
        }
    }
    if root.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(root)
            .map_err(|e| Error::io("cannot list", root.display(), e))?
            .filter_map(std::result::Result::ok)
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_file() && names.iter().any(|n| name.split('.').next() == Some(n)) {
                let f = sample_file(root, &e.path())?;
                let spec = serde_json::Value::String(f.name.clone());
                return Ok(Some((vec![f], spec)));
            }
        }
    } else if root.is_file() {
        // One file: the sample of the table it is named after, or of the only table.
        let parent = root.parent().unwrap_or(Path::new("."));
        let f = sample_file(parent, root)?;
        if only || names.iter().any(|n| f.name.split('.').next() == Some(n)) {
            let spec = serde_json::Value::String(f.name.clone());
            return Ok(Some((vec![f], spec)));
        }
    }
    Ok(None)
}

/// The table's compression from its files' first bytes.
fn files_compression(files: &[SampleFile], report: &mut Vec<String>) -> Result<Compression> {
    let Some(first) = files.first() else {
        return Ok(Compression::None);
    };
    if let Some(other) = files.iter().find(|f| f.compression != first.compression) {
        return Err(invalid(
            format!("sample {}", other.name),
            format!(
                "it is {:?} but {} is {:?}: one table's files must share a compression for \
                 Redshift's COPY; recompress them alike",
                other.compression, first.name, first.compression
            ),
        ));
    }
    report.push(format!(
        "compression {} (from the files' first bytes)",
        match first.compression {
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Zstd => "zstd",
            _ => "none",
        }
    ));
    Ok(first.compression)
}

/// Delimiter, quoting and escapes from the first lines of a file.
fn detect_format(head: &[u8], report: &mut Vec<String>, check: &mut Vec<String>) -> Format {
    let mut f = Format {
        ignore_header: 0,
        remove_quotes: false,
        empty_as_null: false,
        blanks_as_null: false,
        null_as: "\\N".into(),
        ..Format::default()
    };
    let text = match memchr::memrchr(b'\n', head) {
        Some(i) if i + 1 < head.len() => &head[..=i],
        _ => head,
    };
    let lines: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .take(200)
        .collect();
    // Per candidate: the field separators on each line, outside "quoted" fields.
    let count = |d: u8, l: &[u8]| -> usize {
        let mut n = 0;
        let mut in_quote = false;
        let mut at_start = true;
        for &b in l {
            if in_quote {
                if b == b'"' {
                    in_quote = false;
                }
                continue;
            }
            if b == b'"' && at_start {
                in_quote = true;
            } else if b == d {
                n += 1;
                at_start = true;
                continue;
            }
            at_start = false;
        }
        n
    };
    let mut best: Option<(u8, usize, usize)> = None; // (delimiter, lines agreeing, separators)
    for d in [0x01u8, b'\t', b'|', b',', b';'] {
        let counts: Vec<usize> = lines.iter().map(|l| count(d, l)).collect();
        let Some(&first) = counts.first() else {
            continue;
        };
        if first == 0 {
            continue;
        }
        let agree = counts.iter().filter(|&&c| c == first).count();
        if best.is_none_or(|(_, a, n)| agree > a || agree == a && first > n) {
            best = Some((d, agree, first));
        }
    }
    match best {
        Some((d, agree, n)) => {
            f.delimiter = d;
            report.push(format!(
                "fields delimited by {} ({} field(s) on {agree} of the first {} line(s))",
                shown_byte(d),
                n + 1,
                lines.len()
            ));
            if agree < lines.len() {
                check.push(format!(
                    "{} of the first {} lines have another number of fields: check the delimiter",
                    lines.len() - agree,
                    lines.len()
                ));
            }
        }
        None => {
            f.delimiter = b'|';
            check.push(
                "no delimiter found (one column?): '|' assumed, check the delimiter by hand".into(),
            );
        }
    }
    let d = f.delimiter;
    let mut quoted = 0usize;
    let mut doubled = false;
    let mut backslash_quote = false;
    let mut escaped_delim = false;
    for l in &lines {
        for field_start in std::iter::once(0).chain(memchr::memchr_iter(d, l).map(|i| i + 1)) {
            if l.get(field_start) == Some(&b'"') {
                quoted += 1;
            }
        }
        doubled |=
            l.windows(2).any(|w| w == b"\"\"") && l.iter().filter(|&&b| b == b'"').count() > 2;
        backslash_quote |= l.windows(2).any(|w| w == b"\\\"");
        escaped_delim |= l
            .windows(2)
            .any(|w| w[0] == b'\\' && (w[1] == d || w[1] == b'\\'));
    }
    if quoted > 0 {
        if !backslash_quote && (d == b',' || doubled) {
            f.csv_quote = Some(b'"');
            report.push("quoted fields: CSV (a quote inside a value is doubled)".into());
        } else {
            f.remove_quotes = true;
            report.push("quoted fields: REMOVEQUOTES".into());
            if backslash_quote {
                f.escape = true;
            }
        }
    }
    if f.csv_quote.is_none() && (escaped_delim || backslash_quote) {
        f.escape = true;
        report
            .push("backslash escapes (\\ before the delimiter, a quote or itself): ESCAPE".into());
    }
    f
}

fn relative_to(target: &Path, base: &Path) -> String {
    let abs = |p: &Path| {
        std::fs::canonicalize(p).unwrap_or_else(|_| {
            std::env::current_dir()
                .map(|c| c.join(p))
                .unwrap_or_else(|_| p.to_path_buf())
        })
    };
    let (t, b) = (abs(target), abs(base));
    let tc: Vec<_> = t.components().collect();
    let bc: Vec<_> = b.components().collect();
    let common = tc.iter().zip(&bc).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..bc.len() {
        rel.push("..");
    }
    for c in &tc[common..] {
        rel.push(c.as_os_str());
    }
    let s = rel.to_string_lossy().replace('\\', "/");
    if s.is_empty() {
        ".".into()
    } else if t.is_dir() {
        format!("{s}/")
    } else {
        s
    }
}

fn column_line(name: &str, ty: &ColumnType, nullable: bool, why: &str) -> String {
    format!(
        "  {name:<24} {:<22} {why}",
        format!("{ty}{}", if nullable { "" } else { " NOT NULL" })
    )
}

/// Samples a table and reports the rows a load of the sample would reject.
fn check_sample(p: &mut Planned, files: &[SampleFile], rows: u64) -> Result<()> {
    let cols: Vec<Column> = p
        .columns
        .iter()
        .map(|(n, t, nullable)| Column {
            name: Ident::new(n.clone()).expect("validated names"),
            ty: *t,
            nullable: *nullable,
            encode: None,
            distkey: false,
            sortkey: None,
        })
        .collect();
    let (checked, rejected, errors) = sample::verify(files, &cols, &p.format, rows, 10)?;
    if rejected == 0 {
        p.report.push(format!(
            "loading the {checked} sampled row(s) with this manifest's rules: 0 rejected"
        ));
    } else {
        p.check.push(format!(
            "{rejected} of the {checked} sampled row(s) would be rejected by the load (MAXERROR is 0, \
             so the load fails): fix the data, or the type, or set \"maxerror\":"
        ));
        for e in &errors {
            p.check.push(format!("    {e}: {:?}", e.raw_field));
        }
    }
    Ok(())
}

fn plan_sample_only(
    opts: &InitOptions,
    name: &str,
    files: Vec<SampleFile>,
    spec: serde_json::Value,
) -> Result<Planned> {
    let mut report = Vec::new();
    let mut check = Vec::new();
    let compression = files_compression(&files, &mut report)?;
    let head = match files.first() {
        Some(f) => sample::head(f, 64 * 1024)?,
        None => Vec::new(),
    };
    let mut format = detect_format(&head, &mut report, &mut check);
    format.compression = compression;
    let mode = match opts.header {
        Some(true) => HeaderMode::Skip(1),
        Some(false) => HeaderMode::Skip(0),
        None => HeaderMode::Detect,
    };
    let s = sample::sample(&files, &format, mode, opts.rows)?;
    format.ignore_header = s.header_lines;
    match (&s.header_reason, s.header_lines) {
        (Some(why), 1) => report.push(format!("a header line (IGNOREHEADER 1): {why}")),
        (Some(why), _) => report.push(format!("no header line: {why}")),
        (None, n) => report.push(format!("IGNOREHEADER {n} (--header)")),
    }
    report.push(format!(
        "sampled {} row(s) of {} file(s){}",
        s.rows,
        s.files_read,
        if s.complete {
            " (all of them)"
        } else {
            " (the --rows limit; the rest was not read)"
        }
    ));
    for (file, line, n) in &s.ragged {
        check.push(format!(
            "{file}:{line} has {n} field(s), not {}: that row is rejected",
            s.columns.len()
        ));
    }
    let mut columns = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, stats) in s.columns.iter().enumerate() {
        let fallback = format!("col_{}", i + 1);
        let mut cname = match &s.header {
            Some(h) => name_of(h.get(i).map_or("", String::as_str), &fallback),
            None => fallback.clone(),
        };
        if !seen.insert(cname.clone()) {
            cname = fallback;
            seen.insert(cname.clone());
        }
        let Decision {
            ty,
            nullable,
            reason,
            warnings,
        } = sample::decide(stats, s.complete);
        report.push(column_line(&cname, &ty, nullable, &reason));
        for w in warnings {
            check.push(format!("{cname}: {w}"));
        }
        columns.push((cname, ty, nullable));
    }
    if s.header.is_none() {
        check.push("no header line: the columns are named col_1, col_2, ...; rename them".into());
    }
    let mut p = Planned {
        schema: name_of(opts.schema.as_deref().unwrap_or("public"), "public"),
        name: name_of(name, "t"),
        columns,
        format,
        files: spec,
        report,
        check,
    };
    if p.columns.is_empty() {
        return Err(invalid(
            format!("sample table {name}"),
            "its files hold no rows to decide columns from",
        ));
    }
    check_sample(&mut p, &files, opts.rows)?;
    Ok(p)
}

fn plan_hive(
    opts: &InitOptions,
    t: &HiveTable,
    only: bool,
    errors: &mut Vec<String>,
) -> Result<Option<Planned>> {
    let mut report = Vec::new();
    let mut check = Vec::new();
    let mut format = match hive_format(t, &mut report, &mut check) {
        Ok(f) => f,
        Err(Error::InvalidInput { message, .. }) => {
            errors.push(format!(
                "line {}, column {}: table {}: {message}",
                t.line, t.column, t.name
            ));
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if let Some(h) = opts.header {
        format.ignore_header = u32::from(h);
    }
    let schema = match (&opts.schema, &t.database) {
        (Some(s), _) => name_of(s, "public"),
        (None, Some(d)) if d == "default" => {
            report.push(
                "Hive's database default → schema public (default is a Redshift reserved word)"
                    .into(),
            );
            "public".into()
        }
        (None, Some(d)) => name_of(d, "public"),
        (None, None) => "public".into(),
    };
    let mut columns = Vec::new();
    let mut col_why = Vec::new();
    let mut ok = true;
    let all: Vec<(&HiveColumn, bool)> = t
        .columns
        .iter()
        .map(|c| (c, false))
        .chain(t.partitions.iter().map(|c| (c, true)))
        .collect();
    for (c, partition) in &all {
        match map_hive_type(&c.ty, opts.complex_as_varchar) {
            Ok((ty, why, warns)) => {
                let name = name_of(&c.name, &c.name);
                if let Err(e) = Ident::new(name.clone()) {
                    errors.push(format!(
                        "line {}, column {}: table {}, column {}: {e}",
                        c.line, c.column, t.name, c.name
                    ));
                    ok = false;
                    continue;
                }
                for w in warns {
                    check.push(format!("{name}: {w}"));
                }
                if *partition {
                    check.push(format!(
                        "{name} is a partition column: the files do not hold it (its values are in \
                         the folder names, {name}=...); it loads as NULL (FILLRECORD): fill it in a \
                         transform, or remove the column"
                    ));
                }
                columns.push((name, ty, true));
                col_why.push(why);
            }
            Err(refusal) => {
                errors.push(format!(
                    "line {}, column {}: table {}, column {}: {refusal}",
                    c.line, c.column, t.name, c.name
                ));
                ok = false;
            }
        }
    }
    if !ok {
        return Ok(None);
    }
    if !t.partitions.is_empty() {
        format.fill_record = true;
        report.push("FILLRECORD: the partition columns are not in the files".into());
    }
    if let Some(b) = &t.bucketing {
        report.push(format!("{b}: bucketing does not change the files' format"));
    }
    let location_dir = t
        .location
        .as_deref()
        .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let mut files = serde_json::json!({
        "prefix": format!("{}/", location_dir.as_deref().unwrap_or(&t.name))
    });
    if let Some(l) = &t.location {
        report.push(format!(
            "LOCATION {l}: the files are expected under {}",
            files["prefix"].as_str().unwrap_or("")
        ));
    }
    let mut p = Planned {
        schema,
        name: t.name.clone(),
        columns,
        format,
        files: files.clone(),
        report,
        check,
    };
    let sampled = match &opts.sample {
        Some(root) => find_sample(root, t, only)?,
        None => None,
    };
    match sampled {
        Some((sfiles, spec)) => {
            files = spec;
            p.files = files;
            p.format.compression = files_compression(&sfiles, &mut p.report)?;
            let skip = p.format.ignore_header;
            let s = sample::sample(&sfiles, &p.format, HeaderMode::Skip(skip), opts.rows)?;
            p.report.push(format!(
                "sampled {} row(s) of {} file(s){}",
                s.rows,
                s.files_read,
                if s.complete {
                    " (all of them)"
                } else {
                    " (the --rows limit)"
                }
            ));
            for (i, (name, ty, _)) in p.columns.iter_mut().enumerate() {
                let hive_ty = &all[i].0.ty;
                let char_like = matches!(
                    hive_ty,
                    HiveType::String | HiveType::Varchar(_) | HiveType::Char(_)
                );
                if let Some(stats) = s
                    .columns
                    .get(i)
                    .filter(|st| char_like && (st.max_bytes > 0 || st.example.is_some()))
                {
                    {
                        let bound = ty.max_bytes().unwrap_or(MAX_VARCHAR);
                        let n = sample::varchar_length(stats.max_bytes).min(bound);
                        col_why[i] = format!(
                            "{hive_ty}: longest sampled value {} byte(s), VARCHAR({n}) with headroom{}",
                            stats.max_bytes,
                            if n == bound && bound != MAX_VARCHAR {
                                format!(" (capped at the DDL's {bound} bytes)")
                            } else {
                                String::new()
                            }
                        );
                        *ty = ColumnType::Varchar(n);
                        p.check
                            .retain(|c| !c.starts_with(&format!("{name}: STRING has no length")));
                        if !s.complete {
                            p.check.push(format!(
                                "{name}: sized from a partial sample; a longer value in the rest is rejected"
                            ));
                        }
                    }
                }
            }
        }
        None => {
            if opts.sample.is_some() {
                p.check.push(format!(
                    "no sample files found for {} (looked for {} and {}.*): types from the DDL alone",
                    t.name,
                    files["prefix"].as_str().unwrap_or(""),
                    t.name
                ));
            }
            p.check.push(
                "compression none: set \"compression\" to gzip, bzip2 or zstd if the exported files are compressed"
                    .into(),
            );
        }
    }
    let lines: Vec<String> = p
        .columns
        .iter()
        .zip(&col_why)
        .map(|((n, t, nl), why)| column_line(n, t, *nl, why))
        .collect();
    p.report.extend(lines);
    if let Some(root) = &opts.sample
        && let Some((sfiles, _)) = find_sample(root, t, only)?
    {
        check_sample(&mut p, &sfiles, opts.rows)?;
    }
    Ok(Some(p))
}

/// Writes the manifest and the report.
///
/// # Errors
/// [`Error::InvalidInput`] listing every statement or column that cannot be turned into a table
/// (with its line and column), a sample that cannot be read; an internal error if the manifest
/// would not pass validation.
pub fn init(opts: &InitOptions) -> Result<InitOutput> {
    if opts.hive_ddl.is_none() && opts.sample.is_none() {
        return Err(invalid(
            "etl init",
            "give --from-hive DDL.sql, --sample DIR, or both",
        ));
    }
    let mut planned = Vec::new();
    let mut errors = Vec::new();
    let mut how = Vec::new();
    if let Some((ddl_name, text)) = &opts.hive_ddl {
        let (tables, errs) = hive::parse(text);
        errors.extend(errs.iter().map(|e| e.to_string()));
        if tables.is_empty() && errs.is_empty() {
            errors.push("no CREATE TABLE statement found".into());
        }
        for t in &tables {
            if let Some(p) = plan_hive(opts, t, tables.len() == 1, &mut errors)? {
                planned.push(p);
            }
        }
        how.push(format!(
            "the Hive DDL in {ddl_name} ({} table(s))",
            tables.len()
        ));
        if !errors.is_empty() {
            // In the order of the text: "line L, column C: ...".
            let at = |e: &String| -> (usize, usize) {
                let mut n = e
                    .split(|c: char| !c.is_ascii_digit())
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse().unwrap_or(0));
                (n.next().unwrap_or(0), n.next().unwrap_or(0))
            };
            errors.sort_by_key(at);
            return Err(invalid(
                format!("Hive DDL {ddl_name}"),
                format!("\n  {}", errors.join("\n  ")),
            ));
        }
    } else if let Some(root) = &opts.sample {
        for (name, files, spec) in sample_tables(root)? {
            if files.is_empty() {
                continue;
            }
            planned.push(plan_sample_only(opts, &name, files, spec)?);
        }
        if planned.is_empty() {
            return Err(invalid(
                format!("sample {}", root.display()),
                "no files found (hidden files and names starting with _ are skipped)",
            ));
        }
    }
    if let Some(root) = &opts.sample {
        how.push(format!(
            "a sample of up to {} row(s) per table of {}",
            opts.rows,
            root.display()
        ));
    }
    // Duplicate table names within a schema.
    let mut seen = std::collections::HashSet::new();
    for p in &planned {
        if !seen.insert((p.schema.clone(), p.name.clone())) {
            return Err(invalid(
                "etl init",
                format!("two tables are named {}.{}", p.schema, p.name),
            ));
        }
    }
    let name = opts.name.clone().map(|n| job_name(&n)).unwrap_or_else(|| {
        let from = match (&opts.hive_ddl, &opts.sample) {
            (Some((n, _)), _) => Path::new(n)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            (None, Some(s)) => s
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            _ => String::new(),
        };
        job_name(&from)
    });
    let input = match (&opts.input, &opts.sample) {
        (Some(i), _) => i.clone(),
        (None, Some(s)) if s.is_dir() => relative_to(s, &opts.manifest_dir),
        (None, Some(s)) => relative_to(s.parent().unwrap_or(Path::new(".")), &opts.manifest_dir),
        (None, None) => "data/".into(),
    };
    let job_format = spec_of(&planned[0].format);
    let mut schemas: Vec<OutSchema> = Vec::new();
    for p in &planned {
        let table = OutTable {
            name: p.name.clone(),
            files: p.files.clone(),
            format: spec_diff(&job_format, &spec_of(&p.format)),
            columns: p
                .columns
                .iter()
                .map(|(n, t, nullable)| OutColumn {
                    name: n.clone(),
                    ty: t.to_string().to_lowercase(),
                    nullable: *nullable,
                })
                .collect(),
        };
        match schemas.iter_mut().find(|s| s.name == p.schema) {
            Some(s) => s.tables.push(table),
            None => schemas.push(OutSchema {
                name: p.schema.clone(),
                tables: vec![table],
            }),
        }
    }
    let description = format!(
        "Written by etl init from {}. Types, lengths and the file format are what etl init decided \
         (its report says how, column by column): check them before the first run.",
        how.join(" and ")
    );
    let job = OutJob {
        name,
        description,
        input,
        format: job_format,
        schemas,
    };
    let manifest = serde_json::to_string_pretty(&job).expect("the manifest serializes") + "\n";
    // The project's own validation, without touching the files.
    crate::Job::parse(&manifest, "etl init output", &opts.manifest_dir).map_err(|e| {
        Error::Internal(format!(
            "etl init wrote a manifest that does not validate: {e}"
        ))
    })?;
    let mut report = String::new();
    for p in &planned {
        let _ = writeln!(report, "{}.{}:", p.schema, p.name);
        for l in &p.report {
            let _ = writeln!(report, "  {l}");
        }
        if !p.check.is_empty() {
            let _ = writeln!(report, "  check by hand:");
            for c in &p.check {
                let _ = writeln!(report, "  - {c}");
            }
        }
    }
    Ok(InitOutput { manifest, report })
}
