//! UNLOAD: Redshift's server-side export to S3, and the PostgreSQL `COPY (query) TO STDOUT` that the
//! local engine writes into the same file layout.

use std::fmt::Write as _;

use super::{Dialect, IamRole, S3Url, push_char_literal, push_literal, push_qualified};
use crate::job::{Overwrite, Unload as UnloadSpec, UnloadCompression, UnloadFormat, UnloadSource};

/// The query an unload runs: the manifest's query, or `SELECT * FROM "s"."t"`.
pub fn unload_query(source: &UnloadSource) -> String {
    match source {
        UnloadSource::Query(q) => q.trim().trim_end_matches(';').trim_end().to_owned(),
        UnloadSource::Table(t) => {
            let mut out = String::from("SELECT * FROM ");
            push_qualified(&mut out, t);
            out
        }
    }
}

/// Redshift `UNLOAD ('query') TO 's3://...' IAM_ROLE ... <options>`
/// (<https://docs.aws.amazon.com/redshift/latest/dg/r_UNLOAD.html>). The query becomes a string
/// literal: its quotes and backslashes are doubled.
#[derive(Debug, Clone)]
pub struct Unload<'a> {
    /// The unload options from the manifest.
    pub spec: &'a UnloadSpec,
    /// The S3 name prefix.
    pub to: &'a S3Url,
    /// The role Redshift assumes to write S3.
    pub iam_role: &'a IamRole,
    /// The bucket's region, when it differs from the cluster's.
    pub region: Option<&'a str>,
}

impl std::fmt::Display for Unload<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = Dialect::Redshift;
        let s = self.spec;
        let mut out = String::from("UNLOAD (");
        push_literal(&mut out, d, &unload_query(&s.source));
        out.push_str(") TO ");
        push_literal(&mut out, d, &self.to.to_string());
        out.push_str(" IAM_ROLE ");
        if self.iam_role.is_default() {
            out.push_str("default");
        } else {
            push_literal(&mut out, d, self.iam_role.as_str());
        }
        match s.format {
            UnloadFormat::Csv => {
                out.push_str(" FORMAT AS CSV");
                if s.delimiter != b',' {
                    out.push_str(" DELIMITER AS ");
                    push_char_literal(&mut out, d, s.delimiter);
                }
            }
            UnloadFormat::Text => {
                out.push_str(" DELIMITER AS ");
                push_char_literal(&mut out, d, s.delimiter);
                if s.add_quotes {
                    out.push_str(" ADDQUOTES");
                }
                if s.escape {
                    out.push_str(" ESCAPE");
                }
            }
        }
        if s.header {
            out.push_str(" HEADER");
        }
        if let Some(n) = &s.null_as {
            out.push_str(" NULL AS ");
            push_literal(&mut out, d, n);
        }
        match s.compression {
            UnloadCompression::None => {}
            UnloadCompression::Gzip => out.push_str(" GZIP"),
            UnloadCompression::Zstd => out.push_str(" ZSTD"),
            UnloadCompression::Bzip2 => out.push_str(" BZIP2"),
        }
        out.push_str(if s.parallel {
            " PARALLEL ON"
        } else {
            " PARALLEL OFF"
        });
        if let Some(mb) = s.max_file_size_mb {
            let _ = write!(out, " MAXFILESIZE {mb} MB");
        }
        if s.manifest {
            out.push_str(" MANIFEST");
        }
        match s.overwrite {
            Overwrite::Fail => {}
            Overwrite::Allow => out.push_str(" ALLOWOVERWRITE"),
            Overwrite::Clean => out.push_str(" CLEANPATH"),
        }
        if let Some(ext) = &s.extension {
            out.push_str(" EXTENSION ");
            push_literal(&mut out, d, ext);
        }
        if let Some(r) = self.region {
            out.push_str(" REGION ");
            push_literal(&mut out, d, r);
        }
        f.write_str(&out)
    }
}

/// PostgreSQL `COPY (query) TO STDOUT (FORMAT csv|text, ...)`: the rows the local engine writes into
/// UNLOAD's file layout. Headers are written by the client into every file, so COPY's own HEADER is
/// not used.
#[derive(Debug, Clone)]
pub struct CopyToStdout<'a> {
    /// The query.
    pub query: &'a str,
    /// `FORMAT csv` with this delimiter and NULL string; `None` for PostgreSQL's text format (the
    /// client then re-renders the values).
    pub csv: Option<(u8, &'a str)>,
}

impl std::fmt::Display for CopyToStdout<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = Dialect::Postgres;
        let mut out = String::from("COPY (");
        out.push_str(self.query);
        out.push_str(") TO STDOUT (FORMAT ");
        match self.csv {
            Some((delim, null)) => {
                out.push_str("csv, DELIMITER ");
                push_char_literal(&mut out, d, delim);
                out.push_str(", NULL ");
                push_literal(&mut out, d, null);
            }
            None => out.push_str("text"),
        }
        out.push(')');
        f.write_str(&out)
    }
}

impl<'a> CopyToStdout<'a> {
    /// The COPY the local unload runs: PostgreSQL's text format, whose escapes the client undoes
    /// before it writes each value by Redshift's text or CSV rules (PostgreSQL's own CSV quotes an
    /// empty string and a value equal to the NULL string, which Redshift's CSV does not).
    pub fn local_unload(query: &'a str) -> Self {
        CopyToStdout { query, csv: None }
    }

    /// Run on the session before the COPY: `REAL` and `DOUBLE PRECISION` values then print with 6
    /// and 15 significant digits, as Redshift prints them, instead of PostgreSQL 12's shortest
    /// exact form (`0.30000000000000004` for `0.1::float8 + 0.2`).
    pub const SET_FLOAT_DIGITS: &'static str = "SET extra_float_digits = 0";

    /// Run on the session after the unload: back to the session's default.
    pub const RESET_FLOAT_DIGITS: &'static str = "RESET extra_float_digits";
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    #[test]
    fn local_unload_statements() {
        let copy = CopyToStdout::local_unload("select 'it''s' as \"a\"\"b\"").to_string();
        assert_eq!(
            copy,
            "COPY (select 'it''s' as \"a\"\"b\") TO STDOUT (FORMAT text)"
        );
        for sql in [
            copy.as_str(),
            CopyToStdout::SET_FLOAT_DIGITS,
            CopyToStdout::RESET_FLOAT_DIGITS,
        ] {
            let parsed = Parser::parse_sql(&PostgreSqlDialect {}, sql)
                .unwrap_or_else(|e| panic!("{e}: {sql}"));
            assert_eq!(parsed.len(), 1, "{sql}");
        }
    }
}
