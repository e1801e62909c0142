//! Golden statements with hostile inputs; each also parses with sqlparser in its dialect (minus the
//! Redshift options sqlparser 0.64 does not know, listed in [`SQLPARSER_GAPS`]).

use super::*;
use crate::job::{
    Column, ColumnType, DistStyle, Files, Format, LoadMethod, Overwrite, Table, TimeFormat,
    Unload as UnloadSpec, UnloadCompression, UnloadFormat, UnloadSource,
};
use sqlparser::dialect::{PostgreSqlDialect, RedshiftSqlDialect};
use sqlparser::parser::Parser;

/// Redshift syntax that sqlparser 0.64's Redshift dialect rejects (each checked by hand against the
/// parser's error), removed before parsing. The golden strings still check them exactly.
const SQLPARSER_GAPS: &[&str] = &[
    " ENCODE az64",
    " ENCODE zstd",
    " FILLRECORD",
    " IGNOREBLANKLINES",
    " TRIMBLANKS",
    " ROUNDEC",
    " ACCEPTANYDATE",
    " EXPLICIT_IDS",
    " MAXERROR 7",
    " BZIP2",
];

fn parses(dialect: Dialect, sql: &str) {
    let mut stripped = sql.to_owned();
    if dialect == Dialect::Redshift {
        for gap in SQLPARSER_GAPS {
            stripped = stripped.replace(gap, "");
        }
    }
    let result = match dialect {
        Dialect::Redshift => Parser::parse_sql(&RedshiftSqlDialect {}, &stripped),
        Dialect::Postgres => Parser::parse_sql(&PostgreSqlDialect {}, &stripped),
    };
    let stmts = result.unwrap_or_else(|e| panic!("{e}\n{stripped}"));
    assert_eq!(stmts.len(), 1, "exactly one statement: {stripped}");
}

fn id(s: &str) -> Ident {
    Ident::new(s).unwrap()
}

fn hostile_table() -> Table {
    let col = |name: &str, ty, nullable| Column {
        name: id(name),
        ty,
        nullable,
        encode: None,
        distkey: false,
        sortkey: None,
    };
    let mut key = col("id\"; drop table x; --", ColumnType::BigInt, false);
    key.distkey = true;
    key.sortkey = Some(1);
    key.encode = Some("az64".into());
    let mut name = col("it's", ColumnType::Varchar(20), true);
    name.encode = Some("zstd".into());
    name.sortkey = Some(2);
    Table {
        name: TableName::new(id("sch;ema"), id("ta\"ble")),
        columns: vec![
            key,
            name,
            col(
                "amount",
                ColumnType::Decimal {
                    precision: 10,
                    scale: 2,
                },
                true,
            ),
            col("at", ColumnType::TimeTz, true),
        ],
        files: Files::List(vec!["a.gz".into()]),
        format: Format::default(),
        load: LoadMethod::Append,
        diststyle: Some(DistStyle::Key),
        json_path: "schemas[0].tables[0]".into(),
    }
}

#[test]
fn create_table_in_both_dialects() {
    let t = hostile_table();
    let rs = create_table(Dialect::Redshift, &t);
    assert_eq!(
        rs,
        "CREATE TABLE IF NOT EXISTS \"sch;ema\".\"ta\"\"ble\" (\n  \
         \"id\"\"; drop table x; --\" BIGINT NOT NULL ENCODE az64,\n  \
         \"it's\" VARCHAR(20) ENCODE zstd,\n  \
         \"amount\" DECIMAL(10,2),\n  \
         \"at\" TIMETZ\n) DISTSTYLE KEY DISTKEY (\"id\"\"; drop table x; --\") SORTKEY (\"id\"\"; drop table x; --\", \"it's\")"
    );
    parses(Dialect::Redshift, &rs);
    let pg = create_table(Dialect::Postgres, &t);
    assert_eq!(
        pg,
        "CREATE TABLE IF NOT EXISTS \"sch;ema\".\"ta\"\"ble\" (\n  \
         \"id\"\"; drop table x; --\" BIGINT NOT NULL,\n  \
         \"it's\" VARCHAR(20),\n  \
         \"amount\" DECIMAL(10,2),\n  \
         \"at\" TIME WITH TIME ZONE\n)"
    );
    parses(Dialect::Postgres, &pg);
    parses(Dialect::Postgres, &create_schema(&id("sch;ema")));
}

#[test]
fn copy_from_s3_with_every_option() {
    let t = hostile_table();
    let columns: Vec<Ident> = t.columns.iter().map(|c| c.name.clone()).collect();
    let mut format = Format {
        delimiter: b'\t',
        ignore_header: 2,
        null_as: "\\N'x".into(),
        escape: true,
        truncate_columns: true,
        accept_inv_chars: Some(b'^'),
        fill_record: true,
        ignore_blank_lines: true,
        trim_blanks: true,
        round_dec: true,
        time_format: TimeFormat::Pattern("YYYY-MM-DD HH:MI:SS".into()),
        accept_any_date: true,
        max_error: 7,
        explicit_ids: true,
        comp_update: Some(false),
        stat_update: Some(true),
        ..Format::default()
    };
    let source = CopySource::Manifest(S3Url::parse("s3://my-bucket/in/it's/x.manifest").unwrap());
    let role = IamRole::parse("arn:aws:iam::123456789012:role/RedshiftS3Access").unwrap();
    let copy = CopyFromS3 {
        table: CopyTarget::Table(&t.name),
        columns: &columns,
        source: &source,
        iam_role: &role,
        region: Some("eu-west-1"),
        format: &format,
        compression: crate::job::Compression::Bzip2,
    }
    .to_string();
    assert_eq!(
        copy,
        "COPY \"sch;ema\".\"ta\"\"ble\" (\"id\"\"; drop table x; --\", \"it's\", \"amount\", \"at\") \
         FROM 's3://my-bucket/in/it''s/x.manifest' \
         IAM_ROLE 'arn:aws:iam::123456789012:role/RedshiftS3Access' MANIFEST REGION 'eu-west-1' \
         DELIMITER '\\011' IGNOREHEADER 2 REMOVEQUOTES EMPTYASNULL BLANKSASNULL ESCAPE TRUNCATECOLUMNS \
         NULL AS '\\\\N''x' ACCEPTINVCHARS AS '^' FILLRECORD IGNOREBLANKLINES TRIMBLANKS ROUNDEC \
         ACCEPTANYDATE EXPLICIT_IDS DATEFORMAT 'auto' TIMEFORMAT 'YYYY-MM-DD HH:MI:SS' MAXERROR 7 BZIP2 \
         COMPUPDATE OFF STATUPDATE ON"
    );
    // sqlparser does not take an octal delimiter: parse the same statement with '|'.
    parses(
        Dialect::Redshift,
        &copy.replace("DELIMITER '\\011'", "DELIMITER '|'"),
    );

    format.csv_quote = Some(b'\'');
    format.remove_quotes = false;
    format.escape = false;
    let csv = CopyFromS3 {
        table: CopyTarget::Temp(&id("etl_staging")),
        columns: &columns[..1],
        source: &CopySource::Prefix(S3Url::parse("s3://b-1/p/usage").unwrap()),
        iam_role: &IamRole::default_role(),
        region: None,
        format: &format,
        compression: crate::job::Compression::Gzip,
    }
    .to_string();
    assert!(
        csv.starts_with(
            "COPY \"etl_staging\" (\"id\"\"; drop table x; --\") FROM 's3://b-1/p/usage' IAM_ROLE default \
             CSV QUOTE AS '''' DELIMITER '\\011'"
        ),
        "{csv}"
    );
}

#[test]
fn copy_from_stdin() {
    let t = hostile_table();
    let columns: Vec<Ident> = t.columns.iter().map(|c| c.name.clone()).collect();
    let s = CopyFromStdin {
        table: CopyTarget::Table(&t.name),
        columns: &columns,
        binary: true,
    }
    .to_string();
    assert_eq!(
        s,
        "COPY \"sch;ema\".\"ta\"\"ble\" (\"id\"\"; drop table x; --\", \"it's\", \"amount\", \"at\") FROM STDIN (FORMAT binary)"
    );
    parses(Dialect::Postgres, &s);
}

fn unload_spec(source: UnloadSource) -> UnloadSpec {
    UnloadSpec {
        source,
        to: crate::job::Location::Local("out/x_".into()),
        header: true,
        format: UnloadFormat::Csv,
        delimiter: b';',
        compression: UnloadCompression::Gzip,
        parallel: false,
        max_file_size_mb: Some(100),
        overwrite: Overwrite::Clean,
        manifest: true,
        null_as: Some("NULL".into()),
        add_quotes: false,
        escape: false,
        extension: Some("csv.gz".into()),
    }
}

#[test]
fn unload_quotes_the_inner_query() {
    let spec = unload_spec(UnloadSource::Query(
        "select 'it''s', 'a\\b' as x from t where y like '%\\\\%';".into(),
    ));
    let to = S3Url::parse("s3://out-bucket/res/it's_").unwrap();
    let role = IamRole::parse("arn:aws:iam::123456789012:role/R").unwrap();
    let s = Unload {
        spec: &spec,
        to: &to,
        iam_role: &role,
        region: Some("us-east-1"),
    }
    .to_string();
    assert_eq!(
        s,
        "UNLOAD ('select ''it''''s'', ''a\\\\b'' as x from t where y like ''%\\\\\\\\%''') \
         TO 's3://out-bucket/res/it''s_' IAM_ROLE 'arn:aws:iam::123456789012:role/R' \
         FORMAT AS CSV DELIMITER AS ';' HEADER NULL AS 'NULL' GZIP PARALLEL OFF MAXFILESIZE 100 MB \
         MANIFEST CLEANPATH EXTENSION 'csv.gz' REGION 'us-east-1'"
    );
    parses(Dialect::Redshift, &s);

    let mut text = unload_spec(UnloadSource::Table(TableName::new(id("m"), id("re\"c"))));
    text.format = UnloadFormat::Text;
    text.delimiter = b'|';
    text.add_quotes = true;
    text.escape = true;
    text.null_as = None;
    text.compression = UnloadCompression::None;
    text.parallel = true;
    text.max_file_size_mb = None;
    text.manifest = false;
    text.overwrite = Overwrite::Allow;
    text.extension = None;
    let s = Unload {
        spec: &text,
        to: &to,
        iam_role: &IamRole::default_role(),
        region: None,
    }
    .to_string();
    assert_eq!(
        s,
        "UNLOAD ('SELECT * FROM \"m\".\"re\"\"c\"') TO 's3://out-bucket/res/it''s_' IAM_ROLE default \
         DELIMITER AS '|' ADDQUOTES ESCAPE HEADER PARALLEL ON ALLOWOVERWRITE"
    );
    parses(Dialect::Redshift, &s);
}

#[test]
fn copy_to_stdout() {
    let s = CopyToStdout {
        query: "select 'x' from t",
        csv: Some((b',', "")),
    }
    .to_string();
    assert_eq!(
        s,
        "COPY (select 'x' from t) TO STDOUT (FORMAT csv, DELIMITER ',', NULL '')"
    );
    parses(Dialect::Postgres, &s);
    let text = CopyToStdout {
        query: "select 1",
        csv: None,
    }
    .to_string();
    assert_eq!(text, "COPY (select 1) TO STDOUT (FORMAT text)");
}

#[test]
fn upsert_statements() {
    let t = hostile_table();
    let staging = id("etl_staging");
    let keys = vec![t.columns[0].name.clone()];
    let [dedup, clear, refill] = dedup_staging(&staging, &t, &keys);
    assert_eq!(
        dedup,
        "CREATE TEMP TABLE \"etl_staging_dedup\" AS SELECT \"id\"\"; drop table x; --\", \"it's\", \"amount\", \"at\" \
         FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY \"id\"\"; drop table x; --\" ORDER BY \"it's\" DESC NULLS LAST, \
         \"amount\" DESC NULLS LAST, \"at\" DESC NULLS LAST) AS \"etl_rn\" FROM \"etl_staging\") AS \"s\" WHERE \"etl_rn\" = 1"
    );
    let delete = delete_matching_staging(&t.name, &staging, &keys);
    assert_eq!(
        delete,
        "DELETE FROM \"sch;ema\".\"ta\"\"ble\" USING \"etl_staging\" WHERE \"sch;ema\".\"ta\"\"ble\".\"id\"\"; drop table x; --\" = \"etl_staging\".\"id\"\"; drop table x; --\""
    );
    let insert = insert_from_staging(&t.name, &staging, &t);
    for s in [
        &dedup,
        &clear,
        &refill,
        &delete,
        &insert,
        &create_staging_like(&staging, &t.name),
    ] {
        parses(Dialect::Redshift, s);
        parses(Dialect::Postgres, s);
    }
    for s in [
        delete_all(&t.name),
        drop_table(&t.name, true),
        lock_table(&t.name),
        drop_temp_table(&staging),
    ] {
        parses(Dialect::Postgres, &s);
    }
}
