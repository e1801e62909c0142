//! The rehearsal runs Redshift SQL as written, on the user's path: `etl run` rewrites every
//! transform and the unload query through the plan, `etl plan --dialect postgres` prints exactly
//! that, `--no-compat` turns it off, `etl sql --dialect redshift` rewrites ad-hoc SQL the same way,
//! and constructs the rehearsal cannot reproduce are reported before anything runs (`--strict`
//! refuses them).

use std::path::{Path, PathBuf};

use etl_tests::{etl, run, server, stdout_ok};

/// A one-table job: `s.t(d date, day int, n int)` with three rows, the given transform, and an
/// unload of `query` to `out/r_` (CSV with a header, one file).
fn job(dir: &Path, transform: &str, query: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::create_dir_all(dir.join("sql")).unwrap();
    std::fs::write(
        dir.join("data/t.txt"),
        "d|day|n\n2024-01-31|5|1\n2024-02-29|6|2\n2024-12-31|7|3\n",
    )
    .unwrap();
    std::fs::write(dir.join("sql/x.sql"), transform).unwrap();
    let manifest = serde_json::json!({
        "name": "rehearsal",
        "input": "data/",
        "format": { "delimiter": "|", "ignoreheader": 1, "compression": "none" },
        "schemas": [{ "name": "s", "tables": [{
            "name": "t",
            "files": "t.txt",
            "columns": [
                { "name": "d", "type": "date" },
                { "name": "day", "type": "integer" },
                { "name": "n", "type": "integer" }
            ]
        }]}],
        "transform": ["sql/x.sql"],
        "unload": {
            "query": query,
            "to": "out/r_",
            "format": "csv",
            "header": true,
            "parallel": false,
            "overwrite": "allow"
        }
    });
    let path = dir.join("job.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    path
}

/// Redshift idioms that PostgreSQL refuses or reads differently, each observable in the CSV:
/// bare date parts (on a table with a column named `day`: the date part must not bind to it),
/// SYSDATE, DECODE, NVL and LISTAGG ... WITHIN GROUP, in a transform and in the unload query.
const TRANSFORM: &str = "\
-- Redshift SQL, as a user writes it for the cluster.
create table s.r as
select n,
       dateadd(month, 1, d) as next_month,
       datediff(day, d, date '2025-01-01') as days_left,
       dateadd(day, 30, d) as plus_day,
       decode(n, 1, 'one', 2, 'two', 'many') as word,
       nvl(null, day) as day_or,
       trunc(sysdate) <= current_date as sysdate_ok
from s.t;
create table s.l as
select listagg(word, ',') within group (order by n desc) as words from s.r;
";

const QUERY: &str = "select r.n, r.next_month::date as next_month, r.days_left, \
    r.plus_day::date as plus_day, r.word, r.day_or, r.sysdate_ok, l.words, \
    datediff(month, r.next_month, date '2025-03-15') as months \
    from s.r r cross join s.l l order by r.n";

#[test]
fn a_redshift_transform_runs_unchanged_through_etl_run() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), TRANSFORM, QUERY);
    let out = run(etl().arg("run").arg(&job));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let csv = std::fs::read_to_string(dir.path().join("out/r_000")).unwrap();
    // Values from the Developer Guide's rules: DATEADD clamps to the month's end (r_DATEADD_function),
    // DATEDIFF counts boundaries (r_DATEDIFF_function), DECODE matches in order (r_DECODE_expression).
    assert_eq!(
        csv,
        "n,next_month,days_left,plus_day,word,day_or,sysdate_ok,words,months\n\
         1,2024-02-29,336,2024-03-01,one,5,t,\"many,two,one\",13\n\
         2,2024-03-29,307,2024-03-30,two,6,t,\"many,two,one\",12\n\
         3,2025-01-31,1,2025-01-30,many,7,t,\"many,two,one\",2\n",
        "{stderr}"
    );
}

#[test]
fn etl_plan_prints_what_etl_run_sends() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), TRANSFORM, QUERY);
    let plan = stdout_ok(etl().args(["plan", "--dialect", "postgres"]).arg(&job));
    for rewritten in [
        "date_add('month', 1, d) as next_month",
        "date_diff('day', d, date '2025-01-01')",
        "CASE WHEN (n) IS NOT DISTINCT FROM (1) THEN ('one')",
        "coalesce(null, day)",
        "trunc(sysdate())",
        "listagg(word, ',' order by n desc)",
        // The unload query is rewritten too, inside the COPY that runs it.
        "date_diff('month', r.next_month, date '2025-03-15')",
    ] {
        assert!(
            plan.contains(rewritten),
            "{rewritten:?} missing from:\n{plan}"
        );
    }
    assert!(!plan.contains("dateadd(month"), "{plan}");

    // --no-compat: what `etl run --no-compat` sends, as written.
    let plan = stdout_ok(
        etl()
            .args(["plan", "--dialect", "postgres", "--no-compat"])
            .arg(&job),
    );
    assert!(plan.contains("dateadd(month, 1, d)"), "{plan}");
    assert!(plan.contains("within group (order by n desc)"), "{plan}");

    // The Redshift plan is never rewritten.
    let plan = stdout_ok(
        etl()
            .args([
                "plan",
                "--dialect",
                "redshift",
                "--input",
                "s3://etl-bucket/in/",
            ])
            .args(["--unload-to", "s3://etl-bucket/out/r_"])
            .arg(&job),
    );
    assert!(plan.contains("dateadd(month, 1, d)"), "{plan}");
    assert!(plan.contains("decode(n, 1, 'one'"), "{plan}");
}

#[test]
fn no_compat_runs_the_sql_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), TRANSFORM, QUERY);
    let out = run(etl().args(["run", "--no-compat"]).arg(&job));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // PostgreSQL reads the bare `month` as a column: exactly what the rewrite exists for.
    assert!(
        stderr.contains("transform sql/x.sql statement 1 (line 1)")
            && stderr.contains("SQLSTATE 42703"),
        "{stderr}"
    );
}

#[test]
fn unreproducible_constructs_are_reported_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let transform = "create table s.r as select n from s.t;\n\n\
                     create table s.q as\nselect n from s.t qualify row_number() over (order by n) = 1;\n";
    let job = job(dir.path(), transform, "select n from s.r order by n");

    let out = run(etl().args(["plan", "--dialect", "postgres"]).arg(&job));
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "etl: warning: sql/x.sql line 4: `QUALIFY` is not reproduced by the \
             PostgreSQL rehearsal"
        ) && stderr.contains("row_number() over"),
        "{stderr}"
    );

    let out = run(etl()
        .args(["plan", "--dialect", "postgres", "--strict"])
        .arg(&job));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());

    // `etl run --strict` refuses before a server is started or a table created.
    let out = run(etl().args(["run", "--strict"]).arg(&job));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("sql/x.sql line 4"), "{stderr}");
    assert!(stderr.contains("drop --strict"), "{stderr}");
    assert!(!stderr.contains("throwaway PostgreSQL"), "{stderr}");

    // Without --strict the run warns first, then runs (and fails on the construct here).
    let out = run(etl().arg("run").arg(&job));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warned = stderr
        .find("etl: warning: sql/x.sql line 4")
        .expect("a warning");
    let started = stderr.find("throwaway PostgreSQL").expect("a server");
    assert!(warned < started, "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn etl_sql_dialect_redshift_rewrites_like_a_transform() {
    let local = server().await;
    let url = local.url();
    let sql = "select dateadd(month, 1, '2024-01-31'::date)::date as a, \
               datediff(qtr, '2024-01-01'::date, '2024-12-31'::date) as b, \
               decode(2, 1, 'x', 2, 'y') as c";
    let out = stdout_ok(
        etl()
            .args(["sql", "--dialect", "redshift", "--format", "csv"])
            .args(["--database-url", &url, "-c", sql]),
    );
    assert_eq!(out, "a,b,c\n2024-02-29,3,y\n");

    // As written, PostgreSQL refuses the bare date part.
    let out = run(etl()
        .args(["sql", "--format", "csv", "--database-url", &url, "-c"])
        .arg(sql));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("42703"));
}

/// Redshift's COPY keeps an empty table's statistics up to date; PostgreSQL's does not, and a
/// transform planned over a table it believes empty can take minutes instead of seconds. Each load
/// ends with `ANALYZE` in its transaction: the statistics are there when the step is.
#[tokio::test(flavor = "multi_thread")]
async fn a_loaded_table_has_statistics_when_its_load_ends() {
    let local = server().await;
    let url = local.url();
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), "select 1;", "select n from s.t order by n");
    let out = run(etl().arg("run").arg(&job).args(["--database-url", &url]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = etl_tests::client(&local).await;
    let rows = c
        .query(
            "select attname::text from pg_stats where schemaname = 's' and tablename = 't' \
             order by attname",
            &[],
        )
        .await
        .unwrap();
    let columns: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(columns, ["d", "day", "n"]);
    let analyzed: i64 = c
        .query_one(
            "select count(*) from pg_stat_user_tables where schemaname = 's' and relname = 't' \
             and last_analyze is not null",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(analyzed, 1);
}

/// A resume runs the fixed failed step as it now is, but refuses when a step that already
/// succeeded (and would be skipped) changed.
#[tokio::test(flavor = "multi_thread")]
async fn a_resume_refuses_changes_to_what_already_succeeded() {
    let local = server().await;
    let url = local.url();
    let dir = tempfile::tempdir().unwrap();
    let run_job = |transform: &str| {
        let job = job(dir.path(), transform, "select n from s.q order by n");
        run(etl()
            .arg("run")
            .arg(&job)
            .args(["--database-url", &url, "--run-id", "fix-1"]))
    };
    let out = run_job(
        "create table s.r as select n from s.t;\ncreate table s.q as select nope from s.t;\n",
    );
    assert_eq!(out.status.code(), Some(1));

    // Statement 1 succeeded: changing it is refused, by name, before anything runs.
    let out = run_job(
        "create table s.r as select n + 1 as n from s.t;\ncreate table s.q as select n from s.t;\n",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("transform:0:1 changed"), "{stderr}");

    // Only the failed statement fixed: the resume runs it.
    let out =
        run_job("create table s.r as select n from s.t;\ncreate table s.q as select n from s.t;\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/r_000")).unwrap(),
        "n\n1\n2\n3\n"
    );
}
