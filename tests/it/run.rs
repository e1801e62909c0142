//! `etl run` end to end: the demo against an independent computation, REPLACE and UPSERT reruns,
//! all-or-nothing loads, load errors, and Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use etl_tests::{bin, client, etl, repo_root, run, server, stdout_ok};

/// A copy of the demo job with freshly generated data; returns the manifest path.
fn demo(dir: &Path, generator_args: &[&str]) -> PathBuf {
    let job = etl_tests::copy_example_job(dir, false);
    let out = run(std::process::Command::new(bin("etl-demo-data"))
        .arg("--out")
        .arg(dir.join("data"))
        .args(generator_args));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    job
}

#[test]
fn the_demo_matches_an_independent_computation() {
    let dir = tempfile::tempdir().unwrap();
    let job = demo(dir.path(), &["--files-per-table", "3", "--months", "4"]);
    let out = run(etl().arg("run").arg(&job));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for line in [
        "load:staging.usage: succeeded",
        "load:staging.billing: succeeded",
        "unload: succeeded",
        "rows/s",
    ] {
        assert!(stderr.contains(line), "missing {line:?} in:\n{stderr}");
    }
    let csv = dir.path().join("out/recommendations_000");
    assert!(
        stderr.contains("wrote ") && stderr.contains("recommendations_000"),
        "{stderr}"
    );
    // check.py reads the raw files with the manifest's rules and computes the ranking in Python.
    let check = run(std::process::Command::new("python3")
        .arg(repo_root().join("examples/recommendations/check.py"))
        .arg(dir.path().join("data"))
        .arg("--compare")
        .arg(&csv));
    assert!(
        check.status.success(),
        "etl's CSV differs from the independent computation:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

async fn dump(c: &tokio_postgres::Client, tables: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for t in tables {
        for r in c
            .query(
                &format!("select row_to_json(x)::text from {t} x order by row_to_json(x)::text"),
                &[],
            )
            .await
            .unwrap()
        {
            out.push(format!("{t}: {}", r.get::<_, String>(0)));
        }
    }
    out
}

const TABLES: &[&str] = &[
    "staging.usage",
    "staging.billing",
    "staging.offers",
    "model.recommendations",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_and_upsert_reruns_leave_identical_tables() {
    let dir = tempfile::tempdir().unwrap();
    let job = demo(dir.path(), &[]);
    let local = server().await;
    let url = local.url();
    let c = client(&local).await;
    let first = stdout_ok(
        etl()
            .args(["run", "--database-url", &url, "--json"])
            .arg(&job),
    );
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["status"], "succeeded");
    let once = dump(&c, TABLES).await;
    assert!(once.len() > 10_000);
    // A second run (a new run id: nothing is skipped) replaces usage and billing and upserts the
    // offers: the same tables, no duplicates.
    let out = run(etl().args(["run", "--database-url", &url]).arg(&job));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(once, dump(&c, TABLES).await);
}

/// A one-table job over `rows` good rows followed by `bad` rows that fail NOT NULL.
fn load_job(dir: &Path, method: &str, rows: usize, bad: usize, maxerror: u64) -> PathBuf {
    use std::io::Write as _;
    let mut f = flate2::write::GzEncoder::new(
        std::fs::File::create(dir.join("t.txt.gz")).unwrap(),
        flate2::Compression::fast(),
    );
    writeln!(f, "id|name").unwrap();
    for i in 0..rows {
        writeln!(f, "{i}|name {i}").unwrap();
    }
    for _ in 0..bad {
        writeln!(f, "|no id").unwrap();
    }
    f.finish().unwrap();
    let manifest = serde_json::json!({
        "name": "loads",
        "input": ".",
        "format": {"maxerror": maxerror},
        "schemas": [{"name": "s", "tables": [{"name": "t", "files": "t.txt.gz", "load": {"method": method, "keys": if method == "upsert" { vec!["id"] } else { vec![] }},
            "columns": [{"name": "id", "type": "int", "nullable": false}, {"name": "name", "type": "varchar(20)"}]}]}],
    });
    std::fs::write(dir.join("job.json"), manifest.to_string()).unwrap();
    dir.join("job.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_failing_midway_leaves_the_table_as_it_was() {
    let local = server().await;
    let url = local.url();
    let c = client(&local).await;
    for method in ["append", "replace", "upsert"] {
        let dir = tempfile::tempdir().unwrap();
        let job = load_job(dir.path(), method, 1000, 0, 0);
        let out = run(etl().args(["run", "--database-url", &url]).arg(&job));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let before = dump(&c, &["s.t"]).await;
        // 300,000 good rows stream to the server before the bad rows at the end of the file.
        let job = load_job(dir.path(), method, 300_000, 2, 1);
        let out = run(etl()
            .args([
                "run",
                "--database-url",
                &url,
                "--run-id",
                &format!("fail-{method}"),
            ])
            .arg(&job));
        assert_eq!(out.status.code(), Some(1), "{method}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(
                "load of s.t rejected 2 row(s), more than MAXERROR 1; the table was left as it was"
            ),
            "{err}"
        );
        assert!(
            err.contains("t.txt.gz line 300002, column id"),
            "the first error is shown: {err}"
        );
        assert_eq!(
            before,
            dump(&c, &["s.t"]).await,
            "{method}: the table is as it was"
        );
        // The rejected rows are kept in the journal, like STL_LOAD_ERRORS.
        let n: i64 = c
            .query_one("select count(*) from etl_meta.load_errors where run_id = $1 and colname = 'id' and err_code = 1213", &[&format!("fail-{method}")])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 2, "{method}");
        c.batch_execute("drop table s.t").await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_rows_within_maxerror_are_reported_and_kept() {
    let local = server().await;
    let url = local.url();
    let dir = tempfile::tempdir().unwrap();
    let job = load_job(dir.path(), "append", 10, 3, 5);
    let out = run(etl()
        .args(["run", "--database-url", &url, "--run-id", "some-bad"])
        .arg(&job));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("load:s.t: 3 rejected row(s); the first:"),
        "{err}"
    );
    assert!(err.contains("line 12, column id: "), "{err}");
    let c = client(&local).await;
    let loaded: i64 = c
        .query_one("select count(*) from s.t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(loaded, 10);
    let row = c
        .query_one("select rows, rejected from etl_meta.steps where run_id = 'some-bad' and step_id = 'load:s.t'", &[])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1)),
        (Some(10), Some(3))
    );
    let raw: String = c
        .query_one("select raw_line from etl_meta.load_errors where run_id = 'some-bad' order by line_number limit 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(raw, "|no id");
}

#[test]
fn upsert_resolves_duplicate_keys_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let job = load_job(dir.path(), "upsert", 3, 0, 0);
    // Duplicates of key 1 in the input: the kept row is the one whose other columns sort highest.
    std::fs::write(dir.path().join("t.txt"), "id|name\n1|b\n1|z\n1|a\n2|x\n").unwrap();
    let manifest = std::fs::read_to_string(&job)
        .unwrap()
        .replace("t.txt.gz", "t.txt")
        .replace("\"maxerror\":0", "\"maxerror\":0,\"compression\":\"none\"");
    std::fs::write(&job, manifest).unwrap();
    let out = stdout_ok(etl().args(["run", "--json"]).arg(&job));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["steps"][1]["rows"], 4, "four rows read");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let local = server().await;
        let url = local.url();
        for _ in 0..2 {
            let out = run(etl().args(["run", "--database-url", &url]).arg(&job));
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let c = client(&local).await;
        let rows: Vec<(i32, String)> = c
            .query("select id, name from s.t order by id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(rows, vec![(1, "z".to_owned()), (2, "x".to_owned())]);
    });
}

#[test]
fn ctrl_c_cancels_and_stops_the_throwaway_server() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.txt"), "a\n1\n").unwrap();
    std::fs::write(dir.path().join("slow.sql"), "select pg_sleep(60);\n").unwrap();
    std::fs::write(
        dir.path().join("job.json"),
        r#"{"name": "slow", "input": ".", "format": {"compression": "none"}, "transform": ["slow.sql"],
            "schemas": [{"name": "s", "tables": [{"name": "t", "files": "t.txt", "columns": [{"name": "a", "type": "int"}]}]}]}"#,
    )
    .unwrap();
    // The throwaway server lives under TMPDIR: a private one shows whether it was removed.
    let tmp = tempfile::tempdir().unwrap();
    let mut child = etl()
        .arg("run")
        .arg(dir.path().join("job.json"))
        .env("TMPDIR", tmp.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read stderr as it comes; press Ctrl-C once the slow statement has started.
    let stderr = child.stderr.take().unwrap();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
            let line = line.unwrap();
            if line.starts_with("transform:0:1: started") {
                let _ = started_tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    started_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the slow statement started");
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let stderr = reader.join().unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "it did not wait for the statement"
    );
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(stderr.contains("transform:0:1: cancelled"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "the throwaway server's files are gone"
    );
}
