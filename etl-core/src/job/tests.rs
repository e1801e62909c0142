//! Manifest validation: every defect is reported with its JSON path and the rule broken.

use super::*;
use serde_json::{Value, json};

fn base() -> Value {
    json!({
        "name": "demo",
        "input": "s3://bucket/in/",
        "schemas": [{
            "name": "raw",
            "tables": [{
                "name": "usage",
                "files": "usage.txt.gz",
                "columns": [
                    {"name": "customer_id", "type": "bigint", "nullable": false},
                    {"name": "month", "type": "date"},
                    {"name": "amount", "type": "decimal(10,2)"}
                ]
            }, {
                "name": "offers",
                "files": ["a.gz", "b.gz"],
                "columns": [{"name": "code", "type": "varchar(16)"}]
            }]
        }],
        "unload": {"query": "select 1", "to": "s3://bucket/out/result_"}
    })
}

fn parse(v: &Value) -> Result<Job> {
    Job::parse(&v.to_string(), "job.json", Path::new("/tmp/x"))
}

fn issues(v: &Value) -> Vec<ManifestIssue> {
    match parse(v) {
        Err(Error::InvalidJob { issues, .. }) => issues,
        other => panic!("expected an invalid job, got {other:?}"),
    }
}

/// Applies `edit` to the base manifest and expects an issue at `path` whose message contains
/// `rule`.
fn defect(name: &str, edit: impl FnOnce(&mut Value), path: &str, rule: &str) {
    let mut v = base();
    edit(&mut v);
    let found = issues(&v);
    assert!(
        found
            .iter()
            .any(|i| i.path == path && i.message.contains(rule)),
        "{name}: expected {path}: …{rule}…, got {found:#?}"
    );
}

fn col(v: &mut Value, i: usize) -> &mut Value {
    &mut v["schemas"][0]["tables"][0]["columns"][i]
}

fn table(v: &mut Value) -> &mut Value {
    &mut v["schemas"][0]["tables"][0]
}

#[test]
fn the_base_manifest_is_valid() {
    let job = parse(&base()).unwrap();
    assert_eq!(job.tables.len(), 2);
    assert_eq!(job.tables[0].name.to_string(), "raw.usage");
    assert_eq!(job.tables[0].format, Format::default());
    assert_eq!(job.tables[0].load, LoadMethod::Append);
    assert_eq!(job.cluster.stack_name, "demo-redshift");
    assert!(job.cluster.delete_on_failure);
    assert_eq!(job.concurrency, DEFAULT_CONCURRENCY);
    assert!(job.redshift.iam_role.is_default());
}

#[test]
fn twenty_plus_defects_each_name_their_path_and_rule() {
    defect(
        "unknown top-level field",
        |v| v["nmae"] = json!("x"),
        "nmae",
        "unknown field `nmae`",
    );
    defect(
        "unknown column field",
        |v| col(v, 0)["nullble"] = json!(true),
        "schemas[0].tables[0].columns[0].nullble",
        "unknown field `nullble`",
    );
    defect(
        "wrong JSON type",
        |v| col(v, 0)["nullable"] = json!("no"),
        "schemas[0].tables[0].columns[0].nullable",
        "invalid type",
    );
    defect(
        "missing field",
        |v| {
            v.as_object_mut().unwrap().remove("input");
        },
        "$",
        "missing field `input`",
    );
    defect(
        "bad job name",
        |v| v["name"] = json!("My Job"),
        "name",
        "lower-case letters",
    );
    defect(
        "unsupported type",
        |v| col(v, 1)["type"] = json!("json"),
        "schemas[0].tables[0].columns[1].type",
        "not a supported Redshift type",
    );
    defect(
        "precision out of range",
        |v| col(v, 2)["type"] = json!("decimal(40,2)"),
        "schemas[0].tables[0].columns[2].type",
        "precision must be 1 to 38",
    );
    defect(
        "varchar too long",
        |v| col(v, 2)["type"] = json!("varchar(70000)"),
        "schemas[0].tables[0].columns[2].type",
        "1 to 65535",
    );
    defect(
        "duplicate column",
        |v| col(v, 1)["name"] = json!("customer_id"),
        "schemas[0].tables[0].columns[1].name",
        "duplicate column",
    );
    defect(
        "duplicate table",
        |v| v["schemas"][0]["tables"][1]["name"] = json!("usage"),
        "schemas[0].tables[1].name",
        "duplicate table",
    );
    defect(
        "duplicate schema",
        |v| {
            let s = v["schemas"][0].clone();
            v["schemas"].as_array_mut().unwrap().push(s);
        },
        "schemas[1].name",
        "duplicate schema",
    );
    defect(
        "upper-case name",
        |v| col(v, 0)["name"] = json!("CustomerId"),
        "schemas[0].tables[0].columns[0].name",
        "write \"customerid\"",
    );
    defect(
        "control character in a name",
        |v| table(v)["name"] = json!("us\nage"),
        "schemas[0].tables[0].name",
        "control character",
    );
    defect(
        "128-byte name",
        |v| v["schemas"][0]["name"] = json!("s".repeat(128)),
        "schemas[0].name",
        "at most 127 bytes",
    );
    defect(
        "empty column list",
        |v| table(v)["columns"] = json!([]),
        "schemas[0].tables[0].columns",
        "at least one column",
    );
    defect(
        "two-character delimiter",
        |v| v["format"] = json!({"delimiter": "||"}),
        "format.delimiter",
        "exactly one ASCII character",
    );
    defect(
        "csv with removequotes",
        |v| table(v)["format"] = json!({"csv": true, "removequotes": true}),
        "schemas[0].tables[0].format.csv",
        "cannot be combined with REMOVEQUOTES",
    );
    defect(
        "unknown format option",
        |v| v["format"] = json!({"ignore_header": 1}),
        "format.ignore_header",
        "unknown field `ignore_header`",
    );
    defect(
        "files of the wrong shape",
        |v| table(v)["files"] = json!(42),
        "schemas[0].tables[0].files",
        "must be a file name, a list of file names",
    );
    defect(
        "file escaping the input",
        |v| table(v)["files"] = json!("../etc/passwd"),
        "schemas[0].tables[0].files",
        "without '..'",
    );
    defect(
        "file listed twice",
        |v| v["schemas"][0]["tables"][1]["files"] = json!(["a.gz", "a.gz"]),
        "schemas[0].tables[1].files[1]",
        "listed twice",
    );
    defect(
        "upsert without keys",
        |v| table(v)["load"] = json!({"method": "upsert"}),
        "schemas[0].tables[0].load.keys",
        "at least one key",
    );
    defect(
        "upsert key that is not a column",
        |v| table(v)["load"] = json!({"method": "upsert", "keys": ["nope"]}),
        "schemas[0].tables[0].load.keys[0]",
        "not a column",
    );
    defect(
        "unknown load method",
        |v| table(v)["load"] = json!({"method": "merge"}),
        "schemas[0].tables[0].load.method",
        "\"append\", \"replace\" or \"upsert\"",
    );
    defect(
        "two distkeys",
        |v| {
            col(v, 0)["distkey"] = json!(true);
            col(v, 1)["distkey"] = json!(true);
        },
        "schemas[0].tables[0].columns[1].distkey",
        "at most one DISTKEY",
    );
    defect(
        "sortkey with a gap",
        |v| {
            col(v, 0)["sortkey"] = json!(1);
            col(v, 1)["sortkey"] = json!(3);
        },
        "schemas[0].tables[0].columns",
        "without gaps",
    );
    defect(
        "unknown encoding",
        |v| col(v, 0)["encode"] = json!("snappy"),
        "schemas[0].tables[0].columns[0].encode",
        "not a Redshift encoding",
    );
    defect(
        "diststyle key without a distkey",
        |v| table(v)["diststyle"] = json!("key"),
        "schemas[0].tables[0].diststyle",
        "needs a column",
    );
    defect(
        "bad s3 input",
        |v| v["input"] = json!("s3://Bad_Bucket/x"),
        "input",
        "not a valid S3 bucket",
    );
    defect(
        "http input",
        |v| v["input"] = json!("https://x/y"),
        "input",
        "only local paths and s3://",
    );
    defect(
        "unload with two sources",
        |v| v["unload"]["table"] = json!("raw.usage"),
        "unload",
        "exactly one of",
    );
    defect(
        "unload with an outer LIMIT",
        |v| v["unload"]["query"] = json!("select * from t limit 10"),
        "unload.query",
        "outer LIMIT",
    );
    defect(
        "unload max file size",
        |v| v["unload"]["max_file_size_mb"] = json!(7000),
        "unload.max_file_size_mb",
        "5 to 6200",
    );
    defect(
        "unload overwrite mode",
        |v| v["unload"]["overwrite"] = json!("yes"),
        "unload.overwrite",
        "ALLOWOVERWRITE",
    );
    defect(
        "addquotes with csv",
        |v| v["unload"]["addquotes"] = json!(true),
        "unload.format",
        "text format only",
    );
    defect(
        "bad IAM role",
        |v| v["redshift"] = json!({"iam_role": "arn:aws:iam::1:role/x"}),
        "redshift.iam_role",
        "not an IAM role ARN",
    );
    defect(
        "bad stack name",
        |v| v["cluster"] = json!({"stack_name": "1-stack"}),
        "cluster.stack_name",
        "not a CloudFormation stack name",
    );
    defect(
        "if_exists value",
        |v| v["cluster"] = json!({"if_exists": "replace"}),
        "cluster.if_exists",
        "\"reuse\" or \"recreate\"",
    );
    defect(
        "zero timeout",
        |v| v["statement_timeout_seconds"] = json!(0),
        "statement_timeout_seconds",
        "at least 1",
    );
    defect(
        "syntax error",
        |v| *v = json!("not an object"),
        "$",
        "invalid type",
    );
}

#[test]
fn all_issues_are_reported_at_once() {
    let mut v = base();
    col(&mut v, 0)["type"] = json!("blob");
    col(&mut v, 1)["name"] = json!("");
    v["name"] = json!("");
    assert_eq!(issues(&v).len(), 3, "{:#?}", issues(&v));
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let err = Job::parse(
        "{\n  \"name\": \"x\",\n  oops\n}",
        "job.json",
        Path::new("."),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("line 3"), "{text}");
    assert!(text.starts_with("invalid job manifest job.json:"), "{text}");
}

#[test]
fn postgres_name_limit_is_checked_separately() {
    let mut v = base();
    col(&mut v, 0)["name"] = json!("c".repeat(100));
    let job = parse(&v).expect("127-byte names are valid for Redshift");
    let err = job.check_postgres().unwrap_err().to_string();
    assert!(
        err.contains("schemas[0].tables[0].columns[0].name"),
        "{err}"
    );
    assert!(err.contains("only 63"), "{err}");
}

#[test]
fn format_layers_and_load_methods() {
    let mut v = base();
    v["format"] = json!({"delimiter": ",", "compression": "none"});
    table(&mut v)["format"] = json!({"ignoreheader": 2, "maxerror": 3});
    table(&mut v)["load"] = json!({"method": "upsert", "keys": ["customer_id"]});
    let job = parse(&v).unwrap();
    let f = &job.tables[0].format;
    assert_eq!((f.delimiter, f.ignore_header, f.max_error), (b',', 2, 3));
    assert_eq!(f.compression, Compression::None);
    assert_eq!(
        job.tables[1].format.ignore_header, 1,
        "the other table keeps the job format"
    );
    assert_eq!(
        job.tables[0].load,
        LoadMethod::Upsert {
            keys: vec![Ident::new("customer_id").unwrap()]
        }
    );
}

#[test]
fn local_inputs_are_checked_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    std::fs::write(dir.path().join("in/usage.txt.gz"), b"").unwrap();
    std::fs::create_dir(dir.path().join("in/off")).unwrap();
    std::fs::write(dir.path().join("in/off/part-1.gz"), b"").unwrap();
    let mut v = base();
    v["input"] = json!("in/");
    v["schemas"][0]["tables"][1]["files"] = json!({"prefix": "off/part-"});
    v["transform"] = json!(["model.sql"]);
    std::fs::write(dir.path().join("model.sql"), "select 1;").unwrap();
    let path = dir.path().join("job.json");
    std::fs::write(&path, v.to_string()).unwrap();
    let job = Job::from_path(&path).unwrap();
    assert_eq!(job.transforms[0].sql, "select 1;");

    v["schemas"][0]["tables"][1]["files"] = json!({"prefix": "nothing-"});
    v["schemas"][0]["tables"][0]["files"] = json!("missing.gz");
    std::fs::write(&path, v.to_string()).unwrap();
    let err = Job::from_path(&path).unwrap_err().to_string();
    assert!(
        err.contains("schemas[0].tables[0].files: the file"),
        "{err}"
    );
    assert!(err.contains("missing.gz does not exist"), "{err}");
    assert!(err.contains("schemas[0].tables[1].files: no file"), "{err}");
    // Reading without the input check succeeds (plans against S3 copies).
    assert!(Job::read(&path).is_ok());

    v["transform"] = json!(["gone.sql"]);
    std::fs::write(&path, v.to_string()).unwrap();
    let err = Job::read(&path).unwrap_err().to_string();
    assert!(err.contains("transform[0]: cannot read"), "{err}");
}

#[test]
fn reserved_words_are_warned_about() {
    let mut v = base();
    v["schemas"][0]["name"] = json!("raw");
    col(&mut v, 1)["name"] = json!("user");
    let job = parse(&v).unwrap();
    let w = job.warnings();
    assert_eq!(w.len(), 2, "{w:#?}");
    assert_eq!(w[0].path, "schemas[0].name");
    assert!(w[0].message.contains("reserved word"));
    assert_eq!(w[1].path, "schemas[0].tables[0].columns[1].name");
    let mut plain = base();
    plain["schemas"][0]["name"] = json!("stage");
    assert!(parse(&plain).unwrap().warnings().is_empty());
}
