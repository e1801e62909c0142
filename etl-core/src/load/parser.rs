//! The row parser: Redshift's text input format (<https://docs.aws.amazon.com/redshift/latest/dg/copy-parameters-data-format.html>,
//! <https://docs.aws.amazon.com/redshift/latest/dg/copy-parameters-data-conversion.html>) in, PostgreSQL
//! `COPY ... FROM STDIN` tuples (binary or text) out, with rejected rows reported like
//! `STL_LOAD_ERRORS` (<https://docs.aws.amazon.com/redshift/latest/dg/r_STL_LOAD_ERRORS.html>).
//!
//! # Records and fields
//! - A record ends at a line feed. A carriage return right before it (CRLF files) or at the very end
//!   of the file is dropped, unless ESCAPE escapes it.
//! - `IGNOREBLANKLINES` skips records that are empty (after the CR is dropped). Without it an empty
//!   line is a record with one empty field.
//! - With `ESCAPE`, a backslash makes the next byte data (delimiter, quote, line feed, backslash, or any
//!   other byte); a backslash at the very end of the input is dropped.
//! - `REMOVEQUOTES`: a field that starts with `"` runs to the next `"` (delimiters inside are data, and
//!   with ESCAPE `\"` is a quote); text after the closing quote up to the delimiter is kept (with
//!   ESCAPE, unescaped). Only `"` is a quote character (the page also mentions single quotation
//!   marks; we leave those as data).
//!   Records still end at a line feed: a quote left open at the end of the line is error 1214 (the
//!   documentation: "an unmatched quotation mark ... fails to load that row").
//! - `CSV [QUOTE 'q']`: RFC 4180 — a field starting with the quote runs to the closing quote, `qq` inside
//!   is a quote, line feeds inside are data; a quote inside an unquoted field is data.
//! - A quoted field is never `NULL AS`: the NULL string is compared with the field as written, before
//!   quotes and escapes are removed (as PostgreSQL's CSV mode does).
//!
//! # Values
//! - CHAR / VARCHAR: empty → NULL with EMPTYASNULL (a quoted `""` too); blanks only (space, tab, VT,
//!   FF) → NULL with BLANKSASNULL; TRIMBLANKS drops trailing spaces and tabs of VARCHAR values; CHAR
//!   values always lose trailing spaces (they are padding, PostgreSQL drops them too). Lengths count
//!   bytes (Redshift's rule): too long is error 1204 unless TRUNCATECOLUMNS, which cuts on a UTF-8
//!   character boundary. CHAR holds single-byte characters only (Redshift: "multibyte character not
//!   supported for CHAR"), error 1220.
//! - Invalid UTF-8 (or NUL, which PostgreSQL text cannot hold) is error 1220; with ACCEPTINVCHARS a
//!   VARCHAR value gets each invalid sequence replaced by the replacement character repeated to the
//!   sequence's byte length (the length limit applies after the replacement).
//! - Other types: an empty or blank field is NULL; surrounding blanks are ignored.
//! - A NULL into a NOT NULL column is error 1213.
//! - Fewer fields than columns: error 1214 ("Delimiter not found", what Redshift reports for short
//!   text rows), or NULLs with FILLRECORD. More fields: error 1202.
//! - Dates and times: see [`super::datetime`]; numbers and booleans: see [`super::value`].

use super::datetime::{self, Pattern};
use super::value::{self, ConvError, code};
use crate::job::{Column, ColumnType, DateFormat, Format, TimeFormat};

/// PostgreSQL's COPY format the parser writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyEncoding {
    /// `COPY ... FROM STDIN (FORMAT binary)`: the fastest for the server.
    Binary,
    /// `COPY ... FROM STDIN` in the default text format (tab-separated, `\N` for NULL).
    Text,
}

/// One rejected row, with the fields of Redshift's `STL_LOAD_ERRORS`
/// (<https://docs.aws.amazon.com/redshift/latest/dg/r_STL_LOAD_ERRORS.html>).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The input file's name (`filename`).
    pub file: String,
    /// 1-based line of the file where the record starts (`line_number`).
    pub line: u64,
    /// The column the error is about (`colname`), if any.
    pub column: Option<String>,
    /// Byte position of the error within the field (`position`; 0 when it is about the whole field).
    pub position: u32,
    /// Redshift's load error code (`err_code`), see
    /// <https://docs.aws.amazon.com/redshift/latest/dg/r_Load_Error_Reference.html>.
    pub code: u32,
    /// What is wrong (`err_reason`).
    pub reason: String,
    /// The record as read, at most 1024 bytes, invalid UTF-8 replaced (`raw_line`).
    pub raw_line: String,
    /// The field as read, at most 1024 bytes (`raw_field_value`).
    pub raw_field: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        if let Some(c) = &self.column {
            write!(f, "column {c}: ")?;
        }
        write!(f, "{} (error {})", self.reason, self.code)
    }
}

/// Encoded rows of one piece of a file, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// COPY tuples only (for binary, without the file header and trailer: see
    /// [`super::binary_copy_header`]).
    pub data: Vec<u8>,
    /// Rows in `data`.
    pub rows: u64,
    /// Rows rejected in this piece.
    pub errors: Vec<LoadError>,
}

/// One field from [`RowParser::split_record`]: its value, and whether it is the `NULL AS` string.
pub(crate) type SplitField = (Vec<u8>, bool);

/// How a column's values are converted.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Int { min: i64, max: i64, bytes: u8 },
    Decimal { precision: u8, scale: u8 },
    Real,
    Double,
    Bool,
    Char(usize),
    Varchar(usize),
    Date,
    Timestamp,
    TimestampTz,
    Time,
    TimeTz,
}

#[derive(Debug, Clone)]
struct Col {
    name: String,
    ty: ColumnType,
    kind: Kind,
    nullable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    None,
    RemoveQuotes,
    Csv(u8),
}

#[derive(Debug, Clone)]
enum DateRule {
    Auto,
    Pattern(Pattern),
}

#[derive(Debug, Clone)]
enum TimeRule {
    Auto,
    EpochSecs,
    EpochMillis,
    Pattern(Pattern),
}

/// Where a record ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordEnd {
    /// At this line feed.
    Newline(usize),
    /// Not within the data; `in_quote` when a CSV quoted field is still open.
    Open { in_quote: bool },
}

/// Compiled once per table from its columns and resolved format; shared by the worker threads.
#[derive(Debug, Clone)]
pub struct RowParser {
    cols: Vec<Col>,
    delimiter: u8,
    quoting: Quoting,
    escape: bool,
    null_as: Vec<u8>,
    empty_as_null: bool,
    blanks_as_null: bool,
    truncate_columns: bool,
    accept_inv_chars: Option<u8>,
    fill_record: bool,
    ignore_blank_lines: bool,
    trim_blanks: bool,
    round_dec: bool,
    accept_any_date: bool,
    date: DateRule,
    time: TimeRule,
    pub(crate) ignore_header: u32,
    pub(crate) compression: crate::job::Compression,
    encoding: CopyEncoding,
}

/// Reusable buffers of one worker.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    unescaped: Vec<u8>,
    value: Vec<u8>,
}

/// Where a field's value is.
enum Src {
    Rec(usize, usize),
    Scratch,
}

struct Field {
    src: Src,
    /// The field as written, `rec[raw.0..raw.1]`.
    raw: (usize, usize),
    quoted: bool,
    /// Where the next field starts, if a delimiter followed.
    next: Option<usize>,
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | 0x0B | 0x0C)
}

fn cut_lossy(s: &[u8]) -> String {
    String::from_utf8_lossy(&s[..s.len().min(1024)]).into_owned()
}

/// Odd number of backslashes right before `at` (stopping at `floor`).
fn escaped_at(data: &[u8], floor: usize, at: usize) -> bool {
    let mut n = 0;
    let mut i = at;
    while i > floor && data[i - 1] == b'\\' {
        n += 1;
        i -= 1;
    }
    n % 2 == 1
}

impl RowParser {
    /// Compiles the parser for a table's columns (in file order) and resolved format.
    ///
    /// # Errors
    /// A message naming the option that cannot be used (a bad DATEFORMAT/TIMEFORMAT pattern, a quote or
    /// delimiter that is a line break, no columns).
    pub fn new(
        columns: &[Column],
        format: &Format,
        encoding: CopyEncoding,
    ) -> Result<Self, String> {
        if columns.is_empty() {
            return Err("a table needs at least one column".into());
        }
        if columns.len() > 1600 {
            return Err("PostgreSQL tables hold at most 1600 columns".into());
        }
        if matches!(format.delimiter, b'\n' | b'\r') {
            return Err("the delimiter must not be a line break".into());
        }
        let quoting = match (format.csv_quote, format.remove_quotes) {
            (Some(_), true) => return Err("CSV cannot be combined with REMOVEQUOTES".into()),
            (Some(q), false) => {
                if matches!(q, b'\n' | b'\r') || q == format.delimiter {
                    return Err(
                        "the CSV quote must differ from the delimiter and line breaks".into(),
                    );
                }
                if format.escape {
                    return Err("CSV cannot be combined with ESCAPE".into());
                }
                Quoting::Csv(q)
            }
            (None, true) => {
                if format.delimiter == b'"' {
                    return Err("REMOVEQUOTES needs a delimiter other than '\"'".into());
                }
                Quoting::RemoveQuotes
            }
            (None, false) => Quoting::None,
        };
        if format.escape && format.delimiter == b'\\' {
            return Err("ESCAPE needs a delimiter other than backslash".into());
        }
        let date = match &format.date_format {
            DateFormat::Auto => DateRule::Auto,
            DateFormat::Pattern(p) => DateRule::Pattern(Pattern::compile(p)?),
        };
        let time = match &format.time_format {
            TimeFormat::Auto => TimeRule::Auto,
            TimeFormat::EpochSecs => TimeRule::EpochSecs,
            TimeFormat::EpochMillis => TimeRule::EpochMillis,
            TimeFormat::Pattern(p) => TimeRule::Pattern(Pattern::compile(p)?),
        };
        let cols = columns
            .iter()
            .map(|c| Col {
                name: c.name.as_str().to_owned(),
                ty: c.ty,
                nullable: c.nullable,
                kind: match c.ty {
                    ColumnType::SmallInt => Kind::Int {
                        min: i16::MIN.into(),
                        max: i16::MAX.into(),
                        bytes: 2,
                    },
                    ColumnType::Integer => Kind::Int {
                        min: i32::MIN.into(),
                        max: i32::MAX.into(),
                        bytes: 4,
                    },
                    ColumnType::BigInt => Kind::Int {
                        min: i64::MIN,
                        max: i64::MAX,
                        bytes: 8,
                    },
                    ColumnType::Decimal { precision, scale } => Kind::Decimal { precision, scale },
                    ColumnType::Real => Kind::Real,
                    ColumnType::Double => Kind::Double,
                    ColumnType::Boolean => Kind::Bool,
                    ColumnType::Char(n) => Kind::Char(n as usize),
                    ColumnType::Varchar(n) => Kind::Varchar(n as usize),
                    ColumnType::Date => Kind::Date,
                    ColumnType::Timestamp => Kind::Timestamp,
                    ColumnType::TimestampTz => Kind::TimestampTz,
                    ColumnType::Time => Kind::Time,
                    ColumnType::TimeTz => Kind::TimeTz,
                },
            })
            .collect();
        Ok(RowParser {
            cols,
            delimiter: format.delimiter,
            quoting,
            escape: format.escape,
            null_as: format.null_as.as_bytes().to_vec(),
            empty_as_null: format.empty_as_null,
            blanks_as_null: format.blanks_as_null,
            truncate_columns: format.truncate_columns,
            accept_inv_chars: format.accept_inv_chars,
            fill_record: format.fill_record,
            ignore_blank_lines: format.ignore_blank_lines,
            trim_blanks: format.trim_blanks,
            round_dec: format.round_dec,
            accept_any_date: format.accept_any_date,
            date,
            time,
            ignore_header: format.ignore_header,
            compression: format.compression,
            encoding,
        })
    }

    /// The COPY encoding this parser writes.
    pub fn encoding(&self) -> CopyEncoding {
        self.encoding
    }

    /// Whether records may span lines (CSV quotes, ESCAPE'd line feeds): then finding the end of a
    /// record needs a scan from its start.
    pub(crate) fn multiline(&self) -> bool {
        self.escape || matches!(self.quoting, Quoting::Csv(_))
    }

    /// Finds the end of the record starting at `start`. With `eof`, `data` is all there is (a CSV
    /// quote at the very end closes its field).
    pub(crate) fn record_end(&self, data: &[u8], start: usize, eof: bool) -> RecordEnd {
        match self.quoting {
            Quoting::Csv(q) => self.csv_record_end(data, start, eof, q),
            _ if self.escape => {
                let mut from = start;
                while let Some(i) = memchr::memchr(b'\n', &data[from..]) {
                    let at = from + i;
                    if !escaped_at(data, start, at) {
                        return RecordEnd::Newline(at);
                    }
                    from = at + 1;
                }
                RecordEnd::Open { in_quote: false }
            }
            _ => match memchr::memchr(b'\n', &data[start..]) {
                Some(i) => RecordEnd::Newline(start + i),
                None => RecordEnd::Open { in_quote: false },
            },
        }
    }

    fn csv_record_end(&self, data: &[u8], start: usize, eof: bool, q: u8) -> RecordEnd {
        let mut i = start;
        loop {
            // Outside quotes: the next quote or line feed.
            let Some(k) = memchr::memchr2(q, b'\n', &data[i..]) else {
                return RecordEnd::Open { in_quote: false };
            };
            let j = i + k;
            if data[j] == b'\n' {
                return RecordEnd::Newline(j);
            }
            i = j + 1;
            if j != start && data[j - 1] != self.delimiter {
                continue; // a quote inside an unquoted field is data
            }
            // Inside quotes: up to the closing quote (`qq` is a quote).
            loop {
                let Some(k) = memchr::memchr(q, &data[i..]) else {
                    return RecordEnd::Open { in_quote: true };
                };
                let j = i + k;
                match data.get(j + 1) {
                    Some(&b) if b == q => i = j + 2,
                    Some(_) => {
                        i = j + 1;
                        break;
                    }
                    None if eof => {
                        i = j + 1;
                        break;
                    }
                    None => return RecordEnd::Open { in_quote: true },
                }
            }
        }
    }

    /// Parses a piece of a file made of whole records; error lines are relative to the piece
    /// (1-based). Returns the batch and the number of lines consumed.
    pub(crate) fn parse_chunk(
        &self,
        data: &[u8],
        file: &str,
        scratch: &mut Scratch,
    ) -> (Batch, u64) {
        let mut batch = Batch {
            data: Vec::with_capacity(data.len() + data.len() / 2 + 64),
            rows: 0,
            errors: Vec::new(),
        };
        let multiline = self.multiline();
        let mut pos = 0;
        let mut line = 0u64;
        while pos < data.len() {
            let (end, next) = match self.record_end(data, pos, true) {
                RecordEnd::Newline(i) => (i, i + 1),
                RecordEnd::Open { .. } => (data.len(), data.len()),
            };
            let rec = &data[pos..end];
            if rec.len() > super::MAX_RECORD_BYTES {
                let e = ConvError::new(
                    code::INVALID_LINE,
                    0,
                    "Input line is longer than the 4 MB limit of one row",
                );
                let first_line = memchr::memchr(b'\n', rec).map_or(rec, |i| &rec[..i]);
                self.reject(
                    &mut batch,
                    (file, line + 1, first_line),
                    None,
                    first_line,
                    e,
                );
            } else {
                self.parse_record(rec, file, line + 1, &mut batch, scratch);
            }
            line += 1;
            if multiline {
                line += memchr::memchr_iter(b'\n', rec).count() as u64;
            }
            pos = next;
        }
        (batch, line)
    }

    fn reject(
        &self,
        batch: &mut Batch,
        (file, line, rec): (&str, u64, &[u8]),
        col: Option<usize>,
        raw: &[u8],
        err: ConvError,
    ) {
        batch.errors.push(LoadError {
            file: file.to_owned(),
            line,
            column: col.and_then(|c| self.cols.get(c)).map(|c| c.name.clone()),
            position: err.pos,
            code: err.code,
            reason: err.reason,
            raw_line: cut_lossy(rec),
            raw_field: cut_lossy(raw),
        });
    }

    /// Parses one record (without its line feed) into `batch`.
    pub(crate) fn parse_record(
        &self,
        rec: &[u8],
        file: &str,
        line: u64,
        batch: &mut Batch,
        scratch: &mut Scratch,
    ) {
        let rec = match rec.last() {
            Some(b'\r') if !(self.escape && escaped_at(rec, 0, rec.len() - 1)) => {
                &rec[..rec.len() - 1]
            }
            _ => rec,
        };
        if rec.is_empty() && self.ignore_blank_lines {
            return;
        }
        let out = &mut batch.data;
        let row_start = out.len();
        let ncols = self.cols.len();
        if self.encoding == CopyEncoding::Binary {
            out.extend_from_slice(&(ncols as i16).to_be_bytes());
        }
        let Scratch { unescaped, value } = scratch;
        let mut col = 0;
        let mut pos = 0;
        loop {
            let field = match self.split_field(rec, pos, unescaped) {
                Ok(f) => f,
                Err(e) => {
                    out.truncate(row_start);
                    let c = (col < ncols).then_some(col);
                    self.reject(batch, (file, line, rec), c, &rec[pos..], e);
                    return;
                }
            };
            let raw = &rec[field.raw.0..field.raw.1];
            if col >= ncols {
                out.truncate(row_start);
                let e = ConvError::new(
                    code::EXTRA_COLUMNS,
                    0,
                    format!("Extra column(s) found: the table has {ncols} column(s)"),
                );
                self.reject(batch, (file, line, rec), None, raw, e);
                return;
            }
            let v = match field.src {
                Src::Rec(a, b) => &rec[a..b],
                Src::Scratch => &unescaped[..],
            };
            if self.encoding == CopyEncoding::Text && col > 0 {
                out.push(b'\t');
            }
            let is_null = !field.quoted && raw == self.null_as.as_slice();
            if let Err(e) = self.write_value(col, v, is_null, out, value) {
                out.truncate(row_start);
                self.reject(batch, (file, line, rec), Some(col), raw, e);
                return;
            }
            col += 1;
            match field.next {
                Some(n) => pos = n,
                None => break,
            }
        }
        while col < ncols {
            if !self.fill_record {
                out.truncate(row_start);
                let e = ConvError::new(
                    code::DELIMITER_NOT_FOUND,
                    0,
                    format!("Delimiter not found: {col} field(s) for {ncols} column(s)"),
                );
                self.reject(batch, (file, line, rec), Some(col), b"", e);
                return;
            }
            if self.encoding == CopyEncoding::Text {
                out.push(b'\t');
            }
            if let Err(e) = self.write_null(col, out) {
                out.truncate(row_start);
                self.reject(batch, (file, line, rec), Some(col), b"", e);
                return;
            }
            col += 1;
        }
        if self.encoding == CopyEncoding::Text {
            out.push(b'\n');
        }
        batch.rows += 1;
    }

    /// Splits off the field starting at `pos` (which may be `rec.len()`: an empty last field).
    fn split_field(
        &self,
        rec: &[u8],
        pos: usize,
        unescaped: &mut Vec<u8>,
    ) -> Result<Field, ConvError> {
        let d = self.delimiter;
        let quote = match self.quoting {
            Quoting::None => None,
            Quoting::RemoveQuotes => Some(b'"'),
            Quoting::Csv(q) => Some(q),
        };
        if let Some(q) = quote
            && rec.get(pos) == Some(&q)
        {
            return self.split_quoted(rec, pos, q, unescaped);
        }
        if !self.escape {
            return Ok(match memchr::memchr(d, &rec[pos..]) {
                Some(i) => Field {
                    src: Src::Rec(pos, pos + i),
                    raw: (pos, pos + i),
                    quoted: false,
                    next: Some(pos + i + 1),
                },
                None => Field {
                    src: Src::Rec(pos, rec.len()),
                    raw: (pos, rec.len()),
                    quoted: false,
                    next: None,
                },
            });
        }
        // ESCAPE: the value goes through the scratch buffer; it is used only if a backslash showed up.
        unescaped.clear();
        let (end, next, escaped) = self.scan_escaped(rec, pos, unescaped);
        Ok(Field {
            src: if escaped {
                Src::Scratch
            } else {
                Src::Rec(pos, end)
            },
            raw: (pos, end),
            quoted: false,
            next,
        })
    }

    /// With ESCAPE: appends the unescaped bytes from `from` up to the next unescaped delimiter to
    /// `out`. Returns the end of the field, where the next field starts (if a delimiter followed) and
    /// whether a backslash was seen.
    fn scan_escaped(
        &self,
        rec: &[u8],
        from: usize,
        out: &mut Vec<u8>,
    ) -> (usize, Option<usize>, bool) {
        let mut i = from;
        let mut escaped = false;
        loop {
            match memchr::memchr2(self.delimiter, b'\\', &rec[i..]) {
                Some(k) if rec[i + k] == b'\\' => {
                    let at = i + k;
                    escaped = true;
                    out.extend_from_slice(&rec[i..at]);
                    if let Some(&b) = rec.get(at + 1) {
                        out.push(b);
                    }
                    i = (at + 2).min(rec.len());
                }
                found => {
                    let end = found.map_or(rec.len(), |k| i + k);
                    out.extend_from_slice(&rec[i..end]);
                    return (end, found.map(|_| end + 1), escaped);
                }
            }
        }
    }

    /// A field that starts with the quote character at `pos`.
    fn split_quoted(
        &self,
        rec: &[u8],
        pos: usize,
        q: u8,
        unescaped: &mut Vec<u8>,
    ) -> Result<Field, ConvError> {
        let csv = matches!(self.quoting, Quoting::Csv(_));
        unescaped.clear();
        let mut i = pos + 1;
        let mut copied = false;
        let close = loop {
            let found = if self.escape {
                memchr::memchr2(q, b'\\', &rec[i..])
            } else {
                memchr::memchr(q, &rec[i..])
            };
            let Some(k) = found else {
                return Err(ConvError::new(
                    code::DELIMITER_NOT_FOUND,
                    0,
                    "Delimiter not found: unmatched quote",
                ));
            };
            let at = i + k;
            if rec[at] == b'\\' {
                copied = true;
                unescaped.extend_from_slice(&rec[i..at]);
                if let Some(&b) = rec.get(at + 1) {
                    unescaped.push(b);
                }
                i = (at + 2).min(rec.len());
            } else if csv && rec.get(at + 1) == Some(&q) {
                copied = true;
                unescaped.extend_from_slice(&rec[i..=at]);
                i = at + 2;
            } else {
                unescaped.extend_from_slice(&rec[i..at]);
                break at;
            }
        };
        // After the closing quote: anything up to the delimiter is kept (with ESCAPE, unescaped).
        let after = close + 1;
        let (end, next) = if self.escape {
            let (end, next, _) = self.scan_escaped(rec, after, unescaped);
            (end, next)
        } else {
            let (end, next) = match memchr::memchr(self.delimiter, &rec[after..]) {
                Some(k) => (after + k, Some(after + k + 1)),
                None => (rec.len(), None),
            };
            unescaped.extend_from_slice(&rec[after..end]);
            (end, next)
        };
        copied |= end > after;
        Ok(Field {
            src: if copied {
                Src::Scratch
            } else {
                Src::Rec(pos + 1, close)
            },
            raw: (pos, end),
            quoted: true,
            next,
        })
    }

    /// Splits one record (without its line feed) into its fields by exactly the rules a load uses
    /// (quotes, escapes, a trailing CR), for `etl init`'s sampler: each field's value as the column
    /// converter would see it, and whether it is the `NULL AS` string as written.
    ///
    /// # Errors
    /// The error code and reason a load would report for a record that cannot be split (an
    /// unmatched quote).
    pub(crate) fn split_record(&self, rec: &[u8]) -> Result<Vec<SplitField>, (u32, String)> {
        let rec = match rec.last() {
            Some(b'\r') if !(self.escape && escaped_at(rec, 0, rec.len() - 1)) => {
                &rec[..rec.len() - 1]
            }
            _ => rec,
        };
        let mut unescaped = Vec::new();
        let mut fields = Vec::new();
        let mut pos = 0;
        loop {
            let field = self
                .split_field(rec, pos, &mut unescaped)
                .map_err(|e| (e.code, e.reason))?;
            let raw = &rec[field.raw.0..field.raw.1];
            let is_null = !field.quoted && raw == self.null_as.as_slice();
            let v = match field.src {
                Src::Rec(a, b) => rec[a..b].to_vec(),
                Src::Scratch => unescaped.clone(),
            };
            fields.push((v, is_null));
            match field.next {
                Some(n) => pos = n,
                None => return Ok(fields),
            }
        }
    }

    /// Converts one field (from [`RowParser::split_record`]) into column `col` as a load would:
    /// `Ok(None)` when it loads as NULL, `Ok(Some(bytes))` with the value in PostgreSQL's binary
    /// COPY form (without its length), or the load error's code and reason. For `etl init`'s
    /// sampler, which probes each value against candidate types; the parser must write
    /// [`CopyEncoding::Binary`].
    pub(crate) fn convert_field(
        &self,
        col: usize,
        value: &[u8],
        is_null: bool,
    ) -> Result<Option<Vec<u8>>, (u32, String)> {
        debug_assert_eq!(
            self.encoding,
            CopyEncoding::Binary,
            "probe with a binary parser"
        );
        let mut out = Vec::new();
        let mut tmp = Vec::new();
        self.write_value(col, value, is_null, &mut out, &mut tmp)
            .map_err(|e| (e.code, e.reason))?;
        Ok(match out.get(..4) {
            Some(len) if len == (-1i32).to_be_bytes() => None,
            _ => Some(out.split_off(4.min(out.len()))),
        })
    }

    fn write_null(&self, col: usize, out: &mut Vec<u8>) -> Result<(), ConvError> {
        let c = &self.cols[col];
        if !c.nullable {
            return Err(ConvError::new(
                code::NOT_NULL,
                0,
                format!("Missing data for not-null field {}", c.name),
            ));
        }
        match self.encoding {
            CopyEncoding::Binary => out.extend_from_slice(&(-1i32).to_be_bytes()),
            CopyEncoding::Text => out.extend_from_slice(b"\\N"),
        }
        Ok(())
    }

    fn write_bytes(&self, out: &mut Vec<u8>, v: &[u8]) {
        match self.encoding {
            CopyEncoding::Binary => {
                out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                out.extend_from_slice(v);
            }
            CopyEncoding::Text => value::write_text_escaped(out, v),
        }
    }

    /// Converts one field and appends it to `out`.
    fn write_value(
        &self,
        col: usize,
        v: &[u8],
        is_null: bool,
        out: &mut Vec<u8>,
        tmp: &mut Vec<u8>,
    ) -> Result<(), ConvError> {
        if is_null {
            return self.write_null(col, out);
        }
        let c = &self.cols[col];
        let binary = self.encoding == CopyEncoding::Binary;
        match c.kind {
            Kind::Char(n) | Kind::Varchar(n) => {
                let is_char = matches!(c.kind, Kind::Char(_));
                if v.is_empty() && self.empty_as_null
                    || self.blanks_as_null && !v.is_empty() && v.iter().all(|&b| is_blank(b))
                {
                    return self.write_null(col, out);
                }
                let mut v = v;
                if let Some((at, len)) = value::find_invalid_utf8(v) {
                    match self.accept_inv_chars {
                        Some(r) if !is_char => {
                            tmp.clear();
                            value::replace_invalid_utf8(v, r, tmp);
                            v = &tmp[..];
                        }
                        _ => {
                            return Err(ConvError::new(
                                code::INVALID_UTF8,
                                at,
                                format!(
                                    "Invalid UTF8 string: invalid or unsupported byte sequence {:02x?} at byte {at}",
                                    &v[at..at + len]
                                ),
                            ));
                        }
                    }
                }
                if is_char {
                    if let Some(at) = v.iter().position(|&b| b >= 0x80) {
                        return Err(ConvError::new(
                            code::INVALID_UTF8,
                            at,
                            "Multibyte character not supported for CHAR (Hint: try using VARCHAR)",
                        ));
                    }
                    while let [rest @ .., b' '] = v {
                        v = rest;
                    }
                } else if self.trim_blanks {
                    while let [rest @ .., b' ' | b'\t'] = v {
                        v = rest;
                    }
                }
                if v.len() > n {
                    if self.truncate_columns {
                        v = value::utf8_prefix(v, n);
                    } else {
                        return Err(ConvError::new(
                            code::OUT_OF_RANGE,
                            n,
                            format!(
                                "String length exceeds DDL length: {} bytes for {}",
                                v.len(),
                                c.ty
                            ),
                        ));
                    }
                }
                self.write_bytes(out, v);
                return Ok(());
            }
            _ => {}
        }
        if v.iter().all(|&b| is_blank(b)) {
            return self.write_null(col, out);
        }
        match c.kind {
            Kind::Int { min, max, bytes } => {
                let x = value::parse_int(v, min, max, c.ty.name())?;
                if binary {
                    out.extend_from_slice(&i32::from(bytes).to_be_bytes());
                    match bytes {
                        2 => out.extend_from_slice(&(x as i16).to_be_bytes()),
                        4 => out.extend_from_slice(&(x as i32).to_be_bytes()),
                        _ => out.extend_from_slice(&x.to_be_bytes()),
                    }
                } else {
                    value::write_int_text(out, x);
                }
            }
            Kind::Decimal { precision, scale } => {
                let x = value::parse_decimal(v, precision, scale, self.round_dec)?;
                if binary {
                    value::write_decimal_binary(out, x, scale);
                } else {
                    value::write_decimal_text(out, x, scale);
                }
            }
            Kind::Real => {
                let x = value::parse_f32(v)?;
                if binary {
                    out.extend_from_slice(&4i32.to_be_bytes());
                    out.extend_from_slice(&x.to_bits().to_be_bytes());
                } else {
                    value::write_float_text(out, f64::from(x), true);
                }
            }
            Kind::Double => {
                let x = value::parse_f64(v)?;
                if binary {
                    out.extend_from_slice(&8i32.to_be_bytes());
                    out.extend_from_slice(&x.to_bits().to_be_bytes());
                } else {
                    value::write_float_text(out, x, false);
                }
            }
            Kind::Bool => {
                let x = value::parse_bool(v)?;
                if binary {
                    out.extend_from_slice(&1i32.to_be_bytes());
                    out.push(u8::from(x));
                } else {
                    out.push(if x { b't' } else { b'f' });
                }
            }
            Kind::Date => {
                let parsed = match &self.date {
                    DateRule::Auto => datetime::parse_auto(v),
                    DateRule::Pattern(p) => p.parse(v, false),
                };
                let Some(dt) = parsed else {
                    if self.accept_any_date {
                        return self.write_null(col, out);
                    }
                    return Err(ConvError::new(
                        code::DATE,
                        0,
                        format!("Invalid date format - value '{}'", cut_lossy(v)),
                    ));
                };
                if binary {
                    out.extend_from_slice(&4i32.to_be_bytes());
                    out.extend_from_slice(&dt.days.to_be_bytes());
                } else {
                    datetime::write_date(out, dt.days);
                }
            }
            Kind::Timestamp | Kind::TimestampTz => {
                let tz = matches!(c.kind, Kind::TimestampTz);
                let micros = match &self.time {
                    TimeRule::Auto => datetime::parse_auto(v).map(|dt| {
                        if tz {
                            dt.utc_micros()
                        } else {
                            dt.local_micros()
                        }
                    }),
                    TimeRule::EpochSecs => datetime::parse_epoch(v, false),
                    TimeRule::EpochMillis => datetime::parse_epoch(v, true),
                    TimeRule::Pattern(p) => p.parse(v, tz).map(|dt| {
                        if tz {
                            dt.utc_micros()
                        } else {
                            dt.local_micros()
                        }
                    }),
                }
                .filter(|&m| datetime::timestamp_in_range(m));
                let Some(micros) = micros else {
                    if self.accept_any_date {
                        return self.write_null(col, out);
                    }
                    return Err(ConvError::new(
                        code::TIMESTAMP,
                        0,
                        format!(
                            "Invalid timestamp format or value - value '{}'",
                            cut_lossy(v)
                        ),
                    ));
                };
                if binary {
                    out.extend_from_slice(&8i32.to_be_bytes());
                    out.extend_from_slice(&micros.to_be_bytes());
                } else {
                    datetime::write_timestamp(out, micros);
                    if tz {
                        out.extend_from_slice(b"+00");
                    }
                }
            }
            Kind::Time | Kind::TimeTz => {
                let tz = matches!(c.kind, Kind::TimeTz);
                let parsed = datetime::parse_time_of_day(v, tz).or_else(|| {
                    datetime::parse_auto(v).map(|dt| (dt.time, if tz { dt.offset } else { None }))
                });
                let Some((micros, offset)) = parsed.filter(|(m, _)| *m <= datetime::USECS_PER_DAY)
                else {
                    return Err(ConvError::new(
                        code::TIMESTAMP,
                        0,
                        format!("Invalid time format - value '{}'", cut_lossy(v)),
                    ));
                };
                let offset = offset.unwrap_or(0);
                if binary {
                    out.extend_from_slice(&(if tz { 12i32 } else { 8 }).to_be_bytes());
                    out.extend_from_slice(&micros.to_be_bytes());
                    if tz {
                        out.extend_from_slice(&(-offset).to_be_bytes());
                    }
                } else {
                    datetime::write_time(out, micros);
                    if tz {
                        datetime::write_offset(out, offset);
                    }
                }
            }
            Kind::Char(_) | Kind::Varchar(_) => unreachable!("handled above"),
        }
        Ok(())
    }
}
