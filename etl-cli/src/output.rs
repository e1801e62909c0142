//! Result-set printers: an aligned table for people, CSV exactly as `psql --csv` writes it, and JSON.

use std::io::Write;

use clap::ValueEnum;
use serde_json::Value;
use tokio_postgres::types::Type;

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An aligned table with a row count, for reading.
    Table,
    /// CSV as `psql --csv` prints it: header line, NULL as an empty field, quotes only when needed.
    Csv,
    /// One JSON array of objects per result set; numbers and booleans typed.
    Json,
}

/// Receives one result set at a time.
pub trait Printer {
    /// A result set starts.
    fn begin(&mut self, columns: &[String], types: Option<&[Type]>) -> std::io::Result<()>;
    /// One row (text values as the server sent them; `None` is NULL).
    fn row(&mut self, values: &[Option<&str>]) -> std::io::Result<()>;
    /// The result set ended.
    fn end(&mut self) -> std::io::Result<()>;
    /// A statement without a result set completed (`tag` like `CREATE TABLE`, `INSERT 0 3`).
    fn command(&mut self, tag: &str) -> std::io::Result<()>;
}

/// A printer for `format` writing to `out`.
pub fn printer<'a>(format: Format, out: Box<dyn Write + 'a>) -> Box<dyn Printer + 'a> {
    match format {
        Format::Csv => Box::new(Csv { out }),
        Format::Json => Box::new(Json {
            out,
            columns: Vec::new(),
            types: None,
            first: true,
        }),
        Format::Table => Box::new(Table {
            out,
            columns: Vec::new(),
            rows: Vec::new(),
        }),
    }
}

struct Csv<'a> {
    out: Box<dyn Write + 'a>,
}

/// psql's `csv_print_field`: quote when the field holds the separator, a quote, CR or LF, or is
/// exactly `\.`; double the quotes inside.
fn write_csv_field(out: &mut dyn Write, field: &str, sep: u8) -> std::io::Result<()> {
    let needs_quotes = field
        .bytes()
        .any(|b| b == sep || b == b'"' || b == b'\r' || b == b'\n')
        || field == "\\."
        || sep == b'\\'
        || sep == b'.';
    if !needs_quotes {
        return out.write_all(field.as_bytes());
    }
    out.write_all(b"\"")?;
    for part in field.split_inclusive('"') {
        out.write_all(part.as_bytes())?;
        if part.ends_with('"') {
            out.write_all(b"\"")?;
        }
    }
    out.write_all(b"\"")
}

impl Printer for Csv<'_> {
    fn begin(&mut self, columns: &[String], _: Option<&[Type]>) -> std::io::Result<()> {
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                self.out.write_all(b",")?;
            }
            write_csv_field(&mut self.out, c, b',')?;
        }
        self.out.write_all(b"\n")
    }

    fn row(&mut self, values: &[Option<&str>]) -> std::io::Result<()> {
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.out.write_all(b",")?;
            }
            if let Some(v) = v {
                write_csv_field(&mut self.out, v, b',')?;
            }
        }
        self.out.write_all(b"\n")
    }

    fn end(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    fn command(&mut self, _tag: &str) -> std::io::Result<()> {
        Ok(())
    }
}

struct Json<'a> {
    out: Box<dyn Write + 'a>,
    columns: Vec<String>,
    types: Option<Vec<Type>>,
    first: bool,
}

/// Text from the server to a typed JSON value: integers and floats as numbers (NaN and infinities
/// stay strings), booleans as true/false, json/jsonb embedded, everything else (including NUMERIC,
/// to keep its precision) as a string.
fn json_value(text: &str, ty: Option<&Type>) -> Value {
    match ty {
        Some(t) if *t == Type::INT2 || *t == Type::INT4 || *t == Type::INT8 || *t == Type::OID => {
            text.parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(text))
        }
        Some(t) if *t == Type::FLOAT4 || *t == Type::FLOAT8 => text
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::from)
            .unwrap_or_else(|| Value::from(text)),
        Some(t) if *t == Type::BOOL => Value::Bool(text == "t"),
        Some(t) if *t == Type::JSON || *t == Type::JSONB => {
            serde_json::from_str(text).unwrap_or_else(|_| Value::from(text))
        }
        _ => Value::from(text),
    }
}

impl Printer for Json<'_> {
    fn begin(&mut self, columns: &[String], types: Option<&[Type]>) -> std::io::Result<()> {
        self.columns = columns.to_vec();
        self.types = types.map(<[Type]>::to_vec);
        self.first = true;
        self.out.write_all(b"[")
    }

    fn row(&mut self, values: &[Option<&str>]) -> std::io::Result<()> {
        let mut obj = serde_json::Map::new();
        for (i, (name, v)) in self.columns.iter().zip(values).enumerate() {
            let ty = self.types.as_ref().and_then(|t| t.get(i));
            obj.insert(name.clone(), v.map_or(Value::Null, |v| json_value(v, ty)));
        }
        if !self.first {
            self.out.write_all(b",")?;
        }
        self.first = false;
        self.out.write_all(b"\n  ")?;
        serde_json::to_writer(&mut self.out, &obj)?;
        Ok(())
    }

    fn end(&mut self) -> std::io::Result<()> {
        self.out
            .write_all(if self.first { b"]\n" } else { b"\n]\n" })?;
        self.out.flush()
    }

    fn command(&mut self, _tag: &str) -> std::io::Result<()> {
        Ok(())
    }
}

struct Table<'a> {
    out: Box<dyn Write + 'a>,
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Printer for Table<'_> {
    fn begin(&mut self, columns: &[String], _: Option<&[Type]>) -> std::io::Result<()> {
        self.columns = columns.to_vec();
        self.rows.clear();
        Ok(())
    }

    fn row(&mut self, values: &[Option<&str>]) -> std::io::Result<()> {
        self.rows
            .push(values.iter().map(|v| v.unwrap_or("").to_owned()).collect());
        Ok(())
    }

    fn end(&mut self) -> std::io::Result<()> {
        let mut table = comfy_table::Table::new();
        table
            .load_preset(comfy_table::presets::ASCII_BORDERS_ONLY_CONDENSED)
            .set_header(&self.columns);
        for r in &self.rows {
            table.add_row(r);
        }
        let n = self.rows.len();
        writeln!(self.out, "{table}")?;
        writeln!(self.out, "({n} row{})", if n == 1 { "" } else { "s" })?;
        self.out.flush()
    }

    fn command(&mut self, tag: &str) -> std::io::Result<()> {
        writeln!(self.out, "{tag}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(values: &[Option<&str>]) -> String {
        let mut buf = Vec::new();
        {
            let mut p = printer(Format::Csv, Box::new(&mut buf));
            p.begin(&["a".into(), "b,c".into()], None).unwrap();
            p.row(values).unwrap();
            p.end().unwrap();
        }
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn csv_quotes_like_psql() {
        assert_eq!(csv(&[Some("x"), None]), "a,\"b,c\"\nx,\n");
        assert_eq!(
            csv(&[Some("say \"hi\""), Some("")]),
            "a,\"b,c\"\n\"say \"\"hi\"\"\",\n"
        );
        assert_eq!(
            csv(&[Some("l1\nl2"), Some("\\.")]),
            "a,\"b,c\"\n\"l1\nl2\",\"\\.\"\n"
        );
        assert_eq!(csv(&[Some("ü"), Some("cr\r")]), "a,\"b,c\"\nü,\"cr\r\"\n");
    }

    #[test]
    fn json_types() {
        assert_eq!(json_value("42", Some(&Type::INT8)), Value::from(42));
        assert_eq!(json_value("1.5", Some(&Type::FLOAT8)), Value::from(1.5));
        assert_eq!(json_value("NaN", Some(&Type::FLOAT8)), Value::from("NaN"));
        assert_eq!(json_value("t", Some(&Type::BOOL)), Value::Bool(true));
        assert_eq!(
            json_value("12345678901234567890.5", Some(&Type::NUMERIC)),
            Value::from("12345678901234567890.5")
        );
        assert_eq!(
            json_value("{\"a\":1}", Some(&Type::JSONB))["a"],
            Value::from(1)
        );
    }
}
