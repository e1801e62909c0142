//! Reading a sample of a table's files with the loader's own rules, and deciding column types from it.
//!
//! Files are streamed (decompressed as they are read, one record at a time) and cut into records and
//! fields by the loader's [`RowParser`] — the same quote, escape and NULL rules a load applies — and
//! every value is converted by the loader's own converters into each candidate type (`BIGINT`,
//! `DECIMAL`, `DOUBLE PRECISION`, `BOOLEAN`, `DATE`, `TIMESTAMP`, `TIMESTAMPTZ`, `VARCHAR`). A
//! candidate survives while every value loads into it; the narrowest survivor wins:
//!
//! | order | type | chosen when every non-NULL sampled value ... |
//! |---|---|---|
//! | 1 | `SMALLINT` / `INTEGER` / `BIGINT` | loads as an integer; the narrowest range that holds the sampled minimum and maximum (twice them when the sample did not reach the end of the files) |
//! | 2 | `DECIMAL(p,s)` | is a plain decimal number; s = the most digits after the point, p = s + the most digits before it (+1 when the sample is partial), at most 38 |
//! | 3 | `DOUBLE PRECISION` | loads as a float (exponents, `NaN`, `Infinity`, or more than 38 digits) |
//! | 4 | `BOOLEAN` | is one of COPY's boolean literals (`t`, `true`, `y`, `yes`, `f`, `false`, `n`, `no`; `1`/`0` are integers first) |
//! | 5 | `DATE` | is a date DATEFORMAT 'auto' recognises, without a time of day |
//! | 6 | `TIMESTAMP` | is a date and time TIMEFORMAT 'auto' recognises, without a time zone |
//! | 7 | `TIMESTAMPTZ` | the same, some with a time zone |
//! | 8 | `VARCHAR(n)` | anything else: n = the longest sampled value in bytes plus headroom (see [`varchar_length`]) |
//!
//! A column is `NOT NULL` only when the whole of every file was read and no value was NULL.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::job::{Column, ColumnType, Compression, Format};
use crate::load::{Batch, CopyEncoding, SplitField};
use crate::load::{LoadError, MAX_RECORD_BYTES, RecordEnd, RowParser, Scratch, datetime, decoder};
use crate::sql::Ident;
use crate::{Error, Result};

/// One input file of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its name relative to the sample folder, `/`-separated (what the manifest names).
    pub name: String,
    /// Its compression, from its first bytes.
    pub compression: Compression,
}

/// The compression a file's first bytes announce: gzip `1f 8b`, bzip2 `BZh`, zstd `28 b5 2f fd`
/// (the formats COPY reads: <https://docs.aws.amazon.com/redshift/latest/dg/copy-parameters-file-compression.html>).
///
/// # Errors
/// When the file cannot be read.
pub fn sniff_compression(path: &Path) -> Result<Compression> {
    let mut head = [0u8; 4];
    let mut f =
        std::fs::File::open(path).map_err(|e| Error::io("cannot open", path.display(), e))?;
    let mut n = 0;
    while n < 4 {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("cannot read", path.display(), e)),
        }
    }
    let head = &head[..n];
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(b"BZh") {
        Compression::Bzip2
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    })
}

fn open(file: &SampleFile) -> Result<Box<dyn Read>> {
    let f = std::fs::File::open(&file.path)
        .map_err(|e| Error::io("cannot open", file.path.display(), e))?;
    decoder(f, file.compression).map_err(|e| match e {
        Error::Io { action, source, .. } => Error::io(action, file.path.display(), source),
        other => other,
    })
}

/// The first `limit` bytes of a file, decompressed.
pub(crate) fn head(file: &SampleFile, limit: usize) -> Result<Vec<u8>> {
    let mut r = open(file)?.take(limit as u64);
    let mut out = Vec::new();
    r.read_to_end(&mut out)
        .map_err(|e| Error::io("cannot read or decompress", file.path.display(), e))?;
    Ok(out)
}

/// Streams the records of one file, cut where the loader cuts them.
struct Records<'p> {
    parser: &'p RowParser,
    reader: Box<dyn Read>,
    name: String,
    buf: Vec<u8>,
    start: usize,
    eof: bool,
    /// Line of the next record (1-based).
    line: u64,
}

impl<'p> Records<'p> {
    fn new(parser: &'p RowParser, file: &SampleFile) -> Result<Self> {
        Ok(Records {
            parser,
            reader: open(file)?,
            name: file.path.display().to_string(),
            buf: Vec::new(),
            start: 0,
            eof: false,
            line: 1,
        })
    }

    fn fill(&mut self) -> Result<()> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + 64 * 1024, 0);
        loop {
            match self.reader.read(&mut self.buf[old..]) {
                Ok(0) => {
                    self.eof = true;
                    self.buf.truncate(old);
                    return Ok(());
                }
                Ok(n) => {
                    self.buf.truncate(old + n);
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(Error::io("cannot read or decompress", &self.name, e));
                }
            }
        }
    }

    /// The next record (without its line feed) and the line it starts on.
    fn next_record(&mut self) -> Result<Option<(u64, Vec<u8>)>> {
        loop {
            let end = self.parser.record_end(&self.buf, self.start, self.eof);
            let (rec_end, next) = match end {
                RecordEnd::Newline(i) => (i, i + 1),
                RecordEnd::Open { .. } if self.eof => {
                    if self.start >= self.buf.len() {
                        return Ok(None);
                    }
                    (self.buf.len(), self.buf.len())
                }
                RecordEnd::Open { .. } => {
                    if self.buf.len() - self.start > MAX_RECORD_BYTES {
                        return Err(Error::InvalidInput {
                            what: format!("sample file {}", self.name),
                            message: format!(
                                "the record at line {} is longer than COPY's 4 MB limit",
                                self.line
                            ),
                        });
                    }
                    self.fill()?;
                    continue;
                }
            };
            let rec = self.buf[self.start..rec_end].to_vec();
            let line = self.line;
            self.line += 1;
            if self.parser.multiline() {
                self.line += memchr::memchr_iter(b'\n', &rec).count() as u64;
            }
            self.start = next;
            return Ok(Some((line, rec)));
        }
    }
}

/// Where a value was seen, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The file.
    pub file: String,
    /// Its line.
    pub line: u64,
    /// The value as read (at most 64 bytes, invalid UTF-8 replaced).
    pub value: String,
    /// Why it ruled a type out (COPY's reason).
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
struct Candidate {
    dead: Option<Seen>,
    values: u64,
    nulls: u64,
}

/// What the sample says about one column (by position).
#[derive(Debug, Clone)]
pub struct ColumnStats {
    cands: [Candidate; 8],
    int_range: Option<(i64, i64)>,
    int_digits: u32,
    scale: u32,
    /// Longest value in bytes, as VARCHAR would store it.
    pub max_bytes: usize,
    /// Every value is ASCII.
    pub ascii: bool,
    /// Values that are not valid UTF-8 (the load rejects their rows).
    pub invalid_utf8: Vec<Seen>,
    /// An example value.
    pub example: Option<String>,
}

const INT: usize = 0;
const DEC: usize = 1;
const DBL: usize = 2;
const BOOL: usize = 3;
const DATE: usize = 4;
const TS: usize = 5;
const TSTZ: usize = 6;
const VARCHAR: usize = 7;

const PROBE_TYPES: [ColumnType; 8] = [
    ColumnType::BigInt,
    ColumnType::Decimal {
        precision: 38,
        scale: 0,
    },
    ColumnType::Double,
    ColumnType::Boolean,
    ColumnType::Date,
    ColumnType::Timestamp,
    ColumnType::TimestampTz,
    ColumnType::Varchar(crate::job::types::MAX_VARCHAR),
];

impl Default for ColumnStats {
    fn default() -> Self {
        ColumnStats {
            cands: Default::default(),
            int_range: None,
            int_digits: 0,
            scale: 0,
            max_bytes: 0,
            ascii: true,
            invalid_utf8: Vec::new(),
            example: None,
        }
    }
}

fn shown(v: &[u8]) -> String {
    String::from_utf8_lossy(&v[..v.len().min(64)]).into_owned()
}

/// Digits before (without leading zeros) and after the point of a plain decimal number.
fn decimal_digits(v: &[u8]) -> (u32, u32) {
    let t = v.trim_ascii();
    let t = t
        .strip_prefix(b"-")
        .or_else(|| t.strip_prefix(b"+"))
        .unwrap_or(t);
    let (int, frac) = match memchr::memchr(b'.', t) {
        Some(i) => (&t[..i], &t[i + 1..]),
        None => (t, &[][..]),
    };
    let int = int.iter().skip_while(|&&b| b == b'0').count() as u32;
    (int, frac.len() as u32)
}

/// The probe: one column per candidate type, every one nullable, in the table's format.
pub(crate) fn probe_parser(format: &Format) -> Result<RowParser> {
    let cols: Vec<Column> = PROBE_TYPES
        .iter()
        .enumerate()
        .map(|(i, ty)| Column {
            name: Ident::new(format!("probe{i}")).expect("a valid name"),
            ty: *ty,
            nullable: true,
            encode: None,
            distkey: false,
            sortkey: None,
        })
        .collect();
    RowParser::new(&cols, format, CopyEncoding::Binary).map_err(|m| Error::InvalidInput {
        what: "file format".into(),
        message: m,
    })
}

impl ColumnStats {
    fn kill(&mut self, k: usize, file: &str, line: u64, v: &[u8], reason: String) {
        if self.cands[k].dead.is_none() {
            self.cands[k].dead = Some(Seen {
                file: file.to_owned(),
                line,
                value: shown(v),
                reason,
            });
        }
    }

    /// Adds one field: its value and whether it is the NULL AS string.
    fn add(&mut self, probe: &RowParser, file: &str, line: u64, v: &[u8], is_null: bool) {
        for k in 0..PROBE_TYPES.len() {
            if self.cands[k].dead.is_some() {
                continue;
            }
            match probe.convert_field(k, v, is_null) {
                Ok(None) => self.cands[k].nulls += 1,
                Ok(Some(bytes)) => {
                    self.cands[k].values += 1;
                    match k {
                        INT => {
                            let x = i64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
                            self.int_range = Some(match self.int_range {
                                None => (x, x),
                                Some((lo, hi)) => (lo.min(x), hi.max(x)),
                            });
                        }
                        DEC => {
                            let (i, s) = decimal_digits(v);
                            self.int_digits = self.int_digits.max(i);
                            self.scale = self.scale.max(s);
                        }
                        DATE if memchr::memchr(b':', v).is_some()
                            || datetime::parse_auto(v).is_some_and(|d| d.time != 0) =>
                        {
                            self.cands[k].values -= 1;
                            self.kill(k, file, line, v, "has a time of day".into());
                        }
                        TS if datetime::parse_auto(v).is_some_and(|d| d.offset.is_some()) => {
                            self.cands[k].values -= 1;
                            self.kill(k, file, line, v, "has a time zone".into());
                        }
                        VARCHAR => {
                            self.max_bytes = self.max_bytes.max(bytes.len());
                            self.ascii &= bytes.is_ascii();
                            if self.example.is_none() {
                                self.example = Some(shown(&bytes));
                            }
                        }
                        _ => {}
                    }
                }
                // Invalid UTF-8 rejects the row whatever the type: note it, keep VARCHAR.
                Err((1220, reason)) if k == VARCHAR => {
                    self.cands[k].values += 1;
                    self.max_bytes = self.max_bytes.max(v.len());
                    self.ascii = false;
                    if self.invalid_utf8.len() < 10 {
                        self.invalid_utf8.push(Seen {
                            file: file.to_owned(),
                            line,
                            value: shown(v),
                            reason,
                        });
                    }
                }
                Err((_, reason)) => self.kill(k, file, line, v, reason),
            }
        }
    }
}

/// How the header is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderMode {
    /// Skip this many lines at the top of every file (the DDL's `skip.header.line.count`,
    /// `--header yes` = 1, `--header no` = 0).
    Skip(u32),
    /// Decide from the data: see [`sample`].
    Detect,
}

/// What the sample of one table says.
#[derive(Debug, Clone)]
pub struct Sampled {
    /// Per column, by position.
    pub columns: Vec<ColumnStats>,
    /// Data rows read.
    pub rows: u64,
    /// Files read (to the end or to the row limit).
    pub files_read: usize,
    /// Whether every file was read to its end.
    pub complete: bool,
    /// Lines skipped at the top of each file.
    pub header_lines: u32,
    /// The first line's fields, when it was taken as a header.
    pub header: Option<Vec<String>>,
    /// Why the header was decided so (Detect only).
    pub header_reason: Option<String>,
    /// Records whose field count differs from the first record's (file, line, count).
    pub ragged: Vec<(String, u64, usize)>,
}

/// Reads up to `limit` data rows of `files` (in order) with `format`'s rules.
///
/// With [`HeaderMode::Detect`], the first record of each file is kept aside: it is a header when its
/// fields are all present and either some column whose other values all load into a typed candidate
/// (a number, date, boolean) has a first-line value that does not, or — every column being text —
/// every first-line value looks like a column name (a letter or `_`, then letters, digits, `_`, spaces)
/// and they are all different.
///
/// # Errors
/// A file that cannot be read or decompressed, a record over 4 MB.
pub fn sample(
    files: &[SampleFile],
    format: &Format,
    header: HeaderMode,
    limit: u64,
) -> Result<Sampled> {
    let probe = probe_parser(format)?;
    let skip = match header {
        HeaderMode::Skip(n) => n,
        HeaderMode::Detect => 0,
    };
    let mut out = Sampled {
        columns: Vec::new(),
        rows: 0,
        files_read: 0,
        complete: true,
        header_lines: skip,
        header: None,
        header_reason: None,
        ragged: Vec::new(),
    };
    let mut firsts: Vec<(String, u64, Vec<SplitField>)> = Vec::new();
    let mut width: Option<usize> = None;
    let mut split_errors = Vec::new();
    for file in files {
        if out.rows >= limit {
            out.complete = false;
            break;
        }
        out.files_read += 1;
        let mut records = Records::new(&probe, file)?;
        let mut index = 0u64;
        while let Some((line, rec)) = records.next_record()? {
            index += 1;
            if index <= u64::from(skip) {
                continue;
            }
            if rec.is_empty() && format.ignore_blank_lines {
                continue;
            }
            let fields = match probe.split_record(&rec) {
                Ok(f) => f,
                Err((_, reason)) => {
                    split_errors.push((file.name.clone(), line, reason));
                    continue;
                }
            };
            if header == HeaderMode::Detect && index == 1 {
                width.get_or_insert(fields.len());
                firsts.push((file.name.clone(), line, fields));
                continue;
            }
            let w = *width.get_or_insert(fields.len());
            if fields.len() != w && out.ragged.len() < 10 {
                out.ragged.push((file.name.clone(), line, fields.len()));
            }
            add_fields(&mut out.columns, &probe, &file.name, line, &fields);
            out.rows += 1;
            if out.rows >= limit {
                if records.next_record()?.is_some() {
                    out.complete = false;
                }
                break;
            }
        }
    }
    if header == HeaderMode::Detect {
        let (is_header, reason) = match firsts.first() {
            Some((_, _, fields)) => looks_like_header(&out.columns, &probe, fields),
            None => (false, "the files are empty".to_owned()),
        };
        out.header_reason = Some(reason);
        if is_header {
            out.header_lines = 1;
            out.header = firsts.first().map(|(_, _, f)| {
                f.iter()
                    .map(|(v, _)| String::from_utf8_lossy(v).trim().to_owned())
                    .collect()
            });
        } else {
            for (file, line, fields) in &firsts {
                add_fields(&mut out.columns, &probe, file, *line, fields);
                out.rows += 1;
            }
        }
    }
    if let Some((file, line, reason)) = split_errors.first() {
        return Err(Error::InvalidInput {
            what: format!("sample {file}"),
            message: format!(
                "line {line}: {reason} ({} record(s) of the sample cannot be split into fields \
                 with the format found; check the delimiter and quoting)",
                split_errors.len()
            ),
        });
    }
    Ok(out)
}

fn add_fields(
    columns: &mut Vec<ColumnStats>,
    probe: &RowParser,
    file: &str,
    line: u64,
    fields: &[SplitField],
) {
    if columns.len() < fields.len() {
        columns.resize_with(fields.len(), ColumnStats::default);
    }
    for (c, (v, null)) in fields.iter().enumerate() {
        columns[c].add(probe, file, line, v, *null);
    }
}

fn looks_like_header(
    columns: &[ColumnStats],
    probe: &RowParser,
    fields: &[SplitField],
) -> (bool, String) {
    if fields
        .iter()
        .any(|(v, null)| *null || v.trim_ascii().is_empty())
    {
        return (false, "the first line has an empty field".into());
    }
    for (c, (v, _)) in fields.iter().enumerate() {
        let Some(stats) = columns.get(c) else {
            continue;
        };
        for k in [INT, DEC, DBL, BOOL, DATE, TS, TSTZ] {
            if stats.cands[k].dead.is_none()
                && stats.cands[k].values > 0
                && probe.convert_field(k, v, false).is_err()
            {
                return (
                    true,
                    format!(
                        "the first line's {:?} is not a {} like the rest of column {}",
                        shown(v),
                        PROBE_TYPES[k].name(),
                        c + 1
                    ),
                );
            }
        }
    }
    let name_like = |v: &[u8]| {
        let t = v.trim_ascii();
        t.first()
            .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
            && t.iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b' '))
    };
    let mut distinct: Vec<&[u8]> = fields.iter().map(|(v, _)| v.trim_ascii()).collect();
    distinct.sort();
    distinct.dedup();
    if columns.is_empty() {
        return (false, "there is only one line".into());
    }
    if fields.iter().all(|(v, _)| name_like(v)) && distinct.len() == fields.len() {
        (
            true,
            "every first-line value looks like a column name (the columns are all text: check by hand)"
                .into(),
        )
    } else {
        (
            false,
            "the first line's values load into the types of the rest".into(),
        )
    }
}

/// A VARCHAR byte length for a sampled maximum of `max` bytes: `max` plus a quarter (at least 8
/// bytes), rounded up to a multiple of 8, capped at Redshift's 65535 bytes
/// (<https://docs.aws.amazon.com/redshift/latest/dg/r_Character_types.html>). A value one byte longer
/// than anything sampled still loads; one longer than the headroom is rejected (error 1204,
/// "String length exceeds DDL length").
pub fn varchar_length(max: usize) -> u32 {
    let max = max as u64;
    let with_room = max + (max.div_ceil(4)).max(8);
    (with_room.div_ceil(8) * 8).min(u64::from(crate::job::types::MAX_VARCHAR)) as u32
}

/// A type decided from the sample, with the reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The type.
    pub ty: ColumnType,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// How it was decided.
    pub reason: String,
    /// What to check by hand.
    pub warnings: Vec<String>,
}

fn fits(lo: i64, hi: i64, min: i64, max: i64) -> bool {
    lo >= min && hi <= max
}

/// The narrowest type every sampled value of a column loads into (see the module docs).
pub fn decide(stats: &ColumnStats, complete: bool) -> Decision {
    let c = &stats.cands;
    let alive = |k: usize| c[k].dead.is_none() && c[k].values > 0;
    let nullable_of = |k: usize| !complete || c[k].nulls > 0;
    let mut warnings = Vec::new();
    let partial = if complete {
        ""
    } else {
        " (the sample did not reach the end of the files: values outside it may not fit)"
    };
    let ruled_out = |upto: usize| -> String {
        let mut why = Vec::new();
        // Only candidates that took some values before one did not: the column's types are mixed.
        for k in 0..upto {
            if let Some(s) = c[k].dead.as_ref().filter(|_| c[k].values > 0) {
                why.push(format!(
                    "{} ruled out by {:?} at {}:{} ({})",
                    PROBE_TYPES[k].name(),
                    s.value,
                    s.file,
                    s.line,
                    s.reason
                ));
                if why.len() == 2 {
                    break;
                }
            }
        }
        if why.is_empty() {
            String::new()
        } else {
            format!("; mixed: {}", why.join("; "))
        }
    };
    let (ty, k, reason) = if alive(INT) {
        let (lo, hi) = stats.int_range.expect("values were seen");
        let (lo2, hi2) = if complete {
            (lo, hi)
        } else {
            (lo.saturating_mul(2), hi.saturating_mul(2))
        };
        let ty = if fits(lo2, hi2, i16::MIN.into(), i16::MAX.into()) {
            ColumnType::SmallInt
        } else if fits(lo2, hi2, i32::MIN.into(), i32::MAX.into()) {
            ColumnType::Integer
        } else {
            ColumnType::BigInt
        };
        let room = if complete {
            ""
        } else {
            ", twice that for headroom"
        };
        (
            ty,
            INT,
            format!("integers from {lo} to {hi}{room}{partial}"),
        )
    } else if alive(DEC) && stats.int_digits + u32::from(!complete) + stats.scale <= 38 {
        let ip = stats.int_digits.max(1) + u32::from(!complete);
        let p = ip + stats.scale;
        (
            ColumnType::Decimal {
                precision: p as u8,
                scale: stats.scale as u8,
            },
            DEC,
            format!(
                "decimals with up to {} digit(s) before the point and {} after{}{}",
                stats.int_digits,
                stats.scale,
                if complete {
                    ""
                } else {
                    ", one more before it for headroom"
                },
                ruled_out(DEC)
            ),
        )
    } else if alive(DEC) || alive(DBL) {
        if alive(DEC) {
            warnings.push(format!(
                "decimals need {} digits, more than Redshift's 38: DOUBLE PRECISION keeps about 15 \
                 significant digits; use VARCHAR if every digit matters",
                stats.int_digits + stats.scale
            ));
        }
        (
            ColumnType::Double,
            DBL,
            format!("floating-point numbers{}", ruled_out(DBL)),
        )
    } else if alive(BOOL) {
        (
            ColumnType::Boolean,
            BOOL,
            format!("boolean literals{}", ruled_out(BOOL)),
        )
    } else if alive(DATE) {
        (
            ColumnType::Date,
            DATE,
            format!("dates (DATEFORMAT 'auto'){}", ruled_out(DATE)),
        )
    } else if alive(TS) {
        (
            ColumnType::Timestamp,
            TS,
            format!("dates with times (TIMEFORMAT 'auto'){}", ruled_out(TS)),
        )
    } else if alive(TSTZ) {
        (
            ColumnType::TimestampTz,
            TSTZ,
            format!(
                "dates with times and time zones (TIMEFORMAT 'auto'){}",
                ruled_out(TSTZ)
            ),
        )
    } else if c[VARCHAR].values > 0 {
        let n = varchar_length(stats.max_bytes);
        if stats.max_bytes > crate::job::types::MAX_VARCHAR as usize {
            warnings.push(format!(
                "values of up to {} bytes are longer than Redshift's 65535-byte VARCHAR limit: \
                 those rows are rejected",
                stats.max_bytes
            ));
        } else if n == crate::job::types::MAX_VARCHAR {
            warnings.push("the headroom is capped at Redshift's 65535-byte VARCHAR limit".into());
        }
        (
            ColumnType::Varchar(n),
            VARCHAR,
            format!(
                "text of up to {} byte(s), plus headroom{}{}",
                stats.max_bytes,
                partial,
                ruled_out(VARCHAR)
            ),
        )
    } else {
        warnings.push(
            "every sampled value is NULL or empty: the type is a guess, check it by hand".into(),
        );
        (
            ColumnType::Varchar(256),
            VARCHAR,
            "no values in the sample".into(),
        )
    };
    if !stats.invalid_utf8.is_empty() {
        let s = &stats.invalid_utf8[0];
        warnings.push(format!(
            "{} value(s) are not valid UTF-8 (first at {}:{}): COPY rejects those rows (error \
             1220); add \"acceptinvchars\": true to the table's format to load them with '?' in \
             place of each invalid byte, or re-export the data as UTF-8",
            stats.invalid_utf8.len(),
            s.file,
            s.line
        ));
    }
    Decision {
        ty,
        nullable: nullable_of(k),
        reason,
        warnings,
    }
}

/// Loads the sampled rows through a real [`RowParser`] for the decided columns, as COPY would:
/// returns the rows checked and the rows it would reject (at most `keep` of them, plus the count).
///
/// # Errors
/// A file that cannot be read.
pub fn verify(
    files: &[SampleFile],
    columns: &[Column],
    format: &Format,
    limit: u64,
    keep: usize,
) -> Result<(u64, u64, Vec<LoadError>)> {
    let parser =
        RowParser::new(columns, format, CopyEncoding::Binary).map_err(|m| Error::InvalidInput {
            what: "file format".into(),
            message: m,
        })?;
    let mut rows = 0u64;
    let mut rejected = 0u64;
    let mut errors = Vec::new();
    let mut scratch = Scratch::default();
    'files: for file in files {
        let mut records = Records::new(&parser, file)?;
        let mut index = 0u64;
        while let Some((line, rec)) = records.next_record()? {
            index += 1;
            if index <= u64::from(format.ignore_header) {
                continue;
            }
            if rows >= limit {
                break 'files;
            }
            let mut batch = Batch::default();
            parser.parse_record(&rec, &file.name, line, &mut batch, &mut scratch);
            if rec.is_empty() && format.ignore_blank_lines {
                continue;
            }
            rows += 1;
            for e in batch.errors {
                rejected += 1;
                if errors.len() < keep {
                    errors.push(e);
                }
            }
        }
    }
    Ok((rows, rejected, errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headroom() {
        assert_eq!(varchar_length(0), 8);
        assert_eq!(varchar_length(1), 16);
        assert_eq!(varchar_length(10), 24);
        assert_eq!(varchar_length(64), 80);
        assert_eq!(varchar_length(60_000), 65_535);
    }

    #[test]
    fn decimal_digits_count_like_the_type() {
        assert_eq!(decimal_digits(b"-0012.50"), (2, 2));
        assert_eq!(decimal_digits(b" 7 "), (1, 0));
        assert_eq!(decimal_digits(b".5"), (0, 1));
    }
}
