//! File-format options of a table's input files: Redshift's COPY data-format, data-conversion and
//! compression parameters (<https://docs.aws.amazon.com/redshift/latest/dg/r_COPY.html>).
//!
//! The manifest's `format` objects ([`FormatSpec`]) are layered — built-in defaults, then the job's
//! `format`, then the table's `format` — into one resolved [`Format`] per table.

use serde::{Deserialize, Serialize};

/// Compression of input files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Decide per file from its extension (`.gz`, `.bz2`, `.zst`; anything else is plain).
    /// Redshift needs one explicit option per COPY, so the plan for Redshift requires every file of a
    /// table to share one compression.
    Auto,
    /// Plain text.
    None,
    /// `GZIP`.
    Gzip,
    /// `BZIP2`.
    Bzip2,
    /// `ZSTD`.
    Zstd,
}

impl Compression {
    /// The compression a file name implies (`Auto` resolved by extension).
    pub fn for_file(self, name: &str) -> Compression {
        match self {
            Compression::Auto => {
                let lower = name.to_ascii_lowercase();
                if lower.ends_with(".gz") || lower.ends_with(".gzip") {
                    Compression::Gzip
                } else if lower.ends_with(".bz2") {
                    Compression::Bzip2
                } else if lower.ends_with(".zst") || lower.ends_with(".zstd") {
                    Compression::Zstd
                } else {
                    Compression::None
                }
            }
            other => other,
        }
    }
}

/// `DATEFORMAT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateFormat {
    /// `'auto'`: the formats Redshift recognises automatically.
    Auto,
    /// A pattern such as `YYYY-MM-DD`, `DD/MM/YYYY`, `MON DD YYYY`.
    Pattern(String),
}

/// `TIMEFORMAT` (for TIMESTAMP and TIMESTAMPTZ columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    /// `'auto'`.
    Auto,
    /// `'epochsecs'`: seconds since 1970-01-01 00:00:00 UTC.
    EpochSecs,
    /// `'epochmillisecs'`: milliseconds since the epoch.
    EpochMillis,
    /// A pattern such as `YYYY-MM-DD HH:MI:SS`.
    Pattern(String),
}

/// The resolved input format of one table: every COPY option with its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    /// `DELIMITER`: one ASCII byte.
    pub delimiter: u8,
    /// `IGNOREHEADER n`: lines skipped at the top of each file.
    pub ignore_header: u32,
    /// `REMOVEQUOTES`: strip surrounding `"`; delimiters inside quotes are data.
    pub remove_quotes: bool,
    /// `CSV [QUOTE AS 'q']`: RFC 4180 quoting with this quote byte.
    pub csv_quote: Option<u8>,
    /// `EMPTYASNULL`: an empty CHAR/VARCHAR field is NULL.
    pub empty_as_null: bool,
    /// `BLANKSASNULL`: a whitespace-only CHAR/VARCHAR field is NULL.
    pub blanks_as_null: bool,
    /// `NULL AS 'str'`: this exact field text is NULL (default `\N`).
    pub null_as: String,
    /// `ESCAPE`: backslash escapes the next character.
    pub escape: bool,
    /// `TRUNCATECOLUMNS`: cut CHAR/VARCHAR values to the column length (in bytes).
    pub truncate_columns: bool,
    /// `ACCEPTINVCHARS ['c']`: replace each invalid UTF-8 byte sequence with this ASCII byte,
    /// repeated to the sequence's length (VARCHAR only). `None`: invalid UTF-8 rejects the row.
    pub accept_inv_chars: Option<u8>,
    /// `FILLRECORD`: missing trailing columns load as NULL.
    pub fill_record: bool,
    /// `IGNOREBLANKLINES`: skip empty lines.
    pub ignore_blank_lines: bool,
    /// `TRIMBLANKS`: remove trailing blanks from VARCHAR values.
    pub trim_blanks: bool,
    /// `ROUNDEC`: round extra decimals instead of truncating them.
    pub round_dec: bool,
    /// `DATEFORMAT`.
    pub date_format: DateFormat,
    /// `TIMEFORMAT`.
    pub time_format: TimeFormat,
    /// `ACCEPTANYDATE`: unparseable dates load as NULL instead of failing.
    pub accept_any_date: bool,
    /// `MAXERROR n`: rows that may be rejected before the load fails.
    pub max_error: u64,
    /// Input compression.
    pub compression: Compression,
    /// `EXPLICIT_IDS` (Redshift only: IDENTITY columns).
    pub explicit_ids: bool,
    /// `COMPUPDATE ON|OFF` (Redshift only; `None` leaves Redshift's default).
    pub comp_update: Option<bool>,
    /// `STATUPDATE ON|OFF` (Redshift only; `None` leaves Redshift's default).
    pub stat_update: Option<bool>,
}

impl Default for Format {
    /// The original design's options: `REMOVEQUOTES EMPTYASNULL BLANKSASNULL DELIMITER '|'
    /// IGNOREHEADER 1 GZIP`; everything else at Redshift's defaults.
    fn default() -> Self {
        Format {
            delimiter: b'|',
            ignore_header: 1,
            remove_quotes: true,
            csv_quote: None,
            empty_as_null: true,
            blanks_as_null: true,
            null_as: "\\N".into(),
            escape: false,
            truncate_columns: false,
            accept_inv_chars: None,
            fill_record: false,
            ignore_blank_lines: false,
            trim_blanks: false,
            round_dec: false,
            date_format: DateFormat::Auto,
            time_format: TimeFormat::Auto,
            accept_any_date: false,
            max_error: 0,
            compression: Compression::Gzip,
            explicit_ids: false,
            comp_update: None,
            stat_update: None,
        }
    }
}

/// `ACCEPTINVCHARS` as written in a manifest: `true` (replace with `?`), `false`, or a one-character
/// string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AcceptInvChars {
    /// `true` or `false`.
    Flag(bool),
    /// The replacement character.
    Char(String),
}

/// The `format` object of a manifest (job default or table override). Every field is optional;
/// omitted fields inherit. Field names follow Redshift's option names in lower case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatSpec {
    /// `DELIMITER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// `IGNOREHEADER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignoreheader: Option<u32>,
    /// `REMOVEQUOTES`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removequotes: Option<bool>,
    /// `CSV`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv: Option<bool>,
    /// `QUOTE AS` (CSV only; default `"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<String>,
    /// `EMPTYASNULL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emptyasnull: Option<bool>,
    /// `BLANKSASNULL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blanksasnull: Option<bool>,
    /// `NULL AS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_as: Option<String>,
    /// `ESCAPE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escape: Option<bool>,
    /// `TRUNCATECOLUMNS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncatecolumns: Option<bool>,
    /// `ACCEPTINVCHARS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptinvchars: Option<AcceptInvChars>,
    /// `FILLRECORD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fillrecord: Option<bool>,
    /// `IGNOREBLANKLINES`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignoreblanklines: Option<bool>,
    /// `TRIMBLANKS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trimblanks: Option<bool>,
    /// `ROUNDEC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roundec: Option<bool>,
    /// `DATEFORMAT`: `auto` or a pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dateformat: Option<String>,
    /// `TIMEFORMAT`: `auto`, `epochsecs`, `epochmillisecs` or a pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeformat: Option<String>,
    /// `ACCEPTANYDATE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptanydate: Option<bool>,
    /// `MAXERROR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxerror: Option<u64>,
    /// `GZIP` / `BZIP2` / `ZSTD` / none / auto (by file extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// `ENCODING`: only `utf8` is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// `EXPLICIT_IDS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explicit_ids: Option<bool>,
    /// `COMPUPDATE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compupdate: Option<bool>,
    /// `STATUPDATE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statupdate: Option<bool>,
}

/// Reads a single ASCII character option, allowing Redshift's octal form `\ddd`.
fn single_ascii(value: &str, what: &str) -> Result<u8, String> {
    let byte = if value.len() == 4 && value.starts_with('\\') {
        u8::from_str_radix(&value[1..], 8)
            .map_err(|_| format!("{what} {value:?} is not a valid octal escape like '\\174'"))?
    } else if value.len() == 1 && value.is_ascii() {
        value.as_bytes()[0]
    } else {
        return Err(format!(
            "{what} must be exactly one ASCII character (or an octal escape like '\\174'), got {value:?}"
        ));
    };
    if byte == 0 || byte >= 0x80 {
        return Err(format!("{what} must be an ASCII character other than NUL"));
    }
    Ok(byte)
}

impl Format {
    /// Applies the fields set in `spec` on top of `self`.
    ///
    /// # Errors
    /// Returns `(field, rule)` pairs for every invalid field; the caller adds the JSON path.
    pub fn apply(&self, spec: &FormatSpec) -> Result<Format, Vec<(&'static str, String)>> {
        let mut f = self.clone();
        let mut errors = Vec::new();
        if let Some(d) = &spec.delimiter {
            match single_ascii(d, "the delimiter") {
                Ok(b'\n' | b'\r') => errors.push(("delimiter", "must not be a line break".into())),
                Ok(b) => f.delimiter = b,
                Err(e) => errors.push(("delimiter", e)),
            }
        }
        if let Some(n) = spec.ignoreheader {
            f.ignore_header = n;
        }
        if let Some(b) = spec.removequotes {
            f.remove_quotes = b;
        }
        match (spec.csv, &spec.quote) {
            (Some(true), q) => {
                let quote = match q {
                    Some(q) => match single_ascii(q, "quote") {
                        Ok(b) => b,
                        Err(e) => {
                            errors.push(("quote", e));
                            b'"'
                        }
                    },
                    None => f.csv_quote.unwrap_or(b'"'),
                };
                f.csv_quote = Some(quote);
                // CSV replaces the default REMOVEQUOTES unless the same spec asks for both.
                if spec.removequotes.is_none() {
                    f.remove_quotes = false;
                }
            }
            (Some(false), _) => f.csv_quote = None,
            (None, Some(q)) => {
                if f.csv_quote.is_some() {
                    match single_ascii(q, "quote") {
                        Ok(b) => f.csv_quote = Some(b),
                        Err(e) => errors.push(("quote", e)),
                    }
                } else {
                    errors.push(("quote", "applies only with \"csv\": true".into()));
                }
            }
            (None, None) => {}
        }
        if let Some(b) = spec.emptyasnull {
            f.empty_as_null = b;
        }
        if let Some(b) = spec.blanksasnull {
            f.blanks_as_null = b;
        }
        if let Some(s) = &spec.null_as {
            if s.contains('\0') {
                errors.push(("null_as", "must not contain NUL".into()));
            } else {
                f.null_as = s.clone();
            }
        }
        if let Some(b) = spec.escape {
            f.escape = b;
        }
        if let Some(b) = spec.truncatecolumns {
            f.truncate_columns = b;
        }
        match &spec.acceptinvchars {
            None => {}
            Some(AcceptInvChars::Flag(false)) => f.accept_inv_chars = None,
            Some(AcceptInvChars::Flag(true)) => f.accept_inv_chars = Some(b'?'),
            Some(AcceptInvChars::Char(c)) => match single_ascii(c, "the replacement character") {
                Ok(b) => f.accept_inv_chars = Some(b),
                Err(e) => errors.push(("acceptinvchars", e)),
            },
        }
        if let Some(b) = spec.fillrecord {
            f.fill_record = b;
        }
        if let Some(b) = spec.ignoreblanklines {
            f.ignore_blank_lines = b;
        }
        if let Some(b) = spec.trimblanks {
            f.trim_blanks = b;
        }
        if let Some(b) = spec.roundec {
            f.round_dec = b;
        }
        if let Some(d) = &spec.dateformat {
            f.date_format = if d.eq_ignore_ascii_case("auto") {
                DateFormat::Auto
            } else {
                match crate::load::datetime::validate_date_pattern(d) {
                    Ok(()) => DateFormat::Pattern(d.clone()),
                    Err(e) => {
                        errors.push(("dateformat", e));
                        DateFormat::Auto
                    }
                }
            };
        }
        if let Some(t) = &spec.timeformat {
            f.time_format = match t.to_ascii_lowercase().as_str() {
                "auto" => TimeFormat::Auto,
                "epochsecs" => TimeFormat::EpochSecs,
                "epochmillisecs" => TimeFormat::EpochMillis,
                _ => match crate::load::datetime::validate_time_pattern(t) {
                    Ok(()) => TimeFormat::Pattern(t.clone()),
                    Err(e) => {
                        errors.push(("timeformat", e));
                        TimeFormat::Auto
                    }
                },
            };
        }
        if let Some(b) = spec.acceptanydate {
            f.accept_any_date = b;
        }
        if let Some(n) = spec.maxerror {
            f.max_error = n;
        }
        if let Some(c) = spec.compression {
            f.compression = c;
        }
        if let Some(e) = &spec.encoding {
            let e = e.to_ascii_lowercase().replace('-', "");
            if e != "utf8" {
                errors.push((
                    "encoding",
                    format!("only UTF8 input is supported, got {e:?}; convert the files to UTF-8"),
                ));
            }
        }
        if let Some(b) = spec.explicit_ids {
            f.explicit_ids = b;
        }
        if spec.compupdate.is_some() {
            f.comp_update = spec.compupdate;
        }
        if spec.statupdate.is_some() {
            f.stat_update = spec.statupdate;
        }
        // Combinations Redshift refuses.
        if f.csv_quote.is_some() && f.remove_quotes {
            errors.push(("csv", "CSV cannot be combined with REMOVEQUOTES".into()));
        }
        if f.csv_quote.is_some() && f.escape {
            errors.push(("csv", "CSV cannot be combined with ESCAPE".into()));
        }
        if f.csv_quote == Some(f.delimiter) {
            errors.push(("quote", "the quote must differ from the delimiter".into()));
        }
        if errors.is_empty() {
            Ok(f)
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> FormatSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_are_the_original_design() {
        let f = Format::default();
        assert_eq!(f.delimiter, b'|');
        assert_eq!(f.ignore_header, 1);
        assert!(f.remove_quotes && f.empty_as_null && f.blanks_as_null);
        assert_eq!(f.compression, Compression::Gzip);
        assert_eq!(f.null_as, "\\N");
    }

    #[test]
    fn overrides_layer() {
        let job = Format::default()
            .apply(&spec(r#"{"delimiter": ",", "maxerror": 5}"#))
            .unwrap();
        let table = job.apply(&spec(r#"{"ignoreheader": 2}"#)).unwrap();
        assert_eq!(table.delimiter, b',');
        assert_eq!(table.max_error, 5);
        assert_eq!(table.ignore_header, 2);
        let octal = Format::default()
            .apply(&spec(r#"{"delimiter": "\\011"}"#))
            .unwrap();
        assert_eq!(octal.delimiter, b'\t');
    }

    #[test]
    fn csv_turns_off_default_removequotes() {
        let f = Format::default().apply(&spec(r#"{"csv": true}"#)).unwrap();
        assert_eq!(f.csv_quote, Some(b'"'));
        assert!(!f.remove_quotes);
    }

    #[test]
    fn invalid_combinations_name_the_field() {
        let errs = Format::default()
            .apply(&spec(
                r#"{"csv": true, "removequotes": true, "delimiter": "||", "acceptinvchars": "é"}"#,
            ))
            .unwrap_err();
        let fields: Vec<_> = errs.iter().map(|(f, _)| *f).collect();
        assert!(fields.contains(&"delimiter"), "{errs:?}");
        assert!(fields.contains(&"csv"), "{errs:?}");
        assert!(fields.contains(&"acceptinvchars"), "{errs:?}");
        let errs = Format::default()
            .apply(&spec(r#"{"quote": "'"}"#))
            .unwrap_err();
        assert_eq!(errs[0].0, "quote");
        let errs = Format::default()
            .apply(&spec(r#"{"encoding": "latin1"}"#))
            .unwrap_err();
        assert!(errs[0].1.contains("UTF-8"));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_str::<FormatSpec>(r#"{"delimeter": "|"}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `delimeter`"),
            "{err}"
        );
    }

    #[test]
    fn compression_by_extension() {
        assert_eq!(Compression::Auto.for_file("a.txt.GZ"), Compression::Gzip);
        assert_eq!(Compression::Auto.for_file("a.bz2"), Compression::Bzip2);
        assert_eq!(Compression::Auto.for_file("a.zst"), Compression::Zstd);
        assert_eq!(Compression::Auto.for_file("a.txt"), Compression::None);
        assert_eq!(Compression::Gzip.for_file("a.txt"), Compression::Gzip);
    }
}
