-- Redshift functions for PostgreSQL (15 and later), so transformation SQL written for Amazon Redshift
-- runs unchanged when `etl run` rehearses a job on a throwaway PostgreSQL.
--
-- * Idempotent: every object is created with CREATE OR REPLACE; installing twice changes nothing.
-- * Atomic: no transaction control inside. Send the whole file as one simple query (tokio-postgres
--   `batch_execute` runs it as one implicit transaction) or use `psql --single-transaction -f`.
-- * Everything lives in schema `public`, which is on the default search path. Helpers that are not
--   Redshift functions are named `etl_compat_*`.
-- * What PostgreSQL cannot define (a bare date part as an argument, the bare keyword SYSDATE, DECODE
--   with its CASE typing, the column names Redshift gives NVL/DATEADD/DATEDIFF/DATE_PART) is handled
--   by rewriting the SQL first: etl-core `sql::compat::rewrite_for_postgres`. See README.md here.
-- * Only functions Redshift has are defined, so SQL that passes locally does not fail on the
--   cluster for calling a function that exists only here.
-- * The functions are LANGUAGE sql with a single SELECT, so PostgreSQL inlines them; with a constant
--   date part the CASE on the part folds away at plan time and a typo in a date part is reported
--   when the statement is planned, before it reads any row.
--
-- Semantics follow the Amazon Redshift Database Developer Guide; the page is cited above each
-- function. The session time zone is the local server's (UTC, like Redshift's default).

------------------------------------------------------------------------------------------------
-- Helpers
------------------------------------------------------------------------------------------------

-- Raises `message` (with `hint`) unless `part` is NULL; returns a NULL of the type of `result_type`,
-- so that a CASE branch can end with it. IMMUTABLE on purpose: with constant arguments PostgreSQL
-- evaluates it while planning, so a bad date part fails the statement before it reads a row.
CREATE OR REPLACE FUNCTION public.etl_compat_raise(message text, hint text, part text,
                                                   result_type anyelement)
RETURNS anyelement
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $fn$
BEGIN
    IF part IS NULL THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = message, HINT = hint;
END
$fn$;

-- The canonical name of a Redshift date part or abbreviation (case-insensitive), or NULL.
-- https://docs.aws.amazon.com/redshift/latest/dg/r_Dateparts_for_datetime_functions.html
-- The same table is in etl-core/src/sql/compat.rs (DATEPARTS); a test checks they agree.
CREATE OR REPLACE FUNCTION public.etl_compat_datepart(part text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE lower(btrim(part))
    WHEN 'millennium' THEN 'millennium' WHEN 'millennia' THEN 'millennium'
    WHEN 'mil' THEN 'millennium' WHEN 'mils' THEN 'millennium'
    WHEN 'century' THEN 'century' WHEN 'centuries' THEN 'century' WHEN 'c' THEN 'century'
    WHEN 'cent' THEN 'century' WHEN 'cents' THEN 'century'
    WHEN 'decade' THEN 'decade' WHEN 'decades' THEN 'decade' WHEN 'dec' THEN 'decade'
    WHEN 'decs' THEN 'decade'
    WHEN 'epoch' THEN 'epoch'
    WHEN 'year' THEN 'year' WHEN 'years' THEN 'year' WHEN 'y' THEN 'year' WHEN 'yr' THEN 'year'
    WHEN 'yrs' THEN 'year'
    WHEN 'quarter' THEN 'quarter' WHEN 'quarters' THEN 'quarter' WHEN 'qtr' THEN 'quarter'
    WHEN 'qtrs' THEN 'quarter'
    WHEN 'month' THEN 'month' WHEN 'months' THEN 'month' WHEN 'mon' THEN 'month'
    WHEN 'mons' THEN 'month'
    WHEN 'week' THEN 'week' WHEN 'weeks' THEN 'week' WHEN 'w' THEN 'week'
    WHEN 'dayofweek' THEN 'dow' WHEN 'dow' THEN 'dow' WHEN 'dw' THEN 'dow' WHEN 'weekday' THEN 'dow'
    WHEN 'dayofyear' THEN 'doy' WHEN 'doy' THEN 'doy' WHEN 'dy' THEN 'doy' WHEN 'yearday' THEN 'doy'
    WHEN 'day' THEN 'day' WHEN 'days' THEN 'day' WHEN 'd' THEN 'day'
    WHEN 'hour' THEN 'hour' WHEN 'hours' THEN 'hour' WHEN 'h' THEN 'hour' WHEN 'hr' THEN 'hour'
    WHEN 'hrs' THEN 'hour'
    WHEN 'minute' THEN 'minute' WHEN 'minutes' THEN 'minute' WHEN 'm' THEN 'minute'
    WHEN 'min' THEN 'minute' WHEN 'mins' THEN 'minute'
    WHEN 'second' THEN 'second' WHEN 'seconds' THEN 'second' WHEN 's' THEN 'second'
    WHEN 'sec' THEN 'second' WHEN 'secs' THEN 'second'
    WHEN 'millisecond' THEN 'millisecond' WHEN 'milliseconds' THEN 'millisecond'
    WHEN 'ms' THEN 'millisecond' WHEN 'msec' THEN 'millisecond' WHEN 'msecs' THEN 'millisecond'
    WHEN 'msecond' THEN 'millisecond' WHEN 'mseconds' THEN 'millisecond'
    WHEN 'millisec' THEN 'millisecond' WHEN 'millisecs' THEN 'millisecond'
    WHEN 'millisecon' THEN 'millisecond'
    WHEN 'microsecond' THEN 'microsecond' WHEN 'microseconds' THEN 'microsecond'
    WHEN 'microsec' THEN 'microsecond' WHEN 'microsecs' THEN 'microsecond'
    WHEN 'usecond' THEN 'microsecond' WHEN 'useconds' THEN 'microsecond'
    WHEN 'us' THEN 'microsecond' WHEN 'usec' THEN 'microsecond' WHEN 'usecs' THEN 'microsecond'
    WHEN 'timezone' THEN 'timezone' WHEN 'timezone_hour' THEN 'timezone_hour'
    WHEN 'timezone_minute' THEN 'timezone_minute'
END
$fn$;

-- The canonical date part, raising for a word that is not one (NULL stays NULL).
CREATE OR REPLACE FUNCTION public.etl_compat_part(fn text, part text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT coalesce(
    public.etl_compat_datepart(part),
    public.etl_compat_raise(
        fn || ': ' || quote_literal(part) || ' is not a Redshift date part',
        'Redshift date parts: year (y, yr, yrs, years), quarter (qtr, qtrs), month (mon, mons, '
        || 'months), week (w, weeks), day (d, days), hour (h, hr, hrs), minute (m, min, mins), '
        || 'second (s, sec, secs), millisecond (ms, msec, ...), microsecond (us, usec, ...), '
        || 'decade, century, millennium; DATE_PART also takes dow, doy and epoch.',
        part, NULL::text))
$fn$;

-- Redshift adds years by moving the year and keeping month and day, so 02-29 plus one year rolls
-- over to 03-01 (PostgreSQL's interval arithmetic gives 02-28). Used for year, decade, century and
-- millennium.
-- https://docs.aws.amazon.com/redshift/latest/dg/r_DATEADD_function.html (usage notes:
-- dateadd(year, 1, '2016-02-29') = 2017-03-01, dateadd(month, 12, '2016-02-29') = 2017-02-28)
CREATE OR REPLACE FUNCTION public.etl_compat_add_years(ts timestamp, n bigint)
RETURNS timestamp
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE
    WHEN extract(month FROM ts) = 2 AND extract(day FROM ts) = 29
         AND extract(day FROM ts + make_interval(years => n::int)) = 28
    THEN ts + make_interval(years => n::int, days => 1)
    ELSE ts + make_interval(years => n::int)
END
$fn$;

-- The interval DATEADD adds for `n` units of a canonical date part below a year.
CREATE OR REPLACE FUNCTION public.etl_compat_interval(fn text, part text, n bigint)
RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE public.etl_compat_part(fn, part)
    WHEN 'quarter' THEN make_interval(months => (3 * n)::int)
    WHEN 'month' THEN make_interval(months => n::int)
    WHEN 'week' THEN make_interval(weeks => n::int)
    WHEN 'day' THEN make_interval(days => n::int)
    WHEN 'hour' THEN n * interval '1 hour'
    WHEN 'minute' THEN n * interval '1 minute'
    WHEN 'second' THEN n * interval '1 second'
    WHEN 'millisecond' THEN n * interval '1 millisecond'
    WHEN 'microsecond' THEN n * interval '1 microsecond'
    ELSE public.etl_compat_raise(
        fn || ': date part ' || quote_literal(part) || ' is not supported here',
        'DATEADD takes year, quarter, month, week, day, hour, minute, second, millisecond, '
        || 'microsecond, decade, century and millennium.', part, NULL::interval)
END
$fn$;

-- The interval for `n` units of a canonical time part (hour and below); TIME values have no date.
CREATE OR REPLACE FUNCTION public.etl_compat_time_interval(fn text, part text, n bigint)
RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE public.etl_compat_part(fn, part)
    WHEN 'hour' THEN n * interval '1 hour'
    WHEN 'minute' THEN n * interval '1 minute'
    WHEN 'second' THEN n * interval '1 second'
    WHEN 'millisecond' THEN n * interval '1 millisecond'
    WHEN 'microsecond' THEN n * interval '1 microsecond'
    ELSE public.etl_compat_raise(
        fn || ': a TIME value has no ' || quote_literal(part) || ' part',
        'A TIME or TIMETZ value takes hour, minute, second, millisecond and microsecond.',
        part, NULL::interval)
END
$fn$;

------------------------------------------------------------------------------------------------
-- Conditional expressions
------------------------------------------------------------------------------------------------

-- NVL(expression, expression, ...): the first argument that is not NULL; a synonym of COALESCE,
-- taking two or more arguments. Later arguments are not evaluated once one is not NULL.
-- https://docs.aws.amazon.com/redshift/latest/dg/r_NVL_function.html
-- (The rewriter turns NVL( into COALESCE(, which also gives Redshift's column name "coalesce";
-- these definitions serve SQL that is not rewritten, for 2 to 8 arguments.)
CREATE OR REPLACE FUNCTION public.nvl(anycompatible, anycompatible)
RETURNS anycompatible
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT coalesce($1, $2) $fn$;

CREATE OR REPLACE FUNCTION public.nvl(anycompatible, anycompatible, anycompatible)
RETURNS anycompatible
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT coalesce($1, $2, $3) $fn$;

CREATE OR REPLACE FUNCTION public.nvl(anycompatible, anycompatible, anycompatible, anycompatible)
RETURNS anycompatible
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT coalesce($1, $2, $3, $4) $fn$;

CREATE OR REPLACE FUNCTION public.nvl(anycompatible, anycompatible, anycompatible, anycompatible,
                                      anycompatible)
RETURNS anycompatible
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT coalesce($1, $2, $3, $4, $5) $fn$;

CREATE OR REPLACE FUNCTION public.nvl(anycompatible, anycompatible, anycompatible, anycompatible,
                                      anycompatible, anycompatible)
RETURNS anycompatible
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT coalesce($1, $2, $3, $4, $5, $6) $fn$;

CREATE OR REPLACE FUNCTION public.nvl(anycompatible, anycompatible, anycompatible, anycompatible,
                                      anycompatible, anycompatible, anycompatible)
RETURNS anycompatible
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT coalesce($1, $2, $3, $4, $5, $6, $7) $fn$;

CREATE OR REPLACE FUNCTION public.nvl(anycompatible, anycompatible, anycompatible, anycompatible,
                                      anycompatible, anycompatible, anycompatible, anycompatible)
RETURNS anycompatible
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT coalesce($1, $2, $3, $4, $5, $6, $7, $8) $fn$;

-- All-text versions: PostgreSQL cannot resolve `anycompatible` when every argument is an untyped
-- literal (nvl(NULL, 'x')); Redshift gives a string.
CREATE OR REPLACE FUNCTION public.nvl(text, text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT coalesce($1, $2) $fn$;

CREATE OR REPLACE FUNCTION public.nvl(text, text, text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT coalesce($1, $2, $3) $fn$;

-- NVL2(expression, not_null_return_value, null_return_value): the second argument when the first
-- is not NULL, else the third. The result type is the common type of the two results (Redshift
-- uses the second argument's type when they are of different kinds).
-- https://docs.aws.amazon.com/redshift/latest/dg/r_NVL2.html
CREATE OR REPLACE FUNCTION public.nvl2(anyelement, anycompatible, anycompatible)
RETURNS anycompatible
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE WHEN $1 IS NOT NULL THEN $2 ELSE $3 END
$fn$;

CREATE OR REPLACE FUNCTION public.nvl2(anyelement, text, text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE WHEN $1 IS NOT NULL THEN $2 ELSE $3 END
$fn$;

CREATE OR REPLACE FUNCTION public.nvl2(text, text, text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE WHEN $1 IS NOT NULL THEN $2 ELSE $3 END
$fn$;

------------------------------------------------------------------------------------------------
-- Current date and time
------------------------------------------------------------------------------------------------

-- GETDATE(): the start of the current statement (even inside a transaction block), in the session
-- time zone, as TIMESTAMP without fractional seconds.
-- https://docs.aws.amazon.com/redshift/latest/dg/r_GETDATE.html
CREATE OR REPLACE FUNCTION public.getdate()
RETURNS timestamp
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
SELECT date_trunc('second', statement_timestamp()::timestamp)
$fn$;

-- SYSDATE: the start of the current transaction, in the session time zone, as TIMESTAMP with
-- microseconds. Redshift writes it without parentheses; the rewriter turns SYSDATE into sysdate().
-- https://docs.aws.amazon.com/redshift/latest/dg/r_SYSDATE.html
CREATE OR REPLACE FUNCTION public.sysdate()
RETURNS timestamp
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
SELECT transaction_timestamp()::timestamp
$fn$;

------------------------------------------------------------------------------------------------
-- DATEADD / DATE_ADD
------------------------------------------------------------------------------------------------

-- DATEADD(datepart, interval, {date|time|timetz|timestamp}): adds `interval` date parts. A date
-- gives a TIMESTAMP (at 00:00:00); month arithmetic keeps the day and clamps it to the end of a
-- shorter month (dateadd(month, 1, '2024-01-31') = 2024-02-29); adding years to 02-29 gives 03-01
-- in a common year. TIME and TIMETZ wrap around midnight and take only hour and smaller parts.
-- https://docs.aws.amazon.com/redshift/latest/dg/r_DATEADD_function.html
-- A quoted string is treated as a TIMESTAMP (Redshift: "an expression that implicitly converts").
-- DATE_ADD is the name Redshift gives the result column; the rewriter calls date_add.
CREATE OR REPLACE FUNCTION public.dateadd(datepart text, n bigint, ts timestamp)
RETURNS timestamp
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE public.etl_compat_part('dateadd', datepart)
    WHEN 'year' THEN public.etl_compat_add_years(ts, n)
    WHEN 'decade' THEN public.etl_compat_add_years(ts, 10 * n)
    WHEN 'century' THEN public.etl_compat_add_years(ts, 100 * n)
    WHEN 'millennium' THEN public.etl_compat_add_years(ts, 1000 * n)
    ELSE ts + public.etl_compat_interval('dateadd', datepart, n)
END
$fn$;

CREATE OR REPLACE FUNCTION public.dateadd(datepart text, n bigint, d date)
RETURNS timestamp
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT public.dateadd(datepart, n, d::timestamp)
$fn$;

CREATE OR REPLACE FUNCTION public.dateadd(datepart text, n bigint, ts text)
RETURNS timestamp
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
SELECT public.dateadd(datepart, n, ts::timestamp)
$fn$;

-- TIMESTAMPTZ: the arithmetic happens in the session time zone; the result stays TIMESTAMPTZ.
CREATE OR REPLACE FUNCTION public.dateadd(datepart text, n bigint, ts timestamptz)
RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
SELECT public.dateadd(datepart, n, ts::timestamp)::timestamptz
$fn$;

CREATE OR REPLACE FUNCTION public.dateadd(datepart text, n bigint, t time)
RETURNS time
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT t + public.etl_compat_time_interval('dateadd', datepart, n)
$fn$;

-- Redshift shows the TIMETZ result in the session time zone (UTC by default).
CREATE OR REPLACE FUNCTION public.dateadd(datepart text, n bigint, t timetz)
RETURNS timetz
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
SELECT (t + public.etl_compat_time_interval('dateadd', datepart, n))
       AT TIME ZONE current_setting('TimeZone')
$fn$;

CREATE OR REPLACE FUNCTION public.date_add(datepart text, n bigint, ts timestamp)
RETURNS timestamp
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT public.dateadd(datepart, n, ts) $fn$;

CREATE OR REPLACE FUNCTION public.date_add(datepart text, n bigint, d date)
RETURNS timestamp
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT public.dateadd(datepart, n, d) $fn$;

CREATE OR REPLACE FUNCTION public.date_add(datepart text, n bigint, ts text)
RETURNS timestamp
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$ SELECT public.dateadd(datepart, n, ts) $fn$;

CREATE OR REPLACE FUNCTION public.date_add(datepart text, n bigint, ts timestamptz)
RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$ SELECT public.dateadd(datepart, n, ts) $fn$;

CREATE OR REPLACE FUNCTION public.date_add(datepart text, n bigint, t time)
RETURNS time
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT public.dateadd(datepart, n, t) $fn$;

CREATE OR REPLACE FUNCTION public.date_add(datepart text, n bigint, t timetz)
RETURNS timetz
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$ SELECT public.dateadd(datepart, n, t) $fn$;

------------------------------------------------------------------------------------------------
-- DATEDIFF / DATE_DIFF
------------------------------------------------------------------------------------------------

-- DATEDIFF(datepart, a, b): the number of datepart boundaries crossed going from a to b, as BIGINT
-- (positive when b is later): datediff(year, '2008-12-31', '2009-01-01') = 1,
-- datediff(month, '2024-01-31', '2024-02-01') = 1, datediff(hour, '8:30', '10:00') = 2.
-- Weeks start on Monday, as in Redshift's DATE_TRUNC('week') (verify against a cluster).
-- https://docs.aws.amazon.com/redshift/latest/dg/r_DATEDIFF_function.html
CREATE OR REPLACE FUNCTION public.datediff(datepart text, a timestamp, b timestamp)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE public.etl_compat_part('datediff', datepart)
    WHEN 'millennium' THEN extract(millennium FROM b) - extract(millennium FROM a)
    WHEN 'century' THEN extract(century FROM b) - extract(century FROM a)
    WHEN 'decade' THEN extract(decade FROM b) - extract(decade FROM a)
    WHEN 'year' THEN extract(year FROM b) - extract(year FROM a)
    WHEN 'quarter' THEN (extract(year FROM b) - extract(year FROM a)) * 4
                        + extract(quarter FROM b) - extract(quarter FROM a)
    WHEN 'month' THEN (extract(year FROM b) - extract(year FROM a)) * 12
                      + extract(month FROM b) - extract(month FROM a)
    WHEN 'week' THEN (date_trunc('week', b)::date - date_trunc('week', a)::date) / 7
    WHEN 'day' THEN b::date - a::date
    WHEN 'hour' THEN extract(epoch FROM date_trunc('hour', b) - date_trunc('hour', a)) / 3600
    WHEN 'minute' THEN extract(epoch FROM date_trunc('minute', b) - date_trunc('minute', a)) / 60
    WHEN 'second' THEN extract(epoch FROM date_trunc('second', b) - date_trunc('second', a))
    WHEN 'millisecond'
        THEN extract(epoch FROM date_trunc('milliseconds', b) - date_trunc('milliseconds', a)) * 1000
    WHEN 'microsecond' THEN extract(epoch FROM b - a) * 1000000
    ELSE public.etl_compat_raise(
        'datediff: date part ' || quote_literal(datepart) || ' is not supported',
        'DATEDIFF takes year, quarter, month, week, day, hour, minute, second, millisecond, '
        || 'microsecond, decade, century and millennium.', datepart, NULL::numeric)
END::bigint
$fn$;

CREATE OR REPLACE FUNCTION public.datediff(datepart text, a date, b date)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT public.datediff(datepart, a::timestamp, b::timestamp)
$fn$;

CREATE OR REPLACE FUNCTION public.datediff(datepart text, a text, b text)
RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
SELECT public.datediff(datepart, a::timestamp, b::timestamp)
$fn$;

-- TIMESTAMPTZ: boundaries are those of the session time zone.
CREATE OR REPLACE FUNCTION public.datediff(datepart text, a timestamptz, b timestamptz)
RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
SELECT CASE public.etl_compat_part('datediff', datepart)
    WHEN 'hour' THEN (extract(epoch FROM date_trunc('hour', b) - date_trunc('hour', a)) / 3600)::bigint
    WHEN 'minute' THEN (extract(epoch FROM date_trunc('minute', b) - date_trunc('minute', a)) / 60)::bigint
    WHEN 'second' THEN extract(epoch FROM date_trunc('second', b) - date_trunc('second', a))::bigint
    WHEN 'millisecond' THEN (extract(epoch FROM date_trunc('milliseconds', b)
                                                - date_trunc('milliseconds', a)) * 1000)::bigint
    WHEN 'microsecond' THEN (extract(epoch FROM b - a) * 1000000)::bigint
    ELSE public.datediff(datepart, a::timestamp, b::timestamp)
END
$fn$;

-- TIME: only hour and smaller parts.
CREATE OR REPLACE FUNCTION public.datediff(datepart text, a time, b time)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE public.etl_compat_part('datediff', datepart)
    WHEN 'hour' THEN public.datediff('hour', date '2000-01-01' + a, date '2000-01-01' + b)
    WHEN 'minute' THEN public.datediff('minute', date '2000-01-01' + a, date '2000-01-01' + b)
    WHEN 'second' THEN public.datediff('second', date '2000-01-01' + a, date '2000-01-01' + b)
    WHEN 'millisecond'
        THEN public.datediff('millisecond', date '2000-01-01' + a, date '2000-01-01' + b)
    WHEN 'microsecond'
        THEN public.datediff('microsecond', date '2000-01-01' + a, date '2000-01-01' + b)
    ELSE public.etl_compat_raise(
        'datediff: a TIME value has no ' || quote_literal(datepart) || ' part',
        'A TIME or TIMETZ value takes hour, minute, second, millisecond and microsecond.',
        datepart, NULL::bigint)
END
$fn$;

-- TIMETZ: both values are first moved to UTC (Redshift's default session time zone).
CREATE OR REPLACE FUNCTION public.datediff(datepart text, a timetz, b timetz)
RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
SELECT public.datediff(datepart, (a AT TIME ZONE 'UTC')::time, (b AT TIME ZONE 'UTC')::time)
$fn$;

CREATE OR REPLACE FUNCTION public.date_diff(datepart text, a timestamp, b timestamp)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT public.datediff(datepart, a, b) $fn$;

CREATE OR REPLACE FUNCTION public.date_diff(datepart text, a date, b date)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT public.datediff(datepart, a, b) $fn$;

CREATE OR REPLACE FUNCTION public.date_diff(datepart text, a text, b text)
RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$ SELECT public.datediff(datepart, a, b) $fn$;

CREATE OR REPLACE FUNCTION public.date_diff(datepart text, a timestamptz, b timestamptz)
RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$ SELECT public.datediff(datepart, a, b) $fn$;

CREATE OR REPLACE FUNCTION public.date_diff(datepart text, a time, b time)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT public.datediff(datepart, a, b) $fn$;

CREATE OR REPLACE FUNCTION public.date_diff(datepart text, a timetz, b timetz)
RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$ SELECT public.datediff(datepart, a, b) $fn$;

------------------------------------------------------------------------------------------------
-- DATE_PART / PGDATE_PART, DATE_TRUNC, TRUNC
------------------------------------------------------------------------------------------------

-- PGDATE_PART(datepart, {date|timestamp}): DATE_PART with every Redshift date part spelling
-- (dw, weekday, yearday, qtrs, millisecs, ...), as DOUBLE PRECISION. DATE_PART is a synonym, but
-- PostgreSQL's own date_part wins on the search path, so the rewriter sends date_part(dow, ...)
-- here (Redshift also names the column pgdate_part). dow is 0-6 from Sunday, week is the ISO week,
-- second keeps the fraction; decade follows Redshift (2000-2009 is decade 201, PostgreSQL says 200).
-- https://docs.aws.amazon.com/redshift/latest/dg/r_DATE_PART_function.html
CREATE OR REPLACE FUNCTION public.pgdate_part(datepart text, ts timestamp)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE public.etl_compat_part('date_part', datepart)
    WHEN 'decade' THEN date_part('decade', ts) + 1
    ELSE date_part(public.etl_compat_part('date_part', datepart), ts)
END
$fn$;

CREATE OR REPLACE FUNCTION public.pgdate_part(datepart text, d date)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT public.pgdate_part(datepart, d::timestamp)
$fn$;

CREATE OR REPLACE FUNCTION public.pgdate_part(datepart text, ts timestamptz)
RETURNS double precision
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
SELECT CASE public.etl_compat_part('date_part', datepart)
    WHEN 'decade' THEN date_part('decade', ts) + 1
    ELSE date_part(public.etl_compat_part('date_part', datepart), ts)
END
$fn$;

-- A string is read as a TIMESTAMP (an untyped literal would otherwise match no overload).
CREATE OR REPLACE FUNCTION public.pgdate_part(datepart text, ts text)
RETURNS double precision
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
SELECT public.pgdate_part(datepart, ts::timestamp)
$fn$;

-- TIME, TIMETZ and INTERVAL values: PostgreSQL's date_part, with Redshift's spellings.
CREATE OR REPLACE FUNCTION public.pgdate_part(datepart text, t time)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT date_part(public.etl_compat_part('date_part', datepart), t)
$fn$;

CREATE OR REPLACE FUNCTION public.pgdate_part(datepart text, t timetz)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT date_part(public.etl_compat_part('date_part', datepart), t)
$fn$;

CREATE OR REPLACE FUNCTION public.pgdate_part(datepart text, i interval)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT date_part(public.etl_compat_part('date_part', datepart), i)
$fn$;

-- DATE_TRUNC('datepart', date): Redshift converts the date to a TIMESTAMP and returns a TIMESTAMP;
-- PostgreSQL 15 would pick its TIMESTAMPTZ version for a DATE argument and return a TIMESTAMPTZ.
-- This overload is an exact match for DATE, so date_trunc('month', a_date) stays a TIMESTAMP.
-- https://docs.aws.amazon.com/redshift/latest/dg/r_DATE_TRUNC.html
CREATE OR REPLACE FUNCTION public.date_trunc(datepart text, d date)
RETURNS timestamp
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT pg_catalog.date_trunc(datepart, d::timestamp)
$fn$;

-- TRUNC(timestamp): the date part of a timestamp, as DATE.
-- https://docs.aws.amazon.com/redshift/latest/dg/r_TRUNC_date.html
CREATE OR REPLACE FUNCTION public.trunc(ts timestamp)
RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT ts::date $fn$;

CREATE OR REPLACE FUNCTION public.trunc(ts timestamptz)
RETURNS date
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$ SELECT ts::date $fn$;

------------------------------------------------------------------------------------------------
-- Month arithmetic and calendar helpers
------------------------------------------------------------------------------------------------

-- LAST_DAY({date|timestamp}): the last day of the month, always a DATE.
-- https://docs.aws.amazon.com/redshift/latest/dg/r_LAST_DAY.html
CREATE OR REPLACE FUNCTION public.last_day(ts timestamp)
RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT (pg_catalog.date_trunc('month', ts) + interval '1 month')::date - 1
$fn$;

CREATE OR REPLACE FUNCTION public.last_day(d date)
RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT public.last_day(d::timestamp) $fn$;

CREATE OR REPLACE FUNCTION public.last_day(ts timestamptz)
RETURNS date
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$ SELECT public.last_day(ts::timestamp) $fn$;

-- ADD_MONTHS({date|timestamp}, integer): TIMESTAMP. The last day of a month maps to the last day of
-- the result month (add_months('2008-04-30', 1) = 2008-05-31, unlike DATEADD); other days keep
-- their number, clamped to a shorter month (add_months('2008-03-31', 1) = 2008-04-30).
-- https://docs.aws.amazon.com/redshift/latest/dg/r_ADD_MONTHS.html
CREATE OR REPLACE FUNCTION public.add_months(ts timestamp, n bigint)
RETURNS timestamp
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE
    WHEN ts::date = public.last_day(ts)
    THEN public.last_day(ts + make_interval(months => n::int)) + ts::time
    ELSE ts + make_interval(months => n::int)
END
$fn$;

-- A TIMESTAMPTZ (or a DATE or string, which PostgreSQL resolves to it) is taken in the session
-- time zone; the result is a TIMESTAMP, as in Redshift.
CREATE OR REPLACE FUNCTION public.add_months(ts timestamptz, n bigint)
RETURNS timestamp
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$ SELECT public.add_months(ts::timestamp, n) $fn$;

-- MONTHS_BETWEEN(date1, date2): DOUBLE PRECISION, positive when date1 is later. The whole part
-- comes from years and months; the fraction from days and time of day over a 31-day month, except
-- when both dates are the same day of the month or both are month ends (then a whole number).
-- https://docs.aws.amazon.com/redshift/latest/dg/r_MONTHS_BETWEEN_function.html
CREATE OR REPLACE FUNCTION public.months_between(a timestamp, b timestamp)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT ((extract(year FROM a) - extract(year FROM b)) * 12
        + extract(month FROM a) - extract(month FROM b)
        + CASE
            WHEN extract(day FROM a) = extract(day FROM b)
                 OR (a::date = public.last_day(a) AND b::date = public.last_day(b))
            THEN 0
            ELSE (extract(day FROM a) - extract(day FROM b)
                  + (extract(epoch FROM a::time) - extract(epoch FROM b::time)) / 86400) / 31
          END)::double precision
$fn$;

CREATE OR REPLACE FUNCTION public.months_between(a timestamptz, b timestamptz)
RETURNS double precision
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
SELECT public.months_between(a::timestamp, b::timestamp)
$fn$;

-- The day of the week (0 = Sunday) NEXT_DAY's `day` names, raising for anything else.
CREATE OR REPLACE FUNCTION public.etl_compat_weekday(day text)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE lower(btrim(day))
    WHEN 'su' THEN 0 WHEN 'sun' THEN 0 WHEN 'sunday' THEN 0
    WHEN 'm' THEN 1 WHEN 'mo' THEN 1 WHEN 'mon' THEN 1 WHEN 'monday' THEN 1
    WHEN 'tu' THEN 2 WHEN 'tue' THEN 2 WHEN 'tues' THEN 2 WHEN 'tuesday' THEN 2
    WHEN 'w' THEN 3 WHEN 'we' THEN 3 WHEN 'wed' THEN 3 WHEN 'wednesday' THEN 3
    WHEN 'th' THEN 4 WHEN 'thu' THEN 4 WHEN 'thurs' THEN 4 WHEN 'thursday' THEN 4
    WHEN 'f' THEN 5 WHEN 'fr' THEN 5 WHEN 'fri' THEN 5 WHEN 'friday' THEN 5
    WHEN 'sa' THEN 6 WHEN 'sat' THEN 6 WHEN 'saturday' THEN 6
    ELSE public.etl_compat_raise('next_day: ' || quote_literal(day) || ' is not a day of the week',
        'Use Su, Sun, Sunday, M, Mo, Mon, Monday, Tu, Tue, Tues, Tuesday, W, We, Wed, Wednesday, '
        || 'Th, Thu, Thurs, Thursday, F, Fr, Fri, Friday, Sa, Sat or Saturday.', day, 0)
END
$fn$;

-- NEXT_DAY({date|timestamp}, day): the first date later than the given one that falls on `day`
-- (Su, Sun, Sunday, M, Mo, Mon, Monday, Tu, Tue, Tues, ..., case-insensitive), as DATE; the same
-- day of the week gives the date a week later.
-- https://docs.aws.amazon.com/redshift/latest/dg/r_NEXT_DAY.html
CREATE OR REPLACE FUNCTION public.next_day(ts timestamp, day text)
RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT ts::date + 1 + ((public.etl_compat_weekday(day) - extract(dow FROM ts)::int + 6) % 7)
$fn$;

CREATE OR REPLACE FUNCTION public.next_day(ts timestamptz, day text)
RETURNS date
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$ SELECT public.next_day(ts::timestamp, day) $fn$;

-- CONVERT_TIMEZONE(['source_timezone',] 'target_timezone', timestamp): the wall-clock time in the
-- target zone of a wall-clock time in the source zone (default UTC), as TIMESTAMP. Zone names
-- follow DST, abbreviations are fixed offsets, POSIX-style offsets count hours west of Greenwich
-- ('GMT+2' is two hours behind UTC), as in Redshift.
-- https://docs.aws.amazon.com/redshift/latest/dg/CONVERT_TIMEZONE.html
CREATE OR REPLACE FUNCTION public.convert_timezone(source_tz text, target_tz text, ts timestamp)
RETURNS timestamp
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT (ts AT TIME ZONE source_tz) AT TIME ZONE target_tz
$fn$;

CREATE OR REPLACE FUNCTION public.convert_timezone(target_tz text, ts timestamp)
RETURNS timestamp
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT (ts AT TIME ZONE 'UTC') AT TIME ZONE target_tz
$fn$;

------------------------------------------------------------------------------------------------
-- Strings
------------------------------------------------------------------------------------------------

-- LEN(expression): the number of characters (not bytes); trailing blanks of a CHAR(n) value do not
-- count, those of a VARCHAR do (len('cat   ') = 6). For VARBYTE (BYTEA here), the number of bytes.
-- TEXTLEN is a synonym.
-- https://docs.aws.amazon.com/redshift/latest/dg/r_LEN.html
-- https://docs.aws.amazon.com/redshift/latest/dg/r_TEXTLEN.html
CREATE OR REPLACE FUNCTION public.len(s text)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT length(s) $fn$;

CREATE OR REPLACE FUNCTION public.len(s bpchar)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT length(s) $fn$;

CREATE OR REPLACE FUNCTION public.len(b bytea)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT octet_length(b) $fn$;

CREATE OR REPLACE FUNCTION public.textlen(s text)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT length(s) $fn$;

CREATE OR REPLACE FUNCTION public.textlen(s bpchar)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT length(s) $fn$;

-- CHARINDEX(substring, string): the 1-based position of substring in string, counted in characters
-- (not bytes); 0 when it does not occur. A synonym of STRPOS with the arguments swapped.
-- https://docs.aws.amazon.com/redshift/latest/dg/r_CHARINDEX.html
CREATE OR REPLACE FUNCTION public.charindex(needle text, haystack text)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT strpos(haystack, needle) $fn$;

-- STRTOL(num_string, base): the BIGINT written in base 2-36. Leading white space, one optional sign
-- and, for base 16, an optional 0x are accepted; reading stops at the first character that is not
-- a digit of the base (like C's strtol); an empty string gives 0; out of the 64-bit range is an
-- error.
-- https://docs.aws.amazon.com/redshift/latest/dg/r_STRTOL.html
CREATE OR REPLACE FUNCTION public.strtol(num_string text, base integer)
RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
DECLARE
    s text := ltrim(num_string, E' \t\n\r\f\v');
    negative boolean := false;
    acc numeric := 0;
    digit integer;
    c text;
BEGIN
    IF base < 2 OR base > 36 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('strtol: base %s is not between 2 and 36', base);
    END IF;
    IF left(s, 1) IN ('+', '-') THEN
        negative := left(s, 1) = '-';
        s := substr(s, 2);
    END IF;
    IF base = 16 AND lower(left(s, 2)) = '0x' THEN
        s := substr(s, 3);
    END IF;
    FOREACH c IN ARRAY regexp_split_to_array(s, '') LOOP
        digit := CASE
            WHEN c BETWEEN '0' AND '9' THEN ascii(c) - 48
            WHEN lower(c) BETWEEN 'a' AND 'z' THEN ascii(lower(c)) - 87
            ELSE 99
        END;
        EXIT WHEN digit >= base;
        acc := acc * base + digit;
        IF acc > 9223372036854775808 THEN
            RAISE EXCEPTION USING ERRCODE = 'numeric_value_out_of_range',
                MESSAGE = format('strtol: %L is out of the BIGINT range', num_string);
        END IF;
    END LOOP;
    IF negative THEN
        acc := -acc;
    END IF;
    RETURN acc::bigint;
END
$fn$;

------------------------------------------------------------------------------------------------
-- Aggregates
------------------------------------------------------------------------------------------------

-- MEDIAN(expression): PERCENTILE_CONT(0.5) of the non-NULL values (the mean of the two middle
-- values for an even count); NULL when there are none. Also usable as a window function.
-- https://docs.aws.amazon.com/redshift/latest/dg/r_MEDIAN.html
CREATE OR REPLACE FUNCTION public.etl_compat_median(numeric[])
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE
    WHEN n = 0 THEN NULL
    WHEN n % 2 = 1 THEN s[(n + 1) / 2]
    ELSE (s[n / 2] + s[n / 2 + 1]) / 2
END
FROM (SELECT array_agg(v ORDER BY v) AS s, count(v)::int AS n
      FROM unnest($1) AS v WHERE v IS NOT NULL) AS t
$fn$;

CREATE OR REPLACE FUNCTION public.etl_compat_median(double precision[])
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT pg_catalog.percentile_cont(0.5) WITHIN GROUP (ORDER BY v) FROM unnest($1) AS v
$fn$;

CREATE OR REPLACE AGGREGATE public.median(numeric) (
    SFUNC = array_append,
    STYPE = numeric[],
    FINALFUNC = public.etl_compat_median,
    INITCOND = '{}'
);

CREATE OR REPLACE AGGREGATE public.median(double precision) (
    SFUNC = array_append,
    STYPE = double precision[],
    FINALFUNC = public.etl_compat_median,
    INITCOND = '{}'
);

-- Integers: Redshift returns a DECIMAL with one decimal digit (median(qty) over (partition by
-- sellerid) shows 10.0, 17.5 on r_WF_MEDIAN); the mean of two integers needs no more.
-- https://docs.aws.amazon.com/redshift/latest/dg/r_WF_MEDIAN.html
CREATE OR REPLACE FUNCTION public.etl_compat_median_int(numeric[])
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT round(public.etl_compat_median($1), 1) $fn$;

CREATE OR REPLACE FUNCTION public.etl_compat_median_step(numeric[], smallint)
RETURNS numeric[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT $1 || $2::numeric $fn$;

CREATE OR REPLACE FUNCTION public.etl_compat_median_step(numeric[], integer)
RETURNS numeric[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT $1 || $2::numeric $fn$;

CREATE OR REPLACE FUNCTION public.etl_compat_median_step(numeric[], bigint)
RETURNS numeric[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT $1 || $2::numeric $fn$;

CREATE OR REPLACE AGGREGATE public.median(smallint) (
    SFUNC = public.etl_compat_median_step,
    STYPE = numeric[],
    FINALFUNC = public.etl_compat_median_int,
    INITCOND = '{}'
);

CREATE OR REPLACE AGGREGATE public.median(integer) (
    SFUNC = public.etl_compat_median_step,
    STYPE = numeric[],
    FINALFUNC = public.etl_compat_median_int,
    INITCOND = '{}'
);

CREATE OR REPLACE AGGREGATE public.median(bigint) (
    SFUNC = public.etl_compat_median_step,
    STYPE = numeric[],
    FINALFUNC = public.etl_compat_median_int,
    INITCOND = '{}'
);

-- LISTAGG([DISTINCT] expression [, 'delimiter']) [WITHIN GROUP (ORDER BY order_list)]: the values
-- of a group as one string, separated by the delimiter (none by default); NULLs and empty strings
-- are skipped; more than 65535 bytes is an error, as in Redshift (VARCHAR(MAX)). PostgreSQL has no
-- WITHIN GROUP for ordinary aggregates: the rewriter moves the ORDER BY into the arguments
-- (listagg(x, ',' ORDER BY y)), which PostgreSQL accepts for any aggregate.
-- https://docs.aws.amazon.com/redshift/latest/dg/r_LISTAGG.html
CREATE OR REPLACE FUNCTION public.etl_compat_listagg_step(state text, value anyelement,
                                                          delimiter text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE
    WHEN value IS NULL OR value::text = '' THEN state
    WHEN state IS NULL THEN value::text
    ELSE state || coalesce(delimiter, '') || value::text
END
$fn$;

CREATE OR REPLACE FUNCTION public.etl_compat_listagg_step(state text, value anyelement)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT public.etl_compat_listagg_step(state, value, NULL)
$fn$;

CREATE OR REPLACE FUNCTION public.etl_compat_listagg_final(state text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE
    WHEN octet_length(state) > 65535
    THEN public.etl_compat_raise('Result size exceeds LISTAGG limit',
        'LISTAGG returns at most 65535 bytes (VARCHAR(MAX)) in Redshift.', state, NULL::text)
    ELSE state
END
$fn$;

CREATE OR REPLACE AGGREGATE public.listagg(anyelement, text) (
    SFUNC = public.etl_compat_listagg_step,
    STYPE = text,
    FINALFUNC = public.etl_compat_listagg_final
);

CREATE OR REPLACE AGGREGATE public.listagg(anyelement) (
    SFUNC = public.etl_compat_listagg_step,
    STYPE = text,
    FINALFUNC = public.etl_compat_listagg_final
);

------------------------------------------------------------------------------------------------
-- EXTRACT (the rewriter sends extract(part FROM x) to public.date_part('part', x))
------------------------------------------------------------------------------------------------

-- EXTRACT(datepart FROM source): the value of one date part alone, as INTEGER (DOUBLE PRECISION for
-- a TIMESTAMPTZ source). Unlike DATE_PART, a part ignores the parts above and below it: `second`
-- has no fraction, `millisecond` is 0-999 without the seconds, `microsecond` is 0-999 without the
-- milliseconds; `decade` is numbered as Redshift does (2000-2009 is 201).
-- https://docs.aws.amazon.com/redshift/latest/dg/r_EXTRACT_function.html
-- https://docs.aws.amazon.com/redshift/latest/dg/r_Dateparts_for_datetime_functions.html
-- (section "Variations in results with seconds, milliseconds, and microseconds":
--  extract(sec from '2009-09-21 11:10:03.189717') = 3; extract(ms from '... 12:08:43.101') = 101)
-- Reached only qualified (public.date_part): an unqualified date_part is PostgreSQL's, and the
-- rewriter sends Redshift's DATE_PART to pgdate_part. Redshift names the column date_part.
CREATE OR REPLACE FUNCTION public.etl_compat_extract(datepart text, ts timestamp)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE public.etl_compat_part('extract', datepart)
    WHEN 'second' THEN floor(date_part('second', ts))
    WHEN 'millisecond' THEN floor(date_part('milliseconds', ts))::numeric % 1000
    WHEN 'microsecond' THEN date_part('microseconds', ts)::numeric % 1000
    WHEN 'decade' THEN date_part('decade', ts) + 1
    WHEN 'epoch' THEN floor(date_part('epoch', ts))
    ELSE date_part(public.etl_compat_part('extract', datepart), ts)
END
$fn$;

CREATE OR REPLACE FUNCTION public.date_part(datepart text, ts timestamp)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT public.etl_compat_extract(datepart, ts)::integer
$fn$;

CREATE OR REPLACE FUNCTION public.date_part(datepart text, d date)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT public.etl_compat_extract(datepart, d::timestamp)::integer
$fn$;

-- TIMESTAMPTZ: DOUBLE PRECISION, in the session time zone; the time zone parts come from PostgreSQL.
CREATE OR REPLACE FUNCTION public.date_part(datepart text, ts timestamptz)
RETURNS double precision
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
SELECT CASE
    WHEN public.etl_compat_part('extract', datepart) IN ('timezone', 'timezone_hour', 'timezone_minute')
    THEN date_part(public.etl_compat_part('extract', datepart), ts)
    ELSE public.etl_compat_extract(datepart, ts::timestamp)
END
$fn$;

CREATE OR REPLACE FUNCTION public.date_part(datepart text, t time)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT public.etl_compat_extract(datepart, date '2000-01-01' + t)::integer
$fn$;

CREATE OR REPLACE FUNCTION public.date_part(datepart text, t timetz)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE
    WHEN public.etl_compat_part('extract', datepart) IN ('timezone', 'timezone_hour', 'timezone_minute')
    THEN date_part(public.etl_compat_part('extract', datepart), t)::integer
    ELSE public.etl_compat_extract(datepart, date '2000-01-01' + t::time)::integer
END
$fn$;

CREATE OR REPLACE FUNCTION public.date_part(datepart text, i interval)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE public.etl_compat_part('extract', datepart)
    WHEN 'second' THEN floor(date_part('second', i))
    WHEN 'millisecond' THEN floor(date_part('milliseconds', i))::numeric % 1000
    WHEN 'microsecond' THEN date_part('microseconds', i)::numeric % 1000
    ELSE date_part(public.etl_compat_part('extract', datepart), i)
END::integer
$fn$;

------------------------------------------------------------------------------------------------
-- LISTAGG (DISTINCT), LISTAGG as a window function, PERCENTILE_CONT / PERCENTILE_DISC windows
------------------------------------------------------------------------------------------------

-- LISTAGG(DISTINCT expression [, 'delimiter']): the rewriter sends listagg(x, delimiter, true):
-- Redshift's DISTINCT ignores trailing blanks ('a' and 'a ' are one value, the first one kept), and
-- PostgreSQL allows no DISTINCT in an aggregate used as a window function. The state holds the
-- delimiter first, then the distinct values in the order they arrive (the ORDER BY of WITHIN
-- GROUP, moved into the arguments or into the window by the rewriter).
-- https://docs.aws.amazon.com/redshift/latest/dg/r_LISTAGG.html
-- https://docs.aws.amazon.com/redshift/latest/dg/r_WF_LISTAGG.html
CREATE OR REPLACE FUNCTION public.etl_compat_listagg_distinct_step(state text[], value anyelement,
                                                                   delimiter text, is_distinct boolean)
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE
    WHEN value IS NULL OR value::text = '' THEN coalesce(state, ARRAY[delimiter])
    WHEN state IS NULL THEN ARRAY[delimiter, value::text]
    WHEN is_distinct AND EXISTS (SELECT 1 FROM unnest(state[2:]) AS s(v)
                                 WHERE rtrim(s.v) = rtrim(value::text)) THEN state
    ELSE state || value::text
END
$fn$;

CREATE OR REPLACE FUNCTION public.etl_compat_listagg_distinct_final(state text[])
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT public.etl_compat_listagg_final(
    CASE WHEN cardinality(state) > 1
         THEN array_to_string(state[2:], coalesce(state[1], '')) END)
$fn$;

CREATE OR REPLACE AGGREGATE public.listagg(anyelement, text, boolean) (
    SFUNC = public.etl_compat_listagg_distinct_step,
    STYPE = text[],
    FINALFUNC = public.etl_compat_listagg_distinct_final
);

-- PERCENTILE_CONT(fraction) WITHIN GROUP (ORDER BY x) OVER (PARTITION BY ...): PostgreSQL has the
-- aggregate but cannot use an ordered-set aggregate as a window function. The rewriter sends
-- percentile_cont(fraction, x, true) OVER (...), these plain aggregates, which collect the
-- partition's values and compute what PostgreSQL's percentile_cont / percentile_disc compute. (The
-- third argument only keeps them apart from PostgreSQL's own two-argument ordered-set versions;
-- the column is still named percentile_cont.)
-- https://docs.aws.amazon.com/redshift/latest/dg/r_WF_PERCENTILE_CONT.html
-- https://docs.aws.amazon.com/redshift/latest/dg/r_WF_PERCENTILE_DISC.html
-- https://docs.aws.amazon.com/redshift/latest/dg/r_WF_MEDIAN.html
CREATE OR REPLACE FUNCTION public.etl_compat_pct_step(state double precision[],
                                                      fraction double precision,
                                                      value double precision, in_window boolean)
RETURNS double precision[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE
    WHEN value IS NULL THEN coalesce(state, ARRAY[fraction])
    ELSE coalesce(state, ARRAY[fraction]) || value
END
$fn$;

CREATE OR REPLACE FUNCTION public.etl_compat_pct_step(state numeric[], fraction double precision,
                                                      value numeric, in_window boolean)
RETURNS numeric[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE
    WHEN value IS NULL THEN coalesce(state, ARRAY[fraction::numeric])
    ELSE coalesce(state, ARRAY[fraction::numeric]) || value
END
$fn$;

CREATE OR REPLACE FUNCTION public.etl_compat_pct_cont_final(state double precision[])
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT pg_catalog.percentile_cont(state[1]) WITHIN GROUP (ORDER BY v) FROM unnest(state[2:]) AS v
$fn$;

CREATE OR REPLACE FUNCTION public.etl_compat_pct_cont_final(state numeric[])
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE
    WHEN cardinality(state) < 2 THEN NULL
    ELSE (SELECT lo + (hi - lo) * (pos - floor(pos))
          FROM (SELECT s[floor(pos)::int + 1] AS lo, s[ceil(pos)::int + 1] AS hi, pos
                FROM (SELECT array_agg(v ORDER BY v) AS s,
                             state[1] * (count(*) - 1) AS pos
                      FROM unnest(state[2:]) AS v) AS a) AS b)
END
$fn$;

CREATE OR REPLACE FUNCTION public.etl_compat_pct_disc_final(state double precision[])
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT pg_catalog.percentile_disc(state[1]) WITHIN GROUP (ORDER BY v) FROM unnest(state[2:]) AS v
$fn$;

CREATE OR REPLACE FUNCTION public.etl_compat_pct_disc_final(state numeric[])
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT pg_catalog.percentile_disc(state[1]::double precision) WITHIN GROUP (ORDER BY v)
FROM unnest(state[2:]) AS v
$fn$;

CREATE OR REPLACE AGGREGATE public.percentile_cont(double precision, double precision, boolean) (
    SFUNC = public.etl_compat_pct_step,
    STYPE = double precision[],
    FINALFUNC = public.etl_compat_pct_cont_final
);

CREATE OR REPLACE AGGREGATE public.percentile_cont(double precision, numeric, boolean) (
    SFUNC = public.etl_compat_pct_step,
    STYPE = numeric[],
    FINALFUNC = public.etl_compat_pct_cont_final
);

CREATE OR REPLACE AGGREGATE public.percentile_disc(double precision, double precision, boolean) (
    SFUNC = public.etl_compat_pct_step,
    STYPE = double precision[],
    FINALFUNC = public.etl_compat_pct_disc_final
);

CREATE OR REPLACE AGGREGATE public.percentile_disc(double precision, numeric, boolean) (
    SFUNC = public.etl_compat_pct_step,
    STYPE = numeric[],
    FINALFUNC = public.etl_compat_pct_disc_final
);

------------------------------------------------------------------------------------------------
-- Implicit conversions Redshift performs and PostgreSQL refuses
------------------------------------------------------------------------------------------------

-- Redshift converts implicitly between character strings and numbers in comparisons, and a
-- number or a datetime used where a string is expected (LIKE, string functions) is read as its
-- text. https://docs.aws.amazon.com/redshift/latest/dg/c_Supported_data_types.html#r_Type_conversion
-- PostgreSQL refuses both ("operator does not exist: character varying = integer"). These
-- operators and overloads exist only for the pairs PostgreSQL has none for, so no query that ran
-- before means anything else now:
-- * CHAR/VARCHAR compared (=, <>, <, <=, >, >=) with SMALLINT, INTEGER, BIGINT, DECIMAL, REAL or
--   DOUBLE PRECISION, in either order: the string is read as a number (NUMERIC, or DOUBLE
--   PRECISION against a floating-point value), so '5.0' = 5 and ' 7' = 7; a string that is not a
--   number is an error, as in Redshift.
-- * LIKE, ILIKE, NOT LIKE, NOT ILIKE with a number, DATE, TIMESTAMP or TIMESTAMPTZ on the left:
--   the value's text (timestamps as YYYY-MM-DD HH:MI:SS[.ffffff]) is matched.
-- * String functions given a number: the number's text. LEN, TEXTLEN, CHARINDEX, LENGTH,
--   CHAR_LENGTH, CHARACTER_LENGTH, OCTET_LENGTH, LOWER, UPPER, LEFT, RIGHT, SUBSTRING, SUBSTR,
--   LPAD, RPAD, BTRIM, LTRIM, RTRIM, REPLACE, REVERSE, REPEAT, REPLICATE, STRPOS.
--   (`||` with a number on one side already works in PostgreSQL.)
-- Everything is generated by one DO block: CREATE OR REPLACE only, so installing twice is harmless.
DO $do$
DECLARE
    num text;
    op record;
    fn record;
    lk record;
    conv text;
BEGIN
    FOREACH num IN ARRAY ARRAY['smallint', 'integer', 'bigint', 'numeric', 'real',
                               'double precision'] LOOP
        conv := CASE WHEN num IN ('real', 'double precision') THEN 'double precision'
                     ELSE 'numeric' END;
        FOR op IN SELECT * FROM (VALUES ('=', 'eq'), ('<>', 'ne'), ('<', 'lt'), ('<=', 'le'),
                                        ('>', 'gt'), ('>=', 'ge')) AS o(sym, name) LOOP
            EXECUTE format(
                'CREATE OR REPLACE FUNCTION public.etl_compat_text_%1$s_%2$s(text, %3$s) '
                'RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS '
                '$f$ SELECT $1::%4$s %5$s $2::%4$s $f$',
                op.name, replace(num, ' ', '_'), num, conv, op.sym);
            EXECUTE format(
                'CREATE OR REPLACE FUNCTION public.etl_compat_%2$s_%1$s_text(%3$s, text) '
                'RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS '
                '$f$ SELECT $1::%4$s %5$s $2::%4$s $f$',
                op.name, replace(num, ' ', '_'), num, conv, op.sym);
            IF NOT EXISTS (SELECT 1 FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
                           WHERE n.nspname = 'public' AND o.oprname = op.sym
                             AND o.oprleft = 'text'::regtype AND o.oprright = num::regtype) THEN
                EXECUTE format('CREATE OPERATOR public.%1$s (LEFTARG = text, RIGHTARG = %2$s, '
                               'FUNCTION = public.etl_compat_text_%3$s_%4$s)',
                               op.sym, num, op.name, replace(num, ' ', '_'));
                EXECUTE format('CREATE OPERATOR public.%1$s (LEFTARG = %2$s, RIGHTARG = text, '
                               'FUNCTION = public.etl_compat_%4$s_%3$s_text)',
                               op.sym, num, op.name, replace(num, ' ', '_'));
            END IF;
        END LOOP;
    END LOOP;

    FOR lk IN SELECT * FROM (VALUES ('~~', 'like', '~~'), ('~~*', 'ilike', '~~*'),
                                    ('!~~', 'not_like', '!~~'), ('!~~*', 'not_ilike', '!~~*'))
                            AS l(sym, name, pg) LOOP
        FOREACH num IN ARRAY ARRAY['smallint', 'integer', 'bigint', 'numeric', 'real',
                                   'double precision', 'date', 'timestamp', 'timestamptz'] LOOP
            EXECUTE format(
                'CREATE OR REPLACE FUNCTION public.etl_compat_%1$s_%2$s(%3$s, text) '
                'RETURNS boolean LANGUAGE sql %4$s PARALLEL SAFE AS '
                '$f$ SELECT $1::text %5$s $2 $f$',
                lk.name, replace(num, ' ', '_'), num,
                CASE WHEN num IN ('date', 'timestamp', 'timestamptz') THEN 'STABLE' ELSE 'IMMUTABLE' END,
                lk.pg);
            IF NOT EXISTS (SELECT 1 FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
                           WHERE n.nspname = 'public' AND o.oprname = lk.sym
                             AND o.oprleft = num::regtype AND o.oprright = 'text'::regtype) THEN
                EXECUTE format('CREATE OPERATOR public.%1$s (LEFTARG = %2$s, RIGHTARG = text, '
                               'FUNCTION = public.etl_compat_%3$s_%4$s)',
                               lk.sym, num, lk.name, replace(num, ' ', '_'));
            END IF;
        END LOOP;
    END LOOP;

    -- (name, arguments after the string, the call with $1 as the string's text, result type)
    FOR fn IN SELECT * FROM (VALUES
        ('len', '', 'length($1::text)', 'integer'),
        ('textlen', '', 'length($1::text)', 'integer'),
        ('length', '', 'length($1::text)', 'integer'),
        ('char_length', '', 'char_length($1::text)', 'integer'),
        ('character_length', '', 'character_length($1::text)', 'integer'),
        ('octet_length', '', 'octet_length($1::text)', 'integer'),
        ('lower', '', 'lower($1::text)', 'text'),
        ('upper', '', 'upper($1::text)', 'text'),
        ('reverse', '', 'reverse($1::text)', 'text'),
        ('btrim', '', 'btrim($1::text)', 'text'),
        ('ltrim', '', 'ltrim($1::text)', 'text'),
        ('rtrim', '', 'rtrim($1::text)', 'text'),
        ('btrim', ', text', 'btrim($1::text, $2)', 'text'),
        ('ltrim', ', text', 'ltrim($1::text, $2)', 'text'),
        ('rtrim', ', text', 'rtrim($1::text, $2)', 'text'),
        ('left', ', integer', 'left($1::text, $2)', 'text'),
        ('right', ', integer', 'right($1::text, $2)', 'text'),
        ('repeat', ', integer', 'repeat($1::text, $2)', 'text'),
        ('replicate', ', integer', 'repeat($1::text, $2)', 'text'),
        ('substring', ', integer', 'substring($1::text, $2)', 'text'),
        ('substring', ', integer, integer', 'substring($1::text, $2, $3)', 'text'),
        ('substr', ', integer', 'substr($1::text, $2)', 'text'),
        ('substr', ', integer, integer', 'substr($1::text, $2, $3)', 'text'),
        ('lpad', ', integer', 'lpad($1::text, $2)', 'text'),
        ('lpad', ', integer, text', 'lpad($1::text, $2, $3)', 'text'),
        ('rpad', ', integer', 'rpad($1::text, $2)', 'text'),
        ('rpad', ', integer, text', 'rpad($1::text, $2, $3)', 'text'),
        ('replace', ', text, text', 'replace($1::text, $2, $3)', 'text'),
        ('strpos', ', text', 'strpos($1::text, $2)', 'integer')) AS f(name, rest, body, result) LOOP
        FOREACH num IN ARRAY ARRAY['bigint', 'numeric', 'real', 'double precision'] LOOP
            EXECUTE format('CREATE OR REPLACE FUNCTION public.%1$I(%2$s%3$s) RETURNS %4$s '
                           'LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$ SELECT %5$s $f$',
                           fn.name, num, fn.rest, fn.result, fn.body);
        END LOOP;
    END LOOP;
    -- CHARINDEX(substring, string) with a number as the string.
    FOREACH num IN ARRAY ARRAY['bigint', 'numeric', 'real', 'double precision'] LOOP
        EXECUTE format('CREATE OR REPLACE FUNCTION public.charindex(text, %1$s) RETURNS integer '
                       'LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$ SELECT strpos($2::text, $1) $f$',
                       num);
    END LOOP;
END
$do$;
