use super::*;

fn rw(sql: &str) -> String {
    rewrite_for_postgres(sql).into_owned()
}

fn assert_untouched(sql: &str) {
    match rewrite_for_postgres(sql) {
        Cow::Borrowed(s) => assert_eq!(s, sql),
        Cow::Owned(s) => panic!("rewrote {sql:?} into {s:?}"),
    }
}

#[test]
fn quotes_a_bare_datepart_and_renames_to_redshifts_column_names() {
    assert_eq!(
        rw("select dateadd(month, 1, d) from t"),
        "select date_add('month', 1, d) from t"
    );
    assert_eq!(rw("datediff(day, a, b)"), "date_diff('day', a, b)");
    assert_eq!(rw("date_add(qtr, -2, d)"), "date_add('qtr', -2, d)");
    assert_eq!(rw("date_diff(w, a, b)"), "date_diff('w', a, b)");
    assert_eq!(rw("date_part(dow, ts)"), "pgdate_part('dow', ts)");
    assert_eq!(rw("pgdate_part(dw, ts)"), "pgdate_part('dw', ts)");
}

#[test]
fn keeps_case_spacing_and_comments_as_written() {
    assert_eq!(
        rw("SELECT DATEADD( MONTH , 1, d), DateDiff(/* unit */ Mons, a, b)"),
        "SELECT date_add( 'MONTH' , 1, d), date_diff(/* unit */ 'Mons', a, b)"
    );
    assert_eq!(
        rw("dateadd\n(\n  day -- the unit\n, 1, d)"),
        "date_add\n(\n  'day' -- the unit\n, 1, d)"
    );
}

#[test]
fn every_redshift_datepart_spelling_is_recognised() {
    for &(alias, canonical) in DATEPARTS {
        assert_eq!(
            rw(&format!("datediff({alias}, a, b)")),
            format!("date_diff('{alias}', a, b)")
        );
        let upper = alias.to_ascii_uppercase();
        assert_eq!(canonical_datepart(&upper), Some(canonical), "{upper}");
    }
    assert_eq!(canonical_datepart("fortnight"), None);
    assert_eq!(canonical_datepart(""), None);
}

#[test]
fn quoted_dateparts_only_rename() {
    assert_eq!(
        rw("select dateadd('month', 1, d), date_part('dw', ts)"),
        "select date_add('month', 1, d), pgdate_part('dw', ts)"
    );
    assert_untouched("select date_add('month', 1, d), date_diff('day', a, b)");
    assert_untouched("select pgdate_part('dow', ts)");
}

#[test]
fn leaves_calls_whose_first_argument_is_not_a_datepart() {
    for sql in [
        "select dateadd(unit_col, 1, d)",
        "select datediff(fortnight, a, b)",
        "select date_part(x.month, ts)",
        "select date_part('fortnight', ts)",
        "select date_part(E'dow', ts)",
        "select date_part('it''s', ts)",
        "select date_part(lower('DOW'), ts)",
        "select date_part(month)",
        "select date_part(month ts)",
        "select dateadd",
        "select dateadd(",
        "select date_trunc('month', d)",
        "select date_trunc(month, d)",
    ] {
        assert_untouched(sql);
    }
}

#[test]
fn leaves_qualified_names_alone() {
    for sql in [
        "select t.sysdate from t",
        "select s.dateadd(month, 1, d)",
        "select pg_catalog.date_part(dow, ts)",
        "select x.nvl(a, b)",
        "select x.decode(a, 1, 2)",
    ] {
        assert_untouched(sql);
    }
}

#[test]
fn sysdate_becomes_a_call() {
    assert_eq!(rw("select sysdate"), "select sysdate()");
    assert_eq!(
        rw("select trunc(SYSDATE) - 120, SysDate;"),
        "select trunc(SYSDATE()) - 120, SysDate();"
    );
    assert_eq!(
        rw("where d between trunc(sysdate)-120 and trunc(sysdate)"),
        "where d between trunc(sysdate())-120 and trunc(sysdate())"
    );
    assert_eq!(rw("select sysdate::date"), "select sysdate()::date");
    assert_eq!(
        rw("select dateadd(day, 1, sysdate)::date"),
        "select date_add('day', 1, sysdate())::date"
    );
}

#[test]
fn sysdate_that_is_not_the_keyword_is_left_alone() {
    for sql in [
        "select sysdate()",
        "select sysdate ( )",
        "select \"sysdate\" from t",
        "select t.sysdate from t",
        "select 1 as sysdate",
        "select 1 AS SYSDATE",
        "select sysdate_utc, my_sysdate, sysdate2 from t",
        "select sysdate.x from t",
        "select 'sysdate'",
    ] {
        assert_untouched(sql);
    }
}

#[test]
fn nvl_becomes_coalesce() {
    assert_eq!(
        rw("select nvl(a, 0), NVL(b, c, 'x')"),
        "select coalesce(a, 0), coalesce(b, c, 'x')"
    );
    assert_eq!(rw("nvl (a, b)"), "coalesce (a, b)");
    assert_untouched("select nvl2(a, b, c), nvl from t");
}

#[test]
fn decode_becomes_case() {
    assert_eq!(
        rw("select decode(catname, 'NHL', 'National Hockey League', 'Unknown') from category"),
        "select CASE WHEN (catname) IS NOT DISTINCT FROM ('NHL') THEN ('National Hockey League') \
         ELSE ('Unknown') END from category"
    );
    // Without a default: no ELSE, so no match gives NULL.
    assert_eq!(
        rw("decode(caldate, '2008-06-01', 'June 1st, 2008')"),
        "CASE WHEN (caldate) IS NOT DISTINCT FROM ('2008-06-01') THEN ('June 1st, 2008') END"
    );
    // NULL matches NULL.
    assert_eq!(
        rw("decode(venueseats,null,0,1)"),
        "CASE WHEN (venueseats) IS NOT DISTINCT FROM (null) THEN (0) ELSE (1) END"
    );
}

#[test]
fn decode_arguments_keep_nesting_strings_and_comments() {
    assert_eq!(
        rw("decode(f(a, b), 'x,y', g(1, (2)), arr[1], 'a)b')"),
        "CASE WHEN (f(a, b)) IS NOT DISTINCT FROM ('x,y') THEN (g(1, (2))) \
         WHEN (f(a, b)) IS NOT DISTINCT FROM (arr[1]) THEN ('a)b') END"
    );
    // A comment at the end of an argument keeps its line break.
    assert_eq!(
        rw("decode(x -- code\n, 1, 'one')"),
        "CASE WHEN (x -- code\n) IS NOT DISTINCT FROM (1) THEN ('one') END"
    );
    // Nested Redshift constructs inside the arguments are rewritten too.
    assert_eq!(
        rw("decode(datediff(day, a, sysdate), 0, nvl(x, 'today'), decode(y, 1, 2, 3))"),
        "CASE WHEN (date_diff('day', a, sysdate())) IS NOT DISTINCT FROM (0) THEN (coalesce(x, \
         'today')) ELSE (CASE WHEN (y) IS NOT DISTINCT FROM (1) THEN (2) ELSE (3) END) END"
    );
}

#[test]
fn decode_that_is_not_redshifts_is_left_alone() {
    for sql in [
        "select decode('aGk=', 'base64')",
        "select decode(x)",
        "select decode(x, 1, 2",
        "select decode",
    ] {
        assert_untouched(sql);
    }
}

#[test]
fn listagg_within_group_moves_its_order_by_into_the_arguments() {
    assert_eq!(
        rw("select listagg(sellerid, ', ') within group (order by sellerid) from sales"),
        "select listagg(sellerid, ', ' order by sellerid) from sales"
    );
    assert_eq!(
        rw("LISTAGG(DISTINCT sellerid, ', ') WITHIN GROUP (ORDER BY sellerid)"),
        "LISTAGG(DISTINCT sellerid, ', ' ORDER BY sellerid)"
    );
    assert_eq!(
        rw(
            "select listagg(dateid,'|') \nwithin group (order by sellerid desc,salesid asc)\nfrom w"
        ),
        "select listagg(dateid,'|' order by sellerid desc,salesid asc)\nfrom w"
    );
    assert_eq!(
        rw("listagg(nvl(x, 'none'), ',') within group (order by datediff(day, a, sysdate))"),
        "listagg(coalesce(x, 'none'), ',' order by date_diff('day', a, sysdate()))"
    );
    assert_eq!(
        rw("listagg(x -- the value\n) within group (order by x -- by value\n)"),
        "listagg(x -- the value\n order by x -- by value\n)"
    );
    assert_eq!(
        rw("listagg(nvl(x, ''), ',') within group (order by y) over (partition by z)"),
        "listagg(coalesce(x, ''), ',') within group (order by y) over (partition by z)"
    );
    for sql in [
        "select listagg(x, ',') from t",
        "select listagg(x) within group (order by y) over (partition by z) from t",
        "select listagg(x) within group (order by y",
        "select listagg(x within group (order by y)",
        "select percentile_cont(0.5) within group (order by x) from t",
    ] {
        assert_untouched(sql);
    }
}

#[test]
fn approximate_count_becomes_exact() {
    assert_eq!(
        rw("select approximate count(distinct x) from t"),
        "select count(distinct x) from t"
    );
    assert_eq!(
        rw("APPROXIMATE PERCENTILE_DISC(0.5) WITHIN GROUP (ORDER BY x)"),
        "PERCENTILE_DISC(0.5) WITHIN GROUP (ORDER BY x)"
    );
    assert_untouched("select approximate from t");
}

#[test]
fn extract_gets_postgres_spellings() {
    assert_eq!(
        rw("select extract(dw from ts), EXTRACT(dec FROM ts), extract(yearday from d)"),
        "select extract(dow from ts), EXTRACT(decade FROM ts), extract(doy from d)"
    );
    assert_untouched("select extract(year from d), extract(DOW from ts), extract('dw' from ts)");
}

#[test]
fn text_inside_strings_identifiers_dollar_quotes_and_comments_is_untouched() {
    for sql in [
        "select 'dateadd(month, 1, d) sysdate nvl(a,b) decode(a,1,2)'",
        "select 'it''s dateadd(month, 1, d)'",
        r"select 'it\'s dateadd(month, 1, d) sysdate'",
        "select \"dateadd(month, 1, d)\", \"sysdate\", \"nvl\"(1) from t",
        "select $$ dateadd(month, 1, d) sysdate $$, $body$ nvl(a, b) $body$",
        "-- dateadd(month, 1, d) sysdate\nselect 1",
        "/* sysdate /* nested dateadd(day, 1, x) */ nvl(a, b) */ select 1",
        "select 1 -- trailing sysdate",
    ] {
        assert_untouched(sql);
    }
    assert_eq!(
        rw("select 'sysdate', sysdate, \"sysdate\" -- sysdate\n"),
        "select 'sysdate', sysdate(), \"sysdate\" -- sysdate\n"
    );
}

#[test]
fn statements_without_redshift_constructs_come_back_borrowed() {
    for sql in [
        "",
        "select 1",
        "create table t (id bigint, month date, d date)",
        "select month, day, year from t where month > date '2024-01-01'",
        "select date_trunc('month', d), extract(month from d), coalesce(a, b) from t",
        "select $1, a$b, 1e5, 3.14::numeric(10,2), x[1] from t",
        "insert into t values ('ünïcödé 名前', E'\\n')",
        "select datediff_total, my_dateadd(month, 1) from t",
        "select 'unterminated",
        "select /* unterminated",
    ] {
        assert_untouched(sql);
    }
}

#[test]
fn works_on_whole_scripts() {
    let script = "create table t as select dateadd(day, 1, sysdate) as tomorrow;\n\
                  -- then\n\
                  select datediff(hour, a, b), nvl(x, 0) from t;\n";
    assert_eq!(
        rw(script),
        "create table t as select date_add('day', 1, sysdate()) as tomorrow;\n\
         -- then\n\
         select date_diff('hour', a, b), coalesce(x, 0) from t;\n"
    );
}

#[test]
fn rewrites_match_their_documented_examples() {
    for &(redshift, postgres, why) in REWRITES {
        assert_eq!(rw(redshift), postgres, "{why}");
        assert!(!why.is_empty());
    }
}

#[test]
fn compat_function_names_come_from_the_sql() {
    let names = compat_function_names();
    for name in [
        "add_months",
        "charindex",
        "convert_timezone",
        "date_add",
        "date_diff",
        "date_trunc",
        "dateadd",
        "datediff",
        "getdate",
        "last_day",
        "len",
        "median",
        "months_between",
        "next_day",
        "nvl",
        "nvl2",
        "pgdate_part",
        "strtol",
        "sysdate",
        "textlen",
        "trunc",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "sorted, no duplicates"
    );
    assert!(names.iter().all(|n| !n.starts_with("etl_compat_")));
    // Functions Redshift does not have must not be defined: SQL that runs here would fail there.
    assert!(names.contains(&"listagg"));
    for absent in ["isnull", "ifnull", "decode", "string_agg"] {
        assert!(!names.contains(&absent), "{absent}");
    }
}

#[test]
fn the_sql_is_idempotent_and_has_no_transaction_control() {
    let sql = POSTGRES_COMPAT_SQL.to_ascii_uppercase();
    for statement in
        super::super::split_statements(POSTGRES_COMPAT_SQL, super::super::Dialect::Postgres)
    {
        let text = statement
            .text
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        let text = text.trim();
        assert!(
            text.starts_with("CREATE OR REPLACE FUNCTION public.")
                || text.starts_with("CREATE OR REPLACE AGGREGATE public."),
            "not idempotent or not in public: {text}"
        );
    }
    for word in ["BEGIN;", "COMMIT;", "ROLLBACK;", "SET SEARCH_PATH"] {
        assert!(!sql.contains(word), "{word}");
    }
}
