//! The only place that turns values into SQL text.
//!
//! Everything else in the workspace passes typed values ([`Ident`], [`TableName`], [`S3Url`],
//! [`IamRole`], ...) to the builders here. Names are always quoted with [`quote_ident`]; string values
//! always go through [`quote_literal`]. Utility statements (COPY, UNLOAD, DDL) cannot take bind
//! parameters, so they are quoted, not bound; ordinary queries (journal, status) use `$n` parameters.
//!
//! Each builder implements [`std::fmt::Display`] through [`Dialect`]-aware `render` methods; the
//! text never ends with `;` (callers that print a script add it).

mod classify;
pub mod compat;
mod copy;
mod ddl;
pub mod doctor;
mod ident;
pub mod journal;
mod split;
mod status;
mod unload;
mod values;

pub use classify::needs_own_transaction;
pub use copy::{CopyFromS3, CopyFromStdin, CopySource, CopyTarget};
pub use ddl::{
    analyze, create_schema, create_staging_like, create_table, dedup_staging, delete_all,
    delete_matching_staging, drop_table, drop_temp_table, insert_from_staging, lock_table,
};
pub use ident::{Ident, POSTGRES_MAX_IDENT_BYTES, REDSHIFT_MAX_IDENT_BYTES, TableName};
pub use split::{SplitStatement, split_statements};
pub use status::{
    INFLIGHT_LABEL, MAX_LABEL, cancel_labelled_postgres, cancel_statement, postgres_session,
    redshift_history, redshift_inflight, redshift_recents, redshift_session, redshift_transactions,
    session_info, set_label, terminate_labelled_postgres, terminate_session,
};
pub use unload::{CopyToStdout, Unload, unload_query};
pub use values::{IamRole, S3Url};

use std::fmt::Write as _;

/// Starts a transaction block (both dialects).
pub const BEGIN: &str = "BEGIN";
/// Commits the transaction block.
pub const COMMIT: &str = "COMMIT";
/// Rolls the transaction block back.
pub const ROLLBACK: &str = "ROLLBACK";

/// The SQL dialect a statement is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// Amazon Redshift: server-side COPY/UNLOAD, Redshift-only table attributes, backslash escapes in
    /// string literals.
    Redshift,
    /// PostgreSQL (the local stand-in): COPY FROM STDIN / TO STDOUT, standard-conforming strings.
    Postgres,
}

impl std::str::FromStr for Dialect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "redshift" => Ok(Dialect::Redshift),
            "postgres" | "postgresql" => Ok(Dialect::Postgres),
            _ => Err(format!("unknown dialect {s:?}: use redshift or postgres")),
        }
    }
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dialect::Redshift => "redshift",
            Dialect::Postgres => "postgres",
        })
    }
}

/// Quotes a name: wraps it in `"` and doubles every `"` inside. The same in both dialects.
///
/// ```
/// assert_eq!(etl_core::sql::quote_ident("my \"t\""), r#""my ""t""""#);
/// ```
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    push_ident(&mut out, name);
    out
}

pub(crate) fn push_ident(out: &mut String, name: &str) {
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
}

/// Quotes a string literal for `dialect`.
///
/// - Redshift treats backslash as an escape character inside string literals, so both `'` and `\`
///   are doubled (the rule Redshift documents for UNLOAD's query text), and `E''` is never used.
/// - PostgreSQL with `standard_conforming_strings = on` (the default since 9.1, and what the
///   engine sets on every connection) takes backslashes literally, so only `'` is doubled.
///
/// NUL characters cannot be stored in either warehouse; values are validated before they get here,
/// and a NUL that slips through is dropped rather than producing an unterminated literal.
///
/// ```
/// use etl_core::sql::{quote_literal, Dialect};
/// assert_eq!(quote_literal(Dialect::Redshift, r"it's a\b"), r"'it''s a\\b'");
/// assert_eq!(quote_literal(Dialect::Postgres, r"it's a\b"), r"'it''s a\b'");
/// ```
pub fn quote_literal(dialect: Dialect, value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    push_literal(&mut out, dialect, value);
    out
}

pub(crate) fn push_literal(out: &mut String, dialect: Dialect, value: &str) {
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' if dialect == Dialect::Redshift => out.push_str("\\\\"),
            '\0' => {}
            c => out.push(c),
        }
    }
    out.push('\'');
}

/// `"schema"."table"`.
pub fn qualified(table: &TableName) -> String {
    let mut out = String::new();
    push_qualified(&mut out, table);
    out
}

pub(crate) fn push_qualified(out: &mut String, table: &TableName) {
    push_ident(out, table.schema.as_str());
    out.push('.');
    push_ident(out, table.table.as_str());
}

/// `("a", "b", "c")`.
pub(crate) fn push_column_list<'a>(out: &mut String, names: impl IntoIterator<Item = &'a Ident>) {
    out.push('(');
    for (i, name) in names.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_ident(out, name.as_str());
    }
    out.push(')');
}

/// Appends one ASCII byte as a literal; non-printable bytes use Redshift's octal form `'\ddd'`.
pub(crate) fn push_char_literal(out: &mut String, dialect: Dialect, byte: u8) {
    if byte.is_ascii_graphic() || byte == b' ' {
        push_literal(out, dialect, &(byte as char).to_string());
    } else {
        match dialect {
            Dialect::Redshift => {
                let _ = write!(out, "'\\{byte:03o}'");
            }
            // PostgreSQL's COPY accepts an E'' escape for control characters.
            Dialect::Postgres => {
                let _ = write!(out, "E'\\{byte:03o}'");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_with_hostile_text() {
        let cases = [
            ("plain", r#""plain""#),
            ("a\"b", r#""a""b""#),
            ("\"", r#""""""#),
            ("semi;colon", r#""semi;colon""#),
            ("x--y", r#""x--y""#),
            ("it's", r#""it's""#),
            ("back\\slash", r#""back\slash""#),
            ("名前", r#""名前""#),
        ];
        for (input, expect) in cases {
            assert_eq!(quote_ident(input), expect, "{input}");
        }
    }

    #[test]
    fn literals_with_hostile_text() {
        let cases = [
            ("plain", "'plain'", "'plain'"),
            ("it's", "'it''s'", "'it''s'"),
            ("a\\b", "'a\\\\b'", "'a\\b'"),
            ("\\'", "'\\\\'''", "'\\'''"),
            (
                "'; drop table x; --",
                "'''; drop table x; --'",
                "'''; drop table x; --'",
            ),
            ("line\nbreak", "'line\nbreak'", "'line\nbreak'"),
            ("ünï", "'ünï'", "'ünï'"),
            ("nul\0byte", "'nulbyte'", "'nulbyte'"),
        ];
        for (input, redshift, postgres) in cases {
            assert_eq!(
                quote_literal(Dialect::Redshift, input),
                redshift,
                "{input:?}"
            );
            assert_eq!(
                quote_literal(Dialect::Postgres, input),
                postgres,
                "{input:?}"
            );
        }
    }

    #[test]
    fn char_literals() {
        let mut s = String::new();
        push_char_literal(&mut s, Dialect::Redshift, b'|');
        push_char_literal(&mut s, Dialect::Redshift, b'\t');
        push_char_literal(&mut s, Dialect::Redshift, b'\'');
        push_char_literal(&mut s, Dialect::Postgres, b'\t');
        assert_eq!(s, r"'|''\011'''''E'\011'");
    }

    #[test]
    fn dialect_parses() {
        assert_eq!("Redshift".parse::<Dialect>().unwrap(), Dialect::Redshift);
        assert_eq!("postgresql".parse::<Dialect>().unwrap(), Dialect::Postgres);
        assert!("mysql".parse::<Dialect>().is_err());
    }
}

#[cfg(test)]
mod golden;
