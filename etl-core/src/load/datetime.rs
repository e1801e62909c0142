//! DATEFORMAT / TIMEFORMAT handling: Redshift's datepart patterns, `'auto'` recognition and the epoch
//! formats, turned into PostgreSQL's internal representation (days / microseconds since 2000-01-01).
//!
//! Rules followed:
//! - Patterns: <https://docs.aws.amazon.com/redshift/latest/dg/r_DATEFORMAT_and_TIMEFORMAT_strings.html>
//!   — `YYYY`, `YY`, `MM`, `MON` (abbreviated or full month name), `DD`, `HH` = `HH24`, `HH12`, `MI`,
//!   `SS` (fractional seconds allowed in the input, up to microseconds; `SS.SSS...` in the pattern is
//!   accepted too), `AM`/`PM`; any other non-letter is a separator that must appear as written (a space
//!   matches one or more blanks). Time zone specifiers (`TZ`, `OF`) are not allowed in a pattern, as the
//!   page says.
//! - `'auto'`: <https://docs.aws.amazon.com/redshift/latest/dg/automatic-recognition.html> — the
//!   pattern-table formats plus ISO 8601 (`2019-02-11T05:09:12.195Z`), Julian days (`J2451187`),
//!   `YYYYMMDD HHMISS`, `YYMMDD HHMISS`, `YYYY.DDD`, month-name forms (`17 Dec 07:37:16 1997 PST`,
//!   `Jan-08-1999`, `March 31, 2003`), numeric offsets (`-08`, `+05:30`) and common zone abbreviations.
//! - `'epochsecs'` / `'epochmillisecs'`: TIMEFORMAT only, seconds or milliseconds since 1970-01-01 UTC.
//!
//! Choices where the documentation is silent (kept consistent everywhere):
//! - Years are limited to 0001–9999 (BC dates are rejected); two-digit years pivot at 70
//!   (`69` → 2069, `70` → 1970), as PostgreSQL does.
//! - Numbers without a month name and without a four-digit first field are read month first
//!   (`03/31/2003`), Redshift's default `MDY` date style.
//! - Fractions of a second past microseconds are rounded half up (PostgreSQL rounds too).
//! - A DATE column with `'auto'` drops a time of day (the auto-recognition page says the time
//!   component is truncated); with a pattern the whole value must match the pattern.
//! - A TIMESTAMP (without time zone) column ignores a zone in the input; a TIMESTAMPTZ column converts
//!   to UTC, and a value without a zone is UTC. A TIMESTAMPTZ column with a TIMEFORMAT pattern accepts an
//!   optional zone after the pattern (the documented default `YYYY-MM-DD HH:MI:SSOF`).
//! - TIME and TIMETZ columns do not use TIMEFORMAT: they take `HH:MI[:SS[.ffffff]]` with optional
//!   `AM`/`PM` and, for TIMETZ, an optional zone (UTC when absent).

/// Microseconds in a day.
pub(crate) const USECS_PER_DAY: i64 = 86_400_000_000;
/// Days from 1970-01-01 to 2000-01-01 (PostgreSQL's epoch).
const UNIX_TO_PG_DAYS: i64 = 10_957;
/// First and last day we accept, relative to 2000-01-01: 0001-01-01 and 9999-12-31.
const MIN_DAY: i32 = -730_119;
const MAX_DAY: i32 = 2_921_939;

/// Days since 2000-01-01 of a proleptic Gregorian date (no validation).
pub(crate) fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    // Howard Hinnant's algorithm, shifted to PostgreSQL's epoch.
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468 - UNIX_TO_PG_DAYS) as i32
}

/// The date of a day number (days since 2000-01-01).
pub(crate) fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = i64::from(days) + UNIX_TO_PG_DAYS + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m, d)
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// A date checked against the calendar and our year range.
fn make_date(y: i32, m: u32, d: u32) -> Option<i32> {
    if !(1..=9999).contains(&y) || !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

fn pivot_year(two_digits: u32) -> i32 {
    if two_digits < 70 {
        2000 + two_digits as i32
    } else {
        1900 + two_digits as i32
    }
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// A month name, full or abbreviated to three letters (`Sept` is accepted too), case-insensitive.
fn month_from_name(word: &[u8]) -> Option<u32> {
    if word.len() < 3 {
        return None;
    }
    MONTHS
        .iter()
        .position(|name| {
            let name = name.as_bytes();
            word.eq_ignore_ascii_case(name)
                || word.eq_ignore_ascii_case(&name[..3])
                || (word.eq_ignore_ascii_case(b"sept") && name.starts_with(b"sept"))
        })
        .map(|i| i as u32 + 1)
}

/// Seconds east of UTC for the zone abbreviations we know (the fixed-offset ones; daylight-saving
/// names map to their daylight offset).
fn zone_from_name(word: &[u8]) -> Option<i32> {
    if word.len() > 4 {
        return (word.eq_ignore_ascii_case(b"ZULU")).then_some(0);
    }
    let mut upper = [0u8; 4];
    for (u, b) in upper.iter_mut().zip(word) {
        *u = b.to_ascii_uppercase();
    }
    let hours = match &upper[..word.len()] {
        b"Z" | b"UTC" | b"GMT" | b"UT" => 0,
        b"EST" => -5,
        b"EDT" => -4,
        b"CST" => -6,
        b"CDT" => -5,
        b"MST" => -7,
        b"MDT" => -6,
        b"PST" => -8,
        b"PDT" => -7,
        b"AKST" => -9,
        b"AKDT" => -8,
        b"HST" => -10,
        b"WET" => 0,
        b"CET" | b"BST" | b"WEST" => 1,
        b"CEST" | b"EET" => 2,
        b"EEST" | b"MSK" => 3,
        b"JST" | b"KST" => 9,
        b"AEST" => 10,
        b"AEDT" => 11,
        b"NZST" => 12,
        b"NZDT" => 13,
        _ => return None,
    };
    Some(hours * 3600)
}

/// A parsed date and time, before it is turned into a column value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateTime {
    /// Days since 2000-01-01.
    pub days: i32,
    /// Microseconds since midnight (up to a full day after rounding).
    pub time: i64,
    /// Seconds east of UTC, when the input named a zone.
    pub offset: Option<i32>,
}

impl DateTime {
    /// Microseconds since 2000-01-01 00:00 in the input's local time.
    pub fn local_micros(&self) -> i64 {
        i64::from(self.days) * USECS_PER_DAY + self.time
    }

    /// Microseconds since 2000-01-01 00:00 UTC (a value without a zone is taken as UTC).
    pub fn utc_micros(&self) -> i64 {
        self.local_micros() - i64::from(self.offset.unwrap_or(0)) * 1_000_000
    }
}

/// Whether a timestamp (microseconds since 2000-01-01) falls within 0001-01-01 .. 9999-12-31.
pub(crate) fn timestamp_in_range(micros: i64) -> bool {
    let day = micros.div_euclid(USECS_PER_DAY);
    (i64::from(MIN_DAY)..=i64::from(MAX_DAY)).contains(&day)
}

// ----------------------------------------------------------------------------------------------
// A tiny cursor over ASCII input.

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a [u8]) -> Self {
        Cursor { s, i: 0 }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn peek_at(&self, k: usize) -> Option<u8> {
        self.s.get(self.i + k).copied()
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    fn skip_blanks(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
        self.i - start
    }
    /// Up to `max` digits (at least one): value and digit count.
    fn digits(&mut self, max: usize) -> Option<(u32, usize)> {
        let mut v: u32 = 0;
        let mut n = 0;
        while n < max {
            match self.peek() {
                Some(b @ b'0'..=b'9') => {
                    v = v * 10 + u32::from(b - b'0');
                    self.i += 1;
                    n += 1;
                }
                _ => break,
            }
        }
        (n > 0).then_some((v, n))
    }
    fn word(&mut self) -> &'a [u8] {
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }
    /// A fraction of a second after the `.` (already consumed): microseconds, rounded half up.
    /// May return 1_000_000 when rounding carries.
    fn fraction(&mut self) -> Option<i64> {
        let mut micros: i64 = 0;
        let mut n = 0;
        let mut round_up = false;
        while let Some(b @ b'0'..=b'9') = self.peek() {
            if n < 6 {
                micros = micros * 10 + i64::from(b - b'0');
            } else if n == 6 {
                round_up = b >= b'5';
            }
            n += 1;
            self.i += 1;
        }
        if n == 0 {
            return None;
        }
        for _ in n..6 {
            micros *= 10;
        }
        Some(micros + i64::from(round_up))
    }
}

/// `+HH`, `-HH`, `+HH:MM`, `+HHMM`, `+HH:MM:SS`: seconds east of UTC. Offsets must stay below 16 hours
/// (PostgreSQL's limit).
fn parse_numeric_offset(c: &mut Cursor<'_>) -> Option<i32> {
    let sign = match c.peek()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    c.i += 1;
    let (h, n) = c.digits(4)?;
    let (h, mut m) = if n > 2 { (h / 100, h % 100) } else { (h, 0) };
    let mut s = 0;
    if n <= 2 && c.eat(b':') {
        m = c.digits(2)?.0;
        if c.eat(b':') {
            s = c.digits(2)?.0;
        }
    }
    if h > 15 || m > 59 || s > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60 + s) as i32)
}

/// A zone after a time: a numeric offset or a known abbreviation (optionally followed by an offset,
/// as in `UTC+2`). Leading blanks are skipped. Offsets of 16 hours or more are refused, as PostgreSQL
/// refuses them in TIMETZ values.
fn parse_zone(c: &mut Cursor<'_>) -> Option<i32> {
    let save = c.i;
    let zone = parse_zone_unchecked(c).filter(|z| z.unsigned_abs() < 16 * 3600);
    if zone.is_none() {
        c.i = save;
    }
    zone
}

fn parse_zone_unchecked(c: &mut Cursor<'_>) -> Option<i32> {
    let save = c.i;
    c.skip_blanks();
    if matches!(c.peek(), Some(b'+' | b'-')) {
        if let Some(off) = parse_numeric_offset(c) {
            return Some(off);
        }
    } else if c.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
        let w = c.word();
        if let Some(base) = zone_from_name(w) {
            if matches!(c.peek(), Some(b'+' | b'-')) {
                let save2 = c.i;
                match parse_numeric_offset(c) {
                    Some(off) => return Some(base + off),
                    None => c.i = save2,
                }
            }
            return Some(base);
        }
    }
    c.i = save;
    None
}

/// `AM` / `PM` (also `A.M.` / `P.M.`), case-insensitive: `Some(true)` for PM.
fn parse_meridiem(c: &mut Cursor<'_>) -> Option<bool> {
    let save = c.i;
    let first = c.peek()?.to_ascii_uppercase();
    if first != b'A' && first != b'P' {
        return None;
    }
    c.i += 1;
    c.eat(b'.');
    if c.peek().map(|b| b.to_ascii_uppercase()) != Some(b'M') {
        c.i = save;
        return None;
    }
    c.i += 1;
    c.eat(b'.');
    if c.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
        c.i = save;
        return None;
    }
    Some(first == b'P')
}

fn apply_meridiem(hour: u32, pm: Option<bool>) -> Option<u32> {
    match pm {
        None => Some(hour),
        Some(_) if !(1..=12).contains(&hour) => None,
        Some(true) => Some(hour % 12 + 12),
        Some(false) => Some(hour % 12),
    }
}

fn clock_micros(h: u32, m: u32, s: u32, frac: i64) -> Option<i64> {
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    Some((i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(s)) * 1_000_000 + frac)
}

/// `HH:MI[:SS[.ffffff]]` at the cursor: hour, minute, second, fraction (microseconds).
fn parse_clock(c: &mut Cursor<'_>) -> Option<(u32, u32, u32, i64)> {
    let (h, _) = c.digits(2)?;
    if !c.eat(b':') {
        return None;
    }
    let (m, _) = c.digits(2)?;
    let (mut s, mut frac) = (0, 0);
    if c.eat(b':') {
        s = c.digits(2)?.0;
        if c.peek() == Some(b'.') && c.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
            c.i += 1;
            frac = c.fraction()?;
        }
    }
    Some((h, m, s, frac))
}

/// A TIME / TIMETZ value: microseconds since midnight and the zone, if any.
pub(crate) fn parse_time_of_day(s: &[u8], with_zone: bool) -> Option<(i64, Option<i32>)> {
    let mut c = Cursor::new(trim(s));
    let (h, m, sec, frac) = parse_clock(&mut c)?;
    c.skip_blanks();
    let pm = parse_meridiem(&mut c);
    let h = apply_meridiem(h, pm)?;
    let zone = if with_zone { parse_zone(&mut c) } else { None };
    c.skip_blanks();
    if !c.done() {
        return None;
    }
    let micros = clock_micros(h, m, sec, frac)?;
    Some((micros, zone))
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

// ----------------------------------------------------------------------------------------------
// Patterns.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Year4,
    Year2,
    Month,
    MonthName,
    Day,
    Hour24,
    Hour12,
    Minute,
    Second,
    Meridiem,
    Blank,
    Literal(u8),
}

/// A compiled DATEFORMAT or TIMEFORMAT pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    parts: Vec<Part>,
}

impl Pattern {
    /// Compiles a pattern; the error names the part that is not supported.
    pub(crate) fn compile(pattern: &str) -> Result<Pattern, String> {
        if pattern.trim().is_empty() {
            return Err("must not be empty".into());
        }
        let p = pattern.as_bytes();
        let upper: Vec<u8> = p.iter().map(u8::to_ascii_uppercase).collect();
        let mut parts = Vec::new();
        let mut i = 0;
        let starts = |i: usize, t: &str| upper[i..].starts_with(t.as_bytes());
        while i < p.len() {
            let (part, len) = if starts(i, "YYYY") {
                (Part::Year4, 4)
            } else if starts(i, "YY") {
                (Part::Year2, 2)
            } else if starts(i, "MONTH") {
                (Part::MonthName, 5)
            } else if starts(i, "MON") {
                (Part::MonthName, 3)
            } else if starts(i, "MM") {
                (Part::Month, 2)
            } else if starts(i, "MI") {
                (Part::Minute, 2)
            } else if starts(i, "DD") {
                (Part::Day, 2)
            } else if starts(i, "HH24") {
                (Part::Hour24, 4)
            } else if starts(i, "HH12") {
                (Part::Hour12, 4)
            } else if starts(i, "HH") {
                (Part::Hour24, 2)
            } else if starts(i, "SS") {
                // `SS.SSSSSS`: the fraction digits are part of the seconds field.
                let mut len = 2;
                if upper.get(i + 2) == Some(&b'.') && upper.get(i + 3) == Some(&b'S') {
                    len = 3;
                    while upper.get(i + len) == Some(&b'S') {
                        len += 1;
                    }
                }
                (Part::Second, len)
            } else if starts(i, "AM") || starts(i, "PM") {
                (Part::Meridiem, 2)
            } else if starts(i, "TZ") || starts(i, "OF") {
                return Err(format!(
                    "{pattern:?}: time zone specifiers (TZ, OF) are not allowed in a DATEFORMAT or \
                     TIMEFORMAT pattern; use 'auto' for values with time zones"
                ));
            } else if p[i].is_ascii_alphabetic() {
                let end = (i..p.len())
                    .find(|&j| !p[j].is_ascii_alphabetic())
                    .unwrap_or(p.len());
                return Err(format!(
                    "{pattern:?}: unknown date or time part {:?}; use YYYY, YY, MM, MON, DD, HH, HH24, \
                     HH12, MI, SS, AM or PM",
                    &pattern[i..end]
                ));
            } else if p[i] == b' ' {
                (Part::Blank, 1)
            } else if p[i].is_ascii() {
                (Part::Literal(p[i]), 1)
            } else {
                return Err(format!("{pattern:?}: separators must be ASCII characters"));
            };
            if !(part == Part::Blank && parts.last() == Some(&Part::Blank)) {
                parts.push(part);
            }
            i += len;
        }
        let has = |want: &[Part]| parts.iter().any(|p| want.contains(p));
        if !has(&[Part::Year4, Part::Year2])
            || !has(&[Part::Month, Part::MonthName])
            || !has(&[Part::Day])
        {
            return Err(format!(
                "{pattern:?}: a pattern needs a year (YYYY or YY), a month (MM or MON) and a day (DD)"
            ));
        }
        Ok(Pattern { parts })
    }

    /// Parses `s` with the pattern; with `zone` an optional zone may follow the pattern.
    pub(crate) fn parse(&self, s: &[u8], zone: bool) -> Option<DateTime> {
        let mut c = Cursor::new(trim(s));
        let (mut y, mut mo, mut d) = (1, 1, 1);
        let (mut h, mut mi, mut sec, mut frac) = (0, 0, 0, 0i64);
        let mut pm = None;
        for part in &self.parts {
            match *part {
                Part::Year4 => y = c.digits(4)?.0 as i32,
                Part::Year2 => {
                    let (v, n) = c.digits(4)?;
                    y = if n <= 2 { pivot_year(v) } else { v as i32 };
                }
                Part::Month => mo = c.digits(2)?.0,
                Part::MonthName => mo = month_from_name(c.word())?,
                Part::Day => d = c.digits(2)?.0,
                Part::Hour24 | Part::Hour12 => h = c.digits(2)?.0,
                Part::Minute => mi = c.digits(2)?.0,
                Part::Second => {
                    sec = c.digits(2)?.0;
                    if c.peek() == Some(b'.') && c.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
                        c.i += 1;
                        frac = c.fraction()?;
                    }
                }
                Part::Meridiem => pm = Some(parse_meridiem(&mut c)?),
                Part::Blank => {
                    if c.skip_blanks() == 0 {
                        return None;
                    }
                }
                Part::Literal(b) => {
                    if !c.eat(b) {
                        return None;
                    }
                }
            }
        }
        let h = apply_meridiem(h, pm)?;
        let offset = if zone { parse_zone(&mut c) } else { None };
        c.skip_blanks();
        if !c.done() {
            return None;
        }
        Some(DateTime {
            days: make_date(y, mo, d)?,
            time: clock_micros(h, mi, sec, frac)?,
            offset,
        })
    }
}

/// Checks a DATEFORMAT pattern.
///
/// See <https://docs.aws.amazon.com/redshift/latest/dg/r_DATEFORMAT_and_TIMEFORMAT_strings.html>.
///
/// # Errors
/// Names the unsupported part of the pattern.
pub fn validate_date_pattern(pattern: &str) -> Result<(), String> {
    Pattern::compile(pattern).map(|_| ())
}

/// Checks a TIMEFORMAT pattern.
///
/// See <https://docs.aws.amazon.com/redshift/latest/dg/r_DATEFORMAT_and_TIMEFORMAT_strings.html>.
///
/// # Errors
/// Names the unsupported part of the pattern.
pub fn validate_time_pattern(pattern: &str) -> Result<(), String> {
    Pattern::compile(pattern).map(|_| ())
}

// ----------------------------------------------------------------------------------------------
// 'auto'.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok<'a> {
    Num(u32, usize),
    Word(&'a [u8]),
}

/// `YYYY-MM-DD` and `YYYY-MM-DD HH:MI:SS[.ffffff]` without a zone: the common case, parsed without
/// the general tokenizer. `None` sends the value to the general path.
fn parse_iso_fast(s: &[u8]) -> Option<DateTime> {
    let d = |i: usize| -> Option<u32> {
        let b = *s.get(i)?;
        b.is_ascii_digit().then(|| u32::from(b - b'0'))
    };
    let n2 = |i: usize| Some(d(i)? * 10 + d(i + 1)?);
    if s.len() < 10 || s[4] != b'-' || s[7] != b'-' {
        return None;
    }
    let year = n2(0)? * 100 + n2(2)?;
    let days = make_date(year as i32, n2(5)?, n2(8)?)?;
    if s.len() == 10 {
        return Some(DateTime {
            days,
            time: 0,
            offset: None,
        });
    }
    if s.len() < 19 || !matches!(s[10], b' ' | b'T') || s[13] != b':' || s[16] != b':' {
        return None;
    }
    let mut frac = 0;
    if s.len() > 19 {
        if s[19] != b'.' || s.len() == 20 || !s[20..].iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut c = Cursor { s, i: 20 };
        frac = c.fraction()?;
    }
    Some(DateTime {
        days,
        time: clock_micros(n2(11)?, n2(14)?, n2(17)?, frac)?,
        offset: None,
    })
}

/// Recognises a date, with an optional time and zone, in any of the automatically recognised formats.
pub(crate) fn parse_auto(s: &[u8]) -> Option<DateTime> {
    let s = trim(s);
    if let Some(dt) = parse_iso_fast(s) {
        return Some(dt);
    }
    if s.is_empty() {
        return None;
    }
    if s.len() < 6 {
        // The shortest date we recognise is YYMMDD.
        return None;
    }
    // Julian day: J2451187 [time]
    if matches!(s[0], b'J' | b'j') && s.get(1).is_some_and(u8::is_ascii_digit) {
        let mut c = Cursor::new(&s[1..]);
        let (jd, _) = c.digits(7)?;
        // Julian day 2451545 is 2000-01-01.
        let days = i64::from(jd) - 2_451_545;
        let days = i32::try_from(days)
            .ok()
            .filter(|d| (MIN_DAY..=MAX_DAY).contains(d))?;
        let rest = &c.s[c.i..];
        return finish_auto(days, rest);
    }
    // Split the date from the time: the time starts at the digits before the first ':'.
    let (date_part, time_part): (&[u8], &[u8]) = match memchr::memchr(b':', s) {
        Some(colon) => {
            let mut t = colon;
            while t > 0 && s[t - 1].is_ascii_digit() {
                t -= 1;
            }
            let mut d = t;
            if d > 0 && matches!(s[d - 1], b'T' | b't') && d > 1 && s[d - 2].is_ascii_digit() {
                d -= 1;
            }
            (&s[..d], &s[t..])
        }
        None => match split_compact_time(s) {
            Some((d, t)) => (d, t),
            None => (s, &[][..]),
        },
    };
    // Time first, so a year written after it ("17 Dec 07:37:16 1997 PST") joins the date tokens.
    let mut extra_year = None;
    let mut time = 0;
    let mut offset = None;
    if !time_part.is_empty() {
        let mut c = Cursor::new(time_part);
        let (h, m, sec, frac) = if time_part.contains(&b':') {
            parse_clock(&mut c)?
        } else {
            // HHMISS
            let (v, n) = c.digits(6)?;
            if n != 6 {
                return None;
            }
            (v / 10_000, v / 100 % 100, v % 100, 0)
        };
        let mut pm = None;
        loop {
            let blanks = c.skip_blanks();
            if c.done() {
                break;
            }
            if pm.is_none()
                && let Some(v) = parse_meridiem(&mut c)
            {
                pm = Some(v);
                continue;
            }
            if offset.is_none()
                && let Some(z) = parse_zone(&mut c)
            {
                offset = Some(z);
                continue;
            }
            if extra_year.is_none() && blanks > 0 && c.peek().is_some_and(|b| b.is_ascii_digit()) {
                let (y, n) = c.digits(4)?;
                extra_year = Some(if n <= 2 { pivot_year(y) } else { y as i32 });
                continue;
            }
            return None;
        }
        let h = apply_meridiem(h, pm)?;
        time = clock_micros(h, m, sec, frac)?;
    }
    let days = parse_auto_date(date_part, extra_year)?;
    Some(DateTime { days, time, offset })
}

/// After a Julian day: an optional time.
fn finish_auto(days: i32, rest: &[u8]) -> Option<DateTime> {
    let rest = trim(rest);
    if rest.is_empty() {
        return Some(DateTime {
            days,
            time: 0,
            offset: None,
        });
    }
    let mut c = Cursor::new(rest);
    let (h, m, s, frac) = parse_clock(&mut c)?;
    let offset = parse_zone(&mut c);
    c.skip_blanks();
    if !c.done() {
        return None;
    }
    Some(DateTime {
        days,
        time: clock_micros(h, m, s, frac)?,
        offset,
    })
}

/// `19960108 040809` / `960108 040809`: a six-digit time after a compact date.
fn split_compact_time(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = s.iter().position(|&b| b == b' ' || b == b'T')?;
    let (d, t) = (&s[..space], trim(&s[space + 1..]));
    let all_digits = |x: &[u8]| !x.is_empty() && x.iter().all(u8::is_ascii_digit);
    (all_digits(d) && (d.len() == 8 || d.len() == 6) && all_digits(t) && t.len() == 6)
        .then_some((d, t))
}

fn parse_auto_date<'a>(s: &'a [u8], extra_year: Option<i32>) -> Option<i32> {
    let mut toks: [Tok<'a>; 5] = [Tok::Num(0, 0); 5];
    let mut ntok = 0;
    macro_rules! push {
        ($t:expr) => {{
            if ntok < toks.len() {
                toks[ntok] = $t;
            }
            ntok += 1;
        }};
    }
    let mut c = Cursor::new(s);
    let mut bc = false;
    while !c.done() {
        match c.peek()? {
            b'0'..=b'9' => {
                let start = c.i;
                while c.peek().is_some_and(|b| b.is_ascii_digit()) {
                    c.i += 1;
                }
                let n = c.i - start;
                if n > 8 {
                    return None;
                }
                let v = s[start..c.i]
                    .iter()
                    .fold(0u32, |v, b| v * 10 + u32::from(b - b'0'));
                push!(Tok::Num(v, n));
            }
            b'a'..=b'z' | b'A'..=b'Z' => {
                let w = c.word();
                if w.eq_ignore_ascii_case(b"BC") {
                    bc = true;
                } else if w.eq_ignore_ascii_case(b"AD") {
                } else {
                    push!(Tok::Word(w));
                }
            }
            b'-' | b'/' | b'.' | b',' | b' ' | b'\t' => c.i += 1,
            _ => return None,
        }
        if ntok > 4 {
            return None;
        }
    }
    if bc {
        return None;
    }
    if let Some(y) = extra_year {
        push!(Tok::Num(y as u32, 4));
    }
    let toks = &toks[..ntok.min(5)];
    let year = |v: u32, n: usize| if n <= 2 { pivot_year(v) } else { v as i32 };
    match toks {
        // YYYYMMDD, YYMMDD
        [Tok::Num(v, 8)] => make_date((v / 10_000) as i32, v / 100 % 100, v % 100),
        [Tok::Num(v, 6)] => make_date(pivot_year(v / 10_000), v / 100 % 100, v % 100),
        // YYYY.DDD
        [Tok::Num(y, 4), Tok::Num(doy, 3)] => {
            let y = *y as i32;
            let len = if is_leap(y) { 366 } else { 365 };
            if !(1..=9999).contains(&y) || *doy == 0 || *doy > len {
                return None;
            }
            Some(days_from_civil(y, 1, 1) + *doy as i32 - 1)
        }
        // YYYY-MM-DD
        [Tok::Num(y, 4), Tok::Num(m, 1..=2), Tok::Num(d, 1..=2)] => make_date(*y as i32, *m, *d),
        // MM/DD/YYYY, MM-DD-YY
        [
            Tok::Num(m, 1..=2),
            Tok::Num(d, 1..=2),
            Tok::Num(y, n @ (2 | 4)),
        ] => make_date(year(*y, *n), *m, *d),
        // Month-name forms.
        [Tok::Word(w), Tok::Num(a, na), Tok::Num(b, nb)] => {
            let m = month_from_name(w)?;
            if *na == 4 {
                make_date(*a as i32, m, *b) // Mon YYYY DD (unusual, but unambiguous)
            } else {
                make_date(year(*b, *nb), m, *a) // Mon DD YYYY
            }
        }
        [Tok::Num(a, na), Tok::Word(w), Tok::Num(b, nb)] => {
            let m = month_from_name(w)?;
            if *na == 4 {
                make_date(*a as i32, m, *b) // YYYY-Mon-DD
            } else {
                make_date(year(*b, *nb), m, *a) // DD-Mon-YYYY
            }
        }
        _ => None,
    }
}

// ----------------------------------------------------------------------------------------------
// Epoch formats.

/// `epochsecs` (an integer, optionally with a fraction) or `epochmillisecs` (an integer): microseconds
/// since 2000-01-01 UTC.
pub(crate) fn parse_epoch(s: &[u8], millis: bool) -> Option<i64> {
    let mut c = Cursor::new(trim(s));
    let neg = if c.eat(b'-') {
        true
    } else {
        c.eat(b'+');
        false
    };
    let start = c.i;
    let mut whole: i64 = 0;
    while let Some(b @ b'0'..=b'9') = c.peek() {
        whole = whole.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
        c.i += 1;
    }
    if c.i == start {
        return None;
    }
    let mut frac = 0;
    if !millis && c.eat(b'.') {
        frac = c.fraction()?;
    }
    if !c.done() {
        return None;
    }
    let unix_micros = if millis {
        whole.checked_mul(1000)?
    } else {
        whole.checked_mul(1_000_000)?.checked_add(frac)?
    };
    let unix_micros = if neg { -unix_micros } else { unix_micros };
    let micros = unix_micros.checked_sub(UNIX_TO_PG_DAYS * USECS_PER_DAY)?;
    timestamp_in_range(micros).then_some(micros)
}

// ----------------------------------------------------------------------------------------------
// Canonical text, as PostgreSQL prints it with DateStyle ISO.

fn push_2(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10 % 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

/// `YYYY-MM-DD`.
pub(crate) fn write_date(out: &mut Vec<u8>, days: i32) {
    let (y, m, d) = civil_from_days(days);
    let y = y as u32;
    push_2(out, y / 100);
    push_2(out, y % 100);
    out.push(b'-');
    push_2(out, m);
    out.push(b'-');
    push_2(out, d);
}

/// `HH:MI:SS[.ffffff]` with trailing zeros of the fraction dropped.
pub(crate) fn write_time(out: &mut Vec<u8>, micros: i64) {
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    push_2(out, (secs / 3600) as u32);
    out.push(b':');
    push_2(out, (secs / 60 % 60) as u32);
    out.push(b':');
    push_2(out, (secs % 60) as u32);
    if frac != 0 {
        out.push(b'.');
        let mut f = frac;
        let mut digits = [0u8; 6];
        for d in digits.iter_mut().rev() {
            *d = b'0' + (f % 10) as u8;
            f /= 10;
        }
        let keep = 6 - digits.iter().rev().take_while(|&&d| d == b'0').count();
        out.extend_from_slice(&digits[..keep]);
    }
}

/// `YYYY-MM-DD HH:MI:SS[.ffffff]`.
pub(crate) fn write_timestamp(out: &mut Vec<u8>, micros: i64) {
    let days = micros.div_euclid(USECS_PER_DAY);
    write_date(out, days as i32);
    out.push(b' ');
    write_time(out, micros.rem_euclid(USECS_PER_DAY));
}

/// A zone offset as PostgreSQL prints it: `+00`, `-08`, `+05:30`, `+05:30:15`.
pub(crate) fn write_offset(out: &mut Vec<u8>, east_secs: i32) {
    out.push(if east_secs < 0 { b'-' } else { b'+' });
    let a = east_secs.unsigned_abs();
    push_2(out, a / 3600);
    if !a.is_multiple_of(3600) {
        out.push(b':');
        push_2(out, a / 60 % 60);
        if !a.is_multiple_of(60) {
            out.push(b':');
            push_2(out, a % 60);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ymd(days: i32) -> String {
        let mut v = Vec::new();
        write_date(&mut v, days);
        String::from_utf8(v).unwrap()
    }

    fn ts(dt: DateTime) -> String {
        let mut v = Vec::new();
        write_timestamp(&mut v, dt.local_micros());
        if let Some(o) = dt.offset {
            write_offset(&mut v, o);
        }
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn civil_round_trip() {
        assert_eq!(days_from_civil(2000, 1, 1), 0);
        assert_eq!(days_from_civil(1970, 1, 1), -10_957);
        assert_eq!(days_from_civil(1, 1, 1), MIN_DAY);
        assert_eq!(days_from_civil(9999, 12, 31), MAX_DAY);
        for d in (MIN_DAY..=MAX_DAY).step_by(997) {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(ymd(days_from_civil(2024, 2, 29)), "2024-02-29");
        assert_eq!(ymd(MIN_DAY), "0001-01-01");
    }

    #[test]
    fn patterns_from_the_docs() {
        let cases = [
            ("MM/DD/YYYY", "03/31/2003", "2003-03-31 00:00:00"),
            ("MON DD, YYYY", "March 31, 2003", "2003-03-31 00:00:00"),
            ("MON-DD-YYYY", "Jan-01-1999", "1999-01-01 00:00:00"),
            (
                "MM.DD.YYYY HH:MI:SS",
                "03.31.2003 18:45:05",
                "2003-03-31 18:45:05",
            ),
            (
                "MM.DD.YYYY HH:MI:SS",
                "03.31.2003 18:45:05.123456",
                "2003-03-31 18:45:05.123456",
            ),
            (
                "YYYY-MM-DD HH24:MI:SS.SSS",
                "2024-01-02 03:04:05.5",
                "2024-01-02 03:04:05.5",
            ),
            (
                "DD/MM/YY HH12:MI AM",
                "02/01/24 03:04 PM",
                "2024-01-02 15:04:00",
            ),
            (
                "DD/MM/YY HH12:MI AM",
                "02/01/24 12:04 am",
                "2024-01-02 00:04:00",
            ),
            ("YYYYMMDD", "20240102", "2024-01-02 00:00:00"),
            ("yyyy-mm-dd", "2024-1-2", "2024-01-02 00:00:00"),
            ("DD MON YYYY", "2   jan   1970", "1970-01-02 00:00:00"),
        ];
        for (pat, input, want) in cases {
            let p = Pattern::compile(pat).unwrap();
            let got = p
                .parse(input.as_bytes(), false)
                .unwrap_or_else(|| panic!("{pat} {input}"));
            assert_eq!(ts(got), want, "{pat} {input}");
        }
        let p = Pattern::compile("YYYY-MM-DD").unwrap();
        for bad in [
            "2024-02-30",
            "2024-13-01",
            "2024/01/02",
            "2024-01-02x",
            "0000-01-01",
            "",
        ] {
            assert!(p.parse(bad.as_bytes(), false).is_none(), "{bad}");
        }
        let p = Pattern::compile("YYYY-MM-DD HH:MI:SS").unwrap();
        assert_eq!(
            ts(p.parse(b"2024-01-02 03:04:05-08", true).unwrap()),
            "2024-01-02 03:04:05-08"
        );
        assert!(p.parse(b"2024-01-02 24:00:00", false).is_none());
    }

    #[test]
    fn invalid_patterns_are_named() {
        assert!(
            validate_time_pattern("YYYY-MM-DD HH:MI:SS TZ")
                .unwrap_err()
                .contains("time zone")
        );
        assert!(
            validate_date_pattern("YYYY-MM-QQ")
                .unwrap_err()
                .contains("\"QQ\"")
        );
        assert!(
            validate_date_pattern("HH:MI")
                .unwrap_err()
                .contains("needs a year")
        );
        assert!(validate_date_pattern("").is_err());
        assert!(validate_date_pattern("DD.MM.YYYY").is_ok());
    }

    #[test]
    fn auto_recognises_the_documented_formats() {
        let cases = [
            ("2019-02-11T05:09:12.195Z", "2019-02-11 05:09:12.195+00"),
            ("J2451187", "1999-01-08 00:00:00"),
            ("19960108 040809", "1996-01-08 04:08:09"),
            ("960108 040809", "1996-01-08 04:08:09"),
            ("1996.008", "1996-01-08 00:00:00"),
            ("1996-01-08 04:05:06.789", "1996-01-08 04:05:06.789"),
            ("17 Dec 07:37:16 1997 PST", "1997-12-17 07:37:16-08"),
            ("12/17/1997 07:37:16.00 PST", "1997-12-17 07:37:16-08"),
            ("1997-12-17 07:37:16-08", "1997-12-17 07:37:16-08"),
            ("12.17.1997 07:37:16.00 PST", "1997-12-17 07:37:16-08"),
            ("2024-01-02", "2024-01-02 00:00:00"),
            ("2024/01/02 3:04 pm", "2024-01-02 15:04:00"),
            ("Jan 8, 1999", "1999-01-08 00:00:00"),
            ("January 8 1999", "1999-01-08 00:00:00"),
            ("08-Jan-1999", "1999-01-08 00:00:00"),
            ("1999-Jan-08", "1999-01-08 00:00:00"),
            ("20240102", "2024-01-02 00:00:00"),
            ("2024-01-02 03:04:05+05:30", "2024-01-02 03:04:05+05:30"),
            ("2024-01-02 03:04:05.1234567", "2024-01-02 03:04:05.123457"),
            ("  2024-01-02 03:04  ", "2024-01-02 03:04:00"),
        ];
        for (input, want) in cases {
            let got = parse_auto(input.as_bytes()).unwrap_or_else(|| panic!("{input}"));
            assert_eq!(ts(got), want, "{input}");
        }
        for bad in [
            "Jan-08-95 BC",
            "2024-02-30",
            "hello",
            "2024-01-02 25:00:00",
            "1/2",
            "12345",
            "2024-01-02 03:04:05 nonsense",
            "00/00/00 00:00:00",
        ] {
            assert!(parse_auto(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    #[test]
    fn epochs_and_times() {
        assert_eq!(parse_epoch(b"946684800", false), Some(0));
        assert_eq!(parse_epoch(b"946684800123", true), Some(123_000));
        assert_eq!(
            parse_epoch(b"0.5", false),
            Some(-UNIX_TO_PG_DAYS * USECS_PER_DAY + 500_000)
        );
        assert_eq!(parse_epoch(b"1.5", true), None);
        assert_eq!(parse_epoch(b"99999999999999999999", false), None);
        assert_eq!(
            parse_time_of_day(b"03:04:05.25", false),
            Some((11_045_250_000, None))
        );
        assert_eq!(
            parse_time_of_day(b"3:04 PM", false),
            Some((54_240_000_000, None))
        );
        assert_eq!(
            parse_time_of_day(b"03:04:05+02", true),
            Some((11_045_000_000, Some(7200)))
        );
        assert_eq!(parse_time_of_day(b"03:04:05+02", false), None);
        assert_eq!(parse_time_of_day(b"24:00:00", false), None);
        assert_eq!(
            parse_time_of_day(b"03:04:05 NZDT+3", true),
            None,
            "an offset of 16 hours or more"
        );
        assert_eq!(
            parse_time_of_day(b"03:04:05 UTC+15:59", true),
            Some((11_045_000_000, Some(15 * 3600 + 59 * 60)))
        );
        let mut v = Vec::new();
        write_offset(&mut v, -(5 * 3600 + 30 * 60));
        assert_eq!(v, b"-05:30");
    }
}
