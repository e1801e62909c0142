//! From PostgreSQL's text COPY rows to the lines Redshift's UNLOAD writes.
//!
//! PostgreSQL's text format (the input): fields separated by a tab, `\N` for NULL, and a backslash
//! before a backslash or the delimiter, or as `\b` `\f` `\n` `\r` `\t` `\v` for those control
//! characters (<https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.2>).
//!
//! Redshift's rules (the output), from the
//! [UNLOAD reference](https://docs.aws.amazon.com/redshift/latest/dg/r_UNLOAD.html):
//! - CSV: "If a field contains delimiters, double quotation marks, newline characters, or carriage
//!   returns, then the field in the unloaded file is enclosed in double quotation marks. A double
//!   quotation mark within a data field is escaped by an additional double quotation mark." Nothing
//!   else is quoted: an empty string is written as nothing, like a NULL under the default NULL AS
//!   (PostgreSQL's CSV would quote it; use NULL AS to tell them apart, as Redshift users must).
//! - Delimited text: the value as it is, unless
//!   - ESCAPE: "For CHAR and VARCHAR columns", a backslash before a linefeed, a carriage return,
//!     the delimiter, a backslash, and — with ADDQUOTES too — `"` and `'`. Other types are written
//!     as they are (a date with DELIMITER '-' keeps its dashes unescaped);
//!   - ADDQUOTES: every field between `"`. The documentation says "each unloaded data field";
//!     we read that as every field, so a NULL's string is quoted too (the documentation is silent).
//! - NULL AS 'str' (both formats): NULL becomes `str`, by default "zero-length strings for
//!   delimited output"; the NULL string is written as it is, never escaped.
//! - HEADER: "Text transformation options, such as CSV, DELIMITER, ADDQUOTES, and ESCAPE, also apply
//!   to the header line": column names are rendered like character values.

use memchr::memchr;
use tokio_postgres::types::{Kind, Type};

use crate::job::{Unload, UnloadFormat};

/// Renders rows of one unload.
#[derive(Debug)]
pub(super) struct Renderer {
    csv: bool,
    delimiter: u8,
    null: Vec<u8>,
    add_quotes: bool,
    escape: bool,
    /// Per column: CHAR/VARCHAR-like (ESCAPE applies).
    character: Vec<bool>,
    scratch: Vec<u8>,
}

/// Whether ESCAPE applies to a column of this type: character types, and domains over them.
pub(super) fn is_character(ty: &Type) -> bool {
    match ty.kind() {
        Kind::Domain(inner) => is_character(inner),
        _ => matches!(
            *ty,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::CHAR | Type::NAME | Type::UNKNOWN
        ),
    }
}

impl Renderer {
    pub(super) fn new(spec: &Unload, character: Vec<bool>) -> Self {
        let csv = spec.format == UnloadFormat::Csv;
        Renderer {
            csv,
            delimiter: spec.delimiter,
            null: spec.null_as.clone().unwrap_or_default().into_bytes(),
            add_quotes: !csv && spec.add_quotes,
            escape: !csv && spec.escape,
            character,
            scratch: Vec::new(),
        }
    }

    /// The header line: the column names, rendered like character values.
    pub(super) fn header<'n>(&self, names: impl IntoIterator<Item = &'n str>, out: &mut Vec<u8>) {
        for (i, name) in names.into_iter().enumerate() {
            if i > 0 {
                out.push(self.delimiter);
            }
            self.value(name.as_bytes(), true, out);
        }
        out.push(b'\n');
    }

    /// Appends the line for one row of PostgreSQL's text COPY output (`line` without its `\n`).
    pub(super) fn row(&mut self, line: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        if self.character.is_empty() {
            // A query without columns: COPY writes an empty line per row.
            if !line.is_empty() {
                return Err("a row with fields from a query without columns".into());
            }
            out.push(b'\n');
            return Ok(());
        }
        let mut n = 0;
        for raw in line.split(|&b| b == b'\t') {
            let Some(&character) = self.character.get(n) else {
                return Err(format!(
                    "a row with more than the query's {} column(s)",
                    self.character.len()
                ));
            };
            if n > 0 {
                out.push(self.delimiter);
            }
            if raw == b"\\N" {
                self.null(out);
            } else if memchr(b'\\', raw).is_none() {
                self.value(raw, character, out);
            } else {
                let mut value = std::mem::take(&mut self.scratch);
                value.clear();
                unescape(raw, &mut value)?;
                self.value(&value, character, out);
                self.scratch = value;
            }
            n += 1;
        }
        if n != self.character.len() {
            return Err(format!(
                "a row with {n} field(s), and the query has {} column(s)",
                self.character.len()
            ));
        }
        out.push(b'\n');
        Ok(())
    }

    fn null(&self, out: &mut Vec<u8>) {
        if self.add_quotes {
            out.push(b'"');
            out.extend_from_slice(&self.null);
            out.push(b'"');
        } else {
            out.extend_from_slice(&self.null);
        }
    }

    fn value(&self, v: &[u8], character: bool, out: &mut Vec<u8>) {
        let d = self.delimiter;
        if self.csv {
            if v.iter()
                .any(|&b| b == d || matches!(b, b'"' | b'\n' | b'\r'))
            {
                out.push(b'"');
                for &b in v {
                    if b == b'"' {
                        out.push(b'"');
                    }
                    out.push(b);
                }
                out.push(b'"');
            } else {
                out.extend_from_slice(v);
            }
            return;
        }
        if self.add_quotes {
            out.push(b'"');
        }
        if self.escape && character {
            for &b in v {
                if b == d
                    || matches!(b, b'\n' | b'\r' | b'\\')
                    || (self.add_quotes && matches!(b, b'"' | b'\''))
                {
                    out.push(b'\\');
                }
                out.push(b);
            }
        } else {
            out.extend_from_slice(v);
        }
        if self.add_quotes {
            out.push(b'"');
        }
    }
}

/// Undoes PostgreSQL's text-format escapes of one field.
fn unescape(raw: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&c) = bytes.next() else {
            return Err(
                "a field of PostgreSQL's text COPY output ends with a lone backslash".into(),
            );
        };
        out.push(match c {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 0x0b,
            // `\\`, and a backslash before the delimiter.
            other => other,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Location, Overwrite, UnloadCompression, UnloadSource};

    fn spec(format: UnloadFormat, delimiter: u8) -> Unload {
        Unload {
            source: UnloadSource::Query("select 1".into()),
            to: Location::Local("out/".into()),
            header: true,
            format,
            delimiter,
            compression: UnloadCompression::None,
            parallel: false,
            max_file_size_mb: None,
            overwrite: Overwrite::Fail,
            manifest: false,
            null_as: None,
            add_quotes: false,
            escape: false,
            extension: None,
        }
    }

    fn render(r: &mut Renderer, line: &[u8]) -> String {
        let mut out = Vec::new();
        r.row(line, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn unescapes_postgres_text() {
        let mut out = Vec::new();
        unescape(br"a\\b\tc\nd\re\bf\fg\vh\|i", &mut out).unwrap();
        assert_eq!(out, b"a\\b\tc\nd\re\x08f\x0cg\x0bh|i");
        assert!(unescape(b"x\\", &mut Vec::new()).is_err());
    }

    #[test]
    fn csv_quotes_only_what_redshift_quotes() {
        let mut r = Renderer::new(&spec(UnloadFormat::Csv, b','), vec![true; 8]);
        let line = b"a,b\tsay \"hi\"\tl1\\nl2\tcr\\rx\t\t\\N\t\xc3\xbc \\\\ |\tplain";
        assert_eq!(
            render(&mut r, line),
            "\"a,b\",\"say \"\"hi\"\"\",\"l1\nl2\",\"cr\rx\",,,\u{fc} \\ |,plain\n"
        );
        let mut s = spec(UnloadFormat::Csv, b'|');
        s.null_as = Some("NULL".into());
        let mut r = Renderer::new(&s, vec![true; 4]);
        assert_eq!(
            render(&mut r, b"a|b\ta,b\t\\N\tNULL"),
            "\"a|b\"|a,b|NULL|NULL\n"
        );
        // ADDQUOTES and ESCAPE do not apply to CSV (the manifest rejects them; the renderer ignores them).
        s.add_quotes = true;
        s.escape = true;
        let mut r = Renderer::new(&s, vec![true]);
        assert_eq!(render(&mut r, b"x"), "x\n");
    }

    #[test]
    fn text_writes_values_as_they_are_by_default() {
        let mut r = Renderer::new(&spec(UnloadFormat::Text, b'|'), vec![true, true, true]);
        assert_eq!(render(&mut r, b"a|b\t\\N\tl1\\nl2"), "a|b||l1\nl2\n");
    }

    #[test]
    fn text_escape_and_addquotes() {
        let mut s = spec(UnloadFormat::Text, b'|');
        s.escape = true;
        let mut r = Renderer::new(&s, vec![true, false, true]);
        assert_eq!(
            render(&mut r, b"a|b\\\\c\\nd\\re\"f'\t2024-01-01\t\\N"),
            "a\\|b\\\\c\\\nd\\\re\"f'|2024-01-01|\n"
        );
        s.add_quotes = true;
        s.null_as = Some("\\N".into());
        let mut r = Renderer::new(&s, vec![true, false, true]);
        assert_eq!(
            render(&mut r, b"say \"hi\" it's\t2024-01-01\t\\N"),
            "\"say \\\"hi\\\" it\\'s\"|\"2024-01-01\"|\"\\N\"\n"
        );
        // ESCAPE is for character columns only: a date keeps its dashes with DELIMITER '-'.
        let mut s = spec(UnloadFormat::Text, b'-');
        s.escape = true;
        let mut r = Renderer::new(&s, vec![true, false]);
        assert_eq!(render(&mut r, b"a-b\t2024-01-01"), "a\\-b-2024-01-01\n");
    }

    #[test]
    fn header_follows_the_value_rules() {
        let mut s = spec(UnloadFormat::Text, b'|');
        s.add_quotes = true;
        s.escape = true;
        let r = Renderer::new(&s, vec![false, false]);
        let mut out = Vec::new();
        r.header(["a|b", "it's"], &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "\"a\\|b\"|\"it\\'s\"\n");
        let r = Renderer::new(&spec(UnloadFormat::Csv, b','), vec![false, false]);
        let mut out = Vec::new();
        r.header(["a,b", "c"], &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "\"a,b\",c\n");
    }

    #[test]
    fn field_count_must_match_the_columns() {
        let mut r = Renderer::new(&spec(UnloadFormat::Csv, b','), vec![true, true]);
        assert!(r.row(b"a", &mut Vec::new()).is_err());
        assert!(r.row(b"a\tb\tc", &mut Vec::new()).is_err());
        let mut none = Renderer::new(&spec(UnloadFormat::Csv, b','), vec![]);
        assert_eq!(render(&mut none, b""), "\n");
    }

    #[test]
    fn character_types() {
        assert!(is_character(&Type::TEXT));
        assert!(is_character(&Type::VARCHAR));
        assert!(is_character(&Type::BPCHAR));
        assert!(!is_character(&Type::DATE));
        assert!(!is_character(&Type::INT4));
        assert!(!is_character(&Type::JSON));
    }
}
