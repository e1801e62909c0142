//! The SQL reference's own examples, run as written through `etl run` on the throwaway PostgreSQL.
//!
//! Every case below is an example from the Amazon Redshift Database Developer Guide
//! (`https://docs.aws.amazon.com/redshift/latest/dg/<page>.html`), with the result the page shows.
//! The suite builds one job: the tables the examples read (WINSALES from "Sample table for window
//! function examples", TIME_TEST and TIMETZ_TEST from the DATEADD/DATEDIFF/EXTRACT pages, the
//! TICKIT DATE table for 2008, the SALES rows of event 4337 the LISTAGG page aggregates, and the
//! SECONDS table of "Date parts for date or timestamp functions"), and one transform file in which
//! each example is `create table docs_cN as <the example, as written>;` followed by a statement
//! that records its rows. The unloaded CSV is compared with the documented results.
//!
//! A case that fails the transform is taken out and the job run again (the error names the
//! statement), so one failure does not hide the others. At least 95 % must pass, and the cases that
//! do not are exactly [`KNOWN_DIFFERENCES`], each with its reason (also in sql/compat/README.md).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use etl_tests::{etl, run};

/// One documented example: the page it is on, its SQL as written, and the rows the page shows
/// (columns separated by ` | `; `NULL` for a null). With `total`, the page shows only the first
/// rows of `total`. Cases whose page shows no result (NVL2's, SYSDATE's moving clock) are not here,
/// or compare with what the page says the value is (`trunc(sysdate)` is today).
pub(crate) struct Doc {
    pub page: &'static str,
    pub sql: &'static str,
    pub rows: &'static [&'static str],
    pub total: Option<usize>,
}

const fn doc(page: &'static str, sql: &'static str, rows: &'static [&'static str]) -> Doc {
    Doc {
        page,
        sql,
        rows,
        total: None,
    }
}

/// Examples whose documented result the rehearsal does not give, with the reason.
pub(crate) const KNOWN_DIFFERENCES: &[(&str, &str)] = &[];

#[rustfmt::skip]
pub(crate) const DOCS: &[Doc] = &[
    // --- DATEADD -------------------------------------------------------------------------------
    Doc { page: "r_DATEADD_function",
        sql: "select dateadd(day,30,caldate) as novplus30 from date where month='NOV' order by dateid",
        rows: &["2008-12-01 00:00:00", "2008-12-02 00:00:00", "2008-12-03 00:00:00"], total: Some(30) },
    doc("r_DATEADD_function", "select dateadd(month,18,'2008-02-28')", &["2009-08-28 00:00:00"]),
    doc("r_DATEADD_function", "select dateadd(m,30,'2008-02-28')", &["2008-02-28 00:30:00"]),
    doc("r_DATEADD_function", "select dateadd(minute,5,time_val) as minplus5 from time_test",
        &["20:05:00", "00:05:00.555", "01:03:00"]),
    doc("r_DATEADD_function", "select dateadd(hour, 8, time '13:24:55')", &["21:24:55"]),
    doc("r_DATEADD_function", "select dateadd(hour, 12, time '13:24:55')", &["01:24:55"]),
    doc("r_DATEADD_function", "select dateadd(minute,5,timetz_val) as minplus5_tz from timetz_test",
        &["04:05:00+00", "00:05:00.555+00", "06:03:00+00"]),
    doc("r_DATEADD_function", "select dateadd(hour, 2, timetz '13:24:55 PST')", &["23:24:55+00"]),
    doc("r_DATEADD_function", "select dateadd(month,1,'2008-04-30')", &["2008-05-30 00:00:00"]),
    doc("r_DATEADD_function", "select dateadd(month,12,'2016-02-29')", &["2017-02-28 00:00:00"]),
    doc("r_DATEADD_function", "select dateadd(year, 1, '2016-02-29')", &["2017-03-01 00:00:00"]),
    // --- DATEDIFF ------------------------------------------------------------------------------
    doc("r_DATEDIFF_function", "select datediff(year,'2008-12-31','2009-01-01')", &["1"]),
    doc("r_DATEDIFF_function", "select datediff(hour,'2009-01-01 8:30:00','2009-01-01 10:00:00')", &["2"]),
    doc("r_DATEDIFF_function", "select datediff(week,'2009-01-01','2009-12-31') as numweeks", &["52"]),
    doc("r_DATEDIFF_function", "select datediff(hour, '2023-01-01', '2023-01-03 05:04:03')", &["53"]),
    doc("r_DATEDIFF_function",
        "select datediff(days, 'Jun 1,2008  09:59:59 EST', 'Jul 4,2008  09:59:59 EST')", &["33"]),
    doc("r_DATEDIFF_function", "select datediff(hour, time_val, time '15:24:45') from time_test",
        &["-5", "15", "15"]),
    doc("r_DATEDIFF_function",
        "select datediff(hours, timetz '20:00:00 PST', timetz_val) as numhours from timetz_test",
        &["0", "-4", "1"]),
    doc("r_DATEDIFF_function", "select datediff(hours, timetz '20:00:00 PST', timetz '00:58:00 EST')", &["1"]),
    // --- DATE_PART / PGDATE_PART ---------------------------------------------------------------
    doc("r_DATE_PART_function", "SELECT DATE_PART(minute, timestamp '20230104 04:05:06.789')", &["5"]),
    doc("r_DATE_PART_function", "SELECT DATE_PART(week, timestamp '20220502 04:05:06.789')", &["18"]),
    doc("r_DATE_PART_function", "SELECT DATE_PART(day, timestamp '20220502 04:05:06.789')", &["2"]),
    doc("r_DATE_PART_function", "SELECT DATE_PART(dayofweek, timestamp '20220502 04:05:06.789')", &["1"]),
    doc("r_DATE_PART_function", "SELECT DATE_PART(century, timestamp '20220502 04:05:06.789')", &["21"]),
    doc("r_DATE_PART_function", "SELECT DATE_PART(millennium, timestamp '20220502 04:05:06.789')", &["3"]),
    doc("r_DATE_PART_function", "SELECT DATE_PART(month, date '20220502')", &["5"]),
    doc("r_DATE_PART_function", "select date_part(w, timestamp '2008-06-17 09:44:54')", &["25"]),
    doc("r_DATE_PART_function", "select date_part(dow, timestamp '2008-01-05 14:00:00')", &["6"]),
    // --- Date parts: seconds, century, epoch, decade, millennium --------------------------------
    doc("r_Dateparts_for_datetime_functions", "select extract(sec from micro) from seconds", &["3"]),
    doc("r_Dateparts_for_datetime_functions", "select date_part(sec, micro) from seconds", &["3.189717"]),
    doc("r_Dateparts_for_datetime_functions",
        "select extract (century from timestamp '2000-12-16 12:21:13')", &["20"]),
    doc("r_Dateparts_for_datetime_functions",
        "select extract (century from timestamp '2001-12-16 12:21:13')", &["21"]),
    doc("r_Dateparts_for_datetime_functions",
        "select extract(epoch from timestamp '2008-01-01 20:00:00')", &["1199217600"]),
    doc("r_Dateparts_for_datetime_functions",
        "select date_part(decade, timestamp '1999-02-16 20:38:40')", &["200"]),
    doc("r_Dateparts_for_datetime_functions",
        "select date_part(decade, timestamp '2000-02-16 20:38:40')", &["201"]),
    doc("r_Dateparts_for_datetime_functions",
        "select extract (mil from timestamp '2000-12-16 12:21:13')", &["2"]),
    doc("r_Dateparts_for_datetime_functions",
        "select extract (mil from timestamp '2001-12-16 12:21:13')", &["3"]),
    // --- EXTRACT -------------------------------------------------------------------------------
    doc("r_EXTRACT_function", "select extract(minute from timestamp '2009-09-09 12:08:43')", &["8"]),
    doc("r_EXTRACT_function", "select extract(ms from timestamp '2009-09-09 12:08:43.101')", &["101"]),
    doc("r_EXTRACT_function", "select extract(year from timestamptz '1.12.1997 07:37:16.00 PST')", &["1997"]),
    doc("r_EXTRACT_function", "select extract(minute from time_val) as minutes from time_test",
        &["0", "0", "58"]),
    doc("r_EXTRACT_function", "select extract(hour from time_val) as hours from time_test",
        &["20", "0", "0"]),
    doc("r_EXTRACT_function", "select extract(ms from time_val) as msec from time_test",
        &["0", "555", "0"]),
    doc("r_EXTRACT_function", "select extract(minute from timetz_val) as minutes from timetz_test",
        &["0", "0", "58"]),
    doc("r_EXTRACT_function", "select extract(hours from timetz_val) as hours from timetz_test",
        &["4", "0", "5"]),
    // --- DATE_TRUNC, TRUNC -----------------------------------------------------------------------
    doc("r_DATE_TRUNC", "SELECT DATE_TRUNC('second', TIMESTAMP '20200430 04:05:06.789')", &["2020-04-30 04:05:06"]),
    doc("r_DATE_TRUNC", "SELECT DATE_TRUNC('minute', TIMESTAMP '20200430 04:05:06.789')", &["2020-04-30 04:05:00"]),
    doc("r_DATE_TRUNC", "SELECT DATE_TRUNC('hour', TIMESTAMP '20200430 04:05:06.789')", &["2020-04-30 04:00:00"]),
    doc("r_DATE_TRUNC", "SELECT DATE_TRUNC('day', TIMESTAMP '20200430 04:05:06.789')", &["2020-04-30 00:00:00"]),
    doc("r_DATE_TRUNC", "SELECT DATE_TRUNC('month', TIMESTAMP '20200430 04:05:06.789')", &["2020-04-01 00:00:00"]),
    doc("r_DATE_TRUNC", "SELECT DATE_TRUNC('quarter', TIMESTAMP '20200430 04:05:06.789')", &["2020-04-01 00:00:00"]),
    doc("r_DATE_TRUNC", "SELECT DATE_TRUNC('year', TIMESTAMP '20200430 04:05:06.789')", &["2020-01-01 00:00:00"]),
    doc("r_DATE_TRUNC", "SELECT DATE_TRUNC('millennium', TIMESTAMP '20200430 04:05:06.789')", &["2001-01-01 00:00:00"]),
    doc("r_TRUNC_date", "select trunc(timestamp '2011-07-21 10:32:38.248109')", &["2011-07-21"]),
    // --- ADD_MONTHS, MONTHS_BETWEEN, LAST_DAY, NEXT_DAY -----------------------------------------
    doc("r_ADD_MONTHS", "select add_months('2008-03-31',1)", &["2008-04-30 00:00:00"]),
    doc("r_ADD_MONTHS", "select add_months('2008-04-30',1)", &["2008-05-31 00:00:00"]),
    doc("r_MONTHS_BETWEEN_function", "select months_between('1969-01-18', '1969-03-18') as months", &["-2"]),
    doc("r_MONTHS_BETWEEN_function", "select months_between('2014-08-31', '2014-09-30')", &["-1"]),
    doc("r_NEXT_DAY", "select next_day('2014-08-20','Tuesday')", &["2014-08-26"]),
    // --- CONVERT_TIMEZONE ------------------------------------------------------------------------
    doc("CONVERT_TIMEZONE", "select convert_timezone('EST', 'PST', '20080305 12:25:29')", &["2008-03-05 09:25:29"]),
    doc("CONVERT_TIMEZONE", "select convert_timezone('America/New_York', '2013-02-01 08:00:00')", &["2013-02-01 03:00:00"]),
    doc("CONVERT_TIMEZONE", "select convert_timezone('America/New_York', '2013-06-01 08:00:00')", &["2013-06-01 04:00:00"]),
    doc("CONVERT_TIMEZONE", "select convert_timezone('GMT','NEWZONE +2','2014-05-17 12:00:00') as newzone_plus_2",
        &["2014-05-17 10:00:00"]),
    doc("CONVERT_TIMEZONE", "select convert_timezone('GMT','NEWZONE-2:15','2014-05-17 12:00:00') as newzone_minus_2_15",
        &["2014-05-17 14:15:00"]),
    doc("CONVERT_TIMEZONE", "select convert_timezone('GMT','America/Los_Angeles+2','2014-05-17 12:00:00') as la_plus_2",
        &["2014-05-17 10:00:00"]),
    doc("CONVERT_TIMEZONE", "select convert_timezone('GMT','GMT+2','2014-05-17 12:00:00') as gmt_plus_2",
        &["2014-05-17 10:00:00"]),
    // --- SYSDATE, GETDATE ------------------------------------------------------------------------
    doc("r_SYSDATE", "select trunc(sysdate) = current_date as today", &["t"]),
    doc("r_GETDATE", "select trunc(getdate()) = current_date as today", &["t"]),
    // --- NVL, NVL2, DECODE -----------------------------------------------------------------------
    doc("r_NVL_function", "select nvl(null, 12, null)", &["12"]),
    doc("r_NVL_function", "select nvl(null, 'Amazon Redshift', null)", &["Amazon Redshift"]),
    doc("r_DECODE_expression",
        "select decode('NHL', 'NHL', 'National Hockey League', 'MLB', 'Major League Baseball', 'Unknown') as league",
        &["National Hockey League"]),
    Doc { page: "r_DECODE_expression",
        sql: "select caldate, decode(caldate, '2008-06-01', 'June 1st, 2008') from date where month='JUN' order by caldate",
        rows: &["2008-06-01 | June 1st, 2008", "2008-06-02 | NULL", "2008-06-03 | NULL"], total: Some(30) },
    // --- LEN, CHARINDEX, STRTOL, string functions on numbers -------------------------------------
    doc("r_LEN", "select len('français')", &["8"]),
    doc("r_LEN", "select len('cat   ')", &["6"]),
    doc("r_CHARINDEX", "select charindex('dog', 'fish')", &["0"]),
    doc("r_CHARINDEX", "select charindex('fish', 'dogfish')", &["4"]),
    doc("r_STRTOL", "select strtol('0xf',16)", &["15"]),
    doc("r_STRTOL", "select strtol('abcd1234',16)", &["2882343476"]),
    doc("r_STRTOL", "select strtol('1234567', 10)", &["1234567"]),
    doc("r_STRTOL", "select strtol('1234567', 8)", &["342391"]),
    doc("r_STRTOL", "select strtol('110101', 2)", &["53"]),
    // --- LISTAGG (aggregate and window) ----------------------------------------------------------
    doc("r_LISTAGG", "SELECT LISTAGG(sellerid, ', ') WITHIN GROUP (ORDER BY sellerid) FROM sales WHERE eventid = 4337",
        &["380, 380, 1178, 1178, 1178, 2731, 8117, 12905, 32043, 32043, 32043, 32432, 32432, 38669, 38750, 41498, 45676, 46324, 47188, 47188, 48294"]),
    doc("r_LISTAGG", "SELECT LISTAGG(DISTINCT sellerid, ', ') WITHIN GROUP (ORDER BY sellerid) FROM sales WHERE eventid = 4337",
        &["380, 1178, 2731, 8117, 12905, 32043, 32432, 38669, 38750, 41498, 45676, 46324, 47188, 48294"]),
    doc("r_LISTAGG", "SELECT LISTAGG(dateid,',') WITHIN GROUP (ORDER BY sellerid DESC, salesid ASC) FROM winsales WHERE buyerid = 'b'",
        &["2003-08-02,2004-04-18,2004-04-18,2004-02-12"]),
    doc("r_LISTAGG", "SELECT buyerid, LISTAGG(salesid,',') WITHIN GROUP (ORDER BY salesid) AS sales_id FROM winsales GROUP BY buyerid ORDER BY buyerid",
        &["a | 10005,40001,40005", "b | 20001,30001,30003,30004", "c | 10001,10006,20002,30007"]),
    Doc { page: "r_WF_LISTAGG", sql: "select listagg(sellerid) within group (order by sellerid) over() from winsales",
        rows: &["11122333344"; 11], total: None },
    doc("r_WF_LISTAGG", "select listagg(sellerid) within group (order by dateid) over () as seller from winsales where buyerid = 'b'",
        &["3233", "3233", "3233", "3233"]),
    doc("r_WF_LISTAGG", "select listagg(dateid,',') within group (order by sellerid desc,salesid asc) over () as dates from winsales where buyerid = 'b'",
        &["2003-08-02,2004-04-18,2004-04-18,2004-02-12"; 4]),
    // --- MEDIAN, PERCENTILE_CONT/DISC, RATIO_TO_REPORT -------------------------------------------
    doc("r_WF_MEDIAN", "select sellerid, qty, median(qty) over (partition by sellerid) from winsales order by sellerid",
        &["1 | 10 | 10.0", "1 | 10 | 10.0", "1 | 30 | 10.0", "2 | 20 | 20.0", "2 | 20 | 20.0",
          "3 | 10 | 17.5", "3 | 15 | 17.5", "3 | 20 | 17.5", "3 | 30 | 17.5", "4 | 10 | 25.0", "4 | 40 | 25.0"]),
    doc("r_WF_RATIO_TO_REPORT", "select sellerid, qty, ratio_to_report(qty) over() from winsales order by sellerid",
        &["1 | 30 | 0.13953488372093023", "1 | 10 | 0.046511627906976744", "1 | 10 | 0.046511627906976744",
          "2 | 20 | 0.09302325581395349", "2 | 20 | 0.09302325581395349",
          "3 | 30 | 0.13953488372093023", "3 | 20 | 0.09302325581395349", "3 | 15 | 0.06976744186046512",
          "3 | 10 | 0.046511627906976744", "4 | 40 | 0.18604651162790697", "4 | 10 | 0.046511627906976744"]),
];

/// The tables the examples read, as (name, columns, rows with `|` between fields; empty = NULL).
fn tables() -> Vec<(&'static str, serde_json::Value, Vec<String>)> {
    use serde_json::json;
    let col = |name: &str, ty: &str| json!({"name": name, "type": ty});
    let winsales = [
        "30001|2003-08-02|3|b|10|10",
        "10001|2003-12-24|1|c|10|10",
        "10005|2003-12-24|1|a|30|",
        "40001|2004-01-09|4|a|40|",
        "10006|2004-01-18|1|c|10|",
        "20001|2004-02-12|2|b|20|20",
        "40005|2004-02-12|4|a|10|10",
        "20002|2004-02-16|2|c|20|20",
        "30003|2004-04-18|3|b|15|",
        "30004|2004-04-18|3|b|20|",
        "30007|2004-09-07|3|c|30|",
    ];
    // TICKIT's DATE table for 2008 (dateid 1827 is 2008-01-01): day, month and qtr are columns,
    // as in the sample database, so the date parts of the examples must be read by position.
    let mut date = Vec::new();
    let start = chrono::NaiveDate::from_ymd_opt(2008, 1, 1).unwrap();
    for n in 0..366 {
        use chrono::Datelike as _;
        let d = start + chrono::Days::new(n);
        let day =
            ["SU", "MO", "TU", "WE", "TH", "FR", "SA"][d.weekday().num_days_from_sunday() as usize];
        let month = d.format("%b").to_string().to_uppercase();
        date.push(format!(
            "{}|{}|{day}|{}|{month}|{}|2008|false",
            1827 + n,
            d.format("%Y-%m-%d"),
            d.iso_week().week(),
            (d.month() - 1) / 3 + 1
        ));
    }
    // The sellers of event 4337 that the LISTAGG page aggregates, and one sale of another event.
    let sellers = [
        380, 380, 1178, 1178, 1178, 2731, 8117, 12905, 32043, 32043, 32043, 32432, 32432, 38669,
        38750, 41498, 45676, 46324, 47188, 47188, 48294,
    ];
    let mut sales: Vec<String> = sellers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "{}|{s}|{}|4337|1900|2|{}.00|2008-03-{:02} 10:00:00",
                1000 + i,
                9000 + i,
                100 + i,
                i + 1
            )
        })
        .collect();
    sales.push("2000|5|6|1000|1901|4|9999.00|2008-04-01 11:00:00".to_owned());
    vec![
        (
            "winsales",
            json!([
                col("salesid", "integer"),
                col("dateid", "date"),
                col("sellerid", "integer"),
                col("buyerid", "varchar(10)"),
                col("qty", "integer"),
                col("qty_shipped", "integer")
            ]),
            winsales.iter().map(|s| (*s).to_owned()).collect(),
        ),
        (
            "time_test",
            json!([col("time_val", "time")]),
            vec!["20:00:00".into(), "00:00:00.5550".into(), "00:58:00".into()],
        ),
        (
            "timetz_test",
            json!([col("timetz_val", "timetz")]),
            vec![
                "04:00:00+00".into(),
                "00:00:00.5550+00".into(),
                "05:58:00+00".into(),
            ],
        ),
        (
            "date",
            json!([
                col("dateid", "smallint"),
                col("caldate", "date"),
                col("day", "char(3)"),
                col("week", "smallint"),
                col("month", "char(5)"),
                col("qtr", "char(5)"),
                col("year", "smallint"),
                col("holiday", "boolean")
            ]),
            date,
        ),
        (
            "sales",
            json!([
                col("salesid", "integer"),
                col("sellerid", "integer"),
                col("buyerid", "integer"),
                col("eventid", "integer"),
                col("dateid", "smallint"),
                col("qtysold", "smallint"),
                col("pricepaid", "decimal(8,2)"),
                col("saletime", "timestamp")
            ]),
            sales,
        ),
        (
            "seconds",
            json!([col("micro", "timestamp")]),
            vec!["2009-09-21 11:10:03.189717".into()],
        ),
    ]
}

/// Writes a job into `dir` whose tables are [`tables`] (schema `public`, as in the examples) and
/// whose transform is `transform`; returns the manifest's path.
pub(crate) fn job(dir: &Path, transform: &str, unload_query: &str) -> std::path::PathBuf {
    let mut tables_json = Vec::new();
    for (name, columns, rows) in tables() {
        let mut f = std::fs::File::create(dir.join(format!("{name}.txt"))).unwrap();
        writeln!(f, "header").unwrap();
        for r in rows {
            writeln!(f, "{r}").unwrap();
        }
        tables_json.push(serde_json::json!({
            "name": name, "files": format!("{name}.txt"), "columns": columns,
        }));
    }
    std::fs::create_dir_all(dir.join("sql")).unwrap();
    std::fs::write(dir.join("sql/docs.sql"), transform).unwrap();
    let manifest = serde_json::json!({
        "name": "docs",
        "input": ".",
        "format": {"delimiter": "|", "ignoreheader": 1, "compression": "none"},
        "schemas": [{"name": "public", "tables": tables_json}],
        "transform": ["sql/docs.sql"],
        "unload": {"query": unload_query, "to": "out/docs_", "format": "csv", "header": true,
                   "delimiter": ",", "parallel": false, "overwrite": "allow"},
    });
    std::fs::write(dir.join("job.json"), manifest.to_string()).unwrap();
    dir.join("job.json")
}

/// Splits one CSV line set (RFC 4180 quoting) into records.
pub(crate) fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, '\r') => {}
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records
}

/// The fields of a PostgreSQL composite value's text, `(a,"b c",)`; `NULL` for an empty field.
fn parse_record(text: &str) -> Vec<String> {
    let inner = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or(text);
    let mut fields = Vec::new();
    let mut field = String::new();
    let (mut quoted, mut was_quoted) = (false, false);
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, '\\') => field.extend(chars.next()),
            (false, '"') => {
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                fields.push(finish(&mut field, &mut was_quoted));
            }
            (_, c) => field.push(c),
        }
    }
    fields.push(finish(&mut field, &mut was_quoted));
    fields
}

fn finish(field: &mut String, was_quoted: &mut bool) -> String {
    let f = std::mem::take(field);
    let quoted = std::mem::take(was_quoted);
    if f.is_empty() && !quoted {
        "NULL".to_owned()
    } else {
        f
    }
}

/// The outcome of running the cases: each case's rows, or the error that took it out.
pub(crate) struct Outcome {
    pub rows: BTreeMap<usize, Vec<String>>,
    pub errors: BTreeMap<usize, String>,
    pub runs: usize,
}

/// Runs `cases` as one transform through `etl run`, taking out a case whose statement fails and
/// running again, until the job succeeds.
pub(crate) fn run_cases(cases: &[(usize, &str)]) -> Outcome {
    let mut errors = BTreeMap::new();
    let mut runs = 0;
    loop {
        let active: Vec<(usize, &str)> = cases
            .iter()
            .filter(|(id, _)| !errors.contains_key(id))
            .copied()
            .collect();
        let mut transform = String::from(
            "create table docs_results (id integer, ord integer, row_text varchar(65535));\n",
        );
        for (id, sql) in &active {
            transform.push_str(&format!(
                "create table docs_c{id} as\n{sql};\n\
                 insert into docs_results select {id}, row_number() over (), t::text from docs_c{id} t;\n"
            ));
        }
        let dir = tempfile::tempdir().unwrap();
        let job = job(
            dir.path(),
            &transform,
            "select id, ord, row_text from docs_results order by id, ord",
        );
        runs += 1;
        let out = run(etl().arg("run").arg(&job));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            let csv = std::fs::read_to_string(dir.path().join("out/docs_000"))
                .unwrap_or_else(|e| panic!("no unloaded file ({e}):\n{stderr}"));
            let mut rows: BTreeMap<usize, Vec<String>> = BTreeMap::new();
            for record in parse_csv(&csv).into_iter().skip(1) {
                let id: usize = record[0].parse().unwrap();
                let fields = parse_record(&record[2]);
                rows.entry(id).or_default().push(fields.join(" | "));
            }
            return Outcome { rows, errors, runs };
        }
        // "transform sql/docs.sql statement N (line L) failed: ...": statement 1 is docs_results,
        // then two per case.
        let n: Option<usize> = stderr.split("statement ").nth(1).and_then(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|d| d.parse().ok())
        });
        let Some(n) = n.filter(|&n| n >= 2) else {
            panic!("the job failed outside the cases:\n{stderr}");
        };
        let (id, _) = active[(n - 2) / 2];
        let reason = stderr
            .lines()
            .find(|l| l.contains("failed"))
            .unwrap_or(&stderr)
            .to_owned();
        errors.insert(id, reason);
        assert!(runs <= cases.len(), "too many reruns:\n{stderr}");
    }
}

/// Whether a case gave the documented rows: the same rows in any order (the pages order by
/// columns that leave ties), or, with `total`, the documented first rows in order and `total`
/// rows in all.
pub(crate) fn matches(doc: &Doc, got: &[String]) -> bool {
    match doc.total {
        Some(total) => got.len() == total && got.iter().zip(doc.rows).all(|(g, e)| g == e),
        None => {
            let mut got = got.to_vec();
            let mut want: Vec<String> = doc.rows.iter().map(|r| (*r).to_owned()).collect();
            got.sort();
            want.sort();
            got == want
        }
    }
}

#[test]
fn the_sql_references_examples_run_as_written() {
    let cases: Vec<(usize, &str)> = DOCS
        .iter()
        .enumerate()
        .map(|(i, d)| (i + 1, d.sql))
        .collect();
    let outcome = run_cases(&cases);
    let mut failures = Vec::new();
    for (i, d) in DOCS.iter().enumerate() {
        let id = i + 1;
        let verdict = match (outcome.errors.get(&id), outcome.rows.get(&id)) {
            (Some(e), _) => Some(format!("error: {e}")),
            (None, got) => {
                let got = got.cloned().unwrap_or_default();
                (!matches(d, &got)).then(|| format!("expected {:?}, got {got:?}", d.rows))
            }
        };
        if let Some(v) = verdict {
            failures.push((d.sql, format!("[{}] {}\n    {v}", d.page, d.sql)));
        }
    }
    let passed = DOCS.len() - failures.len();
    let rate = 100.0 * passed as f64 / DOCS.len() as f64;
    eprintln!(
        "documented examples: {passed} of {} pass ({rate:.1} %), {} etl run(s)",
        DOCS.len(),
        outcome.runs
    );
    for (_, f) in &failures {
        eprintln!("  {f}");
    }
    let failing: Vec<&str> = failures.iter().map(|(sql, _)| *sql).collect();
    let known: Vec<&str> = KNOWN_DIFFERENCES.iter().map(|(sql, _)| *sql).collect();
    assert_eq!(
        failing, known,
        "the failing examples must be exactly the known differences"
    );
    assert!(
        rate >= 95.0,
        "only {rate:.1} % of the documented examples pass"
    );
    // Every known difference is a case, with a reason.
    for (sql, why) in KNOWN_DIFFERENCES {
        assert!(
            DOCS.iter().any(|d| d.sql == *sql) && !why.is_empty(),
            "{sql}"
        );
    }
}

#[test]
fn composite_and_csv_parsing() {
    assert_eq!(parse_record("(1,\"a b\",)"), ["1", "a b", "NULL"]);
    assert_eq!(parse_record("(\"x \"\"y\"\"\")"), ["x \"y\""]);
    assert_eq!(
        parse_csv("id,v\n1,\"a,b\"\n2,\"c\"\"d\"\n"),
        [vec!["id", "v"], vec!["1", "a,b"], vec!["2", "c\"d"]]
    );
}
