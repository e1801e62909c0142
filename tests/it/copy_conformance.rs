//! The COPY conformance suite (tests/fixtures/copy_conformance.json), end to end: each case's files
//! go through `etl run`'s loader into a real PostgreSQL, and the loaded values (as PostgreSQL
//! prints them), the rejected rows in `etl_meta.load_errors` and the failure past MAXERROR are
//! compared with what Redshift's documentation says. The parser's unit tests run the same cases
//! without a database.

use std::path::Path;

use base64::Engine as _;
use etl_core::Job;
use etl_core::pipeline::{self, Quiet, RunOptions};
use etl_core::warehouse::Warehouse;
use etl_tests::{client, server};
use serde_json::{Value, json};

fn case_files(case: &Value, dir: &Path) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    let mut names = Vec::new();
    for f in case["files"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        let bytes = match (f.get("content"), f.get("content_base64")) {
            (Some(c), _) => c.as_str().unwrap().as_bytes().to_vec(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b.as_str().unwrap())
                .unwrap(),
            _ => panic!("{}: a file needs content or content_base64", case["name"]),
        };
        std::fs::write(dir.join(name), bytes).unwrap();
        names.push(name.to_owned());
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_cases_load_as_redshift_documents() {
    let cases: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(
            etl_tests::repo_root().join("tests/fixtures/copy_conformance.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(cases.len() >= 40, "the suite lost cases");
    let local = server().await;
    let warehouse = Warehouse::connect(local.connect_options(), 4)
        .await
        .unwrap();
    let c = client(&local).await;
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let name = case["name"].as_str().unwrap();
        let dir = tmp.path().join(format!("case{i}"));
        let files = case_files(case, &dir.join("in"));
        let schema = format!("case_{i}");
        let manifest = json!({
            "name": "conformance",
            "input": "in/",
            "format": case["format"],
            "schemas": [{"name": schema, "tables": [{"name": "t", "columns": case["columns"], "files": files}]}],
        });
        std::fs::write(dir.join("job.json"), manifest.to_string()).unwrap();
        let job = match Job::from_path(dir.join("job.json")) {
            Ok(j) => j,
            Err(e) => {
                failures.push(format!("{name}: invalid manifest: {e}"));
                continue;
            }
        };
        let run_id = format!("case-{i}");
        let report = pipeline::run(
            &job,
            &warehouse,
            RunOptions {
                run_id: Some(run_id.clone()),
                ..RunOptions::default()
            },
            &Quiet,
        )
        .await;
        let should_fail = case["fails"].as_bool().unwrap_or(false);
        match (&report.error, should_fail) {
            (None, true) => failures.push(format!(
                "{name}: loaded, but MAXERROR should have been exceeded"
            )),
            (Some(e), false) => failures.push(format!("{name}: failed: {e:#?}")),
            (Some(e), true) if e.kind() != etl_core::ErrorKind::LoadRejected => {
                failures.push(format!("{name}: failed for another reason: {e}"))
            }
            _ => {}
        }

        // Loaded values as PostgreSQL prints them (its output text, through the simple protocol), in
        // file order.
        let query = format!("select * from {schema}.t order by ctid");
        let got: Vec<Vec<Option<String>>> = c
            .simple_query(&query)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|k| r.get(k).map(str::to_owned)).collect())
                }
                _ => None,
            })
            .collect();
        let expected: Vec<Vec<Option<String>>> = if should_fail {
            Vec::new() // all or nothing: a failed load leaves the table as it was
        } else {
            case["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    r.as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .collect()
        };
        if got != expected {
            failures.push(format!(
                "{name}: rows differ\n  got:      {got:?}\n  expected: {expected:?}"
            ));
        }

        // Rejected rows, as stored in etl_meta.load_errors.
        let stored = c
            .query(
                "select filename, line_number, colname, err_code from etl_meta.load_errors \
                 where run_id = $1 order by filename, line_number",
                &[&run_id],
            )
            .await
            .unwrap();
        let got: Vec<(String, i64, Option<String>, i32)> = stored
            .iter()
            .map(|r| {
                let file: String = r.get(0);
                let base = Path::new(&file)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                (base, r.get(1), r.get(2), r.get(3))
            })
            .collect();
        let mut expected: Vec<(String, i64, Option<String>, i32)> = case["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["file"].as_str().unwrap().to_owned(),
                    e["line"].as_i64().unwrap(),
                    e["column"].as_str().map(str::to_owned),
                    e["code"].as_i64().unwrap() as i32,
                )
            })
            .collect();
        expected.sort();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        // Past MAXERROR the load stops at the first error beyond the limit: what was read is kept.
        let matches = if should_fail {
            expected.iter().take(got_sorted.len()).eq(got_sorted.iter()) && !got_sorted.is_empty()
        } else {
            got_sorted == expected
        };
        if !matches {
            failures.push(format!(
                "{name}: load errors differ\n  got:      {got_sorted:?}\n  expected: {expected:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
