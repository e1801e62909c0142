//! `etl doctor` against the test PostgreSQL: every probe runs its local equivalent, one line each,
//! and the scratch it makes is gone afterwards. (The Redshift statements of the probes are golden
//! tests in `etl-core/src/sql/doctor.rs`, each naming the Developer Guide page of what it reads.)

use etl_tests::{etl, psql, run, server, stdout_ok};

/// The probes in the order `etl doctor` prints them.
const PROBES: &[&str] = &[
    "tls",
    "isolation",
    "query_group",
    "status-running",
    "cancel",
    "status-history",
    "label-lengths",
    "own-rows",
    "copy-count",
    "s3-copy",
    "s3-unload",
];

fn lines(stdout: &str) -> Vec<(String, String, String)> {
    stdout
        .lines()
        .map(|l| {
            let mut parts = l.split_whitespace();
            let status = parts.next().unwrap_or("").to_owned();
            let probe = parts.next().unwrap_or("").to_owned();
            (status, probe, l.to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_probe_runs_against_postgresql() {
    let local = server().await;
    let out = run(etl().args(["doctor", "--database-url", &local.url()]));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "exit {}:\n{stdout}\n{stderr}",
        out.status
    );
    let found = lines(&stdout);
    let probes: Vec<&str> = found.iter().map(|(_, p, _)| p.as_str()).collect();
    assert_eq!(probes, PROBES, "one line per probe, in order:\n{stdout}");
    for (status, probe, line) in &found {
        let want = match probe.as_str() {
            // PostgreSQL keeps no statement history; without --job there are no buckets to try.
            "status-history" | "s3-copy" | "s3-unload" => "skipped",
            _ => "ok",
        };
        assert_eq!(status, want, "{line}");
        assert!(
            line.contains("(https://"),
            "every line names its page: {line}"
        );
    }
    let line = |p: &str| &found.iter().find(|(_, q, _)| q == p).unwrap().2;
    assert!(line("isolation").contains("read committed"), "{stdout}");
    assert!(line("cancel").contains("57014"), "{stdout}");
    assert!(
        line("label-lengths").contains("kept as pg_stat_activity: "),
        "{stdout}"
    );
    assert!(line("s3-copy").contains("--job"), "{stdout}");
    assert!(stderr.contains("8 ok, 0 failed, 3 skipped"), "{stderr}");

    // Nothing left behind: no session of the doctor still runs, no table was created.
    let left = stdout_ok(psql(&local).args([
        "-At",
        "-c",
        "select count(*) from pg_stat_activity where application_name like 'etl-doctor-%'",
    ]));
    assert_eq!(left.trim(), "0");
    let tables = stdout_ok(psql(&local).args([
        "-At",
        "-c",
        "select count(*) from pg_tables where tablename = 'etl_doctor_scratch'",
    ]));
    assert_eq!(tables.trim(), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_job_it_writes_and_removes_a_scratch_row_where_the_job_reads_and_unloads() {
    let local = server().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("in")).unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    std::fs::write(dir.path().join("in/t.txt"), "1\n").unwrap();
    let job = serde_json::json!({
        "name": "doc",
        "input": "in/",
        "schemas": [{"name": "s", "tables": [{"name": "t", "files": ["t.txt"], "columns": [{"name": "a", "type": "integer"}]}]}],
        "unload": {"query": "select a from s.t", "to": "out/r_"}
    });
    let path = dir.path().join("job.json");
    std::fs::write(&path, job.to_string()).unwrap();
    let out = run(etl()
        .args(["doctor", "--database-url", &local.url(), "--job"])
        .arg(&path));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (status, probe, line) in lines(&stdout) {
        if probe.starts_with("s3-") {
            assert_eq!(status, "ok", "{line}");
            assert!(line.contains("_etl_doctor/"), "{line}");
        }
    }
    for d in ["in", "out"] {
        let left: Vec<_> = std::fs::read_dir(dir.path().join(d))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !left.iter().any(|n| n.starts_with("_etl_doctor")),
            "{d}: {left:?}"
        );
    }
}

#[test]
fn an_unreachable_warehouse_is_a_configuration_error() {
    let out = run(etl().args([
        "doctor",
        "--database-url",
        "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1",
    ]));
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
