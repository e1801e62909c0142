//! The names UNLOAD gives its files.
//!
//! From the [UNLOAD reference](https://docs.aws.amazon.com/redshift/latest/dg/r_UNLOAD.html) and
//! the [UNLOAD examples](https://docs.aws.amazon.com/redshift/latest/dg/r_UNLOAD_command_examples.html):
//! - PARALLEL ON (the default) writes one or more files per slice, named
//!   `<name-prefix><slice-number>_part_<part-number>`: `venue_0000_part_00`, `venue_0001_part_00`,
//!   and `venue_0000_part_01` when MAXFILESIZE starts a further part on slice 0;
//! - PARALLEL OFF writes one file after the other, named with a serial number: the reference's
//!   PARALLEL paragraph shows `key000`, `key001`, `key002` and the "Unload VENUE serially" example
//!   `venue_serial_000`. (The same example then shows `lineorder_serial_0000.gz`, with four digits;
//!   two places against one, we follow the three-digit form.)
//! - GZIP, ZSTD and BZIP2 append `.gz`, `.zst` and `.bz2`;
//! - EXTENSION 'ext' appends `.ext` instead: the example `extension 'txt.gz' gzip` names the
//!   compression in the extension itself, so the compression's own suffix is not added as well.
//!   A leading `.` in `ext` is not doubled (the documentation is silent; `'.csv'` and `'csv'` give
//!   the same name);
//! - MANIFEST writes `<name-prefix>manifest`, whatever the compression or extension.

use crate::job::{Unload, UnloadCompression};

/// The file name of the manifest, after the prefix.
pub(super) const MANIFEST: &str = "manifest";

/// How one unload names its data files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Naming {
    parallel: bool,
    suffix: String,
}

impl Naming {
    pub(super) fn new(spec: &Unload) -> Self {
        let suffix = match &spec.extension {
            Some(ext) => format!(".{}", ext.trim_start_matches('.')),
            None => match spec.compression {
                UnloadCompression::None => String::new(),
                UnloadCompression::Gzip => ".gz".into(),
                UnloadCompression::Zstd => ".zst".into(),
                UnloadCompression::Bzip2 => ".bz2".into(),
            },
        };
        Naming {
            parallel: spec.parallel,
            suffix,
        }
    }

    /// The name (after the prefix) of `slice`'s `part`-th file; PARALLEL OFF has one slice, 0.
    pub(super) fn data_file(&self, slice: usize, part: usize) -> String {
        if self.parallel {
            format!("{slice:04}_part_{part:02}{}", self.suffix)
        } else {
            format!("{part:03}{}", self.suffix)
        }
    }
}

/// The manifest's text, laid out like the documentation's example ("Unload VENUE with a manifest
/// file"): `{"entries": [{"url":"..."}, ...]}`, one entry per line, in file-name order. (The
/// VERBOSE form, with sizes, row counts and the schema, is not written: the job manifest has no
/// way to ask for it.)
pub(super) fn manifest_json<'a>(urls: impl IntoIterator<Item = &'a str>) -> String {
    let entries: Vec<String> = urls
        .into_iter()
        .map(|u| format!("\n    {{\"url\":{}}}", serde_json::Value::from(u)))
        .collect();
    format!("{{\n  \"entries\": [{}\n  ]\n}}\n", entries.join(","))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::job::{Location, Overwrite, UnloadFormat, UnloadSource};

    pub(crate) fn spec() -> Unload {
        Unload {
            source: UnloadSource::Query("select 1".into()),
            to: Location::Local("out/res_".into()),
            header: false,
            format: UnloadFormat::Csv,
            delimiter: b',',
            compression: UnloadCompression::None,
            parallel: true,
            max_file_size_mb: None,
            overwrite: Overwrite::Fail,
            manifest: false,
            null_as: None,
            add_quotes: false,
            escape: false,
            extension: None,
        }
    }

    #[test]
    fn parallel_names_carry_slice_and_part() {
        let n = Naming::new(&spec());
        assert_eq!(n.data_file(0, 0), "0000_part_00");
        assert_eq!(n.data_file(1, 0), "0001_part_00");
        assert_eq!(n.data_file(3, 12), "0003_part_12");
        assert_eq!(n.data_file(0, 100), "0000_part_100");
    }

    #[test]
    fn serial_names_count_files() {
        let mut s = spec();
        s.parallel = false;
        let n = Naming::new(&s);
        assert_eq!(n.data_file(0, 0), "000");
        assert_eq!(n.data_file(0, 1), "001");
        assert_eq!(n.data_file(0, 1000), "1000");
    }

    #[test]
    fn compression_and_extension_suffixes() {
        let mut s = spec();
        for (c, suffix) in [
            (UnloadCompression::Gzip, ".gz"),
            (UnloadCompression::Zstd, ".zst"),
            (UnloadCompression::Bzip2, ".bz2"),
        ] {
            s.compression = c;
            assert_eq!(
                Naming::new(&s).data_file(0, 0),
                format!("0000_part_00{suffix}")
            );
        }
        s.compression = UnloadCompression::Gzip;
        s.extension = Some("txt.gz".into());
        assert_eq!(Naming::new(&s).data_file(1, 0), "0001_part_00.txt.gz");
        s.parallel = false;
        s.extension = Some(".csv".into());
        s.compression = UnloadCompression::None;
        assert_eq!(Naming::new(&s).data_file(0, 2), "002.csv");
    }

    #[test]
    fn manifest_lists_urls() {
        let text = manifest_json(["s3://b/res_0000_part_00", "s3://b/it\"s_0001_part_00"]);
        assert_eq!(
            text,
            "{\n  \"entries\": [\n    {\"url\":\"s3://b/res_0000_part_00\"},\n    {\"url\":\"s3://b/it\\\"s_0001_part_00\"}\n  ]\n}\n"
        );
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["entries"][1]["url"], "s3://b/it\"s_0001_part_00");
        assert_eq!(manifest_json([]), "{\n  \"entries\": [\n  ]\n}\n");
    }
}
