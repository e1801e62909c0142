//! What the demo data means: tariff plans customers are billed on, the offer catalogue, customers of
//! a few kinds (light, heavy, talkers, roamers, ...) and their monthly usage and bills.
//!
//! Every value comes from [`Rng`] streams keyed by (seed, customer, month), so a customer's rows are the
//! same whichever part file or thread writes them, and billing can recompute the usage it charges for.

use crate::rng::Rng;

/// First month on file: months run from January 2024 onwards.
const START_YEAR: u32 = 2024;

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date {
    pub year: u32,
    pub month: u32,
    pub day: u32,
}

/// The first day of month `index` (0 = January 2024).
pub fn month_start(index: u32) -> Date {
    Date {
        year: START_YEAR + index / 12,
        month: index % 12 + 1,
        day: 1,
    }
}

/// A tariff plan a customer is billed on (`billing.plan_code`).
#[derive(Debug)]
pub struct Plan {
    pub code: &'static str,
    /// Included data; `None` is unlimited.
    pub data_mb: Option<u64>,
    pub fee_cents: u64,
    /// Price of each started GB over the allowance.
    pub rate_cents: u64,
}

/// Consumer plans in increasing size, then the business plan.
pub const PLANS: [Plan; 6] = [
    Plan {
        code: "P-1G",
        data_mb: Some(1024),
        fee_cents: 999,
        rate_cents: 800,
    },
    Plan {
        code: "P-5G",
        data_mb: Some(5 * 1024),
        fee_cents: 1999,
        rate_cents: 600,
    },
    Plan {
        code: "P-20G",
        data_mb: Some(20 * 1024),
        fee_cents: 2999,
        rate_cents: 400,
    },
    Plan {
        code: "P-50G",
        data_mb: Some(50 * 1024),
        fee_cents: 4499,
        rate_cents: 300,
    },
    Plan {
        code: "P-UNL",
        data_mb: None,
        fee_cents: 6499,
        rate_cents: 0,
    },
    Plan {
        code: "BIZ-100G",
        data_mb: Some(100 * 1024),
        fee_cents: 7900,
        rate_cents: 200,
    },
];

/// One row of `staging.offers`.
#[derive(Debug, Clone)]
pub struct Offer {
    pub code: String,
    pub name: String,
    /// Write the name in double quotes (always when it holds the delimiter).
    pub quote_name: bool,
    pub data_mb: u64,
    pub voice_minutes: u64,
    pub sms_count: u64,
    pub fee_cents: u64,
    /// `None` writes an empty field: the transform then charges 10.00 per GB.
    pub overage_cents: Option<u64>,
    /// How `active` is spelled: `t`, `true`, `f` or `false`.
    pub active: &'static str,
    pub valid_from: Option<Date>,
}

/// "Unlimited" data, as the catalogue writes it.
pub const UNLIMITED_MB: u64 = 10_000_000;

/// code suffix, name, quoted, data MB, voice, SMS, fee cents, overage cents, active, valid_from
/// (year, month) — the hand-made part of the catalogue, covering the format's special cases and
/// the ranking's tie-breaks.
type CatalogueRow = (
    &'static str,
    bool,
    u64,
    u64,
    u64,
    u64,
    Option<u64>,
    &'static str,
    Option<(u32, u32)>,
);

#[rustfmt::skip]
const CATALOGUE: [CatalogueRow; 24] = [
    ("Basic 1 GB", false, 1024, 100, 100, 799, Some(800), "t", Some((2023, 1))),
    ("Starter 3 GB", false, 3072, 200, 200, 1199, Some(600), "true", Some((2023, 3))),
    ("Smart 5 GB", true, 5120, 500, 500, 1499, Some(500), "t", Some((2023, 6))),
    // Multibyte UTF-8; no overage price (the transform's default applies).
    ("Dúo Ñandú 10 GB", false, 10240, 1000, 1000, 1999, None, "true", None),
    // The delimiter inside quotes.
    ("Family | Unlimited", true, UNLIMITED_MB, 10000, 10000, 5499, None, "t", Some((2022, 11))),
    // A comma: the result CSV must quote it.
    ("Home, Office & Travel", true, 51200, 3000, 3000, 3999, Some(300), "true", Some((2024, 1))),
    ("Web Saver 20 GB", false, 20480, 300, 100, 1749, Some(400), "t", None),
    // Same allowances and fee as the previous offer: only the offer code breaks the tie.
    ("Web Saver 20 GB (e-SIM)", false, 20480, 300, 100, 1749, Some(400), "true", Some((2024, 2))),
    ("Talk+Text Max", false, 2048, 10000, 10000, 2499, Some(900), "t", Some((2023, 9))),
    ("Große Daten 40 GB", false, 40960, 2000, 2000, 2999, Some(250), "true", None),
    // Cheap but inactive: must never be recommended.
    ("Legacy 2 GB", false, 2048, 1000, 1000, 500, Some(500), "f", Some((2019, 5))),
    ("Student 15 GB", true, 15360, 800, 2000, 1699, Some(400), "t", None),
    ("Senior Talk", false, 1024, 3000, 500, 1299, None, "true", Some((2023, 4))),
    ("Café Crème 8 GB", false, 8192, 500, 500, 1399, Some(450), "false", Some((2020, 1))),
    // 15.99 + one started GB at 4.00 = 19.99, the fee of "Dúo Ñandú 10 GB": same expected cost for a
    // 5-6 GB customer, and the lower fee wins.
    ("Saver 5 GB Plus", false, 5120, 1000, 1000, 1599, Some(400), "t", Some((2024, 1))),
    ("Business 100 GB", false, 102_400, 5000, 5000, 4900, Some(200), "true", None),
    ("Weekend Roamer 12 GB", false, 12288, 600, 300, 1850, Some(350), "t", Some((2023, 7))),
    ("Mini 500 MB", false, 500, 60, 60, 499, Some(1200), "true", Some((2023, 2))),
    ("Pro 30 GB", true, 30720, 1500, 1500, 2699, None, "false", Some((2021, 8))),
    ("日本 Roaming 25 GB", false, 25600, 1200, 800, 2750, Some(300), "t", Some((2024, 3))),
    ("Max Unlimited 5G", false, UNLIMITED_MB, 10000, 10000, 6999, None, "true", None),
    ("Flex 7 GB", false, 7168, 400, 400, 1549, Some(450), "t", Some((2023, 12))),
    ("Eco 4 GB", false, 4096, 250, 250, 1249, Some(550), "f", None),
    // Data only: fits nobody who talks.
    ("Data Only 60 GB", false, 61440, 0, 0, 3299, Some(200), "true", Some((2022, 5))),
];

/// The offer code of catalogue position `i` (0-based): `OF0001`, ... Fixed width and upper-case
/// alphanumeric, so every collation orders codes the same way.
fn offer_code(i: usize) -> String {
    format!("OF{:04}", i + 1)
}

/// The first `k` offers: the hand-made catalogue, then generated promotions.
pub fn offers(seed: u64, k: usize) -> Vec<Offer> {
    (0..k)
        .map(|i| match CATALOGUE.get(i) {
            Some(&(name, quote, data, voice, sms, fee, overage, active, from)) => Offer {
                code: offer_code(i),
                name: name.to_owned(),
                quote_name: quote || name.contains('|'),
                data_mb: data,
                voice_minutes: voice,
                sms_count: sms,
                fee_cents: fee,
                overage_cents: overage,
                active,
                valid_from: from.map(|(year, month)| Date {
                    year,
                    month,
                    day: 1,
                }),
            },
            None => promotion(seed, i),
        })
        .collect()
}

/// A generated offer beyond the catalogue: a data allowance, a fee roughly in line with it.
fn promotion(seed: u64, i: usize) -> Offer {
    let mut r = Rng::derive(seed, &[4, i as u64]);
    let gb = [1, 2, 4, 6, 8, 12, 16, 25, 35, 50, 75, 100][r.below(12) as usize];
    let voice = [100, 250, 500, 1000, 2000, 5000][r.below(6) as usize];
    let sms = [100, 250, 500, 1000, 2000, 5000][r.below(6) as usize];
    let fee = 500 + gb * 45 + voice / 4 + sms / 10 + r.below(600);
    // End every fee in 9 like a price tag.
    let fee = fee / 10 * 10 + 9;
    let active = match r.below(10) {
        0 => "f",
        1 => "false",
        2..=5 => "t",
        _ => "true",
    };
    let quote_name = r.chance(300);
    let overage = if r.chance(200) {
        None
    } else {
        Some(150 + r.below(8) * 50)
    };
    let valid_from = if r.chance(250) {
        None
    } else {
        Some(Date {
            year: 2021 + r.below(4) as u32,
            month: 1 + r.below(12) as u32,
            day: 1,
        })
    };
    Offer {
        code: offer_code(i),
        name: format!("Promo {} – {gb} GB", i + 1),
        quote_name,
        data_mb: gb * 1024,
        voice_minutes: voice,
        sms_count: sms,
        fee_cents: fee,
        overage_cents: overage,
        active,
        valid_from,
    }
}

/// Usage profiles; the names say what the ranking will do with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Light,
    Medium,
    Heavy,
    Extreme,
    /// Little data, much voice and SMS: few offers fit.
    Talker,
    /// Medium use plus roaming data.
    Roamer,
    /// Exactly an offer's allowances every month (boundaries of `>=` and `>`), sometimes 1 MB more.
    Flat,
    /// More voice than any offer includes: no recommendation at all.
    OffTheChart,
}

/// Allowances that flat customers use exactly: (data MB, voice, SMS) of catalogue offers.
const FLAT_POINTS: [(u64, u64, u64); 5] = [
    (1024, 100, 100),
    (3072, 200, 200),
    (5120, 500, 500),
    (10240, 1000, 1000),
    (20480, 300, 100),
];

/// Segments as written in `billing.segment` (before quoting / blanking).
const SEGMENTS: [(&str, u64); 5] = [
    ("consumer", 550),
    ("small business", 100),
    ("student", 80),
    ("senior", 70),
    ("enterprise", 50),
];

/// One customer: its kind, typical monthly usage, plan and the gaps in its history.
#[derive(Debug, Clone)]
pub struct Customer {
    pub id: u64,
    index: u64,
    seed: u64,
    months: u32,
    pub kind: Kind,
    data_mb: u64,
    voice: u64,
    sms: u64,
    roaming_mb: u64,
    flat_bump: bool,
    plan: usize,
    upgrade_last_month: bool,
    discount_pct: u64,
    /// `None`: the segment field is empty or blank (NULL).
    segment: Option<&'static str>,
    first_month: u32,
    usage_gap: Option<u32>,
    billing_gap: Option<u32>,
    billing_only: bool,
}

/// A month of `staging.usage`; `None` fields are written empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub data_mb: Option<u64>,
    pub voice_minutes: Option<u64>,
    pub sms_count: Option<u64>,
    pub roaming_mb: Option<u64>,
}

/// How a NULL-able text field is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    Plain(&'static str),
    Quoted(&'static str),
    /// Nothing between the delimiters.
    Empty,
    /// Only spaces.
    Blank(&'static str),
}

/// A month of `staging.billing`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bill {
    pub plan_code: Text,
    pub amount_cents: u64,
    pub overage_cents: Option<u64>,
    /// Date and (hour, minute, second).
    pub paid_at: Option<(Date, u32, u32, u32)>,
    pub segment: Text,
}

/// The customer id of customer `index`.
pub fn customer_id(index: u64) -> u64 {
    1_000_001 + index
}

impl Customer {
    /// Customer `index` (0-based) of a data set with `months` months.
    pub fn new(seed: u64, index: u64, months: u32) -> Self {
        let mut r = Rng::derive(seed, &[1, index]);
        let kind = match r.below(1000) {
            0..340 => Kind::Light,
            340..620 => Kind::Medium,
            620..770 => Kind::Heavy,
            770..810 => Kind::Extreme,
            810..910 => Kind::Talker,
            910..965 => Kind::Roamer,
            965..995 => Kind::Flat,
            _ => Kind::OffTheChart,
        };
        let (data_mb, voice, sms) = match kind {
            Kind::Light => (r.range(150, 3000), r.range(10, 250), r.range(0, 150)),
            Kind::Medium => (r.range(3000, 16000), r.range(100, 800), r.range(20, 600)),
            Kind::Heavy => (r.range(16000, 60000), r.range(200, 1500), r.range(50, 1500)),
            Kind::Extreme => (
                r.range(60000, 250_000),
                r.range(300, 2500),
                r.range(100, 2500),
            ),
            Kind::Talker => (r.range(100, 2500), r.range(1500, 6000), r.range(400, 4000)),
            Kind::Roamer => (r.range(4000, 30000), r.range(200, 1200), r.range(50, 800)),
            Kind::Flat => FLAT_POINTS[r.below(FLAT_POINTS.len() as u64) as usize],
            Kind::OffTheChart => (r.range(500, 5000), r.range(11000, 15000), r.range(100, 900)),
        };
        let roaming_mb = if kind == Kind::Roamer {
            r.range(100, 5000)
        } else {
            0
        };
        let flat_bump = r.chance(500);

        // Most customers are on a plan that fits, many on one too small, some on any plan.
        let fitting = PLANS[..5]
            .iter()
            .position(|p| p.data_mb.is_none_or(|mb| mb >= data_mb))
            .unwrap_or(4);
        let plan = match r.below(100) {
            0..60 => fitting,
            60..85 => fitting.saturating_sub(1),
            _ => r.below(PLANS.len() as u64) as usize,
        };
        let upgrade_last_month = months > 1 && plan < 4 && r.chance(80);
        let discount_pct = match r.below(100) {
            0..80 => 0,
            80..92 => 10,
            _ => 15,
        };
        let segment = {
            let mut pick = r.below(1000);
            let mut chosen = None;
            for (name, weight) in SEGMENTS {
                if pick < weight {
                    chosen = Some(name);
                    break;
                }
                pick -= weight;
            }
            chosen
        };

        let first_month = if months > 1 && r.chance(50) {
            r.range(1, u64::from(months) - 1) as u32
        } else {
            0
        };
        let pick_month =
            |r: &mut Rng| r.range(u64::from(first_month), u64::from(months) - 1) as u32;
        let usage_gap = (months > 1 && r.chance(20)).then(|| pick_month(&mut r));
        let billing_gap = (months > 1 && r.chance(20)).then(|| pick_month(&mut r));
        let billing_only = r.chance(5);
        Customer {
            id: customer_id(index),
            index,
            seed,
            months,
            kind,
            data_mb,
            voice,
            sms,
            roaming_mb,
            flat_bump,
            plan,
            upgrade_last_month,
            discount_pct,
            segment,
            first_month,
            usage_gap,
            billing_gap,
            billing_only,
        }
    }

    /// What the customer used in `month` (whether or not the usage export has the row).
    fn usage_values(&self, month: u32) -> Usage {
        let mut r = Rng::derive(self.seed, &[2, self.index, u64::from(month)]);
        if self.kind == Kind::Flat {
            let bump = u64::from(self.flat_bump && month + 1 == self.months);
            return Usage {
                data_mb: Some(self.data_mb + bump),
                voice_minutes: Some(self.voice),
                sms_count: Some(self.sms),
                roaming_mb: None,
            };
        }
        let data_mb = (!r.chance(5)).then(|| r.vary(self.data_mb, 70, 130));
        let voice_minutes = (!r.chance(3)).then(|| r.vary(self.voice, 70, 130));
        let sms_count = (!r.chance(3)).then(|| r.vary(self.sms, 60, 140));
        let roaming_mb = if self.roaming_mb > 0 && r.chance(600) {
            Some(r.vary(self.roaming_mb, 50, 150))
        } else if r.chance(15) {
            Some(0)
        } else {
            None
        };
        Usage {
            data_mb,
            voice_minutes,
            sms_count,
            roaming_mb,
        }
    }

    /// The `staging.usage` row for `month`, if the export has one.
    pub fn usage(&self, month: u32) -> Option<Usage> {
        let present =
            !self.billing_only && month >= self.first_month && Some(month) != self.usage_gap;
        present.then(|| self.usage_values(month))
    }

    /// The `staging.billing` row for `month`, if there is one.
    pub fn bill(&self, month: u32) -> Option<Bill> {
        if month < self.first_month || Some(month) == self.billing_gap {
            return None;
        }
        let mut r = Rng::derive(self.seed, &[3, self.index, u64::from(month)]);
        let plan_index = if self.upgrade_last_month && month + 1 == self.months {
            self.plan + 1
        } else {
            self.plan
        };
        let plan = &PLANS[plan_index];
        let mut amount = plan.fee_cents * (100 - self.discount_pct) / 100;
        if r.chance(40) {
            amount -= r.below(300).min(amount); // a one-off credit
        }
        let used = self.usage_values(month).data_mb.unwrap_or(0);
        let overage = match plan.data_mb {
            Some(allowance) if used > allowance => {
                Some((used - allowance).div_ceil(1024) * plan.rate_cents)
            }
            _ if r.chance(80) => Some(0), // written as 0.00 instead of empty
            _ => None,
        };
        let paid_at = (!r.chance(50)).then(|| {
            let next = month_start(month + 1);
            let date = Date {
                day: r.range(1, 28) as u32,
                ..next
            };
            (
                date,
                r.below(24) as u32,
                r.below(60) as u32,
                r.below(60) as u32,
            )
        });
        let plan_code = if r.chance(30) {
            Text::Quoted(plan.code)
        } else {
            Text::Plain(plan.code)
        };
        let segment = match self.segment {
            Some(s) if s.contains(' ') || r.chance(100) => Text::Quoted(s),
            Some(s) => Text::Plain(s),
            None => match r.below(3) {
                0 => Text::Empty,
                1 => Text::Blank(" "),
                _ => Text::Blank("   "),
            },
        };
        Some(Bill {
            plan_code,
            amount_cents: amount,
            overage_cents: overage,
            paid_at,
            segment,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_fits_the_declared_byte_lengths() {
        for o in offers(1, 200) {
            assert!(o.code.len() <= 16, "{}", o.code);
            assert!(o.name.len() <= 64, "{}", o.name);
            assert!(!o.name.contains('"') && !o.name.contains('\n'));
        }
        for p in PLANS {
            assert!(p.code.len() <= 16);
        }
    }

    #[test]
    fn every_kind_occurs_and_customers_are_reproducible() {
        let kinds: Vec<Kind> = (0..5000).map(|i| Customer::new(9, i, 3).kind).collect();
        for k in [
            Kind::Light,
            Kind::Medium,
            Kind::Heavy,
            Kind::Extreme,
            Kind::Talker,
            Kind::Roamer,
            Kind::Flat,
            Kind::OffTheChart,
        ] {
            assert!(kinds.contains(&k), "{k:?}");
        }
        let a = Customer::new(9, 17, 3);
        let b = Customer::new(9, 17, 3);
        for m in 0..3 {
            assert_eq!(a.usage(m), b.usage(m));
            assert_eq!(a.bill(m), b.bill(m));
        }
    }

    #[test]
    fn months_roll_over_years() {
        assert_eq!(
            month_start(13),
            Date {
                year: 2025,
                month: 2,
                day: 1
            }
        );
    }
}
