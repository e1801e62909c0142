//! Random bytes under random COPY options: the parser must not panic, every accepted row must be
//! well-formed COPY data, and the output must not depend on how the input is cut into pieces or on
//! the number of worker threads.
#![no_main]

use etl_core::job::{Column, ColumnType, Format, FormatSpec};
use etl_core::load::{Batch, CopyEncoding, FileStats, LoadError, RowParser, parse_file_with_chunk};
use etl_core::sql::Ident;
use libfuzzer_sys::fuzz_target;

const TYPES: &[&str] = &[
    "smallint",
    "integer",
    "bigint",
    "decimal(10,3)",
    "decimal(38,38)",
    "real",
    "double precision",
    "boolean",
    "char(3)",
    "varchar(6)",
    "date",
    "timestamp",
    "timestamptz",
    "time",
    "timetz",
];

/// Reads the data in pieces whose sizes come from the input.
struct Dribble<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
    i: usize,
}

impl std::io::Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = 1 + usize::from(
            self.sizes
                .get(self.i % self.sizes.len().max(1))
                .copied()
                .unwrap_or(7)
                % 16,
        );
        self.i += 1;
        let n = want.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn run(
    parser: &RowParser,
    reader: impl std::io::Read + Send,
    workers: usize,
    chunk: usize,
) -> (Vec<u8>, u64, Vec<LoadError>, FileStats) {
    let mut data = Vec::new();
    let mut rows = 0;
    let mut errors = Vec::new();
    let stats = parse_file_with_chunk(reader, "fuzz", parser, workers, chunk, &mut |b: Batch| {
        data.extend_from_slice(&b.data);
        rows += b.rows;
        errors.extend(b.errors);
        Ok(())
    })
    .expect("plain input never fails as a whole");
    (data, rows, errors, stats)
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 8 {
        return;
    }
    let (opts, data) = input.split_at(8);
    let bit = |i: usize| opts[i / 8] >> (i % 8) & 1 == 1;
    let delimiter = ["|", ",", "\\011", ";"][usize::from(opts[0] & 3)];
    let quoting = (opts[0] >> 2) % 3;
    let mut spec = serde_json::json!({
        "delimiter": delimiter,
        "ignoreheader": opts[1] % 3,
        "removequotes": quoting == 1,
        "csv": quoting == 2,
        "emptyasnull": bit(16),
        "blanksasnull": bit(17),
        "fillrecord": bit(18),
        "ignoreblanklines": bit(19),
        "trimblanks": bit(20),
        "roundec": bit(21),
        "truncatecolumns": bit(22),
        "acceptanydate": bit(23),
        "acceptinvchars": bit(24),
        "escape": quoting != 2 && bit(25),
        "compression": "none",
    });
    if bit(26) {
        spec["null_as"] = "NULL".into();
    }
    match opts[4] % 4 {
        0 => {
            spec["dateformat"] = "DD/MM/YYYY".into();
            spec["timeformat"] = "YYYY-MM-DD HH12:MI:SS.SSS AM".into();
        }
        1 => spec["timeformat"] = "epochsecs".into(),
        2 => spec["timeformat"] = "epochmillisecs".into(),
        _ => {}
    }
    let spec: FormatSpec = serde_json::from_value(spec).unwrap();
    let format: Format = Format::default().apply(&spec).unwrap();
    let ncols = 1 + usize::from(opts[5] % 4);
    let columns: Vec<Column> = (0..ncols)
        .map(|i| Column {
            name: Ident::new(format!("c{i}")).unwrap(),
            ty: ColumnType::parse(
                TYPES[usize::from(opts[6].rotate_left(i as u32 * 2)) % TYPES.len()],
            )
            .unwrap(),
            nullable: opts[7] >> i & 1 == 0,
            encode: None,
            distkey: false,
            sortkey: None,
        })
        .collect();
    let encoding = if bit(27) {
        CopyEncoding::Binary
    } else {
        CopyEncoding::Text
    };
    let parser = RowParser::new(&columns, &format, encoding).unwrap();
    let whole = run(&parser, data, 0, 1 << 20);
    let pieces = run(
        &parser,
        Dribble {
            data,
            sizes: opts,
            i: 0,
        },
        2,
        1 + usize::from(opts[3] % 32),
    );
    assert_eq!(whole, pieces, "the output depends on how the input is cut");
    assert_eq!(whole.1, whole.3.rows);
    assert_eq!(whole.2.len() as u64, whole.3.rejected);
    // Every row is a well-formed tuple of the table's width.
    match encoding {
        CopyEncoding::Text => {
            let mut n = 0;
            for line in whole.0.split_inclusive(|&b| b == b'\n') {
                assert_eq!(line.last(), Some(&b'\n'));
                let fields = line.iter().filter(|&&b| b == b'\t').count() + 1;
                assert_eq!(fields, ncols);
                assert!(std::str::from_utf8(line).is_ok());
                n += 1;
            }
            assert_eq!(n, whole.1);
        }
        CopyEncoding::Binary => {
            let mut d = &whole.0[..];
            let mut n = 0;
            while !d.is_empty() {
                assert_eq!(i16::from_be_bytes([d[0], d[1]]) as usize, ncols);
                d = &d[2..];
                for _ in 0..ncols {
                    let len = i32::from_be_bytes([d[0], d[1], d[2], d[3]]);
                    d = &d[4..];
                    if len >= 0 {
                        d = &d[len as usize..];
                    }
                }
                n += 1;
            }
            assert_eq!(n, whole.1);
        }
    }
});
