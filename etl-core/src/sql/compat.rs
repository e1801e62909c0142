//! Running Redshift transformation SQL on PostgreSQL: compatibility functions and a rewriter.
//!
//! Two halves, used together when a job is rehearsed locally:
//!
//! - [`POSTGRES_COMPAT_SQL`] (the repository's `sql/compat/postgres.sql`) defines, in schema
//!   `public`, PostgreSQL versions of the Redshift functions common in transforms: `NVL`, `NVL2`,
//!   `GETDATE`, `SYSDATE`, `DATEADD`, `DATEDIFF`, `LEN`, `CHARINDEX`, `ADD_MONTHS`, ... with
//!   Redshift's semantics ([`compat_function_names`] lists them). It is idempotent and has no
//!   transaction control: send it as one simple query (`batch_execute` runs it as one implicit
//!   transaction).
//! - [`rewrite_for_postgres`] rewrites what no PostgreSQL function can express: a bare date part as
//!   an argument (`dateadd(month, 1, d)`, where PostgreSQL would read `month` as a column), the bare
//!   keyword `SYSDATE`, `DECODE` (a CASE in disguise), and the names Redshift gives result columns.
//!   [`REWRITES`] shows each rule with an example.
//!
//! ```
//! use etl_core::sql::compat::rewrite_for_postgres;
//!
//! let sql = "select datediff(month, start_date, sysdate) from t where note <> 'dateadd(day, 1, x)'";
//! assert_eq!(
//!     rewrite_for_postgres(sql),
//!     "select date_diff('month', start_date, sysdate()) from t where note <> 'dateadd(day, 1, x)'"
//! );
//! // SQL without Redshift-only constructs comes back borrowed, untouched.
//! assert!(matches!(rewrite_for_postgres("select 1"), std::borrow::Cow::Borrowed(_)));
//! ```
//!
//! Semantics follow the Amazon Redshift Database Developer Guide, e.g.
//! <https://docs.aws.amazon.com/redshift/latest/dg/r_Dateparts_for_datetime_functions.html>;
//! `sql/compat/README.md` lists every function and what PostgreSQL cannot reproduce.

use std::borrow::Cow;

use super::split::{dollar_tag_end, find, ident_char_before, skip_block_comment, skip_quoted};

/// The compatibility functions for PostgreSQL: `sql/compat/postgres.sql` at the repository root.
///
/// Idempotent (`CREATE OR REPLACE` throughout), without transaction control, everything in schema
/// `public`. Install it with one `batch_execute` (one implicit transaction) or
/// `psql --single-transaction -f sql/compat/postgres.sql`. Two sessions installing it at the same
/// moment can fail with "tuple concurrently updated"; install once per database, before the
/// transforms run.
pub const POSTGRES_COMPAT_SQL: &str = include_str!("../../../sql/compat/postgres.sql");

/// [`POSTGRES_COMPAT_SQL`] in one transaction block, as the engine sends it.
pub fn install_script() -> String {
    format!("BEGIN;\n{POSTGRES_COMPAT_SQL}\nCOMMIT")
}

/// Redshift's date part names and abbreviations, each with its canonical name.
///
/// From <https://docs.aws.amazon.com/redshift/latest/dg/r_Dateparts_for_datetime_functions.html>.
/// The same table is `public.etl_compat_datepart` in [`POSTGRES_COMPAT_SQL`]; an end-to-end test
/// checks that the two agree.
pub const DATEPARTS: &[(&str, &str)] = &[
    ("millennium", "millennium"),
    ("millennia", "millennium"),
    ("mil", "millennium"),
    ("mils", "millennium"),
    ("century", "century"),
    ("centuries", "century"),
    ("c", "century"),
    ("cent", "century"),
    ("cents", "century"),
    ("decade", "decade"),
    ("decades", "decade"),
    ("dec", "decade"),
    ("decs", "decade"),
    ("epoch", "epoch"),
    ("year", "year"),
    ("years", "year"),
    ("y", "year"),
    ("yr", "year"),
    ("yrs", "year"),
    ("quarter", "quarter"),
    ("quarters", "quarter"),
    ("qtr", "quarter"),
    ("qtrs", "quarter"),
    ("month", "month"),
    ("months", "month"),
    ("mon", "month"),
    ("mons", "month"),
    ("week", "week"),
    ("weeks", "week"),
    ("w", "week"),
    ("dayofweek", "dow"),
    ("dow", "dow"),
    ("dw", "dow"),
    ("weekday", "dow"),
    ("dayofyear", "doy"),
    ("doy", "doy"),
    ("dy", "doy"),
    ("yearday", "doy"),
    ("day", "day"),
    ("days", "day"),
    ("d", "day"),
    ("hour", "hour"),
    ("hours", "hour"),
    ("h", "hour"),
    ("hr", "hour"),
    ("hrs", "hour"),
    ("minute", "minute"),
    ("minutes", "minute"),
    ("m", "minute"),
    ("min", "minute"),
    ("mins", "minute"),
    ("second", "second"),
    ("seconds", "second"),
    ("s", "second"),
    ("sec", "second"),
    ("secs", "second"),
    ("millisecond", "millisecond"),
    ("milliseconds", "millisecond"),
    ("ms", "millisecond"),
    ("msec", "millisecond"),
    ("msecs", "millisecond"),
    ("msecond", "millisecond"),
    ("mseconds", "millisecond"),
    ("millisec", "millisecond"),
    ("millisecs", "millisecond"),
    ("millisecon", "millisecond"),
    ("microsecond", "microsecond"),
    ("microseconds", "microsecond"),
    ("microsec", "microsecond"),
    ("microsecs", "microsecond"),
    ("usecond", "microsecond"),
    ("useconds", "microsecond"),
    ("us", "microsecond"),
    ("usec", "microsecond"),
    ("usecs", "microsecond"),
    ("timezone", "timezone"),
    ("timezone_hour", "timezone_hour"),
    ("timezone_minute", "timezone_minute"),
];

/// The canonical name of a Redshift date part or abbreviation (case-insensitive), e.g.
/// `"MONS"` → `"month"`, `"dw"` → `"dow"`; `None` for anything else.
pub fn canonical_datepart(word: &str) -> Option<&'static str> {
    DATEPARTS
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(word))
        .map(|&(_, canonical)| canonical)
}

/// The rules of [`rewrite_for_postgres`], each as (Redshift SQL, what PostgreSQL is sent, why).
/// Case is kept as written; qualified names (`x.sysdate`, `s.dateadd(...)`) are left alone.
pub const REWRITES: &[(&str, &str, &str)] = &[
    (
        "dateadd(month, 1, d)",
        "date_add('month', 1, d)",
        "a bare date part is a column reference in PostgreSQL; Redshift names the column date_add",
    ),
    (
        "datediff(day, a, b)",
        "date_diff('day', a, b)",
        "a bare date part is a column reference in PostgreSQL; Redshift names the column date_diff",
    ),
    (
        "date_part(dw, ts)",
        "pgdate_part('dw', ts)",
        "PostgreSQL's date_part knows fewer spellings (dw, qtrs, ...); Redshift names the column \
         pgdate_part (a quoted date part is renamed the same way)",
    ),
    (
        "extract(ms from ts)",
        "public.date_part('ms', ts)",
        "Redshift's EXTRACT gives the part alone as an integer (no fraction of a second, \
         milliseconds without the seconds, decade 201 for 2000); the column is named date_part",
    ),
    (
        "date_trunc('qtrs', ts)",
        "date_trunc('quarter', ts)",
        "Redshift-only spellings of a date part become PostgreSQL's",
    ),
    (
        "select top 10 * from t order by x",
        "select * from t order by x LIMIT 10",
        "TOP n is Redshift's LIMIT n",
    ),
    (
        "sysdate",
        "sysdate()",
        "SYSDATE is a keyword in Redshift and a function here",
    ),
    (
        "nvl(a, b, c)",
        "coalesce(a, b, c)",
        "NVL is COALESCE; Redshift names the column coalesce",
    ),
    (
        "decode(x, 1, 'one', null, 'none', 'other')",
        "CASE WHEN (x) IS NOT DISTINCT FROM (1) THEN ('one') WHEN (x) IS NOT DISTINCT FROM (null) \
         THEN ('none') ELSE ('other') END",
        "DECODE is a CASE whose NULL matches NULL; its result type is the CASE's, its column is \
         named case, as in Redshift",
    ),
    (
        "listagg(name, ', ') within group (order by name)",
        "listagg(name, ', ' order by name)",
        "PostgreSQL takes WITHIN GROUP only for ordered-set aggregates; an ORDER BY inside the \
         arguments orders any aggregate",
    ),
    (
        "listagg(distinct name, ', ') within group (order by name)",
        "listagg(name, ', ', true order by name)",
        "the compat LISTAGG's DISTINCT ignores trailing blanks, as Redshift's does",
    ),
    (
        "listagg(name, ',') within group (order by id) over (partition by g)",
        "listagg(name, ',') over (partition by g order by id rows between unbounded preceding \
         and unbounded following)",
        "PostgreSQL cannot order an aggregate used as a window function; a window ordered the \
         same way over the whole partition feeds it the rows in that order",
    ),
    (
        "percentile_cont(0.5) within group (order by x) over (partition by g)",
        "percentile_cont(0.5, x, true) over (partition by g)",
        "PostgreSQL has no ordered-set aggregate as a window function: a compat aggregate",
    ),
    (
        "ratio_to_report(x) over (partition by g)",
        "((x)::double precision / sum(x) over (partition by g))",
        "the value over its partition's sum, as FLOAT8",
    ),
    (
        "regexp_replace(s, 'a+', '-')",
        "regexp_replace(s, 'a+', '-', 'g')",
        "Redshift replaces every match, PostgreSQL the first unless told 'g'",
    ),
    (
        "convert(integer, x)",
        "CAST(x AS integer)",
        "CONVERT(type, expression) is CAST",
    ),
    (
        "nvarchar(max)",
        "varchar(65535)",
        "Redshift's NVARCHAR is VARCHAR, and MAX is 65535 bytes",
    ),
    (
        "select 'a\\\\d'",
        "select E'a\\\\d'",
        "Redshift reads backslash escapes in every string literal, PostgreSQL in E'...' only",
    ),
    (
        "approximate count(distinct x)",
        "count(distinct x)",
        "an exact count stands in for Redshift's HyperLogLog estimate",
    ),
];

/// Rewrites Redshift SQL so that PostgreSQL with [`POSTGRES_COMPAT_SQL`] installed runs it with
/// Redshift's meaning. See [`REWRITES`] for the rules.
///
/// Only code is rewritten: text inside string literals (with Redshift's backslash escapes),
/// quoted identifiers, dollar-quoted strings and comments is never touched, and neither is a
/// qualified name. A date part is quoted only when it is one of Redshift's ([`DATEPARTS`]) and is
/// followed by a comma. Returns [`Cow::Borrowed`] when there is nothing to rewrite. Works on a
/// single statement or a whole script.
pub fn rewrite_for_postgres(sql: &str) -> Cow<'_, str> {
    let tokens = lex(sql);
    let mut edits = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        i = rewrite_at(sql, &tokens, i, &mut edits);
    }
    if edits.is_empty() {
        return Cow::Borrowed(sql);
    }
    // Rules may insert text further on (TOP's LIMIT); edits never overlap.
    edits.sort_by_key(|e| (e.start, e.end));
    let mut out = String::with_capacity(sql.len() + 16 * edits.len());
    let mut at = 0;
    for edit in edits {
        out.push_str(&sql[at..edit.start]);
        out.push_str(&edit.text);
        at = edit.end;
    }
    out.push_str(&sql[at..]);
    Cow::Owned(out)
}

/// The Redshift functions [`POSTGRES_COMPAT_SQL`] installs (lower case, sorted, each once),
/// without the `etl_compat_*` helpers. Read from the SQL itself, so it is always the truth.
///
/// ```
/// let names = etl_core::sql::compat::compat_function_names();
/// assert!(names.contains(&"dateadd") && names.contains(&"nvl") && names.contains(&"median"));
/// ```
pub fn compat_function_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = POSTGRES_COMPAT_SQL
        .lines()
        .filter_map(|line| {
            let rest = line
                .strip_prefix("CREATE OR REPLACE FUNCTION public.")
                .or_else(|| line.strip_prefix("CREATE OR REPLACE AGGREGATE public."))?;
            let name = &rest[..rest.find('(')?];
            (!name.starts_with("etl_compat_")).then_some(name)
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// One replacement of `sql[start..end]`.
struct Edit {
    start: usize,
    end: usize,
    text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An unquoted identifier or keyword.
    Word,
    /// A `'...'` string literal.
    Str,
    /// One of `(`, `)`, `,`, `.`, `[`, `]`.
    Punct(u8),
    /// Anything else that is not white space or a comment: a quoted identifier, a dollar-quoted
    /// string, a number, an operator.
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

/// Splits SQL into tokens, dropping white space and comments. Strings follow Redshift's rules
/// (backslash escapes), since the input is Redshift SQL.
fn lex(sql: &str) -> Vec<Token> {
    let bytes = sql.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let kind = match bytes[i] {
            b if b.is_ascii_whitespace() => {
                i += 1;
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
            b'\'' => {
                i = skip_quoted(bytes, i, b'\'', true);
                Kind::Str
            }
            b'"' => {
                i = skip_quoted(bytes, i, b'"', false);
                Kind::Other
            }
            b'$' if !ident_char_before(bytes, i) => {
                match dollar_tag_end(bytes, i) {
                    Some(tag_end) => {
                        let tag = &bytes[i..=tag_end];
                        i = find(bytes, tag_end + 1, tag).map_or(bytes.len(), |p| p + tag.len());
                    }
                    None => i += 1, // `$1`, a parameter
                }
                Kind::Other
            }
            b if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 => {
                i += 1;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || bytes[i] == b'_'
                        || bytes[i] == b'$'
                        || bytes[i] >= 0x80)
                {
                    i += 1;
                }
                Kind::Word
            }
            b if b.is_ascii_digit() => {
                // A number, with its exponent or a trailing identifier part: never a word.
                i += 1;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.')
                {
                    i += 1;
                }
                Kind::Other
            }
            b @ (b'(' | b')' | b',' | b'.' | b'[' | b']') => {
                i += 1;
                Kind::Punct(b)
            }
            _ => {
                // Step over a whole UTF-8 character (only ASCII reaches here, but stay safe).
                i += 1;
                while i < bytes.len() && !sql.is_char_boundary(i) {
                    i += 1;
                }
                Kind::Other
            }
        };
        tokens.push(Token {
            kind,
            start,
            end: i,
        });
    }
    tokens
}

/// Functions whose first argument is a date part, and the name they get once rewritten.
const DATEPART_FUNCTIONS: &[(&str, &str)] = &[
    ("dateadd", "date_add"),
    ("date_add", "date_add"),
    ("datediff", "date_diff"),
    ("date_diff", "date_diff"),
    ("date_part", "pgdate_part"),
    ("pgdate_part", "pgdate_part"),
];

/// Applies the rule that matches at token `i`, if any; returns the index of the next token to
/// look at.
fn rewrite_at(sql: &str, tokens: &[Token], i: usize, edits: &mut Vec<Edit>) -> usize {
    let tok = tokens[i];
    if tok.kind == Kind::Str {
        rules::escape_string(sql, tokens, i, edits);
        return i + 1;
    }
    if tok.kind != Kind::Word || is_punct(tokens.get(i.wrapping_sub(1)), b'.') {
        return i + 1;
    }
    let word = &sql[tok.start..tok.end];
    if word.len() > "percentile_disc".len() {
        return i + 1; // longer than every word a rule starts with
    }
    let next = tokens.get(i + 1);
    let call = is_punct(next, b'(');
    let lower = word.to_ascii_lowercase();

    if call && let Some(&(_, target)) = DATEPART_FUNCTIONS.iter().find(|(f, _)| *f == lower) {
        // name ( part ,
        let (Some(part), true) = (tokens.get(i + 2), is_punct(tokens.get(i + 3), b',')) else {
            return i + 1;
        };
        // By position, not by name: in Redshift the first argument of these functions is always
        // a date part (an identifier or a string), never a column, so a bare word there is quoted
        // even when a column has that name (TICKIT's `date` table has `day`, `month`, `qtr`...).
        // A word that is no date part then fails with the compat function's clear error.
        let text = &sql[part.start..part.end];
        match part.kind {
            Kind::Word => {}
            Kind::Str if string_content(text).is_some() => {}
            _ => return i + 1,
        }
        if lower != target {
            edits.push(Edit {
                start: tok.start,
                end: tok.end,
                text: target.to_owned(),
            });
        }
        if part.kind == Kind::Word {
            edits.push(Edit {
                start: part.start,
                end: part.end,
                text: format!("'{text}'"),
            });
        }
        return i + 4;
    }

    match lower.as_str() {
        "sysdate"
            if !call
                && !is_punct(next, b'.')
                && !is_word(sql, tokens.get(i.wrapping_sub(1)), "as") =>
        {
            edits.push(Edit {
                start: tok.end,
                end: tok.end,
                text: "()".to_owned(),
            });
            i + 1
        }
        "nvl" if call => {
            edits.push(Edit {
                start: tok.start,
                end: tok.end,
                text: "coalesce".to_owned(),
            });
            i + 1
        }
        "decode" if call => rewrite_decode(sql, tokens, i, edits),
        "listagg" if call => rules::listagg(sql, tokens, i, edits),
        "percentile_cont" | "percentile_disc" if call => rules::percentile(sql, tokens, i, edits),
        "ratio_to_report" if call => rules::ratio_to_report(sql, tokens, i, edits),
        "regexp_replace" if call => rules::regexp_replace(sql, tokens, i, edits),
        "convert" if call => rules::convert(sql, tokens, i, edits),
        "date_trunc" if call => rules::date_trunc(sql, tokens, i, edits),
        "select" => rules::top(sql, tokens, i, edits),
        "nvarchar" | "nchar" | "varchar" | "char" | "character" | "bpchar" => {
            rules::type_name(sql, tokens, i, edits)
        }
        "approximate" if is_word(sql, next, "count") || is_word(sql, next, "percentile_disc") => {
            let end = next.map_or(tok.end, |t| t.start);
            edits.push(Edit {
                start: tok.start,
                end,
                text: String::new(),
            });
            i + 1
        }
        "extract" if call => rules::extract(sql, tokens, i, edits),
        _ => i + 1,
    }
}

/// `decode(e, s1, r1, ..., [default])` with three or more arguments becomes
/// `CASE WHEN (e) IS NOT DISTINCT FROM (s1) THEN (r1) ... [ELSE (default)] END`. The arguments
/// are kept as written (comments included, surrounding white space trimmed) and are rewritten
/// themselves. PostgreSQL's own two-argument `decode(text, format)` is left alone, as is a call
/// without its closing parenthesis.
fn rewrite_decode(sql: &str, tokens: &[Token], i: usize, edits: &mut Vec<Edit>) -> usize {
    let Some(call) = Call::parse(tokens, i + 1) else {
        return i + 1;
    };
    if call.args.len() < 3 {
        return i + 1;
    }
    let args: Vec<String> = call
        .args
        .iter()
        .map(|&(a, b)| rewrite_fragment(&sql[a..b]))
        .collect();
    let (expr, rest) = args.split_first().expect("three or more arguments");
    let mut text = String::from("CASE");
    let mut pairs = rest.chunks_exact(2);
    for pair in pairs.by_ref() {
        text.push_str(&format!(
            " WHEN ({expr}) IS NOT DISTINCT FROM ({}) THEN ({})",
            pair[0], pair[1]
        ));
    }
    if let [default] = pairs.remainder() {
        text.push_str(&format!(" ELSE ({default})"));
    }
    text.push_str(" END");
    edits.push(Edit {
        start: tokens[i].start,
        end: tokens[call.close].end,
        text,
    });
    call.close + 1
}

/// A part of a statement rewritten on its own, trimmed; a trailing `-- comment` keeps a line break
/// after it, so that it does not swallow what follows.
fn rewrite_fragment(fragment: &str) -> String {
    let text = rewrite_for_postgres(fragment.trim());
    if text.contains("--") {
        format!("{text}\n")
    } else {
        text.into_owned()
    }
}

/// The parenthesised list that opens at token `open`: where it closes, and the byte range of each
/// top-level, comma-separated element.
struct Call {
    close: usize,
    args: Vec<(usize, usize)>,
}

impl Call {
    fn parse(tokens: &[Token], open: usize) -> Option<Call> {
        if !is_punct(tokens.get(open), b'(') {
            return None;
        }
        let mut depth = 0usize;
        let mut start = tokens[open].end;
        let mut args = Vec::new();
        for (j, t) in tokens.iter().enumerate().skip(open) {
            match t.kind {
                Kind::Punct(b'(' | b'[') => depth += 1,
                Kind::Punct(b')' | b']') => {
                    depth -= 1;
                    if depth == 0 {
                        args.push((start, t.start));
                        return Some(Call { close: j, args });
                    }
                }
                Kind::Punct(b',') if depth == 1 => {
                    args.push((start, t.start));
                    start = t.end;
                }
                _ => {}
            }
        }
        None
    }
}

fn is_punct(tok: Option<&Token>, byte: u8) -> bool {
    tok.is_some_and(|t| t.kind == Kind::Punct(byte))
}

fn is_word(sql: &str, tok: Option<&Token>, word: &str) -> bool {
    tok.is_some_and(|t| t.kind == Kind::Word && sql[t.start..t.end].eq_ignore_ascii_case(word))
}

/// The content of a plain `'...'` literal; `None` when it holds quotes or backslashes.
fn string_content(literal: &str) -> Option<&str> {
    let inner = literal.strip_prefix('\'')?.strip_suffix('\'')?;
    (!inner.contains(['\'', '\\'])).then_some(inner)
}

/// A construct in Redshift SQL that the rehearsal cannot reproduce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Byte offset of the construct in the statement.
    pub offset: usize,
    /// What was found, e.g. `QUALIFY`.
    pub construct: String,
    /// What to write instead, so that the rehearsal and Redshift agree.
    pub instead: String,
}

/// The constructs in `sql` (a statement or a script) that neither [`rewrite_for_postgres`] nor
/// [`POSTGRES_COMPAT_SQL`] can make PostgreSQL run with Redshift's meaning, in order of appearance.
/// Strings, quoted identifiers and comments are never searched. `sql/compat/README.md` lists each
/// construct with the reason.
///
/// ```
/// let found = etl_core::sql::compat::unsupported("select * from t qualify row_number() over (order by a) = 1");
/// assert_eq!(found[0].construct, "QUALIFY");
/// assert!(etl_core::sql::compat::unsupported("select dateadd(day, 1, d) from t").is_empty());
/// ```
pub fn unsupported(sql: &str) -> Vec<Finding> {
    let tokens = lex(sql);
    rules::unsupported(sql, &tokens)
        .into_iter()
        .map(|u| Finding {
            offset: u.offset,
            construct: u.construct.to_owned(),
            instead: u.instead.to_owned(),
        })
        .collect()
}

mod rules;

#[cfg(test)]
mod tests;
