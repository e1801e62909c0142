//! `etl sql` against psql on the same server.

use etl_tests::{etl, psql, run, server, stdout_ok};

/// Queries whose `--format csv` output must be byte-identical to `psql --csv`.
const QUERIES: &[&str] = &[
    "select 1 as one, null as nothing, '' as empty, ' ' as blank",
    "select 'say \"hi\"' as quotes, 'a,b' as comma, 'x|y' as pipe, 'it''s' as apostrophe",
    "select E'line1\\nline2' as newline, E'cr\\rhere' as cr, E'tab\\there' as tab, '\\.' as eod, '\\' as backslash",
    "select 'ünïcödé ☃ 名前 🚀' as unicode, 'é' as \"col,with\"\"quote\"",
    "select 12345678901234567890.123456789::numeric as big, 0.1::float8 as f, 1e100::float8 as e, 'NaN'::float8 as nan, '-Infinity'::float4 as inf, -0.0::float8 as negzero, 3::smallint as s, (2^62)::bigint as b",
    "select 20.259::numeric(8,2) as rounded, 1.50::numeric(5,2) as trailing",
    "select timestamp '2024-02-29 23:59:59.123456' as ts, timestamptz '2024-06-01 12:00:00+02' as tstz, date '0001-01-01' as d, time '24:00' as t, interval '1 day 2 hours' as i",
    "select true as t, false as f, null::boolean as n",
    "select * from (values (1, 'a'), (2, null), (3, 'c')) as v(id, val) where false",
    "select array[1,2,3] as arr, '{\"a\": [1, \"x,y\"]}'::jsonb as js, 'a\"b'::text as q",
    "select g, repeat('x', g) from generate_series(1, 5) g",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_output_is_byte_identical_to_psql() {
    let local = server().await;
    for q in QUERIES {
        let ours = stdout_ok(etl().args([
            "sql",
            "--format",
            "csv",
            "--database-url",
            &local.url(),
            "-c",
            q,
        ]));
        let theirs = stdout_ok(psql(&local).args(["--csv", "-c", q]));
        assert_eq!(ours, theirs, "query: {q}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_statements_from_c_f_and_stdin() {
    let local = server().await;
    let url = local.url();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.sql");
    std::fs::write(
        &file,
        "create table t (a int, b text);\ninsert into t values (1, 'x;y'), (2, null);\n-- a comment; with a semicolon\nselect * from t order by a;\n",
    )
    .unwrap();
    let out = stdout_ok(
        etl()
            .args(["sql", "--format", "csv", "--database-url", &url, "-f"])
            .arg(&file),
    );
    assert_eq!(out, "a,b\n1,x;y\n2,\n");

    let out = stdout_ok(etl().args([
        "sql",
        "--format",
        "csv",
        "--database-url",
        &url,
        "-c",
        "select 1 as a",
        "-c",
        "select 2 as b; select 3 as c",
    ]));
    let theirs = stdout_ok(psql(&local).args([
        "--csv",
        "-c",
        "select 1 as a",
        "-c",
        "select 2 as b",
        "-c",
        "select 3 as c",
    ]));
    assert_eq!(out, theirs);

    let mut child = etl()
        .args(["sql", "--format", "json", "--database-url", &url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"select a, b, a > 1 as big from t order by a")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{"a": 1, "b": "x;y", "big": false}, {"a": 2, "b": null, "big": true}])
    );

    let table = stdout_ok(etl().args([
        "sql",
        "--database-url",
        &url,
        "-c",
        "select a from t order by a",
    ]));
    assert!(table.contains("(2 rows)"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_show_sqlstate_position_and_exit_codes() {
    let local = server().await;
    let url = local.url();
    let out = run(etl().args([
        "sql",
        "--database-url",
        &url,
        "-c",
        "select 1;\nselect nope\n  from nowhere",
    ]));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("etl: -c #1 statement 2 (line 2) failed"),
        "{err}"
    );
    assert!(
        err.contains("relation \"nowhere\" does not exist (SQLSTATE 42P01)"),
        "{err}"
    );
    assert!(err.contains("LINE 2:   from nowhere\n"), "{err}");
    assert!(err.contains("^"), "{err}");

    let out = run(etl().args(["sql", "--database-url", &url, "-c", "select 1/0"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SQLSTATE 22012"));

    // Nothing listens on port 1: a configuration problem, exit 2, and the password is not printed.
    let out = run(etl().args([
        "sql",
        "--database-url",
        "postgres://u:hunter2@127.0.0.1:1/db?sslmode=disable",
        "-c",
        "select 1",
    ]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect to u@127.0.0.1:1/db"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");

    let out = run(etl().args(["sql", "--database-url", "mysql://x", "-c", "select 1"]));
    assert_eq!(out.status.code(), Some(2));
    let out = run(etl().args(["sql", "--format", "xml"]));
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libpq_variables_select_the_server() {
    let local = server().await;
    let o = local.connect_options();
    let out = stdout_ok(
        etl()
            .args(["sql", "--format", "csv", "-c", "select current_user"])
            .env("PGHOST", &o.host)
            .env("PGPORT", o.port.to_string())
            .env("PGUSER", &o.user)
            .env("PGDATABASE", &o.dbname)
            .env("PGSSLMODE", "disable"),
    );
    assert_eq!(out, "current_user\netl\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_id_reads_the_connection_from_secrets_manager() {
    // Runs in a child process whose environment points the AWS SDK at moto.
    let Some(_moto) =
        etl_tests::moto::s3_test("cli_sql::secret_id_reads_the_connection_from_secrets_manager")
    else {
        return;
    };
    let local = server().await;
    let o = local.connect_options();
    let client = etl_core::aws::secretsmanager::Client::new(etl_core::aws::config().await);
    let secret = serde_json::json!({"username": o.user, "password": "unused", "host": o.host, "port": o.port, "dbname": o.dbname, "engine": "redshift"});
    client
        .create_secret()
        .name("etl/cli-test")
        .secret_string(secret.to_string())
        .send()
        .await
        .unwrap();
    let out = stdout_ok(
        etl()
            .args([
                "sql",
                "--format",
                "csv",
                "--secret-id",
                "etl/cli-test",
                "-c",
                "select current_user as u",
            ])
            .env("PGSSLMODE", "disable"),
    );
    assert_eq!(out, "u\netl\n");
    // Without the override TLS is verified, which this server cannot do: a clear failure, exit 2.
    let out = run(etl().args(["sql", "--secret-id", "etl/cli-test", "-c", "select 1"]));
    assert_eq!(out.status.code(), Some(2));
    let out = run(etl()
        .args(["sql", "--secret-id", "etl/missing", "-c", "select 1"])
        .env("PGSSLMODE", "disable"));
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("etl/missing") && err.contains("not found"),
        "{err}"
    );
}
