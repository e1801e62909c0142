//! Tests of the client-side parser: the data-driven conformance suite, rule-by-rule unit tests,
//! binary/text agreement, and deterministic property tests.
//!
//! `tests/fixtures/copy_conformance.json` is written once and run twice: here against the parser, and
//! end-to-end against PostgreSQL through the loader. It is an array of cases:
//! - `name`, `doc` (the Redshift rule and the page it comes from);
//! - `format`: a manifest `format` object, applied over the built-in defaults (each case spells out
//!   every option it depends on);
//! - `columns`: `{name, type, nullable}` in file order;
//! - `files`: `{name, content}` or `{name, content_base64}`, loaded in order;
//! - `rows`: the loaded rows in file order, each value as PostgreSQL's output functions print it
//!   (`COPY ... TO STDOUT`, psql): booleans `t`/`f`, CHAR(n) blank-padded to n, dates and timestamps
//!   with `DateStyle ISO`, TIMESTAMPTZ and TIMETZ with the session `TimeZone` set to `UTC`; `null`
//!   for NULL;
//! - `errors`: the rejected rows, `{file, line, column (null when not about one column), code}`;
//! - `fails`: whether the rejected rows of all files exceed MAXERROR; then no row is loaded and `rows`
//!   is empty.

use super::datetime;
use super::parser::Scratch;
use super::value;
use super::*;
use crate::job::{Column, ColumnType, Format, FormatSpec};
use crate::sql::Ident;

type Row = Vec<Option<String>>;
/// A rejected row as the tests compare it: line, column, code.
type ErrorKey = (u64, Option<String>, u32);

fn columns(spec: &[(&str, &str, bool)]) -> Vec<Column> {
    spec.iter()
        .map(|(n, t, nullable)| Column {
            name: Ident::new(*n).unwrap(),
            ty: ColumnType::parse(t).unwrap(),
            nullable: *nullable,
            encode: None,
            distkey: false,
            sortkey: None,
        })
        .collect()
}

/// A format from a manifest `format` object, over the built-in defaults.
fn format(json: &str) -> Format {
    let spec: FormatSpec = serde_json::from_str(json).unwrap();
    Format::default().apply(&spec).unwrap()
}

/// The plain-text defaults most unit tests use.
fn plain(extra: &str) -> Format {
    let mut f = format(
        r#"{"ignoreheader":0,"removequotes":false,"emptyasnull":false,"blanksasnull":false,"compression":"none"}"#,
    );
    if !extra.is_empty() {
        let spec: FormatSpec = serde_json::from_str(extra).unwrap();
        f = f.apply(&spec).unwrap();
    }
    f
}

/// Decodes PostgreSQL text COPY lines into rows.
fn decode_text(data: &[u8]) -> Vec<Row> {
    let mut rows = Vec::new();
    let Some(data) = data.strip_suffix(b"\n") else {
        assert!(data.is_empty(), "text COPY data ends with a line feed");
        return rows;
    };
    for line in data.split(|&b| b == b'\n') {
        let mut row = Vec::new();
        for field in line.split(|&b| b == b'\t') {
            if field == b"\\N" {
                row.push(None);
                continue;
            }
            let mut v = Vec::new();
            let mut i = 0;
            while i < field.len() {
                if field[i] == b'\\' && i + 1 < field.len() {
                    v.push(match field[i + 1] {
                        b't' => b'\t',
                        b'n' => b'\n',
                        b'r' => b'\r',
                        other => other,
                    });
                    i += 2;
                } else {
                    v.push(field[i]);
                    i += 1;
                }
            }
            row.push(Some(
                String::from_utf8(v).expect("text COPY output is UTF-8"),
            ));
        }
        rows.push(row);
    }
    rows
}

/// Decodes binary COPY tuples into the text PostgreSQL would print, using the column types.
fn decode_binary(mut data: &[u8], cols: &[Column]) -> Vec<Row> {
    fn take<'a>(d: &mut &'a [u8], n: usize) -> &'a [u8] {
        let (a, b) = d.split_at(n);
        *d = b;
        a
    }
    let mut rows = Vec::new();
    while !data.is_empty() {
        let n = i16::from_be_bytes(take(&mut data, 2).try_into().unwrap());
        assert_eq!(n as usize, cols.len());
        let mut row = Vec::new();
        for c in cols {
            let len = i32::from_be_bytes(take(&mut data, 4).try_into().unwrap());
            if len < 0 {
                row.push(None);
                continue;
            }
            let v = take(&mut data, len as usize);
            let mut out = Vec::new();
            match c.ty {
                ColumnType::SmallInt => value::write_int_text(
                    &mut out,
                    i16::from_be_bytes(v.try_into().unwrap()).into(),
                ),
                ColumnType::Integer => value::write_int_text(
                    &mut out,
                    i32::from_be_bytes(v.try_into().unwrap()).into(),
                ),
                ColumnType::BigInt => {
                    value::write_int_text(&mut out, i64::from_be_bytes(v.try_into().unwrap()))
                }
                ColumnType::Decimal { .. } => out = numeric_to_text(v).into_bytes(),
                ColumnType::Real => value::write_float_text(
                    &mut out,
                    f32::from_bits(u32::from_be_bytes(v.try_into().unwrap())).into(),
                    true,
                ),
                ColumnType::Double => value::write_float_text(
                    &mut out,
                    f64::from_bits(u64::from_be_bytes(v.try_into().unwrap())),
                    false,
                ),
                ColumnType::Boolean => out.push(if v == [1] { b't' } else { b'f' }),
                ColumnType::Char(_) | ColumnType::Varchar(_) => out.extend_from_slice(v),
                ColumnType::Date => {
                    datetime::write_date(&mut out, i32::from_be_bytes(v.try_into().unwrap()))
                }
                ColumnType::Timestamp => {
                    datetime::write_timestamp(&mut out, i64::from_be_bytes(v.try_into().unwrap()))
                }
                ColumnType::TimestampTz => {
                    datetime::write_timestamp(&mut out, i64::from_be_bytes(v.try_into().unwrap()));
                    out.extend_from_slice(b"+00");
                }
                ColumnType::Time => {
                    datetime::write_time(&mut out, i64::from_be_bytes(v.try_into().unwrap()))
                }
                ColumnType::TimeTz => {
                    datetime::write_time(&mut out, i64::from_be_bytes(v[..8].try_into().unwrap()));
                    let west = i32::from_be_bytes(v[8..].try_into().unwrap());
                    datetime::write_offset(&mut out, -west);
                }
            }
            row.push(Some(String::from_utf8(out).unwrap()));
        }
        rows.push(row);
    }
    rows
}

/// PostgreSQL's binary numeric (without the length word) as text, the way `numeric_out` prints it.
fn numeric_to_text(b: &[u8]) -> String {
    let rd = |i: usize| i16::from_be_bytes([b[i], b[i + 1]]);
    let n = rd(0) as usize;
    let weight = i32::from(rd(2));
    let sign = rd(4) as u16;
    let dscale = rd(6) as usize;
    let digit = |w: i32| -> i16 {
        let i = weight - w;
        if i >= 0 && (i as usize) < n {
            rd(8 + 2 * i as usize)
        } else {
            0
        }
    };
    let mut int = String::new();
    for w in (0..=weight.max(0)).rev() {
        let d = digit(w);
        if int.is_empty() {
            if d != 0 || w == 0 {
                int = d.to_string();
            }
        } else {
            int.push_str(&format!("{d:04}"));
        }
    }
    let mut frac = String::new();
    for g in 1..=dscale.div_ceil(4) as i32 {
        frac.push_str(&format!("{:04}", digit(-g)));
    }
    frac.truncate(dscale);
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    s.push_str(&int);
    if dscale > 0 {
        s.push('.');
        s.push_str(&frac);
    }
    s
}

/// The outcome of parsing some files with one parser.
#[derive(Debug, PartialEq)]
struct Outcome {
    rows: Vec<Row>,
    errors: Vec<LoadError>,
    stats: Vec<FileStats>,
}

fn run_files(
    cols: &[Column],
    fmt: &Format,
    enc: CopyEncoding,
    files: &[(&str, &[u8])],
    workers: usize,
    chunk: usize,
) -> Outcome {
    let parser = RowParser::new(cols, fmt, enc).unwrap();
    let mut data = Vec::new();
    let mut errors = Vec::new();
    let mut stats = Vec::new();
    for (name, content) in files {
        let mut rows = 0;
        let s = parse_file_with_chunk(*content, name, &parser, workers, chunk, &mut |b: Batch| {
            rows += b.rows;
            data.extend_from_slice(&b.data);
            errors.extend(b.errors);
            Ok(())
        })
        .unwrap();
        assert_eq!(s.rows, rows);
        stats.push(s);
    }
    let rows = match enc {
        CopyEncoding::Text => decode_text(&data),
        CopyEncoding::Binary => decode_binary(&data, cols),
    };
    Outcome {
        rows,
        errors,
        stats,
    }
}

/// Parses one plain file with the text encoding: rows and `(line, column, code)` of the errors.
fn parse(cols: &[(&str, &str, bool)], fmt: &Format, input: &[u8]) -> (Vec<Row>, Vec<ErrorKey>) {
    let cols = columns(cols);
    let text = run_files(
        &cols,
        fmt,
        CopyEncoding::Text,
        &[("f", input)],
        0,
        CHUNK_BYTES,
    );
    let binary = run_files(&cols, fmt, CopyEncoding::Binary, &[("f", input)], 2, 7);
    assert_eq!(text.rows, binary.rows, "binary and text disagree");
    assert_eq!(text.errors, binary.errors);
    let errs = text
        .errors
        .iter()
        .map(|e| (e.line, e.column.clone(), e.code))
        .collect();
    (text.rows, errs)
}

fn r(values: &[Option<&str>]) -> Row {
    values.iter().map(|v| v.map(str::to_owned)).collect()
}

// ------------------------------------------------------------------------------------------------
// The conformance suite.

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64"),
        }
    };
    let mut out = Vec::new();
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c) << (18 - 6 * i);
        }
        let n = chunk.len() * 6 / 8;
        for i in 0..n {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[test]
fn conformance_suite() {
    let text = include_str!("../../../tests/fixtures/copy_conformance.json");
    let cases: Vec<serde_json::Value> = serde_json::from_str(text).unwrap();
    assert!(cases.len() >= 40);
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        assert!(
            case["doc"].as_str().is_some_and(|d| !d.is_empty()),
            "{name}: doc"
        );
        let spec: FormatSpec = serde_json::from_value(case["format"].clone()).unwrap();
        let fmt = Format::default()
            .apply(&spec)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let cols: Vec<Column> = case["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| Column {
                name: Ident::new(c["name"].as_str().unwrap()).unwrap(),
                ty: ColumnType::parse(c["type"].as_str().unwrap()).unwrap(),
                nullable: c["nullable"].as_bool().unwrap(),
                encode: None,
                distkey: false,
                sortkey: None,
            })
            .collect();
        let files: Vec<(String, Vec<u8>)> = case["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let content = match (f["content"].as_str(), f["content_base64"].as_str()) {
                    (Some(c), None) => c.as_bytes().to_vec(),
                    (None, Some(b)) => base64_decode(b),
                    _ => panic!("{name}: a file needs content or content_base64"),
                };
                (f["name"].as_str().unwrap().to_owned(), content)
            })
            .collect();
        let file_refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, c)| (n.as_str(), c.as_slice()))
            .collect();
        let want_rows: Vec<Row> = serde_json::from_value(case["rows"].clone()).unwrap();
        // PostgreSQL prints CHAR(n) blank-padded; the parser writes the value without the padding.
        let pad = |rows: Vec<Row>| -> Vec<Row> {
            rows.into_iter()
                .map(|row| {
                    row.into_iter()
                        .zip(&cols)
                        .map(|(v, c)| match (v, c.ty) {
                            (Some(v), ColumnType::Char(n)) => {
                                Some(format!("{v:<width$}", width = n as usize))
                            }
                            (v, _) => v,
                        })
                        .collect()
                })
                .collect()
        };
        let want_errors: Vec<(String, u64, Option<String>, u32)> = case["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["file"].as_str().unwrap().to_owned(),
                    e["line"].as_u64().unwrap(),
                    e["column"].as_str().map(str::to_owned),
                    e["code"].as_u64().unwrap() as u32,
                )
            })
            .collect();
        let want_fails = case["fails"].as_bool().unwrap();
        let reference = run_files(&cols, &fmt, CopyEncoding::Text, &file_refs, 0, CHUNK_BYTES);
        for (enc, workers, chunk) in [
            (CopyEncoding::Text, 0, CHUNK_BYTES),
            (CopyEncoding::Binary, 2, CHUNK_BYTES),
            (CopyEncoding::Text, 1, 3),
            (CopyEncoding::Binary, 0, 1),
        ] {
            let got = run_files(&cols, &fmt, enc, &file_refs, workers, chunk);
            let fails = got.errors.len() as u64 > fmt.max_error;
            assert_eq!(fails, want_fails, "{name}: fails ({enc:?})");
            let loaded = if fails {
                Vec::new()
            } else {
                pad(got.rows.clone())
            };
            assert_eq!(
                loaded, want_rows,
                "{name}: rows ({enc:?}, {workers} workers)"
            );
            let errs: Vec<_> = got
                .errors
                .iter()
                .map(|e| (e.file.clone(), e.line, e.column.clone(), e.code))
                .collect();
            assert_eq!(
                errs, want_errors,
                "{name}: errors ({enc:?}): {:#?}",
                got.errors
            );
            assert_eq!(got.rows, reference.rows, "{name}: encodings agree");
            assert_eq!(got.stats, reference.stats, "{name}: stats");
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Rule-by-rule unit tests (the conformance suite covers most rules with whole files; these pin down
// details it does not show).

#[test]
fn error_report_fields() {
    let cols = columns(&[("a", "varchar(3)", true), ("b", "integer", true)]);
    let fmt = plain("");
    let long = format!("{}|1", "x".repeat(3000));
    let input = format!("ok|1\nabc|12x4\n{long}\n");
    let out = run_files(
        &cols,
        &fmt,
        CopyEncoding::Text,
        &[("data.txt", input.as_bytes())],
        0,
        64,
    );
    assert_eq!(out.rows, vec![r(&[Some("ok"), Some("1")])]);
    let e = &out.errors[0];
    assert_eq!(
        (
            e.file.as_str(),
            e.line,
            e.column.as_deref(),
            e.code,
            e.position
        ),
        ("data.txt", 2, Some("b"), 1207, 2)
    );
    assert_eq!(
        (e.raw_line.as_str(), e.raw_field.as_str()),
        ("abc|12x4", "12x4")
    );
    assert!(e.reason.contains("Invalid digit"), "{}", e.reason);
    let e = &out.errors[1];
    assert_eq!((e.line, e.code), (3, 1204));
    assert_eq!(e.raw_line.len(), 1024, "raw_line is cut to 1024 bytes");
    assert_eq!(e.raw_field.len(), 1024);
    assert!(
        e.to_string()
            .starts_with("data.txt:3: column a: String length exceeds"),
        "{e}"
    );
    assert_eq!(out.stats[0].lines, 3);
    assert_eq!(out.stats[0].rejected, 2);
}

#[test]
fn nul_bytes_are_invalid_characters() {
    let cols = &[("a", "varchar(5)", true)];
    let (rows, errs) = parse(cols, &plain(""), b"a\0b\n");
    assert!(rows.is_empty());
    assert_eq!(errs, vec![(1, Some("a".into()), 1220)]);
    let (rows, _) = parse(cols, &plain(r#"{"acceptinvchars":true}"#), b"a\0b\n");
    assert_eq!(rows, vec![r(&[Some("a?b")])]);
}

#[test]
fn acceptinvchars_is_for_varchar_only() {
    let cols = &[("c", "char(5)", true)];
    let (rows, errs) = parse(cols, &plain(r#"{"acceptinvchars":true}"#), b"a\xffb\n");
    assert!(rows.is_empty());
    assert_eq!(errs[0].2, 1220);
    // The length limit applies after the replacement.
    let cols = &[("v", "varchar(3)", true)];
    let (rows, errs) = parse(
        cols,
        &plain(r#"{"acceptinvchars":true}"#),
        b"a\xe2\x82\n\xe2\x82\xacxx\n",
    );
    assert_eq!(rows, vec![r(&[Some("a??")])]);
    assert_eq!(errs, vec![(2, Some("v".into()), 1204)]);
}

#[test]
fn text_output_escapes_special_characters() {
    let cols = &[("a", "varchar(20)", true)];
    let (rows, _) = parse(
        cols,
        &plain(r#"{"escape":true}"#),
        b"tab\\\there\\\\ cr\\\r\n",
    );
    assert_eq!(rows, vec![r(&[Some("tab\there\\ cr\r")])]);
}

#[test]
fn quoted_null_string_is_data() {
    let cols = &[("a", "varchar(5)", true)];
    let (rows, _) = parse(cols, &plain(r#"{"removequotes":true}"#), b"\"\\N\"\n\\N\n");
    assert_eq!(rows, vec![r(&[Some("\\N")]), r(&[None])]);
    let (rows, _) = parse(cols, &plain(r#"{"csv":true,"null_as":""}"#), b"\"\"\n\n");
    assert_eq!(rows, vec![r(&[Some("")]), r(&[None])]);
}

#[test]
fn delimiter_only_lines_and_trailing_delimiters() {
    let cols = &[("a", "integer", true), ("b", "varchar(3)", true)];
    let (rows, errs) = parse(cols, &plain(""), b"|\n1|x|\n");
    assert_eq!(rows, vec![r(&[None, Some("")])]);
    assert_eq!(errs, vec![(2, None, 1202)]);
}

#[test]
fn dates_and_times_in_text_and_binary() {
    let cols = &[
        ("d", "date", true),
        ("t", "timestamp", true),
        ("z", "timestamptz", true),
        ("h", "time", true),
        ("k", "timetz", true),
    ];
    let (rows, errs) = parse(
        cols,
        &plain(""),
        b"0001-01-01|9999-12-31 23:59:59.999999|2000-01-01 00:00:00+14|00:00:00|23:59:59.999999-15:59\n\
          1999-12-31|1970-01-01 00:00:00|1970-01-01|12:00 AM|12:00 PM\n\
          10000-01-01|x|x|x|x\n",
    );
    assert_eq!(
        rows,
        vec![
            r(&[
                Some("0001-01-01"),
                Some("9999-12-31 23:59:59.999999"),
                Some("1999-12-31 10:00:00+00"),
                Some("00:00:00"),
                Some("23:59:59.999999-15:59"),
            ]),
            r(&[
                Some("1999-12-31"),
                Some("1970-01-01 00:00:00"),
                Some("1970-01-01 00:00:00+00"),
                Some("00:00:00"),
                Some("12:00:00+00"),
            ]),
        ]
    );
    assert_eq!(errs, vec![(3, Some("d".into()), 1205)]);
}

#[test]
fn over_long_lines_are_rejected_and_parsing_goes_on() {
    let cols = columns(&[("a", "varchar(max)", true)]);
    let mut input = b"first\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES + 10));
    input.extend_from_slice(b"\nlast\n");
    for fmt in [plain(""), plain(r#"{"csv":true}"#)] {
        let out = run_files(
            &cols,
            &fmt,
            CopyEncoding::Binary,
            &[("big", &input)],
            2,
            CHUNK_BYTES,
        );
        assert_eq!(out.rows, vec![r(&[Some("first")]), r(&[Some("last")])]);
        assert_eq!(out.errors.len(), 1);
        assert_eq!((out.errors[0].line, out.errors[0].code), (2, 1216));
        assert_eq!(out.stats[0].lines, 3);
    }
}

#[test]
fn compressed_inputs() {
    use std::io::Write;
    let cols = columns(&[("a", "integer", true)]);
    let raw = b"1\n2\n3\n";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(raw).unwrap();
    let gz = gz.finish().unwrap();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    bz.write_all(raw).unwrap();
    let bz = bz.finish().unwrap();
    let zs = zstd::encode_all(&raw[..], 1).unwrap();
    let fmt = plain(r#"{"compression":"auto"}"#);
    for (name, data) in [
        ("a.gz", &gz),
        ("a.bz2", &bz),
        ("a.zst", &zs),
        ("a.txt", &raw.to_vec()),
    ] {
        let out = run_files(
            &cols,
            &fmt,
            CopyEncoding::Text,
            &[(name, data)],
            1,
            CHUNK_BYTES,
        );
        assert_eq!(out.rows.len(), 3, "{name}");
        assert_eq!(out.stats[0].bytes_in, data.len() as u64);
        assert_eq!(out.stats[0].bytes_out, raw.len() as u64);
    }
    // A corrupt gzip file is an I/O error naming the file.
    let parser = RowParser::new(
        &cols,
        &plain(r#"{"compression":"gzip"}"#),
        CopyEncoding::Text,
    )
    .unwrap();
    let err = parse_file(&b"not gzip"[..], "bad.gz", &parser, 1, &mut |_| Ok(())).unwrap_err();
    assert!(err.to_string().contains("bad.gz"), "{err}");
}

#[test]
fn sink_errors_stop_the_parse() {
    let cols = columns(&[("a", "integer", true)]);
    let parser = RowParser::new(&cols, &plain(""), CopyEncoding::Binary).unwrap();
    let input: Vec<u8> = (0..200_000)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    for workers in [0, 2] {
        let mut calls = 0;
        let err = parse_file(&input[..], "f", &parser, workers, &mut |_| {
            calls += 1;
            Err(crate::Error::Internal("sink full".into()))
        })
        .unwrap_err();
        assert_eq!(calls, 1);
        assert!(err.to_string().contains("sink full"));
    }
}

#[test]
fn binary_header_and_trailer() {
    assert_eq!(binary_copy_header().len(), 19);
    assert!(binary_copy_header().starts_with(b"PGCOPY\n\xff\r\n\0"));
    assert_eq!(binary_copy_trailer(), &[0xff, 0xff]);
}

#[test]
fn invalid_options_are_refused() {
    let cols = columns(&[("a", "integer", true)]);
    let mut f = plain("");
    f.csv_quote = Some(b'"');
    f.remove_quotes = true;
    assert!(RowParser::new(&cols, &f, CopyEncoding::Text).is_err());
    let mut f = plain("");
    f.date_format = crate::job::DateFormat::Pattern("YYYY-QQ".into());
    assert!(
        RowParser::new(&cols, &f, CopyEncoding::Text)
            .unwrap_err()
            .contains("QQ")
    );
    assert!(RowParser::new(&[], &plain(""), CopyEncoding::Text).is_err());
}

// ------------------------------------------------------------------------------------------------
// Property tests with a deterministic generator.

/// xorshift64*: small, deterministic, good enough to explore inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

const TYPES: &[&str] = &[
    "smallint",
    "integer",
    "bigint",
    "decimal(10,3)",
    "real",
    "double precision",
    "boolean",
    "char(4)",
    "varchar(8)",
    "date",
    "timestamp",
    "timestamptz",
    "time",
    "timetz",
];

fn random_format(rng: &mut Rng) -> Format {
    let delim = *rng.pick(&["|", ",", "\\\\011", ";"]);
    let quoting = rng.below(3);
    let mut json = format!(
        r#"{{"delimiter":"{delim}","ignoreheader":{},"removequotes":{},"emptyasnull":{},"blanksasnull":{},"compression":"none","fillrecord":{},"ignoreblanklines":{},"trimblanks":{},"roundec":{},"truncatecolumns":{},"acceptanydate":{}"#,
        rng.below(3),
        quoting == 1,
        rng.chance(50),
        rng.chance(50),
        rng.chance(30),
        rng.chance(30),
        rng.chance(30),
        rng.chance(30),
        rng.chance(30),
        rng.chance(20),
    );
    if quoting == 2 {
        json.push_str(r#","csv":true"#);
        if delim == "," && rng.chance(30) {
            json.push_str(r#","quote":"'""#);
        }
    } else if rng.chance(40) {
        json.push_str(r#","escape":true"#);
    }
    if rng.chance(30) {
        json.push_str(r#","acceptinvchars":true"#);
    }
    if rng.chance(20) {
        json.push_str(r#","null_as":"NULL""#);
    }
    json.push_str(match rng.below(4) {
        0 => r#","dateformat":"DD/MM/YYYY","timeformat":"YYYY-MM-DD HH:MI:SS""#,
        1 => r#","timeformat":"epochsecs""#,
        _ => "",
    });
    json.push('}');
    format(&json)
}

/// Bytes that are likely to hit the parser's special cases.
fn random_bytes(rng: &mut Rng, len: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"|,;\t\"'\\\n\r N0123456789.-+:/ eEaTtZ";
    (0..len)
        .map(|_| match rng.below(10) {
            0 => rng.next() as u8,
            1 => *rng.pick(&[0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xff]),
            _ => *rng.pick(ALPHABET),
        })
        .collect()
}

/// A reader that hands out the data in small, random pieces.
struct Dribble<'a> {
    data: &'a [u8],
    rng: Rng,
}

impl std::io::Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (1 + self.rng.below(9)).min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn parse_whole(parser: &RowParser, input: &[u8]) -> (Vec<u8>, Vec<LoadError>, FileStats) {
    let mut data = Vec::new();
    let mut errors = Vec::new();
    let stats = parse_file_with_chunk(input, "p", parser, 0, usize::MAX / 4, &mut |b: Batch| {
        data.extend_from_slice(&b.data);
        errors.extend(b.errors);
        Ok(())
    })
    .unwrap();
    (data, errors, stats)
}

#[test]
fn property_arbitrary_input_never_panics_and_chunking_does_not_matter() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..400 {
        let fmt = random_format(&mut rng);
        let ncols = 1 + rng.below(4);
        let spec: Vec<(String, &str, bool)> = (0..ncols)
            .map(|i| (format!("c{i}"), *rng.pick(TYPES), rng.chance(80)))
            .collect();
        let spec_ref: Vec<(&str, &str, bool)> =
            spec.iter().map(|(n, t, b)| (n.as_str(), *t, *b)).collect();
        let cols = columns(&spec_ref);
        let len = rng.below(300);
        let input = random_bytes(&mut rng, len);
        for enc in [CopyEncoding::Text, CopyEncoding::Binary] {
            let parser = RowParser::new(&cols, &fmt, enc).unwrap();
            let whole = parse_whole(&parser, &input);
            for workers in [0, 1, 2] {
                let mut data = Vec::new();
                let mut errors = Vec::new();
                let chunk = 1 + rng.below(40);
                let reader = Dribble {
                    data: &input,
                    rng: Rng(rng.next() | 1),
                };
                let stats =
                    parse_file_with_chunk(reader, "p", &parser, workers, chunk, &mut |b: Batch| {
                        data.extend_from_slice(&b.data);
                        errors.extend(b.errors);
                        Ok(())
                    })
                    .unwrap();
                assert_eq!(
                    (&data, &errors, stats),
                    (&whole.0, &whole.1, whole.2),
                    "round {round}: chunk {chunk}, {workers} workers, {fmt:?}, input {:?}",
                    String::from_utf8_lossy(&input)
                );
            }
            if enc == CopyEncoding::Text {
                // Whatever was accepted is valid text COPY.
                let rows = decode_text(&whole.0);
                assert_eq!(rows.len() as u64, whole.2.rows, "round {round}");
                assert!(rows.iter().all(|r| r.len() == ncols));
            } else {
                let rows = decode_binary(&whole.0, &cols);
                assert_eq!(rows.len() as u64, whole.2.rows);
            }
        }
    }
}

/// A random value of a column type: what goes in the file and what PostgreSQL prints.
fn random_value(rng: &mut Rng, ty: &str) -> (String, String) {
    match ty {
        "smallint" => {
            let v = rng.below(65_536) as i64 - 32_768;
            (v.to_string(), v.to_string())
        }
        "bigint" => {
            let v = rng.next() as i64;
            (v.to_string(), v.to_string())
        }
        "decimal(10,3)" => {
            let v = (rng.next() % 10_000_000_000) as i64 - 5_000_000_000;
            let s = format!(
                "{}{}.{:03}",
                if v < 0 { "-" } else { "" },
                v.unsigned_abs() / 1000,
                v.unsigned_abs() % 1000
            );
            let printed = if v == 0 {
                "0.000".to_string()
            } else {
                s.clone()
            };
            (s, printed)
        }
        "double precision" => {
            let v = (rng.next() % 1_000_000) as f64 / 64.0;
            (v.to_string(), v.to_string())
        }
        "boolean" => {
            let (i, p) = *rng.pick(&[("t", "t"), ("false", "f"), ("YES", "t"), ("0", "f")]);
            (i.into(), p.into())
        }
        "date" => {
            let d = rng.below(3_000_000) as i32 - 730_000;
            let mut o = Vec::new();
            datetime::write_date(&mut o, d);
            let s = String::from_utf8(o).unwrap();
            (s.clone(), s)
        }
        "timestamp" => {
            let m = (rng.next() % 200_000_000_000_000_000) as i64 - 60_000_000_000_000_000;
            let mut o = Vec::new();
            datetime::write_timestamp(&mut o, m);
            let s = String::from_utf8(o).unwrap();
            (s.clone(), s)
        }
        _ => {
            // varchar(40): letters, multibyte characters and every special byte of the formats.
            let n = rng.below(12);
            let s: String = (0..n)
                .map(|_| {
                    *rng.pick(&[
                        'a', 'Z', ' ', '|', ',', '"', '\\', '\t', '\n', 'é', '€', '\'',
                    ])
                })
                .collect();
            (s.clone(), s)
        }
    }
}

#[test]
fn property_well_formed_rows_round_trip() {
    let mut rng = Rng(42);
    let types = [
        "smallint",
        "bigint",
        "decimal(10,3)",
        "double precision",
        "boolean",
        "date",
        "timestamp",
        "varchar(40)",
    ];
    for round in 0..150 {
        let ncols = 1 + rng.below(5);
        let tys: Vec<&str> = (0..ncols).map(|_| *rng.pick(&types)).collect();
        let spec: Vec<(String, &str, bool)> = tys
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("c{i}"), *t, true))
            .collect();
        let spec_ref: Vec<(&str, &str, bool)> =
            spec.iter().map(|(n, t, b)| (n.as_str(), *t, *b)).collect();
        let cols = columns(&spec_ref);
        let style = rng.below(3); // 0: ESCAPE, 1: CSV, 2: REMOVEQUOTES + ESCAPE
        let fmt = match style {
            0 => plain(r#"{"escape":true}"#),
            1 => plain(r#"{"csv":true,"delimiter":","}"#),
            _ => plain(r#"{"escape":true,"removequotes":true}"#),
        };
        let mut input = String::new();
        let mut want = Vec::new();
        for _ in 0..rng.below(30) {
            let mut row = Vec::new();
            for (i, ty) in tys.iter().enumerate() {
                let (mut written, printed) = random_value(&mut rng, ty);
                let is_text = ty.starts_with("varchar");
                // Empty text would be NULL for other types only; keep NULLs explicit.
                let null = rng.chance(10);
                if i > 0 {
                    input.push(if style == 1 { ',' } else { '|' });
                }
                if null {
                    input.push_str("\\N");
                    row.push(None);
                    continue;
                }
                if is_text {
                    written = match style {
                        0 => written
                            .replace('\\', "\\\\")
                            .replace('|', "\\|")
                            .replace('\n', "\\\n"),
                        1 => format!("\"{}\"", written.replace('"', "\"\"")),
                        _ => format!(
                            "\"{}\"",
                            written
                                .replace('\\', "\\\\")
                                .replace('"', "\\\"")
                                .replace('\n', "\\\n")
                        ),
                    };
                }
                input.push_str(&written);
                row.push(Some(printed));
            }
            input.push('\n');
            want.push(row);
        }
        for enc in [CopyEncoding::Text, CopyEncoding::Binary] {
            let out = run_files(
                &cols,
                &fmt,
                enc,
                &[("rt", input.as_bytes())],
                1,
                1 + rng.below(64),
            );
            assert!(
                out.errors.is_empty(),
                "round {round}: {:?}\n{input}",
                out.errors
            );
            assert_eq!(out.rows, want, "round {round} style {style}:\n{input}");
        }
    }
}

#[test]
fn scratch_reuse_does_not_leak_between_fields() {
    // A field unescaped into the scratch buffer followed by fields that are not.
    let parser = RowParser::new(
        &columns(&[
            ("a", "varchar(9)", true),
            ("b", "varchar(9)", true),
            ("c", "varchar(9)", true),
        ]),
        &plain(r#"{"escape":true}"#),
        CopyEncoding::Text,
    )
    .unwrap();
    let mut scratch = Scratch::default();
    let (batch, lines) = parser.parse_chunk(b"a\\|b|c|d\\\\\nx|y|z\n", "f", &mut scratch);
    assert_eq!(lines, 2);
    assert_eq!(batch.data, b"a|b\tc\td\\\\\nx\ty\tz\n");
}
