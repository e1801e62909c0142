//! The Redshift column types a job may declare, from an allow-list, with their parameters
//! range-checked (<https://docs.aws.amazon.com/redshift/latest/dg/c_Supported_data_types.html>).

use std::fmt;

/// Largest `VARCHAR(n)` length in bytes.
pub const MAX_VARCHAR: u32 = 65_535;
/// Largest `CHAR(n)` length in bytes.
pub const MAX_CHAR: u32 = 4_096;
/// Largest `DECIMAL` precision.
pub const MAX_PRECISION: u8 = 38;

/// A Redshift column type.
///
/// `Char` and `Varchar` lengths count **bytes**, as in Redshift (PostgreSQL counts characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// `SMALLINT` (INT2).
    SmallInt,
    /// `INTEGER` (INT, INT4).
    Integer,
    /// `BIGINT` (INT8).
    BigInt,
    /// `DECIMAL(precision, scale)` (NUMERIC).
    Decimal {
        /// Total digits, 1..=38.
        precision: u8,
        /// Digits after the point, 0..=precision.
        scale: u8,
    },
    /// `REAL` (FLOAT4).
    Real,
    /// `DOUBLE PRECISION` (FLOAT8, FLOAT).
    Double,
    /// `BOOLEAN` (BOOL).
    Boolean,
    /// `CHAR(n)`: fixed length, n bytes, 1..=4096.
    Char(u32),
    /// `VARCHAR(n)`: up to n bytes, 1..=65535.
    Varchar(u32),
    /// `DATE`.
    Date,
    /// `TIMESTAMP` (without time zone).
    Timestamp,
    /// `TIMESTAMPTZ`.
    TimestampTz,
    /// `TIME` (without time zone).
    Time,
    /// `TIMETZ`.
    TimeTz,
}

impl ColumnType {
    /// Parses a type as a user writes it: case-insensitive, aliases allowed (`int8`, `numeric(10,2)`,
    /// `character varying(20)`, `varchar(max)`, `timestamp with time zone`, ...).
    ///
    /// # Errors
    /// Returns the rule broken: an unknown type (with the allowed list) or a parameter out of range.
    pub fn parse(text: &str) -> Result<Self, String> {
        let normalized = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_lowercase();
        let (base, params) = match normalized.find('(') {
            Some(open) => {
                let close = normalized
                    .rfind(')')
                    .filter(|&c| c > open && normalized[c + 1..].trim().is_empty())
                    .ok_or_else(|| format!("{text:?}: unbalanced parentheses"))?;
                let params: Vec<String> = normalized[open + 1..close]
                    .split(',')
                    .map(|p| p.trim().to_owned())
                    .collect();
                (normalized[..open].trim().to_owned(), Some(params))
            }
            None => (normalized.clone(), None),
        };
        let no_params = |t: ColumnType| match &params {
            None => Ok(t),
            Some(_) => Err(format!("{text:?}: {} takes no parameters", t.name())),
        };
        match base.as_str() {
            "smallint" | "int2" => no_params(ColumnType::SmallInt),
            "integer" | "int" | "int4" => no_params(ColumnType::Integer),
            "bigint" | "int8" => no_params(ColumnType::BigInt),
            "real" | "float4" => no_params(ColumnType::Real),
            "double precision" | "float8" | "float" => no_params(ColumnType::Double),
            "boolean" | "bool" => no_params(ColumnType::Boolean),
            "date" => no_params(ColumnType::Date),
            "timestamp" | "timestamp without time zone" => no_params(ColumnType::Timestamp),
            "timestamptz" | "timestamp with time zone" => no_params(ColumnType::TimestampTz),
            "time" | "time without time zone" => no_params(ColumnType::Time),
            "timetz" | "time with time zone" => no_params(ColumnType::TimeTz),
            "decimal" | "numeric" => {
                let (precision, scale) = match params.as_deref() {
                    None => (18, 0),
                    Some([p]) => (parse_param(text, p, "precision")?, 0),
                    Some([p, s]) => (
                        parse_param(text, p, "precision")?,
                        parse_param(text, s, "scale")?,
                    ),
                    Some(_) => return Err(format!("{text:?}: DECIMAL takes (precision, scale)")),
                };
                if precision == 0 || precision > u32::from(MAX_PRECISION) {
                    return Err(format!(
                        "{text:?}: DECIMAL precision must be 1 to {MAX_PRECISION}"
                    ));
                }
                if scale > precision {
                    return Err(format!(
                        "{text:?}: DECIMAL scale must be 0 to the precision ({precision})"
                    ));
                }
                Ok(ColumnType::Decimal {
                    precision: precision as u8,
                    scale: scale as u8,
                })
            }
            "char" | "character" | "nchar" | "bpchar" => {
                let n = match params.as_deref() {
                    None if base == "bpchar" => 256,
                    None => 1,
                    Some([n]) => parse_param(text, n, "length")?,
                    Some(_) => return Err(format!("{text:?}: CHAR takes one length")),
                };
                if n == 0 || n > MAX_CHAR {
                    return Err(format!(
                        "{text:?}: CHAR length must be 1 to {MAX_CHAR} bytes"
                    ));
                }
                Ok(ColumnType::Char(n))
            }
            "varchar" | "character varying" | "nvarchar" | "text" => {
                let n = match params.as_deref() {
                    None if base == "text" => 256,
                    None => 256,
                    Some(_) if base == "text" => {
                        return Err(format!("{text:?}: TEXT takes no length; use VARCHAR(n)"));
                    }
                    Some([n]) if n == "max" => MAX_VARCHAR,
                    Some([n]) => parse_param(text, n, "length")?,
                    Some(_) => return Err(format!("{text:?}: VARCHAR takes one length")),
                };
                if n == 0 || n > MAX_VARCHAR {
                    return Err(format!(
                        "{text:?}: VARCHAR length must be 1 to {MAX_VARCHAR} bytes (or MAX)"
                    ));
                }
                Ok(ColumnType::Varchar(n))
            }
            _ => Err(format!(
                "{text:?} is not a supported Redshift type; use one of SMALLINT, INTEGER, BIGINT, \
                 DECIMAL(p,s), REAL, DOUBLE PRECISION, BOOLEAN, CHAR(n), VARCHAR(n), DATE, TIMESTAMP, \
                 TIMESTAMPTZ, TIME, TIMETZ"
            )),
        }
    }

    /// The type's name without parameters, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            ColumnType::SmallInt => "SMALLINT",
            ColumnType::Integer => "INTEGER",
            ColumnType::BigInt => "BIGINT",
            ColumnType::Decimal { .. } => "DECIMAL",
            ColumnType::Real => "REAL",
            ColumnType::Double => "DOUBLE PRECISION",
            ColumnType::Boolean => "BOOLEAN",
            ColumnType::Char(_) => "CHAR",
            ColumnType::Varchar(_) => "VARCHAR",
            ColumnType::Date => "DATE",
            ColumnType::Timestamp => "TIMESTAMP",
            ColumnType::TimestampTz => "TIMESTAMPTZ",
            ColumnType::Time => "TIME",
            ColumnType::TimeTz => "TIMETZ",
        }
    }

    /// CHAR and VARCHAR: the types EMPTYASNULL, BLANKSASNULL, TRUNCATECOLUMNS and ACCEPTINVCHARS
    /// apply to.
    pub fn is_character(&self) -> bool {
        matches!(self, ColumnType::Char(_) | ColumnType::Varchar(_))
    }

    /// The byte limit of a character type.
    pub fn max_bytes(&self) -> Option<u32> {
        match self {
            ColumnType::Char(n) | ColumnType::Varchar(n) => Some(*n),
            _ => None,
        }
    }

    /// The spelling PostgreSQL understands for the same values. Character lengths stay the same:
    /// a value of at most n bytes has at most n characters, so PostgreSQL never rejects a value
    /// Redshift accepts; the loader enforces the byte limit itself.
    pub fn postgres_sql(&self) -> String {
        match self {
            ColumnType::TimeTz => "TIME WITH TIME ZONE".into(),
            ColumnType::TimestampTz => "TIMESTAMP WITH TIME ZONE".into(),
            other => other.to_string(),
        }
    }
}

fn parse_param(text: &str, p: &str, what: &str) -> Result<u32, String> {
    p.parse::<u32>()
        .map_err(|_| format!("{text:?}: {what} {p:?} is not a whole number"))
}

/// The canonical Redshift spelling, e.g. `DECIMAL(12,2)`, `VARCHAR(64)`.
impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::Decimal { precision, scale } => write!(f, "DECIMAL({precision},{scale})"),
            ColumnType::Char(n) => write!(f, "CHAR({n})"),
            ColumnType::Varchar(n) => write!(f, "VARCHAR({n})"),
            other => f.write_str(other.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_aliases_to_canonical_names() {
        let cases = [
            ("int", "INTEGER"),
            ("INT8", "BIGINT"),
            ("numeric", "DECIMAL(18,0)"),
            ("decimal( 12 , 2 )", "DECIMAL(12,2)"),
            ("numeric(5)", "DECIMAL(5,0)"),
            ("float", "DOUBLE PRECISION"),
            ("double   precision", "DOUBLE PRECISION"),
            ("float4", "REAL"),
            ("bool", "BOOLEAN"),
            ("character varying(20)", "VARCHAR(20)"),
            ("varchar(max)", "VARCHAR(65535)"),
            ("varchar", "VARCHAR(256)"),
            ("text", "VARCHAR(256)"),
            ("char", "CHAR(1)"),
            ("bpchar", "CHAR(256)"),
            ("nchar(3)", "CHAR(3)"),
            ("timestamp without time zone", "TIMESTAMP"),
            ("timestamp with time zone", "TIMESTAMPTZ"),
            ("timetz", "TIMETZ"),
            ("date", "DATE"),
        ];
        for (input, expect) in cases {
            assert_eq!(
                ColumnType::parse(input).unwrap().to_string(),
                expect,
                "{input}"
            );
        }
    }

    #[test]
    fn range_checks_parameters() {
        for (input, expect) in [
            ("decimal(39,2)", "precision must be 1 to 38"),
            ("decimal(0)", "precision must be 1 to 38"),
            ("decimal(5,6)", "scale must be 0 to the precision"),
            ("varchar(0)", "1 to 65535"),
            ("varchar(65536)", "1 to 65535"),
            ("char(4097)", "1 to 4096"),
            ("varchar(-1)", "not a whole number"),
            ("varchar(ten)", "not a whole number"),
            ("integer(4)", "takes no parameters"),
            ("text(10)", "TEXT takes no length"),
            ("decimal(1,2,3)", "takes (precision, scale)"),
            ("varchar(10", "unbalanced"),
            ("json", "not a supported Redshift type"),
            ("super", "not a supported Redshift type"),
        ] {
            let err = ColumnType::parse(input).unwrap_err();
            assert!(err.contains(expect), "{input}: {err}");
        }
    }

    #[test]
    fn postgres_spelling() {
        assert_eq!(ColumnType::TimeTz.postgres_sql(), "TIME WITH TIME ZONE");
        assert_eq!(ColumnType::Varchar(10).postgres_sql(), "VARCHAR(10)");
        assert!(ColumnType::Char(3).is_character());
        assert!(!ColumnType::Date.is_character());
    }
}
