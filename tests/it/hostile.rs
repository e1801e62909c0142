//! Hostile names and values: rejected with a clear error, or created on a real PostgreSQL and read
//! back from the catalog exactly as written.

use std::path::Path;

use etl_core::Job;
use etl_core::plan::{self, PlanOptions, StepKind};
use etl_core::sql::{Dialect, Ident, quote_literal};
use etl_tests::{client, server};
use serde_json::json;

const ACCEPTED: &[&str] = &[
    "a\"b",
    "\"",
    "it's",
    "semi;colon",
    "dash--dash",
    "/* comment */",
    "back\\slash",
    "ünïcödé 名前 🚀",
    "select",
    "\"; drop table x; --",
    "$1",
    "%s",
    " leading space",
    "trailing space ",
    "$$dollar$$",
];

const REJECTED: &[(&str, &str)] = &[
    ("", "must not be empty"),
    ("new\nline", "control character"),
    ("carriage\rreturn", "control character"),
    ("nul\0", "control character"),
    ("Upper", "lower case"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_round_trip_through_the_catalog() {
    let local = server().await;
    let c = client(&local).await;
    // One table per hostile name, which also names its schema and its column.
    let long63 = "x".repeat(63);
    let mut names: Vec<String> = ACCEPTED.iter().map(|s| s.to_string()).collect();
    names.push(long63.clone());
    names.push("é".repeat(31)); // 62 bytes of two-byte characters
    let tables: Vec<_> = names
        .iter()
        .map(|n| json!({"name": n, "files": "f.gz", "columns": [{"name": n, "type": "varchar(10)"}, {"name": "other", "type": "int"}]}))
        .collect();
    let schemas: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"name": n, "tables": [tables[i].clone()]}))
        .collect();
    let manifest = json!({"name": "hostile", "input": "s3://bucket/x/", "schemas": schemas});
    let job = Job::parse(&manifest.to_string(), "hostile.json", Path::new(".")).expect("accepted");
    job.check_postgres().expect("fits PostgreSQL");
    let steps = plan::build(&job, Dialect::Postgres, &PlanOptions::default()).unwrap();
    let create = steps
        .iter()
        .find(|s| s.kind == StepKind::CreateTables)
        .unwrap();
    for s in &create.statements() {
        c.batch_execute(&s.sql)
            .await
            .unwrap_or_else(|e| panic!("{e:?}\n{}", s.sql));
    }
    for name in &names {
        let rows = c
            .query(
                "select table_schema::text, table_name::text, column_name::text from information_schema.columns \
                 where table_schema = $1 order by ordinal_position",
                &[name],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 2, "table for {name:?}");
        let (schema, table, column): (String, String, String) =
            (rows[0].get(0), rows[0].get(1), rows[0].get(2));
        assert_eq!((&schema, &table, &column), (name, name, name));
    }
}

#[test]
fn hostile_names_are_rejected_with_the_rule() {
    for (name, rule) in REJECTED {
        let err = Ident::new(*name).unwrap_err();
        assert!(err.contains(rule), "{name:?}: {err}");
        let manifest = json!({"name": "h", "input": "s3://bucket/x/", "schemas": [{"name": name, "tables": [
            {"name": "t", "files": "f", "columns": [{"name": "c", "type": "int"}]}]}]});
        let err = Job::parse(&manifest.to_string(), "h.json", Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("schemas[0].name: ") && err.contains(rule),
            "{err}"
        );
    }
    // 64 to 127 bytes: valid in Redshift, refused for local runs (PostgreSQL would truncate).
    let long = "y".repeat(127);
    let manifest = json!({"name": "h", "input": "s3://bucket/x/", "schemas": [{"name": "s", "tables": [
        {"name": long, "files": "f", "columns": [{"name": "c", "type": "int"}]}]}]});
    let job = Job::parse(&manifest.to_string(), "h.json", Path::new(".")).unwrap();
    let err = job.check_postgres().unwrap_err().to_string();
    assert!(
        err.contains("schemas[0].tables[0].name") && err.contains("127 bytes"),
        "{err}"
    );
    assert!(
        Ident::new("z".repeat(128))
            .unwrap_err()
            .contains("at most 127 bytes")
    );
}

const VALUES: &[&str] = &[
    "plain",
    "it's",
    "''",
    "back\\slash",
    "\\'",
    "trailing\\",
    "'; drop table t; --",
    "line\nbreak\r\n",
    "tab\there",
    "ünïcödé ☃",
    "$$dollar$$",
    "E'x'",
    "%s %d {}",
    "",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_literals_round_trip() {
    let local = server().await;
    let c = client(&local).await;
    for v in VALUES {
        let sql = format!("select {}", quote_literal(Dialect::Postgres, v));
        let got: String = c.query_one(&sql, &[]).await.unwrap().get(0);
        assert_eq!(&got, v, "{sql}");
    }
    // PostgreSQL with standard_conforming_strings off reads backslash escapes like Redshift does:
    // the Redshift quoting must round-trip there too.
    c.batch_execute("set standard_conforming_strings = off; set escape_string_warning = off")
        .await
        .unwrap();
    for v in VALUES {
        let sql = format!("select {}", quote_literal(Dialect::Redshift, v));
        let got: String = c.query_one(&sql, &[]).await.unwrap().get(0);
        assert_eq!(&got, v, "{sql}");
    }
}
