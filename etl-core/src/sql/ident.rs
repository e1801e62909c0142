//! Validated SQL names.
//!
//! An [`Ident`] is a name that is valid in both Redshift and PostgreSQL once quoted. It is validated
//! once, when it is created, and quoted every time it is written into SQL (see [`super::quote_ident`]).

use std::fmt;

/// Longest identifier Redshift accepts, in bytes
/// (<https://docs.aws.amazon.com/redshift/latest/dg/r_names.html>).
pub const REDSHIFT_MAX_IDENT_BYTES: usize = 127;

/// Longest identifier PostgreSQL keeps (NAMEDATALEN - 1); longer names are silently truncated by the
/// server, so local runs reject them instead.
pub const POSTGRES_MAX_IDENT_BYTES: usize = 63;

/// Redshift's reserved words, lower case, sorted.
const REDSHIFT_RESERVED: &[&str] = &[
    "aes128",
    "aes256",
    "all",
    "allowoverwrite",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "authorization",
    "az64",
    "backup",
    "between",
    "binary",
    "blanksasnull",
    "both",
    "bytedict",
    "bzip2",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "constraint",
    "create",
    "credentials",
    "cross",
    "current_date",
    "current_time",
    "current_timestamp",
    "current_user",
    "current_user_id",
    "default",
    "deferrable",
    "deflate",
    "defrag",
    "delta",
    "delta32k",
    "desc",
    "disable",
    "distinct",
    "do",
    "else",
    "emptyasnull",
    "enable",
    "encode",
    "encrypt",
    "encryption",
    "end",
    "except",
    "explicit",
    "false",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "globaldict256",
    "globaldict64k",
    "grant",
    "group",
    "gzip",
    "having",
    "identity",
    "ignore",
    "ilike",
    "in",
    "initially",
    "inner",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "language",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "lun",
    "luns",
    "lzo",
    "lzop",
    "minus",
    "mostly16",
    "mostly32",
    "mostly8",
    "natural",
    "new",
    "not",
    "notnull",
    "null",
    "nulls",
    "off",
    "offline",
    "offset",
    "oid",
    "old",
    "on",
    "only",
    "open",
    "or",
    "order",
    "outer",
    "overlaps",
    "parallel",
    "partition",
    "percent",
    "permissions",
    "pivot",
    "placing",
    "primary",
    "raw",
    "readratio",
    "recover",
    "references",
    "rejectlog",
    "resort",
    "respect",
    "restore",
    "right",
    "select",
    "session_user",
    "similar",
    "snapshot",
    "some",
    "sysdate",
    "system",
    "table",
    "tag",
    "tdes",
    "text255",
    "text32k",
    "then",
    "timestamp",
    "to",
    "top",
    "trailing",
    "true",
    "truncatecolumns",
    "union",
    "unique",
    "unnest",
    "unpivot",
    "user",
    "using",
    "verbose",
    "wallet",
    "when",
    "where",
    "with",
    "without",
];

/// A schema, table or column name that follows Redshift's rules for delimited identifiers.
///
/// Invariants (checked by [`Ident::new`]):
/// - 1 to 127 bytes of UTF-8;
/// - no control characters (newline, tab, NUL, ...), since Redshift accepts only printable characters;
/// - no upper-case ASCII letters: Redshift folds delimited identifiers to lower case
///   (unless `enable_case_sensitive_identifier` is on), PostgreSQL does not, so such a name would
///   mean different tables on the two warehouses.
///
/// Anything else is allowed — spaces, quotes, semicolons, reserved words — because the name is always
/// written quoted.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Ident(String);

impl Ident {
    /// Validates `name`.
    ///
    /// # Errors
    /// Returns the rule that was broken, as a sentence fit to follow a JSON path.
    pub fn new(name: impl Into<String>) -> Result<Self, String> {
        let name = name.into();
        if name.is_empty() {
            return Err("must not be empty".into());
        }
        if name.len() > REDSHIFT_MAX_IDENT_BYTES {
            return Err(format!(
                "is {} bytes long; Redshift names are at most {REDSHIFT_MAX_IDENT_BYTES} bytes",
                name.len()
            ));
        }
        if let Some(c) = name.chars().find(|c| c.is_control()) {
            return Err(format!(
                "contains the control character {c:?}; names may hold only printable characters"
            ));
        }
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(format!(
                "{name:?} has upper-case letters; Redshift folds names to lower case, write {:?}",
                name.to_ascii_lowercase()
            ));
        }
        Ok(Ident(name))
    }

    /// The name as written (unquoted).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether Redshift reserves this word
    /// (<https://docs.aws.amazon.com/redshift/latest/dg/r_pg_keywords.html>). Quoted, it still works as
    /// a name — the engine always quotes — but SQL written by hand must quote it too.
    pub fn is_redshift_reserved(&self) -> bool {
        REDSHIFT_RESERVED.binary_search(&self.0.as_str()).is_ok()
    }

    /// Whether PostgreSQL can hold this name without truncating it.
    pub fn fits_postgres(&self) -> bool {
        self.0.len() <= POSTGRES_MAX_IDENT_BYTES
    }
}

impl fmt::Debug for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Displays the name unquoted, for messages. Use [`super::quote_ident`] (or a statement builder) to
/// put it in SQL.
impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Ident {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ident::new(s)
    }
}

impl<'de> serde::Deserialize<'de> for Ident {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ident::new(s).map_err(serde::de::Error::custom)
    }
}

/// A schema-qualified table name.
#[derive(
    Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, serde::Serialize, serde::Deserialize,
)]
pub struct TableName {
    /// The schema.
    pub schema: Ident,
    /// The table.
    pub table: Ident,
}

impl TableName {
    /// Joins a schema and a table name.
    pub fn new(schema: Ident, table: Ident) -> Self {
        TableName { schema, table }
    }

    /// Parses `schema.table`, both parts unquoted; the first `.` separates them.
    ///
    /// # Errors
    /// When there is no `.` or either part breaks the [`Ident`] rules.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (schema, table) = s
            .split_once('.')
            .ok_or_else(|| format!("{s:?} must be written schema.table"))?;
        let schema = Ident::new(schema).map_err(|e| format!("schema {e}"))?;
        let table = Ident::new(table).map_err(|e| format!("table {e}"))?;
        Ok(TableName { schema, table })
    }
}

/// `schema.table`, unquoted, for messages.
impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_hostile_but_printable_names() {
        for name in [
            "a",
            "usage",
            "select",
            "semi;colon",
            "dash--dash",
            "quote\"inside",
            "apostrophe'inside",
            "back\\slash",
            "spaces are fine",
            "ünïcödé_名前",
            "$dollar",
            "1starts_with_digit",
        ] {
            assert!(Ident::new(name).is_ok(), "{name:?} should be accepted");
        }
        let long = "x".repeat(127);
        assert!(Ident::new(long.as_str()).is_ok());
        assert!(!Ident::new(long).unwrap().fits_postgres());
    }

    #[test]
    fn rejects_with_a_reason() {
        let cases = [
            ("", "must not be empty"),
            ("new\nline", "control character"),
            ("tab\there", "control character"),
            ("nul\0", "control character"),
            ("Upper", "write \"upper\""),
        ];
        for (name, expect) in cases {
            let err = Ident::new(name).unwrap_err();
            assert!(err.contains(expect), "{name:?}: {err}");
        }
        let err = Ident::new("é".repeat(64)).unwrap_err();
        assert!(err.contains("128 bytes"), "{err}");
    }

    #[test]
    fn reserved_words() {
        assert!(
            REDSHIFT_RESERVED.windows(2).all(|w| w[0] < w[1]),
            "sorted, for binary_search"
        );
        assert!(Ident::new("raw").unwrap().is_redshift_reserved());
        assert!(Ident::new("user").unwrap().is_redshift_reserved());
        assert!(!Ident::new("usage").unwrap().is_redshift_reserved());
    }

    #[test]
    fn table_names() {
        let t = TableName::parse("stage.usage").unwrap();
        assert_eq!(t.to_string(), "stage.usage");
        assert!(TableName::parse("nodot").is_err());
        assert!(TableName::parse(".x").unwrap_err().contains("schema"));
    }
}
