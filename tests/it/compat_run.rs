//! A transform written for Redshift, run unchanged by `etl run` on the throwaway PostgreSQL: every
//! construct the compatibility layer handles, on data that makes each one observable, the
//! unloaded CSV compared with the values the Amazon Redshift Database Developer Guide gives
//! (`https://docs.aws.amazon.com/redshift/latest/dg/<page>.html`, named with each construct).
//! Also: `etl plan --dialect postgres` prints the SQL as rewritten, and a construct the rehearsal
//! cannot reproduce is reported before anything runs (a warning, an error with `--strict`).

use etl_tests::{etl, run, stdout_ok};

use super::compat_docs::{job, parse_csv};

/// (name, query giving one value, the value Redshift gives, page). The tables are those of the
/// documented examples (see `compat_docs`): WINSALES, the TICKIT DATE table of 2008 (whose
/// columns `day`, `month` and `qtr` share their names with date parts), TIME_TEST, TIMETZ_TEST,
/// the SALES rows of event 4337 and SECONDS.
#[rustfmt::skip]
const CONSTRUCTS: &[(&str, &str, &str, &str)] = &[
    // A date part by position, on a table with columns named day, month and qtr; TOP n.
    ("dateadd_day_on_date_table", "select top 1 dateadd(day, 30, caldate) from date where month = 'NOV' order by dateid",
        "2008-12-01 00:00:00", "r_DATEADD_function"),
    ("dateadd_month_end", "select dateadd(month, 1, '2008-04-30')", "2008-05-30 00:00:00", "r_DATEADD_function"),
    ("dateadd_leap_year", "select dateadd(year, 1, '2016-02-29')", "2017-03-01 00:00:00", "r_DATEADD_function"),
    ("dateadd_m_is_minute", "select dateadd(m, 30, '2008-02-28')", "2008-02-28 00:30:00", "r_DATEADD_function"),
    ("dateadd_time", "select dateadd(minute, 5, time_val) from time_test where time_val < '00:01'",
        "00:05:00.555", "r_DATEADD_function"),
    ("dateadd_timetz", "select dateadd(hour, 2, timetz '13:24:55 PST')", "23:24:55+00", "r_DATEADD_function"),
    ("datediff_week", "select datediff(week, '2009-01-01', '2009-12-31')", "52", "r_DATEDIFF_function"),
    ("datediff_year_boundary", "select datediff(year, '2008-12-31', '2009-01-01')", "1", "r_DATEDIFF_function"),
    ("datediff_qtr_on_date_table", "select datediff(qtr, min(caldate), max(caldate)) from date", "3",
        "r_DATEDIFF_function"),
    ("datediff_timetz", "select datediff(hours, timetz '20:00:00 PST', timetz '00:58:00 EST')", "1", "r_DATEDIFF_function"),
    ("date_part_dw", "select date_part(dayofweek, timestamp '20220502 04:05:06.789')", "1", "r_DATE_PART_function"),
    ("date_part_seconds", "select date_part(sec, micro) from seconds", "3.189717", "r_Dateparts_for_datetime_functions"),
    ("date_part_decade", "select date_part(decade, timestamp '2000-02-16 20:38:40')", "201", "r_Dateparts_for_datetime_functions"),
    ("extract_seconds", "select extract(sec from micro) from seconds", "3", "r_Dateparts_for_datetime_functions"),
    ("extract_ms", "select extract(ms from timestamp '2009-09-09 12:08:43.101')", "101", "r_EXTRACT_function"),
    ("extract_timestamptz", "select extract(year from timestamptz '1.12.1997 07:37:16.00 PST')", "1997", "r_EXTRACT_function"),
    ("extract_time_ms", "select extract(ms from time_val) from time_test where time_val < '00:01'", "555", "r_EXTRACT_function"),
    ("date_trunc_qtrs", "select date_trunc('qtrs', timestamp '20200430 04:05:06.789')", "2020-04-01 00:00:00",
        "r_DATE_TRUNC"),
    ("decode", "select decode('NHL', 'NHL', 'National Hockey League', 'MLB', 'Major League Baseball', 'Unknown')",
        "National Hockey League", "r_DECODE_expression"),
    ("nvl2", "select listagg(nvl2(qty_shipped, 'y', 'n'), '') within group (order by salesid) from winsales",
        "ynnyyynnnny", "r_NVL2"),
    ("listagg_distinct", "select listagg(distinct sellerid, ', ') within group (order by sellerid) from sales where eventid = 4337",
        "380, 1178, 2731, 8117, 12905, 32043, 32432, 38669, 38750, 41498, 45676, 46324, 47188, 48294", "r_LISTAGG"),
    ("listagg_window", "select top 1 listagg(sellerid) within group (order by dateid) over () from winsales where buyerid = 'b'",
        "3233", "r_WF_LISTAGG"),
    ("median_window", "select top 1 median(qty) over (partition by sellerid) from winsales where sellerid = 3", "17.5",
        "r_WF_MEDIAN"),
    ("percentile_cont_window",
        "select top 1 percentile_cont(0.5) within group (order by qty) over (partition by sellerid) from winsales where sellerid = 3",
        "17.5", "r_WF_PERCENTILE_CONT"),
    ("percentile_disc_window",
        "select top 1 percentile_disc(0.5) within group (order by qty) over (partition by sellerid) from winsales where sellerid = 3",
        "15", "r_WF_PERCENTILE_DISC"),
    ("ratio_to_report", "select r from (select salesid, ratio_to_report(qty) over () as r from winsales) t where salesid = 10005",
        "0.13953488372093023", "r_WF_RATIO_TO_REPORT"),
    ("top", "select listagg(salesid, ',') within group (order by salesid) from (select top 3 salesid from winsales order by salesid) t",
        "10001,10005,10006", "r_TOP_clause"),
    ("sysdate", "select trunc(sysdate) = current_date", "true", "r_SYSDATE"),
    ("getdate", "select getdate() = date_trunc('second', getdate())", "true", "r_GETDATE"),
    // Implicit conversions (c_Supported_data_types, "Type compatibility and conversion").
    ("char_compared_with_number", "select count(*) from date where qtr = 4", "92", "c_Supported_data_types"),
    ("number_like", "select count(*) from winsales where salesid like '3%'", "4", "c_Supported_data_types"),
    ("timestamp_like", "select count(*) from sales where saletime like '2008-03%'", "21", "c_Supported_data_types"),
    ("len_of_number", "select len(12345)", "5", "r_LEN"),
    ("charindex_in_number", "select charindex('3', 12345)", "3", "r_CHARINDEX"),
    ("concat_number", "select 'seller ' || sellerid from winsales where salesid = 40001", "seller 4", "r_concat_op"),
    ("regexp_replace_all", "select regexp_replace('a-b-c', '-', '+')", "a+b+c", "REGEXP_REPLACE"),
    ("backslash_literal", "select len('a\\\\b')", "3", "r_character_literals"),
    ("varchar_max", "select pg_typeof(cast('x' as varchar(max)))::varchar", "character varying", "r_Character_types"),
];

/// The transform: one row per construct, as a Redshift user writes it.
fn transform() -> String {
    let mut sql =
        String::from("create table compat_run (name varchar(64), value varchar(65535));\n");
    for (name, query, _, _) in CONSTRUCTS {
        sql.push_str(&format!(
            "insert into compat_run select '{name}', ({query});\n"
        ));
    }
    sql
}

#[test]
fn a_redshift_transform_runs_unchanged_with_redshifts_results() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(
        dir.path(),
        &transform(),
        "select name, value from compat_run order by name",
    );
    let out = run(etl().arg("run").arg(&job));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let csv = std::fs::read_to_string(dir.path().join("out/docs_000")).unwrap();
    let got: std::collections::BTreeMap<String, String> = parse_csv(&csv)
        .into_iter()
        .skip(1)
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    let mut wrong = Vec::new();
    for (name, query, expected, page) in CONSTRUCTS {
        let value = got.get(*name).map_or("(no row)", String::as_str);
        if value != *expected {
            wrong.push(format!(
                "{name} [{page}]: {query}\n    expected {expected}, got {value}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(got.len(), CONSTRUCTS.len());
}

#[test]
fn plan_for_postgres_prints_the_rewritten_sql() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(
        dir.path(),
        &transform(),
        "select name, value from compat_run order by name",
    );
    let plan = stdout_ok(etl().args(["plan", "--dialect", "postgres"]).arg(&job));
    for rewritten in [
        "date_add('day', 30, caldate)",
        "order by dateid LIMIT 1",
        "date_diff('qtr', min(caldate), max(caldate))",
        "public.date_part('ms', timestamp '2009-09-09 12:08:43.101')",
        "date_trunc('quarter', timestamp '20200430 04:05:06.789')",
        "CASE WHEN ('NHL') IS NOT DISTINCT FROM ('NHL')",
        "listagg(sellerid, ', ', true order by sellerid)",
        "percentile_cont(0.5, qty, true) over (partition by sellerid)",
        "regexp_replace('a-b-c', '-', '+', 'g')",
        "len(E'a\\\\b')",
        "varchar(65535)",
        "trunc(sysdate())",
    ] {
        assert!(
            plan.contains(rewritten),
            "missing {rewritten:?} in:\n{plan}"
        );
    }
    // The Redshift plan keeps the SQL as written.
    let plan = stdout_ok(
        etl()
            .args([
                "plan",
                "--dialect",
                "redshift",
                "--input",
                "s3://etl-docs/in/",
            ])
            .args(["--unload-to", "s3://etl-docs/out/r_"])
            .arg(&job),
    );
    assert!(plan.contains("dateadd(day, 30, caldate)"), "{plan}");
    assert!(!plan.contains("date_add('day'"), "{plan}");
}

#[test]
fn an_unreproducible_construct_is_reported_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let transform = "create table r as select salesid from winsales;\n\
                     -- the latest sale per seller\n\
                     create table latest as\n  select sellerid, salesid from winsales\n  \
                     qualify row_number() over (partition by sellerid order by dateid desc) = 1;\n";
    let job = job(dir.path(), transform, "select * from latest");
    let warns = |stderr: &str| {
        assert!(
            stderr.contains("sql/docs.sql")
                && stderr.contains("line 5")
                && stderr.contains("QUALIFY"),
            "no warning naming the file, line and construct:\n{stderr}"
        );
        assert!(stderr.contains("row_number()"), "no advice:\n{stderr}");
    };
    // etl plan warns (on stderr) and still prints the plan.
    let out = run(etl().args(["plan", "--dialect", "postgres"]).arg(&job));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    warns(&stderr);
    // etl run warns before the first step starts, then runs (and PostgreSQL refuses QUALIFY).
    let out = run(etl().arg("run").arg(&job));
    let stderr = String::from_utf8_lossy(&out.stderr);
    warns(&stderr);
    let warning = stderr.find("QUALIFY").unwrap();
    if let Some(first_step) = stderr.find("load:") {
        assert!(
            warning < first_step,
            "the warning comes after a step started:\n{stderr}"
        );
    }
    assert!(!out.status.success(), "{stderr}");
    // --strict makes it a usage error: exit 2, nothing loaded.
    for args in [
        &["plan", "--dialect", "postgres", "--strict"][..],
        &["run", "--strict"][..],
    ] {
        let out = run(etl().args(args).arg(&job));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        warns(&stderr);
        assert!(
            !stderr.contains("load:public.winsales: succeeded"),
            "{stderr}"
        );
    }
}
