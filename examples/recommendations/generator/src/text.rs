//! The three tables as `|`-delimited text with one header row, in the format the job's manifest
//! declares (REMOVEQUOTES, EMPTYASNULL, BLANKSASNULL, DELIMITER '|', IGNOREHEADER 1).
//!
//! Rows are formatted into one large buffer with hand-written integer formatting and handed to the
//! writer in big chunks; the writer (a gzip encoder) never sees small writes.

use std::io::{self, Write};
use std::ops::Range;

use crate::model::{Bill, Customer, Date, Offer, Text, Usage, month_start};

/// Header rows, matching the column order of `job.json`.
pub const USAGE_HEADER: &str = "customer_id|month|data_mb|voice_minutes|sms_count|roaming_mb";
pub const BILLING_HEADER: &str = "customer_id|month|plan_code|amount|overage|paid_at|segment";
pub const OFFERS_HEADER: &str =
    "offer_code|name|data_mb|voice_minutes|sms_count|monthly_fee|overage_per_gb|active|valid_from";

/// Bytes gathered before each write to the underlying writer.
const CHUNK: usize = 256 * 1024;

/// A row buffer in front of a writer.
struct Rows<W: Write> {
    buf: Vec<u8>,
    out: W,
    rows: u64,
}

impl<W: Write> Rows<W> {
    fn new(out: W, header: &str) -> Self {
        let mut buf = Vec::with_capacity(CHUNK + 4096);
        buf.extend_from_slice(header.as_bytes());
        buf.push(b'\n');
        Rows { buf, out, rows: 0 }
    }

    /// Ends a row; flushes the buffer when it is full.
    fn end_row(&mut self) -> io::Result<()> {
        self.buf.push(b'\n');
        self.rows += 1;
        if self.buf.len() >= CHUNK {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<(W, u64)> {
        self.out.write_all(&self.buf)?;
        Ok((self.out, self.rows))
    }

    fn sep(&mut self) {
        self.buf.push(b'|');
    }

    fn str(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
    }

    fn quoted(&mut self, s: &str) {
        self.buf.push(b'"');
        self.str(s);
        self.buf.push(b'"');
    }

    fn text(&mut self, t: Text) {
        match t {
            Text::Plain(s) | Text::Blank(s) => self.str(s),
            Text::Quoted(s) => self.quoted(s),
            Text::Empty => {}
        }
    }

    fn int(&mut self, mut v: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.buf.extend_from_slice(&digits[i..]);
    }

    fn opt_int(&mut self, v: Option<u64>) {
        if let Some(v) = v {
            self.int(v);
        }
    }

    /// `12.34` from 1234 cents.
    fn cents(&mut self, c: u64) {
        self.int(c / 100);
        self.buf.push(b'.');
        self.two(c % 100);
    }

    fn opt_cents(&mut self, c: Option<u64>) {
        if let Some(c) = c {
            self.cents(c);
        }
    }

    fn two(&mut self, v: u64) {
        self.buf.push(b'0' + (v / 10) as u8);
        self.buf.push(b'0' + (v % 10) as u8);
    }

    /// `YYYY-MM-DD`.
    fn date(&mut self, d: Date) {
        self.int(u64::from(d.year));
        self.buf.push(b'-');
        self.two(u64::from(d.month));
        self.buf.push(b'-');
        self.two(u64::from(d.day));
    }
}

/// Writes `staging.usage` for the customers in `customers` (indexes); returns the data rows written.
///
/// # Errors
/// Those of `out`.
pub fn write_usage<W: Write>(
    seed: u64,
    months: u32,
    customers: Range<u64>,
    out: W,
) -> io::Result<(W, u64)> {
    let mut w = Rows::new(out, USAGE_HEADER);
    for index in customers {
        let c = Customer::new(seed, index, months);
        for month in 0..months {
            if let Some(u) = c.usage(month) {
                usage_row(&mut w, c.id, month, &u);
                w.end_row()?;
            }
        }
    }
    w.finish()
}

fn usage_row<W: Write>(w: &mut Rows<W>, id: u64, month: u32, u: &Usage) {
    w.int(id);
    w.sep();
    w.date(month_start(month));
    w.sep();
    w.opt_int(u.data_mb);
    w.sep();
    w.opt_int(u.voice_minutes);
    w.sep();
    w.opt_int(u.sms_count);
    w.sep();
    w.opt_int(u.roaming_mb);
}

/// Writes `staging.billing` for the customers in `customers`; returns the data rows written.
///
/// # Errors
/// Those of `out`.
pub fn write_billing<W: Write>(
    seed: u64,
    months: u32,
    customers: Range<u64>,
    out: W,
) -> io::Result<(W, u64)> {
    let mut w = Rows::new(out, BILLING_HEADER);
    for index in customers {
        let c = Customer::new(seed, index, months);
        for month in 0..months {
            if let Some(b) = c.bill(month) {
                bill_row(&mut w, c.id, month, &b);
                w.end_row()?;
            }
        }
    }
    w.finish()
}

fn bill_row<W: Write>(w: &mut Rows<W>, id: u64, month: u32, b: &Bill) {
    w.int(id);
    w.sep();
    w.date(month_start(month));
    w.sep();
    w.text(b.plan_code);
    w.sep();
    w.cents(b.amount_cents);
    w.sep();
    w.opt_cents(b.overage_cents);
    w.sep();
    if let Some((date, h, m, s)) = b.paid_at {
        w.date(date);
        w.buf.push(b' ');
        w.two(u64::from(h));
        w.buf.push(b':');
        w.two(u64::from(m));
        w.buf.push(b':');
        w.two(u64::from(s));
    }
    w.sep();
    w.text(b.segment);
}

/// Writes `staging.offers`; returns the data rows written.
///
/// # Errors
/// Those of `out`.
pub fn write_offers<W: Write>(offers: &[Offer], out: W) -> io::Result<(W, u64)> {
    let mut w = Rows::new(out, OFFERS_HEADER);
    for (i, o) in offers.iter().enumerate() {
        // Some codes quoted too: quotes work in any varchar column.
        if i % 7 == 3 {
            w.quoted(&o.code);
        } else {
            w.str(&o.code);
        }
        w.sep();
        if o.quote_name {
            w.quoted(&o.name);
        } else {
            w.str(&o.name);
        }
        w.sep();
        w.int(o.data_mb);
        w.sep();
        w.int(o.voice_minutes);
        w.sep();
        w.int(o.sms_count);
        w.sep();
        w.cents(o.fee_cents);
        w.sep();
        w.opt_cents(o.overage_cents);
        w.sep();
        w.str(o.active);
        w.sep();
        if let Some(d) = o.valid_from {
            w.date(d);
        }
        w.end_row()?;
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::offers;

    fn text(f: impl FnOnce(Vec<u8>) -> io::Result<(Vec<u8>, u64)>) -> (String, u64) {
        let (bytes, rows) = f(Vec::new()).unwrap();
        (String::from_utf8(bytes).unwrap(), rows)
    }

    #[test]
    fn numbers_and_dates_are_formatted_like_the_manifest_expects() {
        let mut w = Rows::new(Vec::new(), "h");
        w.int(0);
        w.sep();
        w.int(18_446_744_073_709_551_615);
        w.sep();
        w.cents(5);
        w.sep();
        w.cents(123_456);
        w.sep();
        w.date(month_start(11));
        w.end_row().unwrap();
        let (out, rows) = w.finish().unwrap();
        assert_eq!(rows, 1);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "h\n0|18446744073709551615|0.05|1234.56|2024-12-01\n"
        );
    }

    #[test]
    fn the_data_holds_every_special_case_the_format_rules_cover() {
        let (usage, n_usage) = text(|v| write_usage(42, 3, 0..2000, v));
        let (billing, n_billing) = text(|v| write_billing(42, 3, 0..2000, v));
        let (off, n_offers) = text(|v| write_offers(&offers(42, 24), v));
        assert_eq!(usage.lines().count() as u64, n_usage + 1);
        assert_eq!(billing.lines().count() as u64, n_billing + 1);
        assert_eq!(n_offers, 24);
        assert!(usage.starts_with(USAGE_HEADER));
        for (table, header) in [
            (&usage, USAGE_HEADER),
            (&billing, BILLING_HEADER),
            (&off, OFFERS_HEADER),
        ] {
            let columns = header.split('|').count();
            for line in table.lines() {
                // Outside quotes, every row has as many delimiters as the header.
                let unquoted: String = line.split('"').step_by(2).collect();
                assert_eq!(unquoted.split('|').count(), columns, "{line}");
            }
        }
        // Empty numeric fields (NULL), in the middle and at the end of a row.
        assert!(usage.lines().any(|l| l.ends_with('|')));
        assert!(usage.lines().any(|l| l.contains("||")));
        assert!(billing.lines().any(|l| l.contains("||")));
        // Empty and blank-only varchar fields, quoted varchar fields.
        assert!(billing.lines().any(|l| l.ends_with('|')));
        assert!(billing.lines().any(|l| l.ends_with("|   ")));
        assert!(billing.lines().any(|l| l.ends_with("| ")));
        assert!(billing.contains("|\"small business\""));
        assert!(billing.contains("|\"P-"));
        // Timestamps, explicit zero overage.
        assert!(billing.contains(":"));
        assert!(billing.contains("|0.00|"));
        // The delimiter inside quotes, multibyte names, every boolean spelling, missing dates.
        assert!(off.contains("|\"Family | Unlimited\"|"));
        assert!(off.contains("Dúo Ñandú"));
        assert!(off.contains("\n\"OF0004\"|"));
        for b in ["|t|", "|true|", "|f|", "|false|"] {
            assert!(off.contains(b), "{b}");
        }
        assert!(off.lines().any(|l| l.ends_with('|')));
    }

    #[test]
    fn golden_rows_for_the_default_seed() {
        // A change here changes the demo's data: make it on purpose, and say so in the commit.
        let (usage, _) = text(|v| write_usage(42, 3, 0..1, v));
        assert_eq!(
            usage,
            "customer_id|month|data_mb|voice_minutes|sms_count|roaming_mb\n\
             1000001|2024-01-01|7527|388|374|2294\n\
             1000001|2024-02-01|6297|410|235|4557\n\
             1000001|2024-03-01|9264|336|218|\n"
        );
        let (billing, _) = text(|v| write_billing(42, 3, 0..1, v));
        assert_eq!(
            billing.lines().nth(1),
            Some("1000001|2024-01-01|P-20G|29.99||2024-02-06 20:27:05|\"consumer\"")
        );
    }

    #[test]
    fn output_depends_only_on_the_seed_not_on_the_split() {
        let (whole, _) = text(|v| write_usage(5, 4, 0..300, v));
        let (a, _) = text(|v| write_usage(5, 4, 0..120, v));
        let (b, _) = text(|v| write_usage(5, 4, 120..300, v));
        let joined = format!("{a}{}", b.split_once('\n').unwrap().1);
        assert_eq!(whole, joined);
        let (other, _) = text(|v| write_usage(6, 4, 0..300, v));
        assert_ne!(whole, other);
    }
}
