//! Throughput of the client-side COPY parser: `cargo bench -p etl-core --bench parse`.
//!
//! Generates about a million realistic rows (ids, decimals, dates, timestamps, text with some quoted
//! fields holding the delimiter, booleans), gzips them, and parses them with the original design's
//! format (`REMOVEQUOTES EMPTYASNULL BLANKSASNULL DELIMITER '|' IGNOREHEADER 1 GZIP`) for 0, 1 and 2
//! worker threads, binary and text COPY encodings. Reports decompressed MB/s and rows/s.
//!
//! `ETL_BENCH_ROWS` changes the row count; `ETL_BENCH_TEXT_OUT=path` writes the text COPY output (to
//! time `COPY ... FROM` of the same rows in PostgreSQL).

use std::io::Write;
use std::time::Instant;

use etl_core::job::{Column, ColumnType, Format};
use etl_core::load::{CopyEncoding, RowParser, parse_file};
use etl_core::sql::Ident;

/// xorshift64*, so every run parses the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: &[&str] = &[
    "alpha",
    "beta",
    "gamma",
    "delta",
    "usage",
    "billing",
    "catalogue",
    "premium",
    "basic",
    "Zürich",
    "São Paulo",
    "north",
    "south",
    "widget",
    "gadget",
];

fn columns() -> Vec<Column> {
    [
        ("id", "bigint"),
        ("account", "integer"),
        ("amount", "decimal(12,2)"),
        ("quantity", "smallint"),
        ("day", "date"),
        ("created_at", "timestamp"),
        ("name", "varchar(64)"),
        ("region", "varchar(16)"),
        ("active", "boolean"),
        ("score", "double precision"),
    ]
    .iter()
    .map(|(n, t)| Column {
        name: Ident::new(*n).unwrap(),
        ty: ColumnType::parse(t).unwrap(),
        nullable: true,
        encode: None,
        distkey: false,
        sortkey: None,
    })
    .collect()
}

fn generate(rows: u64) -> Vec<u8> {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut out = Vec::with_capacity(rows as usize * 120);
    out.extend_from_slice(b"id|account|amount|quantity|day|created_at|name|region|active|score\n");
    for id in 1..=rows {
        let w1 = WORDS[rng.below(WORDS.len() as u64) as usize];
        let w2 = WORDS[rng.below(WORDS.len() as u64) as usize];
        let name = match rng.below(10) {
            0 => format!("\"{w1} | {w2}\""), // quoted, with the delimiter inside
            1 => format!("\"{w1} {w2}\""),
            2 => String::new(), // EMPTYASNULL
            _ => format!("{w1} {w2} {}", rng.below(1000)),
        };
        let day = 1 + rng.below(28);
        let month = 1 + rng.below(12);
        writeln!(
            out,
            "{id}|{}|{}.{:02}|{}|2024-{month:02}-{day:02}|2024-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03}|{name}|{}|{}|{}",
            rng.below(1_000_000),
            rng.below(100_000),
            rng.below(100),
            rng.below(500),
            rng.below(24),
            rng.below(60),
            rng.below(60),
            rng.below(1000),
            if rng.below(20) == 0 { "" } else { WORDS[rng.below(9) as usize] },
            if rng.below(2) == 0 { "t" } else { "f" },
            rng.below(1_000_000) as f64 / 1000.0,
        )
        .unwrap();
    }
    out
}

fn main() {
    let rows: u64 = std::env::var("ETL_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too: keep that quick.
    let quick = std::env::args().all(|a| a != "--bench");
    let rows = if quick { rows.min(20_000) } else { rows };
    let cols = columns();
    let format = Format::default();
    let raw = generate(rows);
    // gzip's default level, as `gzip` and Hadoop's codec write files.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    let mb = raw.len() as f64 / 1e6;
    println!(
        "{rows} rows, {mb:.1} MB text, {:.1} MB gzipped",
        gz.len() as f64 / 1e6
    );

    let runs = if quick { 1 } else { 5 };
    let mut best = f64::MAX;
    for _ in 0..runs {
        let start = Instant::now();
        let mut sink = std::io::sink();
        std::io::copy(&mut flate2::read::MultiGzDecoder::new(&gz[..]), &mut sink).unwrap();
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!("gunzip only:                {:7.1} MB/s", mb / best);

    // The same rows uncompressed: the parser's own speed.
    let mut plain_format = format.clone();
    plain_format.compression = etl_core::job::Compression::None;
    let cases = [
        (CopyEncoding::Binary, &format, &gz, "gzip"),
        (CopyEncoding::Text, &format, &gz, "gzip"),
        (CopyEncoding::Binary, &plain_format, &raw, "plain"),
        (CopyEncoding::Text, &plain_format, &raw, "plain"),
    ];
    for (encoding, format, input, label) in cases {
        let parser = RowParser::new(&cols, format, encoding).unwrap();
        for workers in [0, 1, 2] {
            let mut best = f64::MAX;
            let mut out_bytes = 0;
            let mut text_out = Vec::new();
            let keep = encoding == CopyEncoding::Text && workers == 2 && label == "plain";
            for _ in 0..runs {
                out_bytes = 0;
                text_out.clear();
                let start = Instant::now();
                let stats = parse_file(&input[..], "bench.txt.gz", &parser, workers, &mut |b| {
                    out_bytes += b.data.len();
                    if keep {
                        text_out.extend_from_slice(&b.data);
                    }
                    Ok(())
                })
                .unwrap();
                best = best.min(start.elapsed().as_secs_f64());
                assert_eq!(stats.rows, rows);
                assert_eq!(stats.rejected, 0);
            }
            println!(
                "{label:5} {encoding:6?} {workers} worker(s): {:7.1} MB/s {:10.0} rows/s  ({:.1} MB out)",
                mb / best,
                rows as f64 / best,
                out_bytes as f64 / 1e6
            );
            if keep && let Ok(path) = std::env::var("ETL_BENCH_TEXT_OUT") {
                std::fs::write(&path, &text_out).unwrap();
                println!("text COPY output written to {path}");
            }
        }
    }
}
