//! A reader for Hive `CREATE TABLE` statements as `SHOW CREATE TABLE` prints them, following the
//! Apache Hive Language Manual, DDL (<https://hive.apache.org/docs/latest/languagemanual-ddl_27362034>):
//!
//! ```text
//! CREATE [TEMPORARY] [EXTERNAL] TABLE [IF NOT EXISTS] [db.]table
//!   (col type [COMMENT 'text'], ...)
//!   [COMMENT 'text']
//!   [PARTITIONED BY (col type [COMMENT 'text'], ...)]
//!   [CLUSTERED BY (col, ...) [SORTED BY (col [ASC|DESC], ...)] INTO n BUCKETS]
//!   [ROW FORMAT DELIMITED [FIELDS TERMINATED BY c [ESCAPED BY c]] [COLLECTION ITEMS TERMINATED BY c]
//!        [MAP KEYS TERMINATED BY c] [LINES TERMINATED BY c] [NULL DEFINED AS s]
//!    | ROW FORMAT SERDE 'class' [WITH SERDEPROPERTIES ('k'='v', ...)]]
//!   [STORED AS format | STORED AS INPUTFORMAT 'class' OUTPUTFORMAT 'class' | STORED BY 'class']
//!   [LOCATION 'path']
//!   [TBLPROPERTIES ('k'='v', ...)];
//! ```
//!
//! Clauses are accepted in any order (each once). Names may be backquoted (`` `db`.`t` `` or
//! `` `db.t` ``), string literals use single or double quotes with Hive's escapes (`\t`, `\n`,
//! octal `\001`, `\u0001`, `\\`, `\'`), `--` and `/* */` comments are skipped. `USE db;` sets the
//! database of the statements after it. Every other statement, and every statement this reader cannot
//! parse, is an error with its line and column: nothing is skipped silently.

use std::fmt;

/// A problem in the DDL text, with its 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdlError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for DdlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// A Hive column type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HiveType {
    /// `TINYINT`.
    TinyInt,
    /// `SMALLINT`.
    SmallInt,
    /// `INT` / `INTEGER`.
    Int,
    /// `BIGINT`.
    BigInt,
    /// `FLOAT`.
    Float,
    /// `DOUBLE` / `DOUBLE PRECISION`.
    Double,
    /// `DECIMAL(p,s)` / `NUMERIC`; Hive's default is `DECIMAL(10,0)`.
    Decimal(u32, u32),
    /// `STRING`.
    String,
    /// `VARCHAR(n)`: n characters.
    Varchar(u32),
    /// `CHAR(n)`: n characters, space padded.
    Char(u32),
    /// `BOOLEAN`.
    Boolean,
    /// `DATE`.
    Date,
    /// `TIMESTAMP`.
    Timestamp,
    /// `TIMESTAMP WITH LOCAL TIME ZONE`.
    TimestampLocalTz,
    /// `BINARY`.
    Binary,
    /// `ARRAY<...>`, `MAP<...>`, `STRUCT<...>`, `UNIONTYPE<...>`, as written.
    Complex(String),
    /// Anything else (`INTERVAL`, `VOID`, ...), as written.
    Other(String),
}

impl fmt::Display for HiveType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HiveType::TinyInt => f.write_str("TINYINT"),
            HiveType::SmallInt => f.write_str("SMALLINT"),
            HiveType::Int => f.write_str("INT"),
            HiveType::BigInt => f.write_str("BIGINT"),
            HiveType::Float => f.write_str("FLOAT"),
            HiveType::Double => f.write_str("DOUBLE"),
            HiveType::Decimal(p, s) => write!(f, "DECIMAL({p},{s})"),
            HiveType::String => f.write_str("STRING"),
            HiveType::Varchar(n) => write!(f, "VARCHAR({n})"),
            HiveType::Char(n) => write!(f, "CHAR({n})"),
            HiveType::Boolean => f.write_str("BOOLEAN"),
            HiveType::Date => f.write_str("DATE"),
            HiveType::Timestamp => f.write_str("TIMESTAMP"),
            HiveType::TimestampLocalTz => f.write_str("TIMESTAMP WITH LOCAL TIME ZONE"),
            HiveType::Binary => f.write_str("BINARY"),
            HiveType::Complex(t) | HiveType::Other(t) => f.write_str(t),
        }
    }
}

/// One column of a Hive table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HiveColumn {
    /// Name, lower-cased (Hive names are case-insensitive).
    pub name: String,
    /// Type.
    pub ty: HiveType,
    /// `COMMENT`.
    pub comment: Option<String>,
    /// Where the column is defined.
    pub line: usize,
    /// Where the column is defined.
    pub column: usize,
}

/// `ROW FORMAT`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RowFormat {
    /// No ROW FORMAT clause: LazySimpleSerDe with its defaults.
    #[default]
    Default,
    /// `ROW FORMAT DELIMITED ...` (LazySimpleSerDe); values as unescaped from the DDL.
    Delimited {
        /// `FIELDS TERMINATED BY`.
        fields: Option<String>,
        /// `ESCAPED BY`.
        escaped: Option<String>,
        /// `COLLECTION ITEMS TERMINATED BY`.
        collection: Option<String>,
        /// `MAP KEYS TERMINATED BY`.
        map_keys: Option<String>,
        /// `LINES TERMINATED BY`.
        lines: Option<String>,
        /// `NULL DEFINED AS`.
        null: Option<String>,
    },
    /// `ROW FORMAT SERDE 'class' [WITH SERDEPROPERTIES (...)]`.
    Serde {
        /// The SerDe class.
        class: String,
    },
}

/// `STORED AS` / `STORED BY`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Storage {
    /// No clause: Hive's default, TEXTFILE (`hive.default.fileformat`).
    #[default]
    Default,
    /// `STORED AS <format>` (TEXTFILE, ORC, PARQUET, ...), upper-cased.
    As(String),
    /// `STORED AS INPUTFORMAT 'class' OUTPUTFORMAT 'class'`.
    InputFormat(String),
    /// `STORED BY 'handler'`.
    By(String),
}

/// One `CREATE TABLE` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HiveTable {
    /// The database (from `db.table` or the last `USE`), lower-cased.
    pub database: Option<String>,
    /// The table name, lower-cased.
    pub name: String,
    /// Where the statement starts.
    pub line: usize,
    /// Where the statement starts.
    pub column: usize,
    /// Columns, in file order.
    pub columns: Vec<HiveColumn>,
    /// `PARTITIONED BY` columns: in the directory names, not in the files.
    pub partitions: Vec<HiveColumn>,
    /// Table `COMMENT`.
    pub comment: Option<String>,
    /// `EXTERNAL`.
    pub external: bool,
    /// `ROW FORMAT`.
    pub row_format: RowFormat,
    /// `WITH SERDEPROPERTIES`, in order.
    pub serde_properties: Vec<(String, String)>,
    /// `STORED AS` / `STORED BY`.
    pub storage: Storage,
    /// `LOCATION`.
    pub location: Option<String>,
    /// `TBLPROPERTIES`, in order.
    pub table_properties: Vec<(String, String)>,
    /// `CLUSTERED BY` / `SORTED BY` / `SKEWED BY` were given (they do not change the files' format).
    pub bucketing: Option<String>,
}

impl HiveTable {
    /// A SerDe or table property (SerDe properties first, as Hive reads them).
    pub fn property(&self, key: &str) -> Option<&str> {
        self.serde_properties
            .iter()
            .chain(&self.table_properties)
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// A table property only.
    pub fn table_property(&self, key: &str) -> Option<&str> {
        self.table_properties
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// A word or a backquoted name (`quoted`).
    Word {
        text: String,
        quoted: bool,
    },
    Str(String),
    Num(String),
    Sym(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
    column: usize,
}

fn lex(text: &str) -> Result<Vec<Token>, DdlError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    macro_rules! bump {
        () => {{
            if chars[i] == '\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
            i += 1;
        }};
    }
    while i < chars.len() {
        let c = chars[i];
        let (tl, tc) = (line, col);
        if c.is_whitespace() {
            bump!();
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                bump!();
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            bump!();
            bump!();
            loop {
                if i >= chars.len() {
                    return Err(DdlError {
                        line: tl,
                        column: tc,
                        message: "comment /* is not closed".into(),
                    });
                }
                if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    bump!();
                    bump!();
                    break;
                }
                bump!();
            }
        } else if c == '`' {
            bump!();
            let mut s = String::new();
            loop {
                match chars.get(i) {
                    None => {
                        return Err(DdlError {
                            line: tl,
                            column: tc,
                            message: "backquoted name is not closed".into(),
                        });
                    }
                    // Hive writes a backquote inside a backquoted name as two.
                    Some('`') if chars.get(i + 1) == Some(&'`') => {
                        s.push('`');
                        bump!();
                        bump!();
                    }
                    Some('`') => {
                        bump!();
                        break;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        bump!();
                    }
                }
            }
            out.push(Token {
                tok: Tok::Word {
                    text: s,
                    quoted: true,
                },
                line: tl,
                column: tc,
            });
        } else if c == '\'' || c == '"' {
            let q = c;
            bump!();
            let mut raw = String::new();
            loop {
                match chars.get(i) {
                    None => {
                        return Err(DdlError {
                            line: tl,
                            column: tc,
                            message: format!("string literal starting with {q} is not closed"),
                        });
                    }
                    Some('\\') if i + 1 < chars.len() => {
                        raw.push('\\');
                        bump!();
                        raw.push(chars[i]);
                        bump!();
                    }
                    Some(&ch) if ch == q => {
                        bump!();
                        break;
                    }
                    Some(&ch) => {
                        raw.push(ch);
                        bump!();
                    }
                }
            }
            out.push(Token {
                tok: Tok::Str(unescape(&raw)),
                line: tl,
                column: tc,
            });
        } else if c.is_ascii_digit() {
            let mut s = String::new();
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                s.push(chars[i]);
                bump!();
            }
            let tok = if s.chars().all(|c| c.is_ascii_digit()) {
                Tok::Num(s)
            } else {
                Tok::Word {
                    text: s,
                    quoted: false,
                }
            };
            out.push(Token {
                tok,
                line: tl,
                column: tc,
            });
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let mut s = String::new();
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                s.push(chars[i]);
                bump!();
            }
            out.push(Token {
                tok: Tok::Word {
                    text: s,
                    quoted: false,
                },
                line: tl,
                column: tc,
            });
        } else {
            // Punctuation; what is not Hive DDL is reported by the parser, where it is.
            out.push(Token {
                tok: Tok::Sym(c),
                line: tl,
                column: tc,
            });
            bump!();
        }
    }
    Ok(out)
}

/// Hive's string-literal escapes (`BaseSemanticAnalyzer.unescapeSQLString`): `\uXXXX`, octal
/// `\ooo` (first digit 0 or 1), `\0`, `\b`, `\n`, `\r`, `\t`, `\Z` (Ctrl-Z), and any other
/// character after a backslash stands for itself.
fn unescape(raw: &str) -> String {
    let c: Vec<char> = raw.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        if c[i] != '\\' || i + 1 >= c.len() {
            out.push(c[i]);
            i += 1;
            continue;
        }
        if c[i + 1] == 'u' && i + 5 < c.len() {
            let hex: String = c[i + 2..i + 6].iter().collect();
            if let Some(ch) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                out.push(ch);
                i += 6;
                continue;
            }
        }
        if i + 3 < c.len()
            && matches!(c[i + 1], '0' | '1')
            && c[i + 2].is_digit(8)
            && c[i + 3].is_digit(8)
        {
            let v =
                (c[i + 1] as u32 - 48) * 64 + (c[i + 2] as u32 - 48) * 8 + (c[i + 3] as u32 - 48);
            out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
            i += 4;
            continue;
        }
        out.push(match c[i + 1] {
            '0' => '\0',
            'b' => '\u{8}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'Z' => '\u{1a}',
            other => other,
        });
        i += 2;
    }
    out
}

struct Parser<'t> {
    toks: &'t [Token],
    pos: usize,
    /// Where the text ends, for errors at the end.
    end: (usize, usize),
}

type PResult<T> = Result<T, DdlError>;

impl<'t> Parser<'t> {
    fn peek(&self) -> Option<&'t Token> {
        self.toks.get(self.pos)
    }

    fn at(&self) -> (usize, usize) {
        self.peek().map_or(self.end, |t| (t.line, t.column))
    }

    fn err<T>(&self, message: impl Into<String>) -> PResult<T> {
        let (line, column) = self.at();
        Err(DdlError {
            line,
            column,
            message: message.into(),
        })
    }

    fn describe(&self) -> String {
        match self.peek().map(|t| &t.tok) {
            None => "the end of the text".into(),
            Some(Tok::Word { text, quoted: true }) => format!("`{text}`"),
            Some(Tok::Word { text, .. }) => format!("{text:?}"),
            Some(Tok::Str(s)) => format!("the string {s:?}"),
            Some(Tok::Num(n)) => format!("the number {n}"),
            Some(Tok::Sym(c)) => format!("{c:?}"),
        }
    }

    /// Whether the next token is this keyword (unquoted, case-insensitive).
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek().map(|t| &t.tok), Some(Tok::Word { text, quoted: false }) if text.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let yes = self.is_kw(kw);
        if yes {
            self.pos += 1;
        }
        yes
    }

    fn expect_kw(&mut self, kw: &str) -> PResult<()> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            self.err(format!(
                "expected {}, found {}",
                kw.to_uppercase(),
                self.describe()
            ))
        }
    }

    fn is_sym(&self, c: char) -> bool {
        matches!(self.peek().map(|t| &t.tok), Some(Tok::Sym(s)) if *s == c)
    }

    fn eat_sym(&mut self, c: char) -> bool {
        let yes = self.is_sym(c);
        if yes {
            self.pos += 1;
        }
        yes
    }

    fn expect_sym(&mut self, c: char) -> PResult<()> {
        if self.eat_sym(c) {
            Ok(())
        } else {
            self.err(format!("expected {c:?}, found {}", self.describe()))
        }
    }

    fn ident(&mut self, what: &str) -> PResult<(String, bool)> {
        match self.peek().map(|t| &t.tok) {
            Some(Tok::Word { text, quoted }) => {
                self.pos += 1;
                Ok((text.clone(), *quoted))
            }
            _ => self.err(format!("expected {what}, found {}", self.describe())),
        }
    }

    fn string(&mut self, what: &str) -> PResult<String> {
        match self.peek().map(|t| &t.tok) {
            Some(Tok::Str(s)) => {
                self.pos += 1;
                Ok(s.clone())
            }
            _ => self.err(format!(
                "expected {what} as a quoted string, found {}",
                self.describe()
            )),
        }
    }

    fn number(&mut self, what: &str) -> PResult<u32> {
        match self.peek().map(|t| &t.tok) {
            Some(Tok::Num(n)) => {
                let v = n
                    .parse()
                    .or_else(|_| self.err(format!("{what} {n} is too large")))?;
                self.pos += 1;
                Ok(v)
            }
            _ => self.err(format!("expected {what}, found {}", self.describe())),
        }
    }

    /// Skips to just after the next `;` (or the end), for recovery after an error.
    fn skip_statement(&mut self) {
        while let Some(t) = self.peek() {
            self.pos += 1;
            if t.tok == Tok::Sym(';') {
                return;
            }
        }
    }

    /// `('k'='v', ...)`.
    fn properties(&mut self) -> PResult<Vec<(String, String)>> {
        self.expect_sym('(')?;
        let mut props = Vec::new();
        if self.eat_sym(')') {
            return Ok(props);
        }
        loop {
            let k = self.string("a property name")?;
            self.expect_sym('=')?;
            let v = self.string("a property value")?;
            props.push((k, v));
            if self.eat_sym(')') {
                return Ok(props);
            }
            self.expect_sym(',')?;
        }
    }

    /// A type: a primitive with its parameters, or a complex type kept as text.
    fn column_type(&mut self) -> PResult<HiveType> {
        let (word, quoted) = self.ident("a column type")?;
        if quoted {
            self.pos -= 1;
            return self.err("a column type cannot be backquoted");
        }
        let lower = word.to_ascii_lowercase();
        let params = |p: &mut Self| -> PResult<Vec<u32>> {
            let mut v = Vec::new();
            if p.eat_sym('(') {
                loop {
                    v.push(p.number("a type parameter")?);
                    if p.eat_sym(')') {
                        break;
                    }
                    p.expect_sym(',')?;
                }
            }
            Ok(v)
        };
        Ok(match lower.as_str() {
            "tinyint" => HiveType::TinyInt,
            "smallint" => HiveType::SmallInt,
            "int" | "integer" => HiveType::Int,
            "bigint" => HiveType::BigInt,
            "float" => HiveType::Float,
            "double" => {
                self.eat_kw("precision");
                HiveType::Double
            }
            "string" => HiveType::String,
            "boolean" => HiveType::Boolean,
            "date" => HiveType::Date,
            "binary" => HiveType::Binary,
            "timestamp" => {
                if self.eat_kw("with") {
                    for kw in ["local", "time", "zone"] {
                        self.expect_kw(kw)?;
                    }
                    HiveType::TimestampLocalTz
                } else {
                    HiveType::Timestamp
                }
            }
            "decimal" | "numeric" | "dec" => match params(self)?.as_slice() {
                [] => HiveType::Decimal(10, 0),
                [p] => HiveType::Decimal(*p, 0),
                [p, s] => HiveType::Decimal(*p, *s),
                _ => return self.err("DECIMAL takes (precision, scale)"),
            },
            "varchar" | "char" => match params(self)?.as_slice() {
                [n] if lower == "varchar" => HiveType::Varchar(*n),
                [n] => HiveType::Char(*n),
                _ => return self.err(format!("{} takes one length", lower.to_uppercase())),
            },
            "array" | "map" | "struct" | "uniontype" => {
                let mut text = lower.to_uppercase();
                self.expect_sym('<')?;
                text.push('<');
                let mut depth = 1;
                while depth > 0 {
                    let Some(t) = self.peek() else {
                        return self.err(format!(
                            "{} type is not closed with '>'",
                            lower.to_uppercase()
                        ));
                    };
                    self.pos += 1;
                    match &t.tok {
                        Tok::Sym('<') => {
                            depth += 1;
                            text.push('<');
                        }
                        Tok::Sym('>') => {
                            depth -= 1;
                            text.push('>');
                        }
                        Tok::Sym(';') => {
                            self.pos -= 1;
                            return self.err(format!(
                                "{} type is not closed with '>'",
                                lower.to_uppercase()
                            ));
                        }
                        Tok::Sym(c) => text.push(*c),
                        Tok::Word { text: w, .. } => text.push_str(w),
                        Tok::Num(n) => text.push_str(n),
                        Tok::Str(s) => text.push_str(&format!("'{s}'")),
                    }
                }
                HiveType::Complex(text)
            }
            _ => {
                let mut text = word.to_uppercase();
                let p = params(self)?;
                if !p.is_empty() {
                    text.push_str(&format!(
                        "({})",
                        p.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
                    ));
                }
                HiveType::Other(text)
            }
        })
    }

    /// `(col type [COMMENT 'x'], ...)`.
    fn columns(&mut self) -> PResult<Vec<HiveColumn>> {
        self.expect_sym('(')?;
        let mut cols: Vec<HiveColumn> = Vec::new();
        loop {
            if self.is_kw("primary") || self.is_kw("constraint") || self.is_kw("foreign") {
                return self.err(
                    "table constraints (PRIMARY KEY, FOREIGN KEY, CONSTRAINT) are not read; \
                     remove them from the DDL (Redshift keys are informational only)",
                );
            }
            let (line, column) = self.at();
            let (name, _) = self.ident("a column name")?;
            let ty = self.column_type()?;
            if self.is_kw("not") || self.is_kw("default") || self.is_kw("check") {
                return self.err(
                    "column constraints (NOT NULL, DEFAULT, CHECK) are not read; remove them",
                );
            }
            let comment = if self.eat_kw("comment") {
                Some(self.string("the column comment")?)
            } else {
                None
            };
            let name = name.to_lowercase();
            if cols.iter().any(|c| c.name == name) {
                return Err(DdlError {
                    line,
                    column,
                    message: format!("column {name} is defined twice"),
                });
            }
            cols.push(HiveColumn {
                name,
                ty,
                comment,
                line,
                column,
            });
            if self.eat_sym(')') {
                return Ok(cols);
            }
            if !self.is_sym(',') {
                return self.err(format!(
                    "expected ',' or ')' after column {}, found {}",
                    cols.last().map_or("", |c| c.name.as_str()),
                    self.describe()
                ));
            }
            self.pos += 1;
        }
    }

    /// `(a, b, ...)` of names (CLUSTERED BY, SORTED BY with ASC/DESC), kept as text.
    fn name_list(&mut self) -> PResult<String> {
        self.expect_sym('(')?;
        let mut names = Vec::new();
        loop {
            let (n, _) = self.ident("a column name")?;
            let mut item = n;
            if self.is_kw("asc") || self.is_kw("desc") {
                let (d, _) = self.ident("ASC or DESC")?;
                item.push(' ');
                item.push_str(&d.to_uppercase());
            }
            names.push(item);
            if self.eat_sym(')') {
                return Ok(names.join(", "));
            }
            self.expect_sym(',')?;
        }
    }

    fn create_table(&mut self, database: &Option<String>) -> PResult<HiveTable> {
        let (line, column) = self.at();
        self.expect_kw("create")?;
        self.eat_kw("temporary");
        let external = self.eat_kw("external");
        self.eat_kw("transactional");
        if !self.is_kw("table") {
            return self.err(format!(
                "only CREATE [EXTERNAL] TABLE statements are read, found CREATE {}",
                self.describe()
            ));
        }
        self.pos += 1;
        if self.eat_kw("if") {
            self.expect_kw("not")?;
            self.expect_kw("exists")?;
        }
        let (first, quoted) = self.ident("the table name")?;
        let (db, name) = if self.eat_sym('.') {
            (Some(first), self.ident("the table name")?.0)
        } else if quoted && first.contains('.') {
            let (d, t) = first.split_once('.').expect("contains a dot");
            (Some(d.to_owned()), t.to_owned())
        } else {
            (database.clone(), first)
        };
        if self.is_kw("like") {
            return self.err("CREATE TABLE ... LIKE has no columns of its own; use SHOW CREATE TABLE on the table it copies");
        }
        if self.is_kw("as") {
            return self.err("CREATE TABLE ... AS SELECT has no column types here; use SHOW CREATE TABLE on the created table");
        }
        let columns = self.columns()?;
        let mut t = HiveTable {
            database: db.map(|d| d.to_lowercase()),
            name: name.to_lowercase(),
            line,
            column,
            columns,
            partitions: Vec::new(),
            comment: None,
            external,
            row_format: RowFormat::Default,
            serde_properties: Vec::new(),
            storage: Storage::Default,
            location: None,
            table_properties: Vec::new(),
            bucketing: None,
        };
        let mut seen: Vec<&'static str> = Vec::new();
        let mut once = |p: &Self, clause: &'static str| -> PResult<()> {
            if seen.contains(&clause) {
                return p.err(format!("{clause} is given twice"));
            }
            seen.push(clause);
            Ok(())
        };
        loop {
            if self.peek().is_none() || self.eat_sym(';') {
                return Ok(t);
            }
            if self.is_kw("comment") {
                once(self, "COMMENT")?;
                self.pos += 1;
                t.comment = Some(self.string("the table comment")?);
            } else if self.is_kw("partitioned") {
                once(self, "PARTITIONED BY")?;
                self.pos += 1;
                self.expect_kw("by")?;
                t.partitions = self.columns()?;
                if let Some(c) = t
                    .partitions
                    .iter()
                    .find(|p| t.columns.iter().any(|c| c.name == p.name))
                {
                    return Err(DdlError {
                        line: c.line,
                        column: c.column,
                        message: format!("partition column {} is also a table column", c.name),
                    });
                }
            } else if self.is_kw("clustered") {
                once(self, "CLUSTERED BY")?;
                self.pos += 1;
                self.expect_kw("by")?;
                let mut text = format!("CLUSTERED BY ({})", self.name_list()?);
                if self.eat_kw("sorted") {
                    self.expect_kw("by")?;
                    text.push_str(&format!(" SORTED BY ({})", self.name_list()?));
                }
                self.expect_kw("into")?;
                let n = self.number("the number of buckets")?;
                self.expect_kw("buckets")?;
                text.push_str(&format!(" INTO {n} BUCKETS"));
                t.bucketing = Some(text);
            } else if self.is_kw("skewed") {
                return self.err(
                    "SKEWED BY is not read; remove it (it does not change the files' format)",
                );
            } else if self.is_kw("row") {
                once(self, "ROW FORMAT")?;
                self.pos += 1;
                self.expect_kw("format")?;
                if self.eat_kw("serde") {
                    t.row_format = RowFormat::Serde {
                        class: self.string("the SerDe class")?,
                    };
                    if self.eat_kw("with") {
                        self.expect_kw("serdeproperties")?;
                        t.serde_properties.extend(self.properties()?);
                    }
                } else if self.eat_kw("delimited") {
                    let (
                        mut fields,
                        mut escaped,
                        mut collection,
                        mut map_keys,
                        mut lines,
                        mut null,
                    ) = (None, None, None, None, None, None);
                    loop {
                        if self.eat_kw("fields") {
                            self.expect_kw("terminated")?;
                            self.expect_kw("by")?;
                            fields = Some(self.string("the field delimiter")?);
                            if self.eat_kw("escaped") {
                                self.expect_kw("by")?;
                                escaped = Some(self.string("the escape character")?);
                            }
                        } else if self.eat_kw("collection") {
                            self.expect_kw("items")?;
                            self.expect_kw("terminated")?;
                            self.expect_kw("by")?;
                            collection = Some(self.string("the collection delimiter")?);
                        } else if self.eat_kw("map") {
                            self.expect_kw("keys")?;
                            self.expect_kw("terminated")?;
                            self.expect_kw("by")?;
                            map_keys = Some(self.string("the map key delimiter")?);
                        } else if self.eat_kw("lines") {
                            self.expect_kw("terminated")?;
                            self.expect_kw("by")?;
                            lines = Some(self.string("the line delimiter")?);
                        } else if self.eat_kw("null") {
                            self.expect_kw("defined")?;
                            self.expect_kw("as")?;
                            null = Some(self.string("the NULL string")?);
                        } else {
                            break;
                        }
                    }
                    t.row_format = RowFormat::Delimited {
                        fields,
                        escaped,
                        collection,
                        map_keys,
                        lines,
                        null,
                    };
                } else {
                    return self.err(format!(
                        "expected DELIMITED or SERDE after ROW FORMAT, found {}",
                        self.describe()
                    ));
                }
            } else if self.is_kw("with") {
                // SHOW CREATE TABLE may print WITH SERDEPROPERTIES after STORED BY.
                self.pos += 1;
                self.expect_kw("serdeproperties")?;
                t.serde_properties.extend(self.properties()?);
            } else if self.is_kw("stored") {
                once(self, "STORED")?;
                self.pos += 1;
                if self.eat_kw("by") {
                    t.storage = Storage::By(self.string("the storage handler class")?);
                } else {
                    self.expect_kw("as")?;
                    if self.eat_kw("inputformat") {
                        let input = self.string("the INPUTFORMAT class")?;
                        self.expect_kw("outputformat")?;
                        self.string("the OUTPUTFORMAT class")?;
                        t.storage = Storage::InputFormat(input);
                    } else {
                        let (f, _) = self.ident("a file format")?;
                        t.storage = Storage::As(f.to_uppercase());
                    }
                }
            } else if self.is_kw("location") {
                once(self, "LOCATION")?;
                self.pos += 1;
                t.location = Some(self.string("the location")?);
            } else if self.is_kw("tblproperties") {
                once(self, "TBLPROPERTIES")?;
                self.pos += 1;
                t.table_properties = self.properties()?;
            } else {
                return self.err(format!(
                    "expected a table clause (COMMENT, PARTITIONED BY, CLUSTERED BY, ROW FORMAT, \
                     STORED AS, LOCATION, TBLPROPERTIES) or ';', found {}",
                    self.describe()
                ));
            }
        }
    }
}

/// Reads every statement of `text`. Returns the tables read and an error for every statement that
/// could not be read (the reader goes on after the next `;`).
pub fn parse(text: &str) -> (Vec<HiveTable>, Vec<DdlError>) {
    let toks = match lex(text) {
        Ok(t) => t,
        Err(e) => return (Vec::new(), vec![e]),
    };
    let last_line = text.lines().count().max(1);
    let last_col = text.lines().last().map_or(1, |l| l.chars().count() + 1);
    let mut p = Parser {
        toks: &toks,
        pos: 0,
        end: (last_line, last_col),
    };
    let mut tables = Vec::new();
    let mut errors = Vec::new();
    let mut database: Option<String> = None;
    while p.peek().is_some() {
        if p.eat_sym(';') {
            continue;
        }
        let result = if p.is_kw("use") {
            p.pos += 1;
            p.ident("a database name").and_then(|(db, _)| {
                database = Some(db.to_lowercase());
                if p.peek().is_some() && !p.eat_sym(';') {
                    p.err(format!(
                        "expected ';' after USE {db}, found {}",
                        p.describe()
                    ))
                } else {
                    Ok(())
                }
            })
        } else if p.is_kw("create") {
            p.create_table(&database).map(|t| tables.push(t))
        } else {
            p.err(format!(
                "expected CREATE TABLE (or USE db), found {}; only table definitions are read",
                p.describe()
            ))
        };
        if let Err(e) = result {
            errors.push(e);
            p.skip_statement();
        }
    }
    (tables, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_show_create_table_output() {
        let ddl = "CREATE EXTERNAL TABLE `sales`.`orders`(\n  `id` bigint COMMENT 'the id', \n  `note` string, \n  `tags` array<struct<k:string,v:int>>)\nCOMMENT 'orders'\nPARTITIONED BY ( \n  `dt` string)\nROW FORMAT SERDE \n  'org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe' \nWITH SERDEPROPERTIES ( \n  'field.delim'='\\u0001', \n  'serialization.format'='\\001') \nSTORED AS INPUTFORMAT \n  'org.apache.hadoop.mapred.TextInputFormat' \nOUTPUTFORMAT \n  'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'\nLOCATION\n  'hdfs://nn:8020/warehouse/sales.db/orders'\nTBLPROPERTIES (\n  'skip.header.line.count'='1', \n  'transient_lastDdlTime'='1700000000')";
        let (tables, errors) = parse(ddl);
        assert!(errors.is_empty(), "{errors:?}");
        let t = &tables[0];
        assert_eq!(t.database.as_deref(), Some("sales"));
        assert_eq!(t.name, "orders");
        assert!(t.external);
        assert_eq!(t.columns.len(), 3);
        assert_eq!(t.columns[0].comment.as_deref(), Some("the id"));
        assert_eq!(
            t.columns[2].ty,
            HiveType::Complex("ARRAY<struct<k:string,v:int>>".into())
        );
        assert_eq!(t.partitions[0].name, "dt");
        assert_eq!(t.property("field.delim"), Some("\u{1}"));
        assert_eq!(t.property("serialization.format"), Some("\u{1}"));
        assert_eq!(t.table_property("skip.header.line.count"), Some("1"));
        assert_eq!(
            t.storage,
            Storage::InputFormat("org.apache.hadoop.mapred.TextInputFormat".into())
        );
    }

    #[test]
    fn errors_have_line_and_column_and_parsing_goes_on() {
        let ddl = "create table a (x int);\ncreate table b (x int,, y int);\nselect 1;\ncreate table c (x int) stored as orc;";
        let (tables, errors) = parse(ddl);
        assert_eq!(tables.len(), 2);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!((errors[0].line, errors[0].column), (2, 23), "{}", errors[0]);
        assert_eq!((errors[1].line, errors[1].column), (3, 1), "{}", errors[1]);
    }

    #[test]
    fn unescapes_like_hive() {
        assert_eq!(unescape(r"\001"), "\u{1}");
        assert_eq!(unescape(r"\u0009"), "\t");
        assert_eq!(unescape(r"\t"), "\t");
        assert_eq!(unescape(r"\\"), "\\");
        assert_eq!(unescape(r"\|"), "|");
        assert_eq!(unescape(r"\N"), "N");
        assert_eq!(unescape(r"\\N"), "\\N");
    }
}
