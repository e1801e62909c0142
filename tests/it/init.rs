//! `etl init` through the binary: manifests from Hive DDL (tests/fixtures/hive, written from the Apache
//! Hive Language Manual's DDL forms) checked field by field, malformed DDL refused with line and
//! column, and manifests inferred from files loaded by `etl run` into a throwaway PostgreSQL with 0
//! rejected rows and the types read back from the catalog.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use etl_tests::{bin, client, etl, repo_root, run, server};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/hive").join(name)
}

fn init_in(dir: &Path, args: &[&str]) -> Output {
    run(etl().current_dir(dir).arg("init").args(args))
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn table<'a>(job: &'a Value, schema: &str, name: &str) -> &'a Value {
    job["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == schema)
        .unwrap_or_else(|| panic!("no schema {schema} in {job:#}"))["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no table {schema}.{name}"))
}

fn types(t: &Value) -> Vec<(String, String, bool)> {
    t["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["type"].as_str().unwrap().to_owned(),
                c["nullable"].as_bool().unwrap_or(true),
            )
        })
        .collect()
}

fn type_list(t: &Value) -> Vec<String> {
    types(t).into_iter().map(|(_, t, _)| t).collect()
}

/// The table's format: the job's, with the table's fields on top.
fn format_of(job: &Value, t: &Value) -> serde_json::Map<String, Value> {
    let mut f = job["format"].as_object().unwrap().clone();
    if let Some(tf) = t["format"].as_object() {
        for (k, v) in tf {
            f.insert(k.clone(), v.clone());
        }
    }
    f
}

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

fn write_gz(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    );
    f.write_all(data).unwrap();
    f.finish().unwrap();
}

/// `etl run --json` against `url`; returns the report.
fn run_job(url: &str, job: &Path) -> Value {
    let out = run(etl()
        .args(["run", "--json", "--database-url", url])
        .arg(job));
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn loads_with_no_rejects(report: &Value) {
    assert_eq!(report["status"], "succeeded", "{report:#}");
    let loads: Vec<&Value> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["id"].as_str().unwrap().starts_with("load:"))
        .collect();
    assert!(!loads.is_empty());
    for s in loads {
        assert_eq!(s["rejected"], 0, "{s:#}");
        assert!(s["rows"].as_u64().unwrap() > 0, "{s:#}");
    }
}

/// Column name, type as PostgreSQL prints it, NOT NULL.
async fn catalog(c: &tokio_postgres::Client, schema: &str, t: &str) -> Vec<(String, String, bool)> {
    c.query(
        "select a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull \
         from pg_attribute a join pg_class r on r.oid = a.attrelid \
         join pg_namespace n on n.oid = r.relnamespace \
         where n.nspname = $1 and r.relname = $2 and a.attnum > 0 and not a.attisdropped \
         order by a.attnum",
        &[&schema, &t],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

#[test]
fn hive_ddl_becomes_a_manifest_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let ddl = fixture("warehouse.sql");
    let ddl = ddl.to_str().unwrap();
    let err = ok(&init_in(
        dir.path(),
        &["--from-hive", ddl, "-o", "job.json"],
    ));
    let job = read_json(&dir.path().join("job.json"));
    assert_eq!(job["name"], "warehouse");
    assert_eq!(job["input"], "data/");
    let description = job["description"].as_str().unwrap();
    assert!(
        description.contains("etl init") && description.contains("Hive DDL"),
        "{description}"
    );

    // 1. LazySimpleSerDe defaults: \001, NULL \N, no header, nothing inherited from the manifest's
    //    own defaults (|, header, REMOVEQUOTES, EMPTYASNULL, GZIP).
    let customers = table(&job, "sales", "customers");
    let f = format_of(&job, customers);
    assert_eq!(f["delimiter"], "\\001");
    assert_eq!(f["null_as"], "\\N");
    assert_eq!(f["ignoreheader"], 0);
    assert_eq!(f["removequotes"], false);
    assert_eq!(f["emptyasnull"], false);
    assert_eq!(f["blanksasnull"], false);
    assert_eq!(f["escape"], false);
    assert_eq!(f["csv"], false);
    assert_eq!(f["compression"], "none");
    assert_eq!(f["dateformat"], "auto");
    assert_eq!(
        type_list(customers),
        [
            "bigint",
            "smallint", // TINYINT
            "smallint",
            "integer",
            "decimal(12,2)",
            "decimal(10,0)", // Hive's DECIMAL default
            "real",          // FLOAT
            "double precision",
            "varchar(65535)", // STRING without a sample
            "varchar(80)",    // VARCHAR(20): 20 characters of up to 4 bytes
            "varchar(8)",     // CHAR(2): Redshift's CHAR is single-byte only
            "boolean",
            "date",
            "timestamp",
        ]
    );
    assert!(types(customers).iter().all(|(_, _, nullable)| *nullable));
    assert_eq!(customers["files"]["prefix"], "customers/");

    // 2. SERDEPROPERTIES, a partition column, LOCATION, skip.header.line.count.
    let orders = table(&job, "sales", "orders");
    let f = format_of(&job, orders);
    assert_eq!(f["delimiter"], "|");
    assert_eq!(f["escape"], true);
    assert_eq!(f["null_as"], "");
    assert_eq!(f["ignoreheader"], 1);
    assert_eq!(f["fillrecord"], true);
    assert_eq!(orders["files"]["prefix"], "orders_v2/");
    assert_eq!(
        types(orders),
        [
            ("order_id".into(), "bigint".into(), true),
            ("customer_id".into(), "bigint".into(), true),
            ("note".into(), "varchar(400)".into(), true),
            ("amount".into(), "decimal(10,2)".into(), true),
            ("dt".into(), "varchar(65535)".into(), true),
        ]
    );

    // 3. ROW FORMAT DELIMITED, `db.table` in one pair of backquotes.
    let clicks = table(&job, "web", "clicks");
    let f = format_of(&job, clicks);
    assert_eq!(f["delimiter"], "\\011");
    assert_eq!(f["escape"], true);
    assert_eq!(f["null_as"], "NULL");
    assert_eq!(clicks["files"]["prefix"], "clicks/");

    // 4. OpenCSVSerde defaults: every field quoted, \" and \\ inside.
    let referrers = table(&job, "web", "referrers");
    let f = format_of(&job, referrers);
    assert_eq!(f["delimiter"], ",");
    assert_eq!(f["removequotes"], true);
    assert_eq!(f["escape"], true);
    assert_eq!(f["csv"], false);
    assert_eq!(f["ignoreheader"], 1);

    // 5. OpenCSVSerde whose escape is the quote: CSV.
    let campaigns = table(&job, "web", "campaigns");
    let f = format_of(&job, campaigns);
    assert_eq!(f["delimiter"], ";");
    assert_eq!(f["csv"], true);
    assert_eq!(f["quote"], "\"");
    assert_eq!(f["removequotes"], false);
    assert_eq!(f["escape"], false);

    // 6. Hive's `default` database is the public schema; bucketing changes nothing.
    let events = table(&job, "public", "events");
    assert_eq!(format_of(&job, events)["delimiter"], "\\001");
    assert_eq!(type_list(events), ["varchar(40)", "timestamp"]);

    // The report says how each type was decided and what to check.
    for needle in [
        "TINYINT (1 byte) → SMALLINT",
        "VARCHAR(20) counts characters",
        "STRING has no length",
        "dt is a partition column: the files do not hold it",
        "OpenCSVSerde",
        "check by hand:",
        "IGNOREHEADER 1 (TBLPROPERTIES skip.header.line.count)",
        "Hive's database default → schema public",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }

    // -o refuses to overwrite without --force; stdout gets the same manifest.
    let again = init_in(dir.path(), &["--from-hive", ddl, "-o", "job.json"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("job.json exists: give --force"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    ok(&init_in(
        dir.path(),
        &["--from-hive", ddl, "-o", "job.json", "--force"],
    ));
    let stdout = init_in(dir.path(), &["--from-hive", ddl]);
    ok(&stdout);
    let printed: Value = serde_json::from_slice(&stdout.stdout).unwrap();
    assert_eq!(printed, job);
}

#[test]
fn malformed_ddl_is_refused_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let ddl = fixture("malformed.sql");
    let out = init_in(
        dir.path(),
        &["--from-hive", ddl.to_str().unwrap(), "-o", "job.json"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "line 3, column 35: expected a column type, found ')'",
        "line 4, column 65: expected BY, found '('",
        "line 5, column 1: table orc_table: STORED AS ORC files are not delimited text",
        "line 6, column 30: table nested, column tags: ARRAY<string> has no Redshift column type",
        "line 6, column 50: table nested, column attrs: MAP<string,int> has no Redshift column type",
        "line 7, column 27: table too_precise, column amount: DECIMAL(40,2) is outside Redshift's DECIMAL",
        "line 8, column 1: expected CREATE TABLE (or USE db), found \"select\"",
        "line 9, column 1: table csv_json: the SerDe org.apache.hive.hcatalog.data.JsonSerDe",
        "line 11, column 43: expected ',' or ')' after column name, found the end of the text",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(!dir.path().join("job.json").exists());
    // With --complex-as-varchar the nested table is mapped, the others are still refused.
    let out = init_in(
        dir.path(),
        &["--from-hive", ddl.to_str().unwrap(), "--complex-as-varchar"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(!err.contains("column tags"), "{err}");
    assert!(err.contains("line 5, column 1"), "{err}");
}

const ORDERS: [(&str, &[u8]); 2] = [
    (
        "dt=2024-01-01/000000_0",
        b"order_id|customer_id|note|amount\n10|1|pipe \\| inside|19.99\n11|2||5.00\n",
    ),
    (
        "dt=2024-01-02/000000_0",
        b"order_id|customer_id|note|amount\n12|3|back\\\\slash|0.01\n",
    ),
];

/// Files as Hive writes them for the tables of warehouse.sql.
fn hive_files(data: &Path) {
    let a = "\u{1}";
    write(
        &data.join("customers/000000_0"),
        format!(
            "1{a}35{a}700{a}12{a}1234.5{a}99{a}1.5{a}72.25{a}Ann{a}Zürich{a}CH{a}true{a}1980-02-03{a}2024-01-02 03:04:05.123456789\n\
             2{a}\\N{a}\\N{a}\\N{a}\\N{a}\\N{a}\\N{a}\\N{a}\\N{a}\\N{a}\\N{a}\\N{a}\\N{a}\\N\n\
             3{a}-128{a}-32768{a}-2147483648{a}-9999999999.99{a}9999999999{a}-1e10{a}NaN{a}名前{a}{a}  {a}false{a}2024-02-29{a}1970-01-01 00:00:00\n"
        )
        .as_bytes(),
    );
    for (name, text) in ORDERS {
        write(&data.join("orders_v2").join(name), text);
    }
    write(
        &data.join("clicks/part-00000"),
        b"s1\thttp://x/?q=a\\\tb\t120\ns2\tNULL\tNULL\n",
    );
    write(
        &data.join("referrers/000000_0"),
        b"\"host\",\"hits\"\n\"a.example\",\"12\"\n\"b \\\"quoted\\\", example\",\"7\"\n",
    );
    write(
        &data.join("campaigns/000000_0"),
        b"\"c1\";\"Summer; sale\"\nc2;\"He said \"\"hi\"\"\"\n",
    );
    write(
        &data.join("events/000000_0"),
        format!("click{a}2024-05-06 07:08:09\nview{a}2024-05-06 07:08:10.5\n").as_bytes(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_from_hive_ddl_loads_hive_files() {
    let dir = tempfile::tempdir().unwrap();
    hive_files(&dir.path().join("data"));
    let ddl = fixture("warehouse.sql");
    let ddl = ddl.to_str().unwrap();
    ok(&init_in(
        dir.path(),
        &["--from-hive", ddl, "-o", "job.json"],
    ));
    let job = dir.path().join("job.json");
    // The project's own validation and plans accept it.
    for args in [
        vec!["plan", "--dialect", "postgres"],
        vec!["plan", "--input", "s3://bucket/export/"],
    ] {
        let out = run(etl().args(&args).arg(&job));
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let plan = String::from_utf8_lossy(&out.stdout);
        assert!(plan.contains("sales") && plan.contains("COPY"), "{plan}");
    }
    let local = server().await;
    let url = local.url();
    let c = client(&local).await;
    // The DDL-only manifest (the STRING columns at VARCHAR(65535)) loads every file as written.
    loads_with_no_rejects(&run_job(&url, &job));
    assert_eq!(
        catalog(&c, "sales", "customers").await[8..11],
        [
            ("name".into(), "character varying(65535)".into(), false),
            ("city".into(), "character varying(80)".into(), false),
            ("country".into(), "character varying(8)".into(), false),
        ]
    );
    let rows: Vec<(Option<String>, Option<String>)> = c
        .query("select note, dt from sales.orders order by order_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rows,
        [
            (Some("pipe | inside".into()), None),
            (None, None),
            (Some("back\\slash".into()), None)
        ]
    );
    let row = c
        .query_one("select url, ms from web.clicks where session = 's1'", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "http://x/?q=a\tb");
    let hosts: Vec<String> = c
        .query("select host from web.referrers order by host", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(hosts, ["a.example", "b \"quoted\", example"]);
    let titles: Vec<String> = c
        .query("select title from web.campaigns order by code", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(titles, ["Summer; sale", "He said \"hi\""]);

    // With the files as a sample, the STRING lengths come from the data (plus headroom) and the
    // compression from the files' first bytes (the orders now gzipped); every sampled row loads.
    for (name, text) in ORDERS {
        let plain = dir.path().join("data/orders_v2").join(name);
        std::fs::remove_file(&plain).unwrap();
        write_gz(&plain.with_extension("gz"), text);
    }
    let err = ok(&init_in(
        dir.path(),
        &[
            "--from-hive",
            ddl,
            "--sample",
            "data",
            "--schema",
            "sampled",
            "-o",
            "sampled.json",
        ],
    ));
    assert!(err.contains("0 rejected"), "{err}");
    let sampled = read_json(&dir.path().join("sampled.json"));
    let customers = table(&sampled, "sampled", "customers");
    assert_eq!(type_list(customers)[8], "varchar(16)", "{err}");
    let orders = table(&sampled, "sampled", "orders");
    assert_eq!(format_of(&sampled, orders)["compression"], "gzip");
    assert_eq!(type_list(orders)[2], "varchar(24)"); // 13 bytes sampled; VARCHAR(100) allowed 400
    loads_with_no_rejects(&run_job(&url, &dir.path().join("sampled.json")));
    assert_eq!(
        catalog(&c, "sampled", "customers").await[8].1,
        "character varying(16)"
    );
}

/// Rank of a numeric type, for "at least as narrow".
fn numeric_rank(t: &str) -> Option<u32> {
    Some(match t {
        "smallint" => 1,
        "integer" => 2,
        "bigint" => 3,
        t if t.starts_with("decimal") => 4,
        "real" => 5,
        "double precision" => 6,
        _ => return None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_files_get_a_manifest_that_loads_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(std::process::Command::new(bin("etl-demo-data"))
        .arg("--out")
        .arg(dir.path().join("data"))
        .args(["--customers", "300", "--files-per-table", "2"]));
    assert!(out.status.success());
    let err = ok(&init_in(
        dir.path(),
        &["--sample", "data", "--schema", "staging", "-o", "job.json"],
    ));
    let job = read_json(&dir.path().join("job.json"));
    let demo = read_json(&repo_root().join("examples/recommendations/job.json"));
    // The format the demo's manifest names, found in the files.
    let usage = table(&job, "staging", "usage");
    let f = format_of(&job, table(&job, "staging", "billing"));
    assert_eq!(f["delimiter"], "|", "{err}");
    assert_eq!(f["ignoreheader"], 1, "{err}");
    assert_eq!(f["removequotes"], true, "{err}");
    assert_eq!(f["compression"], "gzip");
    assert_eq!(usage["files"]["prefix"], "usage/");
    assert_eq!(table(&job, "staging", "offers")["files"], "offers.txt.gz");
    let mut compared = 0;
    for t in demo["schemas"][0]["tables"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let inferred = types(table(&job, "staging", name));
        let expected = types(t);
        assert_eq!(
            inferred.iter().map(|c| &c.0).collect::<Vec<_>>(),
            expected.iter().map(|c| &c.0).collect::<Vec<_>>(),
            "column names from the header of {name}"
        );
        for ((col, got, _), (_, want, _)) in inferred.iter().zip(&expected) {
            let at = format!("{name}.{col}: inferred {got}, the demo says {want}\n{err}");
            match (numeric_rank(got), numeric_rank(want)) {
                (Some(g), Some(w)) => assert!(g <= w, "{at}"),
                _ if want.starts_with("varchar") => {
                    let n: u32 = got
                        .strip_prefix("varchar(")
                        .and_then(|s| s.strip_suffix(')'))
                        .unwrap_or_else(|| panic!("{at}"))
                        .parse()
                        .unwrap();
                    let w: u32 = want[8..want.len() - 1].parse().unwrap();
                    // The sampled maximum plus headroom: no wider than the demo's length plus
                    // the headroom rule's at most 25% + 8 bytes.
                    assert!(n <= w + w / 4 + 8, "{at}");
                }
                _ => assert_eq!(got, want, "{at}"),
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 22);
    let local = server().await;
    let report = run_job(&local.url(), &dir.path().join("job.json"));
    loads_with_no_rejects(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_inferred_type_loads_with_no_rejected_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("small|medium|big|amount|ratio|flag|day|at|at_zone|label|maybe\n");
    for i in 0..200i64 {
        text.push_str(&format!(
            "{}|{}|{}|{}.{:02}|{}e-3|{}|2024-01-{:02}|2024-01-01 10:{:02}:00|2024-01-01 10:00:00+0{}|name {}|{}\n",
            i - 100,
            i * 100_000,
            i * 10_000_000_000,
            i * 7,
            i % 100,
            i,
            if i % 2 == 0 { "t" } else { "false" },
            i % 28 + 1,
            i % 60,
            i % 9,
            "x".repeat((i % 20) as usize),
            if i % 3 == 0 { "" } else { "v" },
        ));
    }
    write_gz(&dir.path().join("data/kinds.txt.gz"), text.as_bytes());
    let err = ok(&init_in(
        dir.path(),
        &["--sample", "data", "-o", "job.json"],
    ));
    let job = read_json(&dir.path().join("job.json"));
    let kinds = table(&job, "public", "kinds");
    assert_eq!(
        types(kinds),
        [
            ("small".into(), "smallint".into(), false),
            ("medium".into(), "integer".into(), false),
            ("big".into(), "bigint".into(), false),
            ("amount".into(), "decimal(6,2)".into(), false),
            ("ratio".into(), "double precision".into(), false),
            ("flag".into(), "boolean".into(), false),
            ("day".into(), "date".into(), false),
            ("at".into(), "timestamp".into(), false),
            ("at_zone".into(), "timestamptz".into(), false),
            ("label".into(), "varchar(32)".into(), false),
            ("maybe".into(), "varchar(16)".into(), false),
        ],
        "{err}"
    );
    assert!(err.contains("a header line (IGNOREHEADER 1)"), "{err}");
    let local = server().await;
    let c = client(&local).await;
    loads_with_no_rejects(&run_job(&local.url(), &dir.path().join("job.json")));
    let cat: Vec<String> = catalog(&c, "public", "kinds")
        .await
        .into_iter()
        .map(|(_, t, _)| t)
        .collect();
    assert_eq!(
        cat,
        [
            "smallint",
            "integer",
            "bigint",
            "numeric(6,2)",
            "double precision",
            "boolean",
            "date",
            "timestamp without time zone",
            "timestamp with time zone",
            "character varying(32)",
            "character varying(16)",
        ]
    );
    // Sampling only part of the files leaves every column nullable and widens integers.
    let err = ok(&init_in(
        dir.path(),
        &["--sample", "data", "--rows", "50", "-o", "part.json"],
    ));
    let part = types(table(
        &read_json(&dir.path().join("part.json")),
        "public",
        "kinds",
    ));
    assert!(part.iter().all(|(_, _, nullable)| *nullable), "{err}");
    assert!(err.contains("the --rows limit"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_sample_gets_the_documented_behaviour() {
    let dir = tempfile::tempdir().unwrap();
    // Mixed types in one column: VARCHAR, and the report names the value that ruled out a number.
    write(
        &dir.path().join("mixed/t.txt"),
        b"id|mixed\n1|12\n2|abc\n3|4.5\n",
    );
    let err = ok(&init_in(
        dir.path(),
        &["--sample", "mixed", "-o", "mixed.json"],
    ));
    assert_eq!(
        type_list(table(
            &read_json(&dir.path().join("mixed.json")),
            "public",
            "t"
        )),
        ["smallint", "varchar(16)"]
    );
    assert!(
        err.contains("BIGINT ruled out by \"abc\" at t.txt:3"),
        "{err}"
    );

    // A value one byte longer than anything sampled, after the sampled rows: the headroom absorbs
    // it. A value longer than the headroom is rejected by the load with COPY's reason.
    let mut text = String::from("id|code\n");
    for i in 0..100 {
        let code = match i {
            60 => "x".repeat(11),
            90 => "y".repeat(25),
            _ => "z".repeat(10),
        };
        text.push_str(&format!("{i}|{code}\n"));
    }
    write(&dir.path().join("long/t.txt"), text.as_bytes());
    let err = ok(&init_in(
        dir.path(),
        &[
            "--sample",
            "long",
            "--schema",
            "long",
            "--rows",
            "50",
            "-o",
            "long.json",
        ],
    ));
    let long = read_json(&dir.path().join("long.json"));
    assert_eq!(
        type_list(table(&long, "long", "t"))[1],
        "varchar(24)",
        "{err}"
    );
    assert!(
        err.contains("text of up to 10 byte(s), plus headroom"),
        "{err}"
    );
    let local = server().await;
    let url = local.url();
    let report = run_job(&url, &dir.path().join("long.json"));
    assert_eq!(report["status"], "failed");
    let load = &report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "load:long.t")
        .unwrap()["load_errors"][0];
    assert_eq!(load["code"], 1204, "{load:#}");
    assert_eq!(load["line"], 92, "{load:#}");
    assert!(
        load["reason"]
            .as_str()
            .unwrap()
            .contains("String length exceeds DDL length: 25 bytes for VARCHAR(24)"),
        "{load:#}"
    );

    // Invalid UTF-8 in the sample: the manifest keeps COPY's default (the row is rejected), the
    // report says which row and how to load it; with acceptinvchars, as it says, it loads.
    write(
        &dir.path().join("latin/t.txt"),
        b"id|name\n1|cafe\n2|caf\xe9\n3|tea\n",
    );
    let err = ok(&init_in(
        dir.path(),
        &["--sample", "latin", "--schema", "latin", "-o", "latin.json"],
    ));
    assert!(
        err.contains("not valid UTF-8 (first at t.txt:3)")
            && err.contains("\"acceptinvchars\": true")
            && err.contains("1 of the 3 sampled row(s) would be rejected"),
        "{err}"
    );
    let report = run_job(&url, &dir.path().join("latin.json"));
    assert_eq!(report["status"], "failed");
    let load = &report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "load:latin.t")
        .unwrap()["load_errors"][0];
    assert_eq!(load["code"], 1220, "{load:#}");
    assert_eq!(load["line"], 3);
    let mut latin = read_json(&dir.path().join("latin.json"));
    latin["format"]["acceptinvchars"] = Value::Bool(true);
    std::fs::write(dir.path().join("latin.json"), latin.to_string()).unwrap();
    loads_with_no_rejects(&run_job(&url, &dir.path().join("latin.json")));
    let c = client(&local).await;
    let name: String = c
        .query_one("select name from latin.t where id = 2", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "caf?");
}
