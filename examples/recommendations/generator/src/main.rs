//! `etl-demo-data`: writes the demo job's input files (`examples/recommendations/job.json`).
//!
//! ```text
//! etl-demo-data --out examples/recommendations/data            # 2,000 customers × 3 months
//! etl-demo-data --out /tmp/big --rows 10000000 --files-per-table 8
//! ```
//!
//! Layout: `OUT/usage/part-NNNN.txt.gz` and `OUT/billing/part-NNNN.txt.gz` (`--files-per-table`
//! parts each, customers split into contiguous ranges) and `OUT/offers.txt.gz`: gzipped, UTF-8,
//! `|`-delimited, one header row. Stale `part-*.txt.gz` files in those folders are removed first,
//! since the job loads every file under the prefix.
//!
//! The output is a pure function of the options: a hand-written SplitMix64 ([`rng`]) seeded per
//! customer and month, integer arithmetic only, so neither a dependency upgrade nor the number of
//! part files or threads changes a row. The data exercises the manifest's format rules — quoted
//! fields (one with the delimiter inside), empty and blank varchar fields, empty numeric fields,
//! `t`/`true`/`f`/`false`, multibyte names — and is shaped so the ranking has something to decide:
//! see [`model`].
#![forbid(unsafe_code)]

mod model;
mod rng;
mod text;

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use flate2::Compression;
use flate2::write::GzEncoder;

const USAGE: &str = "\
Writes the recommendations demo's input files: gzipped, '|'-delimited text with a header row.

Usage: etl-demo-data --out DIR [OPTIONS]

Options:
  --out DIR               folder to write usage/, billing/ and offers.txt.gz into (created)
  --customers N           number of customers [default: 2000]
  --months M              months of history, from January 2024 [default: 3]
  --offers K              offers in the catalogue [default: 24]
  --rows TOTAL            size the three tables to about TOTAL rows together (sets --customers)
  --files-per-table F     part files for usage and billing [default: 1]
  --seed S                the data is a pure function of the options and this seed [default: 42]
  -h, --help              print this help
";

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    out: PathBuf,
    customers: u64,
    months: u32,
    offers: usize,
    files: u32,
    seed: u64,
}

/// Parses the command line (without the program name); `Ok(None)` means help was asked for.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
    let mut out = None;
    let mut customers = None;
    let mut rows = None;
    let mut months = 3u32;
    let mut offers = 24usize;
    let mut files = 1u32;
    let mut seed = 42u64;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let known = [
            "--out",
            "--customers",
            "--months",
            "--offers",
            "--rows",
            "--files-per-table",
            "--seed",
        ];
        if !known.contains(&name.as_str()) {
            return Err(format!("unknown argument '{arg}'"));
        }
        let value = match inline {
            Some(v) => v,
            None => args.next().ok_or_else(|| format!("{name} needs a value"))?,
        };
        match name.as_str() {
            "--out" => out = Some(PathBuf::from(value)),
            "--customers" => customers = Some(number(&name, &value, 1, 1 << 40)?),
            "--rows" => rows = Some(number(&name, &value, 1, 1 << 42)?),
            "--months" => months = number(&name, &value, 1, 600)? as u32,
            "--offers" => offers = number(&name, &value, 1, 9999)? as usize,
            "--files-per-table" => files = number(&name, &value, 1, 9999)? as u32,
            _ => seed = number(&name, &value, 0, u64::MAX)?,
        }
    }
    let out = out.ok_or("--out DIR is required")?;
    let customers = match (customers, rows) {
        (Some(_), Some(_)) => return Err("give --customers or --rows, not both".into()),
        (Some(c), None) => c,
        (None, Some(total)) => {
            customers_for_rows(total.saturating_sub(offers as u64), seed, months)
        }
        (None, None) => 2000,
    };
    Ok(Some(Options {
        out,
        customers,
        months,
        offers,
        files,
        seed,
    }))
}

/// How many customers give about `rows` usage and billing rows: a customer has up to one row per
/// month in each table, fewer when it joined late or has a gap; the rate is measured on a sample.
fn customers_for_rows(rows: u64, seed: u64, months: u32) -> u64 {
    const SAMPLE: u64 = 10_000;
    let sampled: u64 = (0..SAMPLE)
        .map(|i| {
            let c = model::Customer::new(seed, i, months);
            (0..months)
                .map(|m| u64::from(c.usage(m).is_some()) + u64::from(c.bill(m).is_some()))
                .sum::<u64>()
        })
        .sum();
    (u128::from(rows) * u128::from(SAMPLE) / u128::from(sampled.max(1))).max(1) as u64
}

fn number(name: &str, value: &str, min: u64, max: u64) -> Result<u64, String> {
    let v: u64 = value
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{name} '{value}': not a whole number"))?;
    if !(min..=max).contains(&v) {
        return Err(format!("{name} {v}: must be {min} to {max}"));
    }
    Ok(v)
}

/// One file to write.
#[derive(Debug)]
enum Job {
    Usage { part: u32 },
    Billing { part: u32 },
    Offers,
}

/// What a job wrote.
#[derive(Debug, Default, Clone, Copy)]
struct Written {
    usage: u64,
    billing: u64,
    offers: u64,
}

fn part_path(dir: &Path, part: u32) -> PathBuf {
    dir.join(format!("part-{part:04}.txt.gz"))
}

/// Customers of part `part` out of `files`: contiguous, near-equal ranges.
fn part_range(customers: u64, files: u32, part: u32) -> std::ops::Range<u64> {
    let f = u64::from(files);
    let p = u64::from(part);
    customers * p / f..customers * (p + 1) / f
}

fn gz_file(path: &Path) -> io::Result<GzEncoder<BufWriter<File>>> {
    let file = File::create(path)?;
    Ok(GzEncoder::new(
        BufWriter::with_capacity(1 << 20, file),
        Compression::fast(),
    ))
}

fn close(enc: GzEncoder<BufWriter<File>>) -> io::Result<()> {
    enc.finish()?.into_inner().map_err(|e| e.into_error())?;
    Ok(())
}

fn run_job(o: &Options, job: &Job) -> Result<Written, String> {
    let (path, result) = match *job {
        Job::Usage { part } => {
            let path = part_path(&o.out.join("usage"), part);
            let r = gz_file(&path).and_then(|f| {
                let range = part_range(o.customers, o.files, part);
                let (f, rows) = text::write_usage(o.seed, o.months, range, f)?;
                close(f)?;
                Ok(Written {
                    usage: rows,
                    ..Written::default()
                })
            });
            (path, r)
        }
        Job::Billing { part } => {
            let path = part_path(&o.out.join("billing"), part);
            let r = gz_file(&path).and_then(|f| {
                let range = part_range(o.customers, o.files, part);
                let (f, rows) = text::write_billing(o.seed, o.months, range, f)?;
                close(f)?;
                Ok(Written {
                    billing: rows,
                    ..Written::default()
                })
            });
            (path, r)
        }
        Job::Offers => {
            let path = o.out.join("offers.txt.gz");
            let r = gz_file(&path).and_then(|f| {
                let (f, rows) = text::write_offers(&model::offers(o.seed, o.offers), f)?;
                close(f)?;
                Ok(Written {
                    offers: rows,
                    ..Written::default()
                })
            });
            (path, r)
        }
    };
    result.map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Creates `dir` and removes the `part-*.txt.gz` files a previous run may have left in it.
fn prepare(dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("part-") && name.ends_with(".txt.gz") {
            fs::remove_file(entry.path())
                .map_err(|e| format!("cannot remove {}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Writes every file, in parallel over the available cores; returns the rows written.
fn generate(o: &Options) -> Result<Written, String> {
    prepare(&o.out.join("usage"))?;
    prepare(&o.out.join("billing"))?;
    // Usage and billing parts interleaved, so two threads share the big work; the small offers last.
    let mut jobs = Vec::new();
    for part in 0..o.files {
        jobs.push(Job::Usage { part });
        jobs.push(Job::Billing { part });
    }
    jobs.push(Job::Offers);

    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len());
    let next = AtomicUsize::new(0);
    let total = Mutex::new(Ok(Written::default()));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let r = run_job(o, job);
                    let mut total = total.lock().unwrap_or_else(|p| p.into_inner());
                    match (&mut *total, r) {
                        (Ok(t), Ok(w)) => {
                            t.usage += w.usage;
                            t.billing += w.billing;
                            t.offers += w.offers;
                        }
                        (Ok(_), Err(e)) => *total = Err(e),
                        (Err(_), _) => return,
                    }
                }
            });
        }
    });
    total.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("etl-demo-data: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    match generate(&options) {
        Ok(w) => {
            let rows = w.usage + w.billing + w.offers;
            let secs = started.elapsed().as_secs_f64();
            let _ = writeln!(
                io::stderr(),
                "etl-demo-data: wrote {} files, {} rows (usage {}, billing {}, offers {}; {} customers × {} months, seed {}) to {} in {secs:.2} s",
                2 * options.files + 1,
                grouped(rows),
                grouped(w.usage),
                grouped(w.billing),
                grouped(w.offers),
                grouped(options.customers),
                options.months,
                options.seed,
                options.out.display(),
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("etl-demo-data: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Options>, String> {
        parse_args(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn defaults_and_rows_sizing() {
        let o = parse(&["--out", "d"]).unwrap().unwrap();
        assert_eq!(
            o,
            Options {
                out: "d".into(),
                customers: 2000,
                months: 3,
                offers: 24,
                files: 1,
                seed: 42
            }
        );
        let o = parse(&["--out=d", "--rows", "10_000_000", "--months=4"])
            .unwrap()
            .unwrap();
        let per_customer = 9_999_976.0 / o.customers as f64;
        assert!((7.5..8.0).contains(&per_customer), "{per_customer}");
        assert!(parse(&["-h"]).unwrap().is_none());
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        let err = |a: &[&str]| parse(a).unwrap_err();
        assert!(err(&[]).contains("--out"));
        assert!(err(&["--out", "d", "--rows", "5", "--customers", "5"]).contains("not both"));
        assert!(err(&["--out", "d", "--months", "0"]).contains("1 to 600"));
        assert!(err(&["--out", "d", "--seed", "x"]).contains("whole number"));
        assert!(err(&["--out", "d", "--wat"]).contains("unknown"));
        assert!(err(&["--out"]).contains("needs a value"));
    }

    #[test]
    fn parts_cover_every_customer_once() {
        let mut next = 0;
        for p in 0..7 {
            let r = part_range(100, 7, p);
            assert_eq!(r.start, next);
            next = r.end;
        }
        assert_eq!(next, 100);
    }

    #[test]
    fn grouping() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(10_000_000), "10,000,000");
    }
}
