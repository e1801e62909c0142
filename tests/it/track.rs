//! Statement tracking across processes, the journal, resume and timeouts — against a real
//! PostgreSQL.

use std::io::BufRead as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use etl_core::track::{self, Handle, State};
use etl_core::warehouse::Warehouse;
use etl_tests::{client, etl, run, server, stdout_ok};

/// `etl statement submit` in a child process; returns the child (still running when `wait`) and
/// the handle it printed first.
fn submit(
    url: &str,
    run_id: &str,
    step: &str,
    sql: &str,
    wait: bool,
) -> (std::process::Child, Handle) {
    let mut cmd = etl();
    cmd.args([
        "statement",
        "submit",
        "--database-url",
        url,
        "--run-id",
        run_id,
        "--step",
        step,
        "-c",
        sql,
    ]);
    if wait {
        cmd.arg("--wait");
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let handle: Handle =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("no handle ({e}): {line:?}"));
    (child, handle)
}

async fn wait_final(wh: &Warehouse, h: &Handle) -> State {
    track::wait(wh, h, Instant::now() + Duration::from_secs(60))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_submitted_by_one_process_is_polled_by_another() {
    let local = server().await;
    let url = local.url();
    let wh = Warehouse::connect(local.connect_options(), 2)
        .await
        .unwrap();

    // The submitter exits as soon as the server runs the statement.
    let (mut child, h) = submit(&url, "r1", "sleep", "select pg_sleep(5)", false);
    assert!(child.wait().unwrap().success());
    assert_eq!(
        track::poll(&wh, &h).await.unwrap(),
        State::Running,
        "polled while it sleeps"
    );
    let started = Instant::now();
    assert!(matches!(wait_final(&wh, &h).await, State::Succeeded { .. }));
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "it did run for the five seconds"
    );

    // A failing statement ends Failed, with its SQLSTATE when the submitter is there to see it.
    let (mut child, h) = submit(&url, "r1", "fail", "select 1/0", true);
    assert_eq!(child.wait().unwrap().code(), Some(1));
    match wait_final(&wh, &h).await {
        State::Failed { sqlstate, message } => {
            assert_eq!(sqlstate.as_deref(), Some("22012"));
            assert!(message.contains("division by zero"), "{message}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    // ... and Failed without a SQLSTATE when nobody was left to read it.
    let (mut child, h) = submit(&url, "r1", "fail-alone", "select pg_sleep(1), 1/0", false);
    assert!(child.wait().unwrap().success());
    assert!(matches!(wait_final(&wh, &h).await, State::Failed { .. }));

    // A cancelled one ends Cancelled, whether its submitter stays or not.
    for (step, wait) in [("cancel-alone", false), ("cancel-watched", true)] {
        let (mut child, h) = submit(&url, "r1", step, "select pg_sleep(60)", wait);
        if !wait {
            assert!(child.wait().unwrap().success());
        }
        let out = stdout_ok(
            etl()
                .args(["statement", "cancel", "--database-url", &url])
                .arg(serde_json::to_string(&h).unwrap()),
        );
        assert!(out.is_empty());
        assert_eq!(wait_final(&wh, &h).await, State::Cancelled, "{step}");
        if wait {
            assert_eq!(child.wait().unwrap().code(), Some(1));
        }
    }

    // A reused PID is not cancelled: a handle whose label no longer matches sends nothing.
    let (mut child, h) = submit(&url, "r1", "other", "select pg_sleep(2)", false);
    assert!(child.wait().unwrap().success());
    let mut stale = h.clone();
    stale.label = "etl-00000000-9".into();
    assert!(!track::cancel(&wh, &stale).await.unwrap());
    assert!(matches!(wait_final(&wh, &h).await, State::Succeeded { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_truth_survives_a_killed_submitter() {
    let local = server().await;
    let url = local.url();
    let wh = Warehouse::connect(local.connect_options(), 2)
        .await
        .unwrap();
    let c = client(&local).await;
    c.batch_execute("create table t (a int)").await.unwrap();

    let (mut child, h) = submit(
        &url,
        "r2",
        "insert",
        "insert into t select g from generate_series(1, 3) g, pg_sleep(2)",
        true,
    );
    // Mid-statement: SIGKILL, no chance to clean up or journal anything.
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(matches!(wait_final(&wh, &h).await, State::Succeeded { .. }));
    // The journal row committed with the statement proves it...
    let row = c
        .query_one("select status, finished_at > started_at from etl_meta.steps where run_id = 'r2' and step_id = 'insert'", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "succeeded");
    assert!(row.get::<_, bool>(1));
    // ... and so do the rows.
    let n: i64 = c
        .query_one("select count(*) from t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3);
}

/// A small job: one table, two transform files (three statements).
fn write_job(dir: &Path, second_sql: &str) {
    std::fs::write(dir.join("t.txt"), "id|v\n1|a\n2|b\n3|c\n").unwrap();
    std::fs::write(
        dir.join("one.sql"),
        "create table s.doubled as select id * 2 as id, v from s.t;\ncreate table s.log (step int);\n",
    )
    .unwrap();
    std::fs::write(dir.join("two.sql"), second_sql).unwrap();
    std::fs::write(
        dir.join("job.json"),
        r#"{"name": "resume", "input": ".", "format": {"compression": "none"},
            "schemas": [{"name": "s", "tables": [{"name": "t", "files": "t.txt", "load": {"method": "replace"},
              "columns": [{"name": "id", "type": "int"}, {"name": "v", "type": "varchar(3)"}]}]}],
            "transform": ["one.sql", "two.sql"]}"#,
    )
    .unwrap();
}

async fn steps(
    c: &tokio_postgres::Client,
    run: &str,
) -> Vec<(String, String, Option<chrono::NaiveDateTime>, i32)> {
    c.query("select step_id, status, started_at, attempts from etl_meta.steps where run_id = $1 order by seq", &[&run])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

async fn dump(c: &tokio_postgres::Client) -> Vec<String> {
    let mut out = Vec::new();
    for t in ["s.t", "s.doubled", "s.log", "s.final"] {
        for r in c
            .query(
                &format!("select row_to_json(x)::text from {t} x order by 1"),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_skips_what_succeeded_and_ends_like_a_clean_run() {
    let dir = tempfile::tempdir().unwrap();
    let good = "insert into s.log values (2);\ncreate table s.final as select d.id, d.v, count(*) over () as n from s.doubled d;\n";
    let bad = "insert into s.log values (2);\ncreate table s.final as select d.id, d.v, nope from s.doubled d;\n";
    write_job(dir.path(), bad);
    let job = dir.path().join("job.json");

    let local = server().await;
    let url = local.url();
    let c = client(&local).await;
    let out = run(etl()
        .args(["run", "--database-url", &url, "--run-id", "resume-1"])
        .arg(&job));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("two.sql statement 2 (line 2) failed"), "{err}");
    assert!(err.contains("SQLSTATE 42703"), "{err}");
    assert!(
        err.contains("--run-id resume-1"),
        "the hint says how to resume: {err}"
    );
    let before = steps(&c, "resume-1").await;
    assert_eq!(before.last().unwrap().1, "failed");
    assert!(
        before[..before.len() - 1]
            .iter()
            .all(|s| s.1 == "succeeded"),
        "{before:?}"
    );

    // Fix the SQL and rerun with the same run id.
    write_job(dir.path(), good);
    let out = run(etl()
        .args(["run", "--database-url", &url, "--run-id", "resume-1"])
        .arg(&job));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("resuming run resume-1 (5 step(s) already done)")
    );
    let after = steps(&c, "resume-1").await;
    for (b, a) in before.iter().zip(&after).take(before.len() - 1) {
        assert_eq!(
            b, a,
            "a step that succeeded was not run again (same start time, one attempt)"
        );
        assert_eq!(a.3, 1);
    }
    assert_eq!(after.last().unwrap().1, "succeeded");
    assert_eq!(
        after.last().unwrap().3,
        2,
        "the failed step ran a second time"
    );
    let status = stdout_ok(etl().args([
        "status",
        "resume-1",
        "--format",
        "json",
        "--database-url",
        &url,
    ]));
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status.as_array().unwrap().len(), after.len());

    // The same job run cleanly on another server gives identical tables.
    let clean = server().await;
    let out = run(etl()
        .args(["run", "--database-url", &clean.url()])
        .arg(&job));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resumed = dump(&c).await;
    assert_eq!(resumed, dump(&client(&clean).await).await);
    assert!(
        resumed.iter().filter(|r| r.starts_with("s.t:")).count() == 3,
        "no duplicate rows: {resumed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_past_its_timeout_is_cancelled_on_the_server() {
    let dir = tempfile::tempdir().unwrap();
    write_job(dir.path(), "select pg_sleep(30);\n");
    let local = server().await;
    let url = local.url();
    let started = Instant::now();
    let out = run(etl()
        .args([
            "run",
            "--database-url",
            &url,
            "--statement-timeout",
            "1",
            "--run-id",
            "slow",
        ])
        .arg(dir.path().join("job.json")));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "it did not wait for the sleep"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("transform two.sql statement 1 (line 1) timed out after 1."),
        "{err}"
    );
    let c = client(&local).await;
    let running: i64 = c
        .query_one("select count(*) from pg_stat_activity where query like '%pg_sleep(30)%' and pid <> pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        running, 0,
        "the statement is no longer running on the server"
    );
    let row = c
        .query_one("select status, sqlstate from etl_meta.steps where run_id = 'slow' and step_id = 'transform:1:1'", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etl_cancel_stops_a_running_run() {
    let dir = tempfile::tempdir().unwrap();
    write_job(dir.path(), "select pg_sleep(60);\n");
    let local = server().await;
    let url = local.url();
    let mut child = etl()
        .args(["run", "--database-url", &url, "--run-id", "to-cancel"])
        .arg(dir.path().join("job.json"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let c = client(&local).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n: i64 = c
            .query_one("select count(*) from etl_meta.steps where run_id = 'to-cancel' and step_id = 'transform:1:1' and status = 'running'", &[])
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        if n == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run never reached its slow statement"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = run(etl().args(["cancel", "to-cancel", "--database-url", &url]));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("transform:1:1: cancel requested"));
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let row = c
        .query_one("select status from etl_meta.steps where run_id = 'to-cancel' and step_id = 'transform:1:1'", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "cancelled");
}

/// Registers run `run` with one step `step` in the journal.
async fn register(c: &tokio_postgres::Client, run: &str, step: &str) {
    etl_core::journal::ensure(c).await.unwrap();
    etl_core::journal::begin_run(
        c,
        etl_core::sql::Dialect::Postgres,
        run,
        "adhoc",
        &[(step.to_owned(), 1)],
    )
    .await
    .unwrap();
}

async fn journal_status(c: &tokio_postgres::Client, run: &str, step: &str) -> (String, i32) {
    let r = c
        .query_one(
            "select status, attempts from etl_meta.steps where run_id = $1 and step_id = $2",
            &[&run, &step],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_failed_cannot_overwrite_succeeded_and_conclusions_are_per_attempt() {
    use etl_core::journal::{self, Status};
    use etl_core::sql::Dialect;
    let local = server().await;
    let url = local.url();
    let wh = Warehouse::connect(local.connect_options(), 2)
        .await
        .unwrap();
    let c = client(&local).await;

    // A statement that committed with its journal row (the submitter is gone by then)...
    let (mut child, h) = submit(&url, "late", "insert", "select pg_sleep(1)", false);
    assert!(child.wait().unwrap().success());
    assert_eq!(h.attempt, Some(1), "the handle knows its attempt");
    assert!(matches!(wait_final(&wh, &h).await, State::Succeeded { .. }));
    // ... then a poller's late conclusion: it changes nothing.
    for status in [Status::Failed, Status::Cancelled] {
        for attempt in [h.attempt, None] {
            let changed = journal::conclude_step(
                &c,
                Dialect::Postgres,
                "late",
                "insert",
                attempt,
                status,
                None,
                Some((None, "the session ended without committing it")),
            )
            .await
            .unwrap();
            assert!(!changed, "{status} over succeeded");
        }
    }
    assert_eq!(journal_status(&c, "late", "insert").await.0, "succeeded");
    assert!(matches!(
        track::poll(&wh, &h).await.unwrap(),
        State::Succeeded { .. }
    ));

    // A conclusion about attempt 1 does not land on attempt 2.
    register(&c, "late", "again").await;
    let first = track::begin(&c, Dialect::Postgres, "late", "again", 2, true)
        .await
        .unwrap();
    let second = track::begin(&c, Dialect::Postgres, "late", "again", 2, true)
        .await
        .unwrap();
    assert_eq!((first.attempt, second.attempt), (Some(1), Some(2)));
    let stale = journal::conclude_step(
        &c,
        Dialect::Postgres,
        "late",
        "again",
        first.attempt,
        Status::Failed,
        None,
        Some((None, "late")),
    )
    .await
    .unwrap();
    assert!(!stale);
    assert_eq!(
        journal_status(&c, "late", "again").await,
        ("running".into(), 2)
    );
    let current = journal::conclude_step(
        &c,
        Dialect::Postgres,
        "late",
        "again",
        second.attempt,
        Status::Failed,
        None,
        Some((Some("22012"), "division by zero")),
    )
    .await
    .unwrap();
    assert!(current);
    assert_eq!(journal_status(&c, "late", "again").await.0, "failed");
    // A poll of the stale handle reports the journal's outcome and writes nothing.
    assert!(matches!(
        track::poll(&wh, &first).await.unwrap(),
        State::Failed { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_client_s_block_is_not_failed_early_and_its_session_is_ended_when_it_is() {
    use etl_core::sql::Dialect;
    let local = server().await;
    let wh = Warehouse::connect(local.connect_options(), 2)
        .await
        .unwrap();
    let c = client(&local).await;
    c.batch_execute("create table locked (a int)")
        .await
        .unwrap();
    register(&c, "frozen", "block").await;
    register(&c, "frozen", "aborted").await;

    // The submitter starts the step, its block takes a lock — and the submitter freezes (a
    // Lambda between invocations): the session sits idle in its transaction, holding the lock.
    let frozen = client(&local).await;
    let h = track::begin(&frozen, Dialect::Postgres, "frozen", "block", 7, true)
        .await
        .unwrap();
    frozen
        .batch_execute("BEGIN; LOCK TABLE locked")
        .await
        .unwrap();
    let other = client(&local).await;
    let try_lock = || async {
        let r = other
            .batch_execute("BEGIN; SET LOCAL lock_timeout = '200ms'; LOCK TABLE locked; COMMIT")
            .await;
        if r.is_err() {
            let _ = other.batch_execute("ROLLBACK").await;
        }
        r.is_ok()
    };
    assert!(!try_lock().await, "the block holds its lock");
    // Alive inside its block: never failed on a guess.
    assert_eq!(track::poll(&wh, &h).await.unwrap(), State::Running);
    assert_eq!(journal_status(&c, "frozen", "block").await.0, "running");
    // Past its timeout: failed, and its session ended so that its lock goes.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let polled = track::poll_with_timeout(&wh, &h, Some(Duration::from_secs(1)))
        .await
        .unwrap();
    assert!(polled.timed_out.is_some(), "{polled:?}");
    assert_eq!(journal_status(&c, "frozen", "block").await.0, "failed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !try_lock().await {
        assert!(Instant::now() < deadline, "the lock went with the session");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        frozen.simple_query("select 1").await.is_err(),
        "the frozen session was terminated"
    );

    // A block that failed while its client is frozen: the server says so (aborted), so it is
    // concluded failed at once, and the session is ended.
    let frozen = client(&local).await;
    let h = track::begin(&frozen, Dialect::Postgres, "frozen", "aborted", 8, true)
        .await
        .unwrap();
    assert!(frozen.batch_execute("BEGIN; SELECT 1/0").await.is_err());
    // (The server marks the transaction aborted right after it sends the error.)
    match wait_final(&wh, &h).await {
        State::Failed { message, .. } => assert!(message.contains("aborted"), "{message}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(journal_status(&c, "frozen", "aborted").await.0, "failed");
    assert!(
        frozen.simple_query("select 1").await.is_err(),
        "the frozen session was terminated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_at_step_100_000_find_poll_time_out_and_cancel_their_statement() {
    let local = server().await;
    let wh = Warehouse::connect(local.connect_options(), 2)
        .await
        .unwrap();
    let c = client(&local).await;
    register(&c, "big", "s100000").await;
    let submitted = track::submit(&wh, "big", "s100000", 100_000, "select pg_sleep(30)")
        .await
        .unwrap();
    let h = submitted.handle.clone();
    assert_eq!(h.label.len(), 15, "{}", h.label);
    assert_eq!(h.label, etl_core::journal::step_label("big", 100_000));
    let seen: String = c
        .query_one(
            "select application_name from pg_stat_activity where pid = $1",
            &[&h.pid],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, h.label, "the server keeps the whole label");
    assert_eq!(track::poll(&wh, &h).await.unwrap(), State::Running);
    // Not yet past its timeout: still running.
    let polled = track::poll_with_timeout(&wh, &h, Some(Duration::from_secs(600)))
        .await
        .unwrap();
    assert_eq!((polled.state, polled.timed_out), (State::Running, None));
    // Past it: stopped on the server and journaled failed.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let polled = track::poll_with_timeout(&wh, &h, Some(Duration::from_secs(1)))
        .await
        .unwrap();
    assert!(polled.timed_out.is_some_and(|s| s > 1.0), "{polled:?}");
    assert!(
        matches!(&polled.state, State::Failed { message, .. } if message.contains("timed out")),
        "{polled:?}"
    );
    assert!(submitted.finish(&wh).await.is_err());
    assert_eq!(journal_status(&c, "big", "s100000").await.0, "failed");
    let sleeping: i64 = c
        .query_one(
            "select count(*) from pg_stat_activity where query like '%pg_sleep(30)%' and pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(sleeping, 0, "the statement no longer runs");

    // And `etl statement cancel` finds a step-100 000 statement by its label.
    register(&c, "big", "c100000").await;
    let submitted = track::submit(&wh, "big", "c100000", 100_000, "select pg_sleep(30)")
        .await
        .unwrap();
    assert!(track::cancel(&wh, &submitted.handle).await.unwrap());
    assert_eq!(wait_final(&wh, &submitted.handle).await, State::Cancelled);
}
