//! Scalar conversions for the client-side COPY: Redshift's input rules for numbers and booleans, and
//! the canonical text and binary forms PostgreSQL reads.
//!
//! Rules followed (<https://docs.aws.amazon.com/redshift/latest/dg/copy-parameters-data-conversion.html>,
//! error codes from <https://docs.aws.amazon.com/redshift/latest/dg/r_Load_Error_Reference.html>):
//! - Integers: optional sign and digits, blanks around allowed; anything else is error 1207 ("invalid
//!   digit"), a value outside the type's range is error 1222 ("integer value overflow").
//! - DECIMAL(p,s): optional sign, digits, optional point and fraction (no exponent). Extra fraction
//!   digits are truncated, or rounded half away from zero with ROUNDEC; more integer digits than `p - s`
//!   is error 1204 ("exceeded the acceptable range for the data type").
//! - REAL / DOUBLE PRECISION: decimal or exponent notation, `NaN`, `Infinity`; out of range (overflow
//!   to infinity, or underflow to zero of a non-zero value) is error 1208, as PostgreSQL would refuse it.
//! - BOOLEAN: `t`, `true`, `y`, `yes`, `1` and `f`, `false`, `n`, `no`, `0`, case-insensitive
//!   (<https://docs.aws.amazon.com/redshift/latest/dg/r_Boolean_type.html>); anything else is error 1210.

use std::io::Write as _;

/// A value that cannot be loaded: the STL_LOAD_ERRORS code, the position in the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConvError {
    pub code: u32,
    pub pos: u32,
    pub reason: String,
}

impl ConvError {
    pub(crate) fn new(code: u32, pos: usize, reason: impl Into<String>) -> Self {
        ConvError {
            code,
            pos: u32::try_from(pos).unwrap_or(u32::MAX),
            reason: reason.into(),
        }
    }
}

/// Error codes of STL_LOAD_ERRORS that we produce.
pub(crate) mod code {
    /// Input data had more columns than were defined in the DDL.
    pub const EXTRA_COLUMNS: u32 = 1202;
    /// Input data exceeded the acceptable range for the data type (string too long, decimal overflow).
    pub const OUT_OF_RANGE: u32 = 1204;
    /// Date format is not valid.
    pub const DATE: u32 = 1205;
    /// Timestamp (and time) format is not valid.
    pub const TIMESTAMP: u32 = 1206;
    /// A value outside of the range 0-9 in a number.
    pub const INVALID_DIGIT: u32 = 1207;
    /// FLOAT data type format error.
    pub const FLOAT: u32 = 1208;
    /// BOOLEAN data type format error.
    pub const BOOLEAN: u32 = 1210;
    /// A field specified as NOT NULL contained no data.
    pub const NOT_NULL: u32 = 1213;
    /// Delimiter not found (fewer fields than columns, unmatched quote).
    pub const DELIMITER_NOT_FOUND: u32 = 1214;
    /// Input line is not valid (longer than the 4 MB row limit).
    pub const INVALID_LINE: u32 = 1216;
    /// String contains invalid or unsupported UTF-8 code points.
    pub const INVALID_UTF8: u32 = 1220;
    /// Integer value overflow.
    pub const INT_OVERFLOW: u32 = 1222;
}

fn shown(s: &[u8]) -> String {
    let cut = &s[..s.len().min(64)];
    String::from_utf8_lossy(cut).into_owned()
}

/// Parses an integer of the given type range.
pub(crate) fn parse_int(s: &[u8], min: i64, max: i64, ty: &str) -> Result<i64, ConvError> {
    let lead = s.len() - s.trim_ascii_start().len();
    let t = s.trim_ascii();
    let (neg, digits, off) = match t.first() {
        Some(b'-') => (true, &t[1..], lead + 1),
        Some(b'+') => (false, &t[1..], lead + 1),
        _ => (false, t, lead),
    };
    if digits.is_empty() {
        return Err(ConvError::new(
            code::INVALID_DIGIT,
            off,
            format!("Invalid digit, Value '{}', Type: {ty}", shown(s)),
        ));
    }
    let mut v: i64 = 0;
    let mut overflow = false;
    for (i, &b) in digits.iter().enumerate() {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return Err(ConvError::new(
                code::INVALID_DIGIT,
                off + i,
                format!(
                    "Invalid digit, Value '{}', Pos {}, Type: {ty}",
                    shown(&[b]),
                    off + i
                ),
            ));
        }
        if !overflow {
            match v.checked_mul(10).and_then(|x| {
                if neg {
                    x.checked_sub(i64::from(d))
                } else {
                    x.checked_add(i64::from(d))
                }
            }) {
                Some(x) => v = x,
                None => overflow = true,
            }
        }
    }
    if overflow || v < min || v > max {
        return Err(ConvError::new(
            code::INT_OVERFLOW,
            0,
            format!(
                "Overflow, Value '{}' out of range for type {ty} ({min} to {max})",
                shown(t)
            ),
        ));
    }
    Ok(v)
}

const POW10: [i128; 39] = {
    let mut t = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// Parses a DECIMAL(precision, scale) value: the value times 10^scale.
pub(crate) fn parse_decimal(
    s: &[u8],
    precision: u8,
    scale: u8,
    round: bool,
) -> Result<i128, ConvError> {
    let lead = s.len() - s.trim_ascii_start().len();
    let t = s.trim_ascii();
    let (neg, body, off) = match t.first() {
        Some(b'-') => (true, &t[1..], lead + 1),
        Some(b'+') => (false, &t[1..], lead + 1),
        _ => (false, t, lead),
    };
    let invalid = |i: usize| {
        let at = body.get(i).map(|&b| shown(&[b])).unwrap_or_default();
        ConvError::new(
            code::INVALID_DIGIT,
            off + i,
            format!(
                "Invalid digit, Value '{at}', Pos {}, Type: Decimal",
                off + i
            ),
        )
    };
    let overflow = || {
        ConvError::new(
            code::OUT_OF_RANGE,
            0,
            format!(
                "Numeric value '{}' out of range for DECIMAL({precision},{scale})",
                shown(t)
            ),
        )
    };
    let mut v: i128 = 0;
    let mut int_digits = 0usize;
    let mut any_digit = false;
    let mut i = 0;
    while i < body.len() && body[i].is_ascii_digit() {
        let d = body[i] - b'0';
        any_digit = true;
        if int_digits > 0 || d != 0 {
            int_digits += 1;
            if int_digits > 38 {
                return Err(overflow());
            }
        }
        v = v * 10 + i128::from(d);
        i += 1;
    }
    let mut frac_taken = 0u8;
    let mut round_digit = 0u8;
    if i < body.len() && body[i] == b'.' {
        i += 1;
        let mut seen = 0usize;
        while i < body.len() && body[i].is_ascii_digit() {
            any_digit = true;
            let d = body[i] - b'0';
            if frac_taken < scale {
                if int_digits + usize::from(frac_taken) >= 38 {
                    return Err(overflow());
                }
                v = v * 10 + i128::from(d);
                frac_taken += 1;
            } else if seen == usize::from(scale) {
                round_digit = d;
            }
            seen += 1;
            i += 1;
        }
    }
    if i < body.len() || !any_digit {
        return Err(invalid(i.min(body.len().saturating_sub(1))));
    }
    if int_digits > usize::from(precision - scale) {
        return Err(overflow());
    }
    v *= POW10[usize::from(scale - frac_taken)];
    if round && round_digit >= 5 {
        v += 1;
    }
    if v >= POW10[usize::from(precision)] {
        return Err(overflow());
    }
    Ok(if neg { -v } else { v })
}

/// The decimal digits of `v` (no sign), at least `min_len` of them (zero-padded on the left).
fn decimal_digits(v: u128, min_len: usize, buf: &mut [u8; 48]) -> usize {
    let mut n = 0;
    let mut x = v;
    while x > 0 || n < min_len {
        buf[47 - n] = b'0' + (x % 10) as u8;
        x /= 10;
        n += 1;
    }
    n
}

/// A DECIMAL value as PostgreSQL prints it: `-12.50`, `0.05`, `7`.
pub(crate) fn write_decimal_text(out: &mut Vec<u8>, v: i128, scale: u8) {
    let mut buf = [0u8; 48];
    let scale = usize::from(scale);
    let n = decimal_digits(v.unsigned_abs(), scale + 1, &mut buf);
    let digits = &buf[48 - n..];
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[..n - scale]);
    if scale > 0 {
        out.push(b'.');
        out.extend_from_slice(&digits[n - scale..]);
    }
}

/// A DECIMAL value in PostgreSQL's binary `numeric` format: base-10000 digits with a weight, a sign and
/// the display scale.
pub(crate) fn write_decimal_binary(out: &mut Vec<u8>, v: i128, scale: u8) {
    let mut buf = [0u8; 48];
    let s = usize::from(scale);
    let n = decimal_digits(v.unsigned_abs(), s + 1, &mut buf);
    let digits = &buf[48 - n..];
    let (int_part, frac_part) = digits.split_at(n - s);
    // Integer part left-padded, fraction right-padded, to whole groups of four digits.
    let int_groups = int_part.len().div_ceil(4);
    let frac_groups = frac_part.len().div_ceil(4);
    let mut groups = [0i16; 24];
    let mut g = 0;
    let lead_pad = int_groups * 4 - int_part.len();
    let mut acc = 0i16;
    let mut k = 0;
    for &d in std::iter::repeat_n(&b'0', lead_pad)
        .chain(int_part)
        .chain(frac_part)
        .chain(std::iter::repeat_n(
            &b'0',
            frac_groups * 4 - frac_part.len(),
        ))
    {
        acc = acc * 10 + i16::from(d - b'0');
        k += 1;
        if k == 4 {
            groups[g] = acc;
            g += 1;
            acc = 0;
            k = 0;
        }
    }
    let mut weight = int_groups as i16 - 1;
    let mut first = 0;
    while first < g && groups[first] == 0 {
        first += 1;
        weight -= 1;
    }
    let mut last = g;
    while last > first && groups[last - 1] == 0 {
        last -= 1;
    }
    let ndigits = last - first;
    let (weight, sign) = if ndigits == 0 {
        (0, 0x0000u16)
    } else if v < 0 {
        (weight, 0x4000)
    } else {
        (weight, 0x0000)
    };
    out.extend_from_slice(&((8 + 2 * ndigits) as i32).to_be_bytes());
    out.extend_from_slice(&(ndigits as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&u16::from(scale).to_be_bytes());
    for d in &groups[first..last] {
        out.extend_from_slice(&d.to_be_bytes());
    }
}

/// Whether the text (before any exponent) has a non-zero digit: a zero result then means underflow.
fn has_nonzero_mantissa(t: &[u8]) -> bool {
    t.iter()
        .take_while(|&&b| b != b'e' && b != b'E')
        .any(|&b| (b'1'..=b'9').contains(&b))
}

fn is_infinity_literal(t: &[u8]) -> bool {
    let t = t
        .strip_prefix(b"+")
        .or_else(|| t.strip_prefix(b"-"))
        .unwrap_or(t);
    t.eq_ignore_ascii_case(b"inf") || t.eq_ignore_ascii_case(b"infinity")
}

fn float_error(s: &[u8], ty: &str, why: &str) -> ConvError {
    ConvError::new(
        code::FLOAT,
        0,
        format!("{why}, Value '{}', Type: {ty}", shown(s)),
    )
}

/// Parses a DOUBLE PRECISION value.
pub(crate) fn parse_f64(s: &[u8]) -> Result<f64, ConvError> {
    let t = s.trim_ascii();
    let v: f64 = std::str::from_utf8(t)
        .ok()
        .and_then(|x| x.parse().ok())
        .ok_or_else(|| float_error(s, "Double", "Invalid float"))?;
    if v.is_infinite() && !is_infinity_literal(t) || v == 0.0 && has_nonzero_mantissa(t) {
        return Err(float_error(s, "Double", "Out of range"));
    }
    Ok(v)
}

/// Parses a REAL value.
pub(crate) fn parse_f32(s: &[u8]) -> Result<f32, ConvError> {
    let t = s.trim_ascii();
    let v: f32 = std::str::from_utf8(t)
        .ok()
        .and_then(|x| x.parse().ok())
        .ok_or_else(|| float_error(s, "Real", "Invalid float"))?;
    if v.is_infinite() && !is_infinity_literal(t) || v == 0.0 && has_nonzero_mantissa(t) {
        return Err(float_error(s, "Real", "Out of range"));
    }
    Ok(v)
}

/// A float as PostgreSQL (12+, `extra_float_digits` 1) prints it: the shortest text that reads back
/// exactly, in exponent form when the exponent is below -4 or at least 15 (6 for REAL).
pub(crate) fn write_float_text(out: &mut Vec<u8>, v: f64, is_f32: bool) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
        return;
    }
    if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"Infinity" } else { b"-Infinity" });
        return;
    }
    let mut buf = [0u8; 40];
    let mut cur = std::io::Cursor::new(&mut buf[..]);
    let ok = if is_f32 {
        write!(cur, "{:e}", v as f32)
    } else {
        write!(cur, "{v:e}")
    };
    debug_assert!(ok.is_ok());
    let len = cur.position() as usize;
    let text = &buf[..len];
    let (neg, text) = match text.strip_prefix(b"-") {
        Some(t) => (true, t),
        None => (false, text),
    };
    let e_at = text.iter().position(|&b| b == b'e').unwrap_or(text.len());
    let exp: i32 = std::str::from_utf8(&text[e_at + 1..])
        .ok()
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    let mant: Vec<u8> = text[..e_at]
        .iter()
        .copied()
        .filter(|&b| b != b'.')
        .collect();
    if neg {
        out.push(b'-');
    }
    let limit = if is_f32 { 6 } else { 15 };
    if exp < -4 || exp >= limit {
        out.push(mant[0]);
        if mant.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&mant[1..]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let a = exp.unsigned_abs();
        if a < 10 {
            out.push(b'0');
        }
        let _ = write!(out, "{a}");
    } else if exp < 0 {
        out.extend_from_slice(b"0.");
        for _ in 0..(-exp - 1) {
            out.push(b'0');
        }
        out.extend_from_slice(&mant);
    } else {
        let int_len = exp as usize + 1;
        if mant.len() <= int_len {
            out.extend_from_slice(&mant);
            for _ in mant.len()..int_len {
                out.push(b'0');
            }
        } else {
            out.extend_from_slice(&mant[..int_len]);
            out.push(b'.');
            out.extend_from_slice(&mant[int_len..]);
        }
    }
}

/// Parses a BOOLEAN literal.
pub(crate) fn parse_bool(s: &[u8]) -> Result<bool, ConvError> {
    let t = s.trim_ascii();
    let mut lower = [0u8; 5];
    if t.len() <= 5 {
        for (d, b) in lower.iter_mut().zip(t) {
            *d = b.to_ascii_lowercase();
        }
        match &lower[..t.len()] {
            b"t" | b"true" | b"y" | b"yes" | b"1" => return Ok(true),
            b"f" | b"false" | b"n" | b"no" | b"0" => return Ok(false),
            _ => {}
        }
    }
    Err(ConvError::new(
        code::BOOLEAN,
        0,
        format!("Invalid boolean, Value '{}'", shown(s)),
    ))
}

/// An integer in decimal.
pub(crate) fn write_int_text(out: &mut Vec<u8>, v: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut x = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (x % 10) as u8;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends `s` escaped for PostgreSQL's text COPY format (`\\`, `\t`, `\n`, `\r`).
pub(crate) fn write_text_escaped(out: &mut Vec<u8>, s: &[u8]) {
    let needs = |b: &u8| matches!(b, b'\\' | b'\t' | b'\n' | b'\r');
    if !s.iter().any(needs) {
        out.extend_from_slice(s);
        return;
    }
    for &b in s {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

/// The first invalid UTF-8 sequence (or NUL, which PostgreSQL text cannot hold) in `s`: its start and
/// byte length.
pub(crate) fn find_invalid_utf8(s: &[u8]) -> Option<(usize, usize)> {
    let bad_utf8 = match std::str::from_utf8(s) {
        Ok(_) => None,
        Err(e) => Some((
            e.valid_up_to(),
            e.error_len().unwrap_or(s.len() - e.valid_up_to()),
        )),
    };
    let nul = memchr::memchr(0, s).map(|i| (i, 1));
    match (bad_utf8, nul) {
        (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// ACCEPTINVCHARS: `s` with each invalid UTF-8 sequence (and each NUL) replaced by `replacement`
/// repeated to the sequence's byte length.
pub(crate) fn replace_invalid_utf8(s: &[u8], replacement: u8, out: &mut Vec<u8>) {
    let mut rest = s;
    while let Some((at, len)) = find_invalid_utf8(rest) {
        out.extend_from_slice(&rest[..at]);
        out.extend(std::iter::repeat_n(replacement, len));
        rest = &rest[at + len..];
    }
    out.extend_from_slice(rest);
}

/// The longest prefix of the valid UTF-8 string `s` that is at most `max` bytes and ends on a
/// character boundary.
pub(crate) fn utf8_prefix(s: &[u8], max: usize) -> &[u8] {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    // Back off continuation bytes (10xxxxxx).
    while end > 0 && s[end] & 0xC0 == 0x80 {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str, p: u8, sc: u8, round: bool) -> Result<String, u32> {
        parse_decimal(s.as_bytes(), p, sc, round)
            .map(|v| {
                let mut o = Vec::new();
                write_decimal_text(&mut o, v, sc);
                String::from_utf8(o).unwrap()
            })
            .map_err(|e| e.code)
    }

    #[test]
    fn integers_are_range_checked() {
        assert_eq!(
            parse_int(b" -32768 ", -32768, 32767, "SMALLINT"),
            Ok(-32768)
        );
        assert_eq!(parse_int(b"+7", -32768, 32767, "SMALLINT"), Ok(7));
        assert_eq!(
            parse_int(b"32768", -32768, 32767, "SMALLINT")
                .unwrap_err()
                .code,
            1222
        );
        assert_eq!(
            parse_int(b"99999999999999999999999", i64::MIN, i64::MAX, "BIGINT")
                .unwrap_err()
                .code,
            1222
        );
        assert_eq!(
            parse_int(b"-9223372036854775808", i64::MIN, i64::MAX, "BIGINT"),
            Ok(i64::MIN)
        );
        let e = parse_int(b"12.0", -10, 10, "INTEGER").unwrap_err();
        assert_eq!((e.code, e.pos), (1207, 2));
        assert_eq!(parse_int(b"-", -10, 10, "INTEGER").unwrap_err().code, 1207);
        assert_eq!(
            parse_int(b"1 2", -10, 10, "INTEGER").unwrap_err().code,
            1207
        );
    }

    #[test]
    fn decimals_truncate_unless_roundec() {
        assert_eq!(dec("20.259", 8, 2, false), Ok("20.25".into()));
        assert_eq!(dec("20.259", 8, 2, true), Ok("20.26".into()));
        assert_eq!(dec("-20.255", 8, 2, true), Ok("-20.26".into()));
        assert_eq!(dec("-0.001", 8, 2, false), Ok("0.00".into()));
        assert_eq!(dec(".5", 3, 1, false), Ok("0.5".into()));
        assert_eq!(dec("5.", 3, 1, false), Ok("5.0".into()));
        assert_eq!(dec("007", 1, 0, false), Ok("7".into()));
        assert_eq!(dec("999.995", 5, 2, true), Err(1204));
        assert_eq!(dec("999.995", 5, 2, false), Ok("999.99".into()));
        assert_eq!(dec("1000", 5, 2, false), Err(1204));
        assert_eq!(dec("1e3", 5, 2, false), Err(1207));
        assert_eq!(dec("", 5, 2, false), Err(1207));
        assert_eq!(dec(".", 5, 2, false), Err(1207));
        assert_eq!(dec("1.2.3", 5, 2, false), Err(1207));
        let big = "9".repeat(38);
        assert_eq!(dec(&big, 38, 0, false), Ok(big.clone()));
        assert_eq!(dec(&format!("{big}9"), 38, 0, false), Err(1204));
        assert_eq!(
            dec("0.12345678901234567890123456789012345678", 38, 38, false)
                .unwrap()
                .len(),
            40
        );
    }

    /// Decodes the binary numeric written by `write_decimal_binary` back to text.
    fn numeric_binary_to_text(b: &[u8]) -> String {
        let n = i16::from_be_bytes([b[4], b[5]]) as usize;
        let weight = i16::from_be_bytes([b[6], b[7]]) as i32;
        let sign = u16::from_be_bytes([b[8], b[9]]);
        let dscale = u16::from_be_bytes([b[10], b[11]]) as i32;
        let digits: Vec<i16> = (0..n)
            .map(|i| i16::from_be_bytes([b[12 + 2 * i], b[13 + 2 * i]]))
            .collect();
        assert_eq!(
            i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize,
            b.len() - 4
        );
        // Value as a decimal string.
        let mut int = String::new();
        let digit_at = |pos: i32| -> i16 {
            // pos = weight of the group
            let i = weight - pos;
            if i >= 0 && (i as usize) < n {
                digits[i as usize]
            } else {
                0
            }
        };
        for pos in (0..=weight.max(0)).rev() {
            let d = digit_at(pos);
            if int.is_empty() {
                if d != 0 || pos == 0 {
                    int = d.to_string();
                }
            } else {
                int.push_str(&format!("{d:04}"));
            }
        }
        let mut frac = String::new();
        let groups = (dscale + 3) / 4;
        for g in 1..=groups {
            frac.push_str(&format!("{:04}", digit_at(-g)));
        }
        frac.truncate(dscale as usize);
        let mut s = String::new();
        if sign == 0x4000 {
            s.push('-');
        }
        s.push_str(&int);
        if dscale > 0 {
            s.push('.');
            s.push_str(&frac);
        }
        s
    }

    #[test]
    fn decimal_binary_matches_text() {
        for (txt, p, s) in [
            ("0", 5, 0),
            ("0.00", 5, 2),
            ("20.25", 8, 2),
            ("-20.25", 8, 2),
            ("10000", 10, 0),
            ("123456789.000001", 20, 6),
            ("0.0001", 10, 4),
            ("-0.00001", 10, 5),
            ("99999999999999999999999999999999999999", 38, 0),
            ("0.12345678901234567890123456789012345678", 38, 38),
            ("1.5", 38, 1),
        ] {
            let v = parse_decimal(txt.as_bytes(), p, s, false).unwrap();
            let mut t = Vec::new();
            write_decimal_text(&mut t, v, s);
            assert_eq!(String::from_utf8(t).unwrap(), txt);
            let mut b = Vec::new();
            write_decimal_binary(&mut b, v, s);
            assert_eq!(numeric_binary_to_text(&b), txt, "{txt}");
        }
        // Known encoding: 20.25 = digits [20, 2500], weight 0, dscale 2.
        let mut b = Vec::new();
        write_decimal_binary(&mut b, 2025, 2);
        assert_eq!(b, [0, 0, 0, 12, 0, 2, 0, 0, 0, 0, 0, 2, 0, 20, 9, 196]);
    }

    #[test]
    fn floats_print_like_postgres() {
        let f = |v: f64, f32_: bool| {
            let mut o = Vec::new();
            write_float_text(&mut o, v, f32_);
            String::from_utf8(o).unwrap()
        };
        assert_eq!(f(1.5, false), "1.5");
        assert_eq!(f(100.0, false), "100");
        assert_eq!(f(1e20, false), "1e+20");
        assert_eq!(f(1.5e-5, false), "1.5e-05");
        assert_eq!(f(0.0001, false), "0.0001");
        assert_eq!(f(-0.0, false), "-0");
        assert_eq!(f(123456789012345.0, false), "123456789012345");
        assert_eq!(f(1234567890123456.0, false), "1.234567890123456e+15");
        assert_eq!(f(f64::from(0.1f32), true), "0.1");
        assert_eq!(f(1234567.0, true), "1.234567e+06");
        assert_eq!(f(f64::NAN, false), "NaN");
        assert_eq!(f(f64::NEG_INFINITY, false), "-Infinity");
        assert_eq!(parse_f64(b" 1e3 "), Ok(1000.0));
        assert_eq!(parse_f64(b"-Infinity"), Ok(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"1e400").unwrap_err().code, 1208);
        assert_eq!(parse_f64(b"1e-400").unwrap_err().code, 1208);
        assert_eq!(parse_f64(b"0e-400"), Ok(0.0));
        assert_eq!(parse_f32(b"1e39").unwrap_err().code, 1208);
        assert_eq!(parse_f64(b"abc").unwrap_err().code, 1208);
    }

    #[test]
    fn booleans_and_text() {
        for t in ["t", "TRUE", "y", "Yes", "1", " true "] {
            assert_eq!(parse_bool(t.as_bytes()), Ok(true), "{t}");
        }
        for f in ["f", "False", "N", "no", "0"] {
            assert_eq!(parse_bool(f.as_bytes()), Ok(false), "{f}");
        }
        for bad in ["on", "off", "2", "", "truee"] {
            assert_eq!(parse_bool(bad.as_bytes()).unwrap_err().code, 1210, "{bad}");
        }
        let mut o = Vec::new();
        write_text_escaped(&mut o, b"a\\b\tc\nd\re");
        assert_eq!(o, b"a\\\\b\\tc\\nd\\re");
        let mut o = Vec::new();
        write_int_text(&mut o, i64::MIN);
        assert_eq!(o, b"-9223372036854775808");
    }

    #[test]
    fn utf8_helpers() {
        assert_eq!(find_invalid_utf8("é".as_bytes()), None);
        assert_eq!(find_invalid_utf8(b"ab\xffc"), Some((2, 1)));
        assert_eq!(find_invalid_utf8(b"ab\xe2\x82"), Some((2, 2)));
        assert_eq!(find_invalid_utf8(b"a\0"), Some((1, 1)));
        let mut o = Vec::new();
        replace_invalid_utf8(b"a\xe2\x82b\xffc\0", b'^', &mut o);
        assert_eq!(o, b"a^^b^c^");
        assert_eq!(utf8_prefix("aé€".as_bytes(), 4), "aé".as_bytes());
        assert_eq!(utf8_prefix("aé€".as_bytes(), 3), "aé".as_bytes());
        assert_eq!(utf8_prefix("aé€".as_bytes(), 2), "a".as_bytes());
        assert_eq!(utf8_prefix("€".as_bytes(), 2), b"");
    }
}
