//! Splits a SQL script into statements, the way psql does: `;` ends a statement unless it is inside a
//! string literal, a quoted identifier, a dollar-quoted string or a comment.

use super::Dialect;

/// One statement of a script, with where it starts (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitStatement {
    /// The statement text, trimmed, without the terminating `;`. Comments inside are kept.
    pub text: String,
    /// 1-based line of the statement's first non-blank character in the script.
    pub line: usize,
    /// Byte offset of the statement's first character in the script.
    pub offset: usize,
}

/// Splits `script` into statements.
///
/// Handles `'...'` (with `''`, and with backslash escapes in Redshift and in PostgreSQL `E'...'`
/// strings), `"..."` identifiers, `$tag$...$tag$` strings, `--` comments and nested `/* */` comments.
/// Empty statements (`;;`, comment-only text) are dropped. An unterminated quote or comment leaves
/// the rest of the script in the last statement, for the server to report.
pub fn split_statements(script: &str, dialect: Dialect) -> Vec<SplitStatement> {
    let bytes = script.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut has_code = false; // anything other than whitespace and comments since `start`
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\'' => {
                let backslash = dialect == Dialect::Redshift
                    || (i > 0
                        && matches!(bytes[i - 1], b'e' | b'E')
                        && !ident_char_before(bytes, i - 1));
                i = skip_quoted(bytes, i, b'\'', backslash);
                has_code = true;
                continue;
            }
            b'"' => {
                i = skip_quoted(bytes, i, b'"', false);
                has_code = true;
                continue;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = memchr::memchr(b'\n', &bytes[i..]).map_or(bytes.len(), |n| i + n + 1);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = skip_block_comment(bytes, i);
                continue;
            }
            b'$' if !ident_char_before(bytes, i) => {
                if let Some(tag_end) = dollar_tag_end(bytes, i) {
                    let tag = &bytes[i..=tag_end];
                    let body = tag_end + 1;
                    i = find(bytes, body, tag).map_or(bytes.len(), |p| p + tag.len());
                    has_code = true;
                    continue;
                }
                has_code = true;
            }
            b';' => {
                if has_code {
                    out.push(make(script, start, i));
                }
                start = i + 1;
                has_code = false;
            }
            b if b.is_ascii_whitespace() => {}
            _ => has_code = true,
        }
        i += 1;
    }
    if has_code {
        out.push(make(script, start, bytes.len()));
    }
    out
}

fn make(script: &str, start: usize, end: usize) -> SplitStatement {
    let raw = &script[start..end];
    let lead = raw.len() - raw.trim_start().len();
    let offset = start + lead;
    SplitStatement {
        text: raw.trim().to_owned(),
        line: 1 + script.as_bytes()[..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
        offset,
    }
}

pub(crate) fn ident_char_before(bytes: &[u8], i: usize) -> bool {
    i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] >= 0x80)
}

/// Returns the index just past the closing quote.
pub(crate) fn skip_quoted(bytes: &[u8], open: usize, quote: u8, backslash: bool) -> usize {
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if backslash => i += 2,
            q if q == quote => {
                if bytes.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return i + 1;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

pub(crate) fn skip_block_comment(bytes: &[u8], open: usize) -> usize {
    let mut depth = 0;
    let mut i = open;
    while i + 1 < bytes.len() {
        if bytes[i] == b'/' && bytes[i + 1] == b'*' {
            depth += 1;
            i += 2;
        } else if bytes[i] == b'*' && bytes[i + 1] == b'/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// If a dollar-quote tag (`$$` or `$name$`) starts at `i`, returns the index of its closing `$`.
pub(crate) fn dollar_tag_end(bytes: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < bytes.len() {
        match bytes[j] {
            b'$' => return Some(j),
            b if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 => {}
            b if b.is_ascii_digit() && j > i + 1 => {}
            _ => return None,
        }
        j += 1;
    }
    None
}

pub(crate) fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(&haystack[from..], needle).map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(script: &str, dialect: Dialect) -> Vec<String> {
        split_statements(script, dialect)
            .into_iter()
            .map(|s| s.text)
            .collect()
    }

    #[test]
    fn splits_on_semicolons_outside_quotes() {
        let script = "select 1; select 'a;b'; select \"x;y\" from t;\n\n-- done; really\n";
        assert_eq!(
            texts(script, Dialect::Postgres),
            ["select 1", "select 'a;b'", "select \"x;y\" from t"]
        );
    }

    #[test]
    fn comments_and_empty_statements() {
        let script = "/* a; /* nested; */ still comment; */ select 1;;\n-- only a comment;\n;";
        let got = split_statements(script, Dialect::Postgres);
        assert_eq!(got.len(), 1);
        assert!(got[0].text.ends_with("select 1"));
        assert_eq!(
            texts("-- nothing\n", Dialect::Postgres),
            Vec::<String>::new()
        );
    }

    #[test]
    fn dollar_quotes() {
        let script = "create function f() returns int as $body$ select 1; $body$ language sql;\
                      select $$a;b$$; select $1 from t; select a$b from t";
        assert_eq!(
            texts(script, Dialect::Postgres),
            [
                "create function f() returns int as $body$ select 1; $body$ language sql",
                "select $$a;b$$",
                "select $1 from t",
                "select a$b from t"
            ]
        );
    }

    #[test]
    fn backslash_escapes_depend_on_dialect() {
        let script = r"select 'it\'s; here'; select 2";
        assert_eq!(
            texts(script, Dialect::Redshift),
            [r"select 'it\'s; here'", "select 2"]
        );
        // PostgreSQL: the backslash is literal, so the string ends at \' and `s; here'...` follows.
        assert_eq!(texts(script, Dialect::Postgres).len(), 2);
        let e = r"select E'it\'s; here'; select 2";
        assert_eq!(
            texts(e, Dialect::Postgres),
            [r"select E'it\'s; here'", "select 2"]
        );
    }

    #[test]
    fn doubled_quotes() {
        assert_eq!(
            texts(
                "select 'a'';b'; select \"q\"\";\" from t",
                Dialect::Postgres
            ),
            ["select 'a'';b'", "select \"q\"\";\" from t"]
        );
    }

    #[test]
    fn reports_start_lines() {
        let script = "\n\nselect 1;\n  -- c\n  select\n 2;";
        let got = split_statements(script, Dialect::Postgres);
        assert_eq!(got[0].line, 3);
        assert_eq!(
            got[1].line, 4,
            "the comment belongs to the second statement"
        );
        assert_eq!(&script[got[1].offset..got[1].offset + 4], "-- c");
    }

    #[test]
    fn unterminated_quote_keeps_the_rest() {
        let got = texts("select 1; select 'oops; select 2", Dialect::Postgres);
        assert_eq!(got, ["select 1", "select 'oops; select 2"]);
    }
}
