//! The Redshift compatibility layer on a real PostgreSQL: `sql/compat/postgres.sql` installs
//! (twice, idempotently), each function gives the values the Amazon Redshift Database Developer
//! Guide shows in its examples, SQL passed through `rewrite_for_postgres` runs end to end, and the
//! example job's transforms run after the install.
//!
//! Expected values cite the page they come from, under
//! <https://docs.aws.amazon.com/redshift/latest/dg/>; values marked "derived" follow from the
//! semantics a page states rather than from one of its examples.

use etl_core::sql::compat::{
    DATEPARTS, POSTGRES_COMPAT_SQL, compat_function_names, rewrite_for_postgres,
};
use etl_core::sql::{Dialect, split_statements};
use etl_tests::{Local, client, etl, repo_root, server, stdout_ok};
use tokio_postgres::{Client, SimpleQueryMessage};

/// A throwaway server with the compatibility functions installed (twice: the second install must
/// change nothing).
async fn compat_server() -> (Local, Client) {
    let local = server().await;
    let c = client(&local).await;
    for round in 1..=2 {
        c.batch_execute(POSTGRES_COMPAT_SQL)
            .await
            .unwrap_or_else(|e| panic!("install #{round}: {}", db_message(&e)));
    }
    (local, c)
}

fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map_or_else(
        || e.to_string(),
        |d| format!("{}: {}", d.code().code(), d.message()),
    )
}

/// Rewrites `redshift_sql`, runs it, and returns the first row's values and the column names.
async fn query(c: &Client, redshift_sql: &str) -> (Vec<Option<String>>, Vec<String>) {
    let sql = rewrite_for_postgres(redshift_sql);
    let messages = c
        .simple_query(&sql)
        .await
        .unwrap_or_else(|e| panic!("{redshift_sql}\n  sent as: {sql}\n  {}", db_message(&e)));
    for m in messages {
        if let SimpleQueryMessage::Row(row) = m {
            let values = (0..row.len())
                .map(|i| row.get(i).map(str::to_owned))
                .collect();
            let names = row.columns().iter().map(|c| c.name().to_owned()).collect();
            return (values, names);
        }
    }
    panic!("{redshift_sql}: no row");
}

/// Runs each `(Redshift SQL, expected text of the single value)` and reports every mismatch.
async fn check(c: &Client, cases: &[(&str, &str)]) {
    let mut wrong = Vec::new();
    for &(sql, expected) in cases {
        let (values, _) = query(c, sql).await;
        let got = values[0].as_deref().unwrap_or("NULL");
        if got != expected {
            wrong.push(format!("{sql}\n    expected {expected}, got {got}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_twice_and_defines_every_listed_function() {
    let (_local, c) = compat_server().await;
    let rows = c
        .query(
            "select distinct p.proname::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace \
             where n.nspname = 'public'",
            &[],
        )
        .await
        .unwrap();
    let installed: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    for name in compat_function_names() {
        assert!(
            installed.iter().any(|i| i == name),
            "{name} is not installed"
        );
    }
    // A third install inside an explicit transaction, rolled back, leaves everything as it was.
    c.batch_execute("begin").await.unwrap();
    c.batch_execute(POSTGRES_COMPAT_SQL).await.unwrap();
    c.batch_execute("rollback").await.unwrap();
    let (v, _) = query(&c, "select nvl(null, 1)").await;
    assert_eq!(v[0].as_deref(), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datepart_table_agrees_with_the_sql() {
    let (_local, c) = compat_server().await;
    let aliases: Vec<String> = DATEPARTS
        .iter()
        .map(|(a, _)| a.to_ascii_uppercase())
        .collect();
    let rows = c
        .query(
            "select a, public.etl_compat_datepart(a) from unnest($1::text[]) a",
            &[&aliases],
        )
        .await
        .unwrap();
    for (row, (alias, canonical)) in rows.iter().zip(DATEPARTS) {
        let sql: Option<String> = row.get(1);
        assert_eq!(sql.as_deref(), Some(*canonical), "{alias}");
    }
    let row = c
        .query_one("select public.etl_compat_datepart('fortnight')", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dateadd_follows_redshift() {
    let (_local, c) = compat_server().await;
    check(
        &c,
        &[
            // r_DATEADD_function: examples with a DATE column and with literals.
            (
                "select dateadd(day, 30, date '2008-11-01')",
                "2008-12-01 00:00:00",
            ),
            (
                "select dateadd(month, 18, '2008-02-28')",
                "2009-08-28 00:00:00",
            ),
            ("select dateadd(m, 30, '2008-02-28')", "2008-02-28 00:30:00"),
            // r_DATEADD_function usage notes: month ends and leap days.
            (
                "select dateadd(month, 1, '2008-04-30')",
                "2008-05-30 00:00:00",
            ),
            (
                "select dateadd(month, 12, '2016-02-29')",
                "2017-02-28 00:00:00",
            ),
            (
                "select dateadd(year, 1, '2016-02-29')",
                "2017-03-01 00:00:00",
            ),
            (
                "select dateadd(month, 1, '2024-01-31')",
                "2024-02-29 00:00:00",
            ),
            // r_DATEADD_function: TIME and TIMETZ examples (wrapping past midnight; UTC output).
            ("select dateadd(minute, 5, time '20:00:00')", "20:05:00"),
            (
                "select dateadd(minute, 5, time '00:00:00.5550')",
                "00:05:00.555",
            ),
            ("select dateadd(hour, 8, time '13:24:55')", "21:24:55"),
            ("select dateadd(hour, 12, time '13:24:55')", "01:24:55"),
            (
                "select dateadd(hour, 2, timetz '13:24:55 PST')",
                "23:24:55+00",
            ),
            (
                "select dateadd(minute, 5, timetz '05:58:00+00')",
                "06:03:00+00",
            ),
            // Derived: every date part and abbreviation, negative intervals, DATE → TIMESTAMP.
            (
                "select dateadd(qtr, 1, date '2024-11-30')",
                "2025-02-28 00:00:00",
            ),
            (
                "select dateadd(w, -1, date '2024-01-03')",
                "2023-12-27 00:00:00",
            ),
            (
                "select dateadd(d, 1, date '2024-02-28')",
                "2024-02-29 00:00:00",
            ),
            (
                "select dateadd(hrs, 25, timestamp '2024-01-01 00:00:00')",
                "2024-01-02 01:00:00",
            ),
            (
                "select dateadd(secs, -1, timestamp '2024-01-01 00:00:00')",
                "2023-12-31 23:59:59",
            ),
            (
                "select dateadd(ms, 1500, timestamp '2024-01-01 00:00:00')",
                "2024-01-01 00:00:01.5",
            ),
            (
                "select dateadd(us, 7, timestamp '2024-01-01 00:00:00')",
                "2024-01-01 00:00:00.000007",
            ),
            (
                "select dateadd(decade, 1, date '2016-02-29')",
                "2026-03-01 00:00:00",
            ),
            (
                "select dateadd(yrs, 4, date '2016-02-29')",
                "2020-02-29 00:00:00",
            ),
            (
                "select dateadd(MONTH, 1, date '2024-03-31')",
                "2024-04-30 00:00:00",
            ),
            (
                "select dateadd('month', 1, date '2024-03-31')",
                "2024-04-30 00:00:00",
            ),
            (
                "select pg_typeof(dateadd(day, 1, date '2024-01-01'))",
                "timestamp without time zone",
            ),
            (
                "select pg_typeof(dateadd(day, 1, '2024-01-01'))",
                "timestamp without time zone",
            ),
            (
                "select pg_typeof(dateadd(hour, 1, time '10:00'))",
                "time without time zone",
            ),
            (
                "select dateadd(day, 1, timestamptz '2024-03-30 12:00:00+00')",
                "2024-03-31 12:00:00+00",
            ),
            (
                "select date_add(day, 1, date '2024-01-01')",
                "2024-01-02 00:00:00",
            ),
            ("select dateadd(day, 1, null::date)", "NULL"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datediff_counts_boundaries_like_redshift() {
    let (_local, c) = compat_server().await;
    check(
        &c,
        &[
            // r_DATEDIFF_function: arguments and examples.
            ("select datediff(year, '2008-12-31', '2009-01-01')", "1"),
            ("select datediff(hour, '2009-01-01 8:30:00', '2009-01-01 10:00:00')", "2"),
            ("select datediff(hour, time '08:30:00', time '10:00:00')", "2"),
            ("select datediff(week, '2009-01-01', '2009-12-31')", "52"),
            ("select datediff(hour, '2023-01-01', '2023-01-03 05:04:03')", "53"),
            ("select datediff(days, 'Jun 1,2008 09:59:59 EST', 'Jul 4,2008 09:59:59 EST')", "33"),
            ("select datediff(hour, time '20:00:00', time '15:24:45')", "-5"),
            ("select datediff(hour, time '00:00:00.5550', time '15:24:45')", "15"),
            ("select datediff(minute, time '20:00:00', time '21:00:00')", "60"),
            ("select datediff(hours, timetz '20:00:00 PST', timetz '04:00:00+00')", "0"),
            ("select datediff(hours, timetz '20:00:00 PST', timetz '00:00:00.5550+00')", "-4"),
            ("select datediff(hours, timetz '20:00:00 PST', timetz '05:58:00+00')", "1"),
            ("select datediff(hours, timetz '20:00:00 PST', timetz '00:58:00 EST')", "1"),
            // Derived: boundaries crossed, not whole units elapsed; negative when b is earlier.
            ("select datediff(month, date '2024-01-31', date '2024-02-01')", "1"),
            ("select datediff(month, date '2024-01-01', date '2024-01-31')", "0"),
            ("select datediff(qtr, date '2023-12-31', date '2024-01-01')", "1"),
            ("select datediff(day, date '2024-03-01', date '2024-02-01')", "-29"),
            ("select datediff(day, timestamp '2024-01-01 23:59', timestamp '2024-01-02 00:01')", "1"),
            ("select datediff(minute, '2024-01-01 10:00:59', '2024-01-01 10:01:00')", "1"),
            ("select datediff(second, '2024-01-01 00:00:00.9', '2024-01-01 00:00:01.1')", "1"),
            ("select datediff(ms, '2024-01-01 00:00:00.9', '2024-01-01 00:00:01.1')", "200"),
            ("select datediff(us, '2024-01-01 00:00:00', '2024-01-01 00:00:01')", "1000000"),
            ("select datediff(y, date '2024-12-31', timestamp '2025-01-01 00:00:00')", "1"),
            ("select datediff(decade, date '2009-12-31', date '2010-01-01')", "1"),
            ("select datediff(century, date '2000-12-31', date '2001-01-01')", "1"),
            // Weeks start on Monday (Redshift's DATE_TRUNC('week')): Sunday → Monday crosses one.
            ("select datediff(week, date '2024-01-07', date '2024-01-08')", "1"),
            ("select datediff(week, date '2024-01-08', date '2024-01-14')", "0"),
            ("select datediff(hour, timestamptz '2024-01-01 10:30+00', timestamptz '2024-01-01 12:10+00')", "2"),
            ("select pg_typeof(datediff(day, current_date, current_date))", "bigint"),
            ("select date_diff(day, date '2024-01-01', date '2024-01-02')", "1"),
            ("select datediff(day, null::date, current_date)", "NULL"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_functions_follow_redshift() {
    let (_local, c) = compat_server().await;
    check(
        &c,
        &[
            // r_NVL_function (NVL takes two or more arguments; the rewriter makes it COALESCE) and
            // the SQL functions themselves, called qualified so that they are not rewritten.
            ("select nvl(null, 12, null)", "12"),
            ("select nvl(null, 'Amazon Redshift', null)", "Amazon Redshift"),
            ("select public.nvl(null, 12, null)", "12"),
            ("select public.nvl(null, 'Amazon Redshift')", "Amazon Redshift"),
            ("select public.nvl(null::int, 0.5)", "0.5"),
            ("select public.nvl(null, null, null, null, null, null, null, 8)", "8"),
            // r_NVL2.
            ("select nvl2(null::text, 'not null', 'null')", "null"),
            ("select nvl2('x', 'not null', 'null')", "not null"),
            ("select nvl2(1, 2, 3.5)", "2"),
            // r_DECODE_expression (rewritten into CASE): NULL matches NULL, no default gives NULL.
            ("select decode('NHL', 'NHL', 'National Hockey League', 'MLB', 'Major League Baseball', 'Unknown')", "National Hockey League"),
            ("select decode('XFL', 'NHL', 'National Hockey League', 'Unknown')", "Unknown"),
            ("select decode(null::int, null, 0, 1)", "0"),
            ("select decode(7, null, 0, 1)", "1"),
            ("select decode(date '2008-06-01', '2008-06-01', 'June 1st, 2008')", "June 1st, 2008"),
            ("select decode(date '2008-06-02', '2008-06-01', 'June 1st, 2008')", "NULL"),
            ("select decode(5::bigint, 5, 'five')", "five"),
            // r_LEN, r_TEXTLEN: characters, not bytes; CHAR trailing blanks do not count.
            ("select len('français')", "8"),
            ("select len('cat   ')", "6"),
            ("select len('cat   '::char(6))", "3"),
            ("select len('aaa'::bytea)", "3"),
            ("select textlen('français')", "8"),
            // r_CHARINDEX: 1-based, 0 when absent, in characters.
            ("select charindex('dog', 'fish')", "0"),
            ("select charindex('fish', 'dogfish')", "4"),
            ("select charindex('é', 'café au lait')", "4"),
            // r_GETDATE, r_SYSDATE: statement start without fractions; transaction start.
            ("select pg_typeof(getdate())", "timestamp without time zone"),
            ("select getdate() = date_trunc('second', statement_timestamp()::timestamp)", "t"),
            ("select sysdate = transaction_timestamp()::timestamp", "t"),
            ("select trunc(sysdate) = current_date", "t"),
            ("select pg_typeof(sysdate)", "timestamp without time zone"),
            // r_TRUNC_date; r_DATE_TRUNC (a DATE gives a TIMESTAMP).
            ("select trunc(timestamp '2011-07-21 10:32:38.248109')", "2011-07-21"),
            ("select date_trunc('month', date '2024-03-15')", "2024-03-01 00:00:00"),
            ("select pg_typeof(date_trunc('week', date '2024-03-15'))", "timestamp without time zone"),
            ("select trunc(2.7)", "2"),
            // r_ADD_MONTHS.
            ("select add_months('2008-03-31', 1)", "2008-04-30 00:00:00"),
            ("select add_months('2008-04-30', 1)", "2008-05-31 00:00:00"),
            ("select add_months('2008-01-01 05:07:30', 1)", "2008-02-01 05:07:30"),
            ("select add_months(date '2008-02-29', -12)", "2007-02-28 00:00:00"),
            ("select pg_typeof(add_months(date '2008-01-01', 1))", "timestamp without time zone"),
            // r_MONTHS_BETWEEN_function.
            ("select months_between('1969-01-18', '1969-03-18')", "-2"),
            ("select round(months_between(timestamp '2008-12-25 15:00', timestamp '2008-01-21 19:30')::numeric, 2)", "11.12"),
            ("select round(months_between(timestamp '2008-12-01 19:30', timestamp '2008-01-03 15:00')::numeric, 2)", "10.94"),
            ("select round(months_between(timestamp '2008-12-07 14:00', timestamp '2008-01-16 19:30')::numeric, 2)", "10.70"),
            ("select months_between(date '2014-08-31', date '2014-09-30')", "-1"),
            // r_LAST_DAY, r_NEXT_DAY.
            ("select last_day(date '2024-02-10')", "2024-02-29"),
            ("select last_day(timestamp '2014-01-15 10:00')", "2014-01-31"),
            ("select next_day('2014-08-20', 'Tuesday')", "2014-08-26"),
            ("select next_day(timestamp '2008-01-01 05:54:44', 'Tue')", "2008-01-08"),
            ("select next_day(date '2008-07-06', 'Monday')", "2008-07-07"),
            ("select next_day(date '2014-08-19', 'tu')", "2014-08-26"),
            // CONVERT_TIMEZONE: abbreviations are fixed offsets, names follow DST, POSIX offsets.
            ("select convert_timezone('PST', timestamp '2008-08-24 09:36:12')", "2008-08-24 01:36:12"),
            ("select convert_timezone('US/Pacific', timestamp '2008-08-24 09:36:12')", "2008-08-24 02:36:12"),
            ("select convert_timezone('EST', 'PST', '20080305 12:25:29')", "2008-03-05 09:25:29"),
            ("select convert_timezone('America/New_York', '2013-02-01 08:00:00')", "2013-02-01 03:00:00"),
            ("select convert_timezone('America/New_York', '2013-06-01 08:00:00')", "2013-06-01 04:00:00"),
            ("select convert_timezone('GMT', 'NEWZONE +2', '2014-05-17 12:00:00')", "2014-05-17 10:00:00"),
            ("select convert_timezone('GMT', 'NEWZONE-2:15', '2014-05-17 12:00:00')", "2014-05-17 14:15:00"),
            ("select convert_timezone('GMT', 'America/Los_Angeles+2', '2014-05-17 12:00:00')", "2014-05-17 10:00:00"),
            ("select convert_timezone('GMT', 'GMT+2', '2014-05-17 12:00:00')", "2014-05-17 10:00:00"),
            // r_STRTOL.
            ("select strtol('0xf', 16)", "15"),
            ("select strtol('abcd1234', 16)", "2882343476"),
            ("select strtol('1234567', 10)", "1234567"),
            ("select strtol('1234567', 8)", "342391"),
            ("select strtol('110101', 2)", "53"),
            ("select strtol('', 10)", "0"),
            ("select strtol('  -7f', 16)", "-127"),
            ("select strtol('9223372036854775807', 10)", "9223372036854775807"),
            ("select strtol(null, 10)", "NULL"),
            // r_DATE_PART_function, r_Dateparts_for_datetime_functions.
            ("select date_part(minute, timestamp '20230104 04:05:06.789')", "5"),
            ("select date_part(week, timestamp '20220502 04:05:06.789')", "18"),
            ("select date_part(day, timestamp '20220502 04:05:06.789')", "2"),
            ("select date_part(dayofweek, timestamp '20220502 04:05:06.789')", "1"),
            ("select date_part(century, timestamp '20220502 04:05:06.789')", "21"),
            ("select date_part(month, date '20220502')", "5"),
            ("select date_part(w, timestamp '2008-06-17 09:44:54')", "25"),
            ("select date_part(dow, timestamp '2008-01-05 14:00:00')", "6"),
            ("select date_part(sec, timestamp '2009-09-21 11:10:03.189717')", "3.189717"),
            ("select date_part(epoch, timestamp '2008-01-01 20:00:00')", "1199217600"),
            ("select date_part(decade, timestamp '1999-02-16 20:38:40')", "200"),
            ("select date_part(decade, timestamp '2000-02-16 20:38:40')", "201"),
            ("select date_part(mil, timestamp '2000-12-16 12:21:13')", "2"),
            ("select date_part('dw', date '2022-05-02')", "1"),
            ("select date_part(hour, time '10:20:30')", "10"),
            ("select date_part(minute, timetz '10:20:30+02')", "20"),
            ("select date_part('hour', interval '1 day 3 hours')", "3"),
            ("select date_part(hour, '2024-01-01 05:00')", "5"),
            ("select pg_typeof(date_part(year, date '2022-05-02'))", "double precision"),
            ("select extract(dw from date '2022-05-02')", "1"),
            // r_MEDIAN: PERCENTILE_CONT(0.5); NULLs ignored.
            ("select median(x) from (values (1), (3), (2), (10)) v(x)", "2.5"),
            ("select median(x) from (values (1.5), (null), (3.5), (2.0)) v(x)", "2.0"),
            ("select median(x) from (values (null::float8)) v(x)", "NULL"),
            // r_LISTAGG (WITHIN GROUP is rewritten into an ORDER BY inside the arguments).
            (
                "select listagg(sellerid, ', ') within group (order by sellerid) \
                 from (values (1178), (380), (2731), (380)) s(sellerid)",
                "380, 380, 1178, 2731",
            ),
            (
                "select listagg(distinct sellerid, ', ') within group (order by sellerid) \
                 from (values (1178), (380), (2731), (380)) s(sellerid)",
                "380, 1178, 2731",
            ),
            (
                "select listagg(dateid, '|') within group (order by sellerid desc, salesid asc) \
                 from (values (date '2004-04-18', 3, 30001), (date '2003-08-02', 4, 10001), \
                              (date '2004-02-12', 1, 20001), (date '2004-04-18', 3, 20002)) \
                      w(dateid, sellerid, salesid)",
                "2003-08-02|2004-04-18|2004-04-18|2004-02-12",
            ),
            ("select listagg(s) from (values ('a'), (''), (null), ('b')) v(s)", "ab"),
            // APPROXIMATE COUNT(DISTINCT) is counted exactly.
            ("select approximate count(distinct x) from (values (1), (1), (2)) v(x)", "2"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_sql_runs_end_to_end_with_redshifts_column_names() {
    let (_local, c) = compat_server().await;
    // The two constructs PostgreSQL cannot parse as Redshift means them.
    let (v, _) = query(
        &c,
        "select datediff(month, date '2024-01-31', date '2024-02-01'), \
                dateadd(day, 1, sysdate)::date = current_date + 1",
    )
    .await;
    assert_eq!(v, [Some("1".to_owned()), Some("t".to_owned())]);

    c.batch_execute(
        "create table events (id int, starts date, ends timestamp, code varchar(8), qty int);
         insert into events values
           (1, '2024-01-31', '2024-03-01 10:00', 'NHL', 2),
           (2, '2024-02-29', '2024-02-29 23:00', null, null),
           (3, '2023-12-31', '2024-01-01 00:00', 'MLB', 5);",
    )
    .await
    .unwrap();
    // What Redshift names unaliased columns: date_diff, date_add, pgdate_part, coalesce, case.
    let (_, names) = query(
        &c,
        "select datediff(day, starts, ends), dateadd(month, 1, starts), date_part(dow, starts),
                nvl(qty, 0), decode(code, 'NHL', 'hockey', 'other'), getdate()
         from events order by id",
    )
    .await;
    assert_eq!(
        names,
        [
            "date_diff",
            "date_add",
            "pgdate_part",
            "coalesce",
            "case",
            "getdate"
        ]
    );

    // A transform in Redshift's dialect, run as a script, with the results checked.
    let script = "create table model_events as
        select id,
               datediff(month, starts, ends) as months,
               dateadd(mon, 1, starts)::date as next_month,
               add_months(starts, 1)::date as next_month_end,
               date_part(dw, starts) as weekday,
               nvl(qty, 0) * 2 as double_qty,
               decode(code, 'NHL', 'hockey', 'MLB', 'baseball', null, 'none') as sport,
               len(nvl(code, '')) as code_len,
               trunc(sysdate) - starts >= 0 as in_the_past
        from events;
        select string_agg(concat_ws('|', id, months, next_month, next_month_end, weekday,
                                    double_qty, sport, code_len, in_the_past), ';' order by id)
        from model_events;";
    let rewritten = rewrite_for_postgres(script);
    let mut last = None;
    for stmt in split_statements(&rewritten, Dialect::Postgres) {
        let msgs = c
            .simple_query(&stmt.text)
            .await
            .unwrap_or_else(|e| panic!("{}\n{}", stmt.text, db_message(&e)));
        for m in msgs {
            if let SimpleQueryMessage::Row(r) = m {
                last = r.get(0).map(str::to_owned);
            }
        }
    }
    assert_eq!(
        last.as_deref(),
        Some(
            "1|2|2024-02-29|2024-02-29|3|4|hockey|3|t;\
             2|0|2024-03-29|2024-03-31|4|0|none|0|t;\
             3|1|2024-01-31|2024-01-31|0|10|baseball|3|t"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_date_parts_fail_when_the_statement_is_planned() {
    let (_local, c) = compat_server().await;
    c.batch_execute("create table empty_t (d date)")
        .await
        .unwrap();
    for (sql, message) in [
        (
            "select dateadd('fortnight', 1, d) from empty_t",
            "dateadd: 'fortnight' is not a Redshift date part",
        ),
        // A bare word where the date part goes is a date part by position, never a column.
        (
            "select dateadd(fortnight, 1, d) from empty_t",
            "dateadd: 'fortnight' is not a Redshift date part",
        ),
        (
            "select datediff('dow', d, d) from empty_t",
            "datediff: date part 'dow' is not supported",
        ),
        (
            "select dateadd(epoch, 1, d) from empty_t",
            "dateadd: date part 'epoch' is not supported here",
        ),
        (
            "select dateadd(day, 1, time '10:00')",
            "dateadd: a TIME value has no 'day' part",
        ),
        (
            "select next_day(d, 'Funday') from empty_t",
            "next_day: 'Funday' is not a day of the week",
        ),
        (
            "select strtol('1', 37)",
            "strtol: base 37 is not between 2 and 36",
        ),
        (
            "select strtol('99999999999999999999', 10)",
            "out of the BIGINT range",
        ),
    ] {
        let err = c
            .simple_query(&rewrite_for_postgres(sql))
            .await
            .expect_err(sql);
        let db = err.as_db_error().expect("a server error");
        assert!(db.message().contains(message), "{sql}: {}", db.message());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_with_a_constant_date_part_are_inlined() {
    let (_local, c) = compat_server().await;
    c.batch_execute("create table t (d date, ts timestamp, x int)")
        .await
        .unwrap();
    let sql = rewrite_for_postgres(
        "explain verbose select dateadd(month, 1, d), datediff(day, d, ts), date_part(dw, ts), \
         datediff(week, d, ts), len('x'), last_day(d), nvl(x, 0) from t",
    );
    let plan: String = c
        .simple_query(&sql)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n");
    // Inlined: plain expressions remain, no calls to the compatibility functions.
    for call in [
        "date_add(",
        "date_diff(",
        "pgdate_part(",
        "etl_compat",
        "last_day(",
        "len(",
    ] {
        assert!(!plan.contains(call), "{call} was not inlined:\n{plan}");
    }
    assert!(plan.contains("'1 mon'::interval"), "{plan}");
    assert!(plan.contains("date_part('dow'::text, ts)"), "{plan}");
}

/// The statements of the `create-tables` step of the example job's Postgres plan.
fn example_create_tables(dir: &std::path::Path) -> String {
    etl_tests::copy_example_job(dir, true);
    let plan = stdout_ok(
        etl()
            .args(["plan", "--dialect", "postgres"])
            .arg(dir.join("job.json")),
    );
    let step = plan
        .split("-- step ")
        .find(|s| s.starts_with("create-tables"))
        .unwrap_or_else(|| panic!("no create-tables step in the plan:\n{plan}"));
    step.lines().skip(1).collect::<Vec<_>>().join("\n")
}

/// Runs the example transforms (rewritten or as written) and returns the recommendations.
async fn run_example_transforms(c: &Client, rewrite: bool) -> Vec<String> {
    let dir = repo_root().join("examples/recommendations/sql");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no transforms in {}", dir.display());
    for file in files {
        let script = std::fs::read_to_string(&file).unwrap();
        let script = if rewrite {
            rewrite_for_postgres(&script).into_owned()
        } else {
            script
        };
        for stmt in split_statements(&script, Dialect::Redshift) {
            c.batch_execute(&stmt.text).await.unwrap_or_else(|e| {
                panic!(
                    "{}:{}: {}\n{}",
                    file.display(),
                    stmt.line,
                    db_message(&e),
                    stmt.text
                )
            });
        }
    }
    c.query(
        "select concat_ws('|', customer_id, rank, offer_code, current_monthly_spend, \
         expected_monthly_cost, monthly_saving) from model.recommendations order by customer_id, rank",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_transforms_run_after_the_install() {
    let (_local, c) = compat_server().await;
    let dir = tempfile::tempdir().unwrap();
    c.batch_execute(&example_create_tables(dir.path()))
        .await
        .unwrap();
    // One customer over two months, five offers: A, B and C qualify; D is inactive and E does not
    // cover the customer's voice minutes.
    c.batch_execute(
        r#"insert into staging.usage values
             (1, '2024-01-01', 2048, 100, 10, null),
             (1, '2024-02-01', 4096, 200, 30, 5);
           insert into staging.billing values
             (1, '2024-01-01', 'P1', 20.00, null, '2024-01-05 10:00', null),
             (1, '2024-02-01', 'P2', 30.00, 5.00, null, null);
           insert into staging.offers values
             ('A', 'Alpha', 1024, 500, 100, 10.00, 2.00, true, null),
             ('B', 'Beta', 4096, 200, 50, 15.00, null, true, null),
             ('C', 'Gamma', 0, 150, 20, 5.00, null, true, null),
             ('D', 'Delta', 8192, 999, 999, 1.00, null, false, null),
             ('E', 'Epsilon', 8192, 100, 999, 2.00, null, true, null);"#,
    )
    .await
    .unwrap();
    // Average 3072 MB against A's 1024: two extra GB at 2.00; C has no allowance: 3 GB at the
    // default 10.00. Spend averages (20.00 + 35.00) / 2.
    let expected = [
        "1|1|A|27.50|14.00|13.50",
        "1|2|B|27.50|15.00|12.50",
        "1|3|C|27.50|35.00|-7.50",
    ];
    assert_eq!(
        run_example_transforms(&c, false).await,
        expected,
        "as written"
    );
    assert_eq!(
        run_example_transforms(&c, true).await,
        expected,
        "rewritten"
    );
}
