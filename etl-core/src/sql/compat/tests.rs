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
fn the_first_argument_is_a_datepart_by_position() {
    // Redshift takes no column there: a bare word is a date part even when a column has its name,
    // and one that is no date part reaches the compat function, which says so.
    assert_eq!(
        rw("select dateadd(day, 30, caldate) from date where month = 'NOV'"),
        "select date_add('day', 30, caldate) from date where month = 'NOV'"
    );
    assert_eq!(
        rw("select dateadd(unit_col, 1, d)"),
        "select date_add('unit_col', 1, d)"
    );
    assert_eq!(
        rw("select datediff(fortnight, a, b)"),
        "select date_diff('fortnight', a, b)"
    );
    assert_eq!(
        rw("select date_part('fortnight', ts)"),
        "select pgdate_part('fortnight', ts)"
    );
}

#[test]
fn leaves_calls_whose_first_argument_is_not_a_datepart() {
    for sql in [
        "select date_part(x.month, ts)",
        "select date_part(E'dow', ts)",
        "select date_part('it''s', ts)",
        "select date_part(lower('DOW'), ts)",
        "select date_part(month)",
        "select date_part(month ts)",
        "select dateadd",
        "select dateadd(",
        "select date_trunc('month', d)",
        "select date_trunc(month, d)",
        "select date_trunc('week', d)",
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
        "LISTAGG(sellerid, ', ', true ORDER BY sellerid)"
    );
    assert_eq!(rw("listagg(distinct x)"), "listagg(x, NULL, true)");
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
    for sql in [
        "select listagg(x, ',') from t",
        "select listagg(x, ',') over (partition by z) from t",
        "select listagg(x) within group (order by y",
        "select listagg(x within group (order by y)",
        "select percentile_cont(0.5) within group (order by x) from t",
    ] {
        assert_untouched(sql);
    }
}

#[test]
fn listagg_as_a_window_function_orders_the_whole_partition() {
    assert_eq!(
        rw("listagg(nvl(x, ''), ',') within group (order by y) over (partition by z)"),
        "listagg(coalesce(x, ''), ',') over (partition by z order by y rows between unbounded \
         preceding and unbounded following)"
    );
    assert_eq!(
        rw("listagg(distinct x, ',') within group (order by x desc) over ()"),
        "listagg(x, ',', true) over (order by x desc rows between unbounded preceding and \
         unbounded following)"
    );
    assert_eq!(
        rw("listagg(distinct x) over (partition by p)"),
        "listagg(x, NULL, true) over (partition by p)"
    );
    // Redshift allows no ORDER BY or frame in LISTAGG's OVER: left for the database to refuse.
    assert_untouched("listagg(x) within group (order by y) over (order by y)");
}

#[test]
fn percentile_and_ratio_windows_become_plain_aggregates() {
    assert_eq!(
        rw("percentile_cont(0.5) within group (order by pricepaid) over (partition by sellerid)"),
        "percentile_cont(0.5, pricepaid, true) over (partition by sellerid)"
    );
    assert_eq!(
        rw("PERCENTILE_DISC(0.25) WITHIN GROUP (ORDER BY qty ASC) OVER ()"),
        "PERCENTILE_DISC(0.25, qty, true) over ()"
    );
    for sql in [
        "select percentile_cont(0.5) within group (order by x) from t",
        "percentile_cont(0.5) within group (order by x desc) over ()",
        "percentile_cont(0.5) within group (order by x, y) over ()",
    ] {
        assert_untouched(sql);
    }
    assert_eq!(
        rw("ratio_to_report(qty) over ()"),
        "((qty)::double precision / sum(qty) over ())"
    );
    assert_untouched("select ratio_to_report(qty) from t");
}

#[test]
fn top_becomes_limit_at_the_end_of_its_select() {
    assert_eq!(
        rw("select top 10 qtysold, sellerid from sales order by qtysold desc, sellerid;"),
        "select qtysold, sellerid from sales order by qtysold desc, sellerid LIMIT 10;"
    );
    assert_eq!(
        rw("SELECT DISTINCT TOP 3 a FROM t -- note\n"),
        "SELECT DISTINCT a FROM t LIMIT 3 -- note\n"
    );
    assert_eq!(
        rw("select * from (select top 2 x from t order by x) s where x > 0"),
        "select * from (select x from t order by x LIMIT 2) s where x > 0"
    );
    assert_eq!(
        rw("select top 1 decode(a, 1, 2)"),
        "select CASE WHEN (a) IS NOT DISTINCT FROM (1) THEN (2) END LIMIT 1"
    );
    for sql in [
        "select top from t",
        "select top 5 a from t union select b from u",
    ] {
        assert_untouched(sql);
    }
}

#[test]
fn regexp_replace_replaces_every_match() {
    assert_eq!(
        rw("regexp_replace(s, 'x')"),
        "regexp_replace(s, 'x', '', 'g')"
    );
    assert_eq!(
        rw("regexp_replace(s, 'x', 'y')"),
        "regexp_replace(s, 'x', 'y', 'g')"
    );
    assert_eq!(
        rw("regexp_replace(s, 'x', 'y', 3)"),
        "regexp_replace(s, 'x', 'y', 3, 0)"
    );
    assert_eq!(
        rw("regexp_replace(s, 'x', 'y', 1, 'ip')"),
        "regexp_replace(s, 'x', 'y', 1, 0, 'i')"
    );
}

#[test]
fn redshift_literals_types_and_conversions() {
    assert_eq!(rw(r"select 'a\d', E'b\d'"), r"select E'a\d', E'b\d'");
    assert_eq!(
        rw(
            "create table t (a nvarchar(max), b varchar(max), c nchar(2), d character varying(max))"
        ),
        "create table t (a varchar(65535), b varchar(65535), c char(2), d character varying(65535))"
    );
    assert_eq!(
        rw("select convert(decimal(10,2), x), convert('ab', 'UTF8', 'LATIN1')"),
        "select CAST(x AS decimal(10,2)), convert('ab', 'UTF8', 'LATIN1')"
    );
    assert_eq!(
        rw("select date_trunc('qtrs', d), date_trunc('millisecs', ts), date_trunc('mon', d)"),
        "select date_trunc('quarter', d), date_trunc('milliseconds', ts), date_trunc('month', d)"
    );
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
fn extract_gets_redshifts_integer_parts() {
    assert_eq!(
        rw("select extract(dw from ts), EXTRACT(dec FROM ts), extract('Year' from d)"),
        "select public.date_part('dw', ts), public.date_part('dec', ts), public.date_part('year', d)"
    );
    assert_untouched("select extract(fortnight from d), extract(x.y from ts)");
}

#[test]
fn text_inside_strings_identifiers_dollar_quotes_and_comments_is_untouched() {
    for sql in [
        "select 'dateadd(month, 1, d) sysdate nvl(a,b) decode(a,1,2)'",
        "select 'it''s dateadd(month, 1, d)'",
        "select \"dateadd(month, 1, d)\", \"sysdate\", \"nvl\"(1) from t",
        "select $$ dateadd(month, 1, d) sysdate $$, $body$ nvl(a, b) $body$",
        "-- dateadd(month, 1, d) sysdate\nselect 1",
        "/* sysdate /* nested dateadd(day, 1, x) */ nvl(a, b) */ select 1",
        "select 1 -- trailing sysdate",
    ] {
        assert_untouched(sql);
    }
    // A backslash escape (Redshift's) only gains the E that PostgreSQL needs to read it.
    assert_eq!(
        rw(r"select 'it\'s dateadd(month, 1, d) sysdate'"),
        r"select E'it\'s dateadd(month, 1, d) sysdate'"
    );
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
        "select date_trunc('month', d), coalesce(a, b) from t",
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
                || text.starts_with("CREATE OR REPLACE AGGREGATE public.")
                // The conversion operators: generated, CREATE OR REPLACE or guarded by NOT EXISTS.
                || text.starts_with("DO $do$"),
            "not idempotent or not in public: {text}"
        );
    }
    for word in ["BEGIN;", "COMMIT;", "ROLLBACK;", "SET SEARCH_PATH"] {
        assert!(!sql.contains(word), "{word}");
    }
}

#[test]
fn unsupported_names_what_cannot_be_reproduced() {
    let constructs =
        |sql: &str| -> Vec<String> { unsupported(sql).into_iter().map(|f| f.construct).collect() };
    assert_eq!(
        constructs("select * from t qualify row_number() over (partition by a order by b) = 1"),
        ["QUALIFY"]
    );
    assert_eq!(
        constructs(
            "select count(*) from stl_load_errors e join pg_catalog.svv_table_info i on true"
        ),
        [
            "Redshift system tables (STL_, STV_, SVL_, SVV_, SYS_)",
            "Redshift system tables (STL_, STV_, SVL_, SVV_, SYS_)"
        ]
    );
    assert_eq!(
        constructs("select pg_last_copy_count()"),
        ["PG_LAST_COPY_COUNT() / PG_LAST_QUERY_ID() and the like"]
    );
    assert_eq!(
        constructs("create table t diststyle all sortkey(a) as select 1 as a"),
        [
            "DISTSTYLE / DISTKEY / SORTKEY / ENCODE in a transform",
            "DISTSTYLE / DISTKEY / SORTKEY / ENCODE in a transform"
        ]
    );
    assert_eq!(
        constructs("select top 5 a from t union select b from u"),
        ["SELECT TOP n ... UNION/INTERSECT/EXCEPT ..."]
    );
    assert_eq!(
        constructs("select 'a' + 'b'"),
        ["'...' + '...' (string concatenation with +)"]
    );
    assert_eq!(
        constructs("select percentile_cont(0.5) within group (order by x desc) over () from t"),
        ["PERCENTILE_CONT/DISC ... WITHIN GROUP (ORDER BY ... DESC | several columns) OVER (...)"]
    );
    assert_eq!(
        constructs("select json_extract_path_text(j, 'a') from t"),
        ["JSON functions and SUPER"]
    );
    // The offset points at the construct.
    let sql = "select a\nfrom t qualify x = 1";
    assert_eq!(unsupported(sql)[0].offset, sql.find("qualify").unwrap());
    // What the rewriter handles, and text in strings, comments and quoted names, is not flagged.
    for sql in [
        "select dateadd(day, 1, d), top_n, ratio_to_report(x) over (), regexp_replace(s, 'a', 'b')",
        "select listagg(x, ',') within group (order by y) over (partition by z) from t",
        "select top 3 * from t order by x",
        "select 'qualify stl_load_errors', \"qualify\" from t -- qualify\n",
        "select percentile_cont(0.5) within group (order by x) from t",
        "select encode(b, 'hex'), 1 + 2 from t",
        "select sys_id, stl_x from t",
    ] {
        assert!(unsupported(sql).is_empty(), "{sql}: {:?}", unsupported(sql));
    }
}
