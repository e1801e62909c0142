//! COPY: Redshift's server-side load from S3, and PostgreSQL's `COPY ... FROM STDIN` fed by the
//! client.

use std::fmt::Write as _;

use super::{
    Dialect, IamRole, Ident, S3Url, TableName, push_char_literal, push_column_list, push_literal,
    push_qualified,
};
use crate::job::{Compression, DateFormat, Format, TimeFormat};

/// Where a Redshift COPY reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    /// Every object whose key starts with this prefix.
    Prefix(S3Url),
    /// The objects listed in a COPY manifest file (`MANIFEST`).
    Manifest(S3Url),
}

/// Redshift `COPY "s"."t" (cols) FROM 's3://...' IAM_ROLE ... <format options>`
/// (<https://docs.aws.amazon.com/redshift/latest/dg/r_COPY.html>).
#[derive(Debug, Clone)]
pub struct CopyFromS3<'a> {
    /// Target table (or the upsert's temporary staging table).
    pub table: CopyTarget<'a>,
    /// Target columns, in file order.
    pub columns: &'a [Ident],
    /// Files.
    pub source: &'a CopySource,
    /// The role Redshift assumes to read S3.
    pub iam_role: &'a IamRole,
    /// The bucket's region, when it differs from the cluster's.
    pub region: Option<&'a str>,
    /// Format options.
    pub format: &'a Format,
    /// The compression of every file (`Compression::Auto` must be resolved by the caller).
    pub compression: Compression,
}

impl std::fmt::Display for CopyFromS3<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = Dialect::Redshift;
        let mut out = String::from("COPY ");
        self.table.push(&mut out);
        out.push(' ');
        push_column_list(&mut out, self.columns);
        out.push_str(" FROM ");
        let (url, manifest) = match self.source {
            CopySource::Prefix(u) => (u, false),
            CopySource::Manifest(u) => (u, true),
        };
        push_literal(&mut out, d, &url.to_string());
        out.push_str(" IAM_ROLE ");
        if self.iam_role.is_default() {
            out.push_str("default");
        } else {
            push_literal(&mut out, d, self.iam_role.as_str());
        }
        if manifest {
            out.push_str(" MANIFEST");
        }
        if let Some(r) = self.region {
            out.push_str(" REGION ");
            push_literal(&mut out, d, r);
        }
        let fmt = self.format;
        if let Some(q) = fmt.csv_quote {
            out.push_str(" CSV");
            if q != b'"' {
                out.push_str(" QUOTE AS ");
                push_char_literal(&mut out, d, q);
            }
        }
        out.push_str(" DELIMITER ");
        push_char_literal(&mut out, d, fmt.delimiter);
        if fmt.ignore_header > 0 {
            let _ = write!(out, " IGNOREHEADER {}", fmt.ignore_header);
        }
        for (on, word) in [
            (fmt.remove_quotes, " REMOVEQUOTES"),
            (fmt.empty_as_null, " EMPTYASNULL"),
            (fmt.blanks_as_null, " BLANKSASNULL"),
            (fmt.escape, " ESCAPE"),
            (fmt.truncate_columns, " TRUNCATECOLUMNS"),
        ] {
            if on {
                out.push_str(word);
            }
        }
        if fmt.null_as != "\\N" {
            out.push_str(" NULL AS ");
            push_literal(&mut out, d, &fmt.null_as);
        }
        if let Some(c) = fmt.accept_inv_chars {
            out.push_str(" ACCEPTINVCHARS AS ");
            push_char_literal(&mut out, d, c);
        }
        for (on, word) in [
            (fmt.fill_record, " FILLRECORD"),
            (fmt.ignore_blank_lines, " IGNOREBLANKLINES"),
            (fmt.trim_blanks, " TRIMBLANKS"),
            (fmt.round_dec, " ROUNDEC"),
            (fmt.accept_any_date, " ACCEPTANYDATE"),
            (fmt.explicit_ids, " EXPLICIT_IDS"),
        ] {
            if on {
                out.push_str(word);
            }
        }
        // Always explicit: Redshift's default without the option is 'YYYY-MM-DD', not 'auto'.
        out.push_str(" DATEFORMAT ");
        match &fmt.date_format {
            DateFormat::Auto => out.push_str("'auto'"),
            DateFormat::Pattern(p) => push_literal(&mut out, d, p),
        }
        out.push_str(" TIMEFORMAT ");
        match &fmt.time_format {
            TimeFormat::Auto => out.push_str("'auto'"),
            TimeFormat::EpochSecs => out.push_str("'epochsecs'"),
            TimeFormat::EpochMillis => out.push_str("'epochmillisecs'"),
            TimeFormat::Pattern(p) => push_literal(&mut out, d, p),
        }
        if fmt.max_error > 0 {
            let _ = write!(out, " MAXERROR {}", fmt.max_error);
        }
        match self.compression {
            Compression::Gzip => out.push_str(" GZIP"),
            Compression::Bzip2 => out.push_str(" BZIP2"),
            Compression::Zstd => out.push_str(" ZSTD"),
            Compression::None | Compression::Auto => {}
        }
        for (setting, word) in [
            (fmt.comp_update, " COMPUPDATE"),
            (fmt.stat_update, " STATUPDATE"),
        ] {
            if let Some(on) = setting {
                out.push_str(word);
                out.push_str(if on { " ON" } else { " OFF" });
            }
        }
        f.write_str(&out)
    }
}

/// PostgreSQL `COPY "s"."t" (cols) FROM STDIN (FORMAT binary|text)`: the rows come from the client,
/// already checked against Redshift's rules.
#[derive(Debug, Clone)]
pub struct CopyFromStdin<'a> {
    /// Target table (or a temporary staging table when `schema` is `None`).
    pub table: CopyTarget<'a>,
    /// Target columns, in file order.
    pub columns: &'a [Ident],
    /// `true` for PostgreSQL's binary COPY format, `false` for text.
    pub binary: bool,
}

/// The target of a [`CopyFromStdin`].
#[derive(Debug, Clone, Copy)]
pub enum CopyTarget<'a> {
    /// A table in a schema.
    Table(&'a TableName),
    /// A temporary table (no schema).
    Temp(&'a Ident),
}

impl CopyTarget<'_> {
    fn push(&self, out: &mut String) {
        match self {
            CopyTarget::Table(t) => push_qualified(out, t),
            CopyTarget::Temp(t) => super::push_ident(out, t.as_str()),
        }
    }
}

impl std::fmt::Display for CopyFromStdin<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::from("COPY ");
        self.table.push(&mut out);
        out.push(' ');
        push_column_list(&mut out, self.columns);
        out.push_str(if self.binary {
            " FROM STDIN (FORMAT binary)"
        } else {
            " FROM STDIN (FORMAT text)"
        });
        f.write_str(&out)
    }
}
