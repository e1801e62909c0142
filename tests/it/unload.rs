//! The local UNLOAD against a real PostgreSQL: Redshift's file layout, formats and overwrite rules,
//! to a local folder and to S3 on moto.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use etl_core::job::{Location, Overwrite, Unload, UnloadCompression, UnloadFormat, UnloadSource};
use etl_core::unload::{UnloadOptions, UnloadReport, unload_postgres};
use etl_core::{Error, ErrorKind};
use etl_tests::{client, server};
use tokio_util::sync::CancellationToken;

/// A CSV unload with a header, PARALLEL ON, to `to`.
fn spec(query: &str, to: impl Into<PathBuf>) -> Unload {
    Unload {
        source: UnloadSource::Query(query.into()),
        to: Location::Local(to.into()),
        header: true,
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

async fn unload(
    c: &tokio_postgres::Client,
    spec: &Unload,
    slices: usize,
) -> Result<UnloadReport, Error> {
    unload_postgres(
        c,
        spec,
        &UnloadOptions::default().with_slices(slices),
        &CancellationToken::new(),
    )
    .await
}

/// The names of the files below `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

fn decompress(c: UnloadCompression, data: &[u8]) -> String {
    let mut out = String::new();
    match c {
        UnloadCompression::None => out = String::from_utf8(data.to_vec()).unwrap(),
        UnloadCompression::Gzip => {
            flate2::read::MultiGzDecoder::new(data)
                .read_to_string(&mut out)
                .unwrap();
        }
        UnloadCompression::Zstd => {
            zstd::stream::read::Decoder::new(data)
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
        }
        UnloadCompression::Bzip2 => {
            bzip2::read::MultiBzDecoder::new(data)
                .read_to_string(&mut out)
                .unwrap();
        }
    }
    out
}

fn read(path: &Path, c: UnloadCompression) -> String {
    decompress(c, &std::fs::read(path).unwrap())
}

#[tokio::test]
async fn parallel_on_deals_rows_to_slices_with_a_header_in_every_file() {
    let local = server().await;
    let c = client(&local).await;
    let dir = tempfile::tempdir().unwrap();
    let s = spec(
        "select i as n, 'v' || i as \"it's\" from generate_series(1, 5) i order by i",
        dir.path().join("res_"),
    );
    let report = unload(&c, &s, 2).await.unwrap();
    assert_eq!(names(dir.path()), ["res_0000_part_00", "res_0001_part_00"]);
    assert_eq!(
        read(
            &dir.path().join("res_0000_part_00"),
            UnloadCompression::None
        ),
        "n,it's\n1,v1\n3,v3\n5,v5\n"
    );
    assert_eq!(
        read(
            &dir.path().join("res_0001_part_00"),
            UnloadCompression::None
        ),
        "n,it's\n2,v2\n4,v4\n"
    );
    assert_eq!(report.rows, 5);
    assert_eq!(
        report.files.iter().map(|f| f.rows).collect::<Vec<_>>(),
        [3, 2]
    );
    for f in &report.files {
        assert!(f.location.ends_with("_part_00"), "{}", f.location);
        assert_eq!(std::fs::metadata(&f.location).unwrap().len(), f.bytes);
    }
    assert_eq!(report.manifest, None);

    // Four slices, a folder as the destination: names start with the slice number.
    let folder = dir.path().join("folder/");
    let mut s = spec("select 1 as one", &folder);
    s.header = false;
    let report = unload(&c, &s, 4).await.unwrap();
    assert_eq!(
        names(&folder),
        [
            "0000_part_00",
            "0001_part_00",
            "0002_part_00",
            "0003_part_00"
        ]
    );
    assert_eq!(
        read(&folder.join("0000_part_00"), UnloadCompression::None),
        "1\n"
    );
    assert_eq!(
        read(&folder.join("0003_part_00"), UnloadCompression::None),
        ""
    );
    assert_eq!(report.rows, 1);
}

#[tokio::test]
async fn parallel_off_writes_one_serial_file_in_query_order() {
    let local = server().await;
    let c = client(&local).await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(
        "select i from generate_series(1, 1000) i order by i desc",
        dir.path().join("venue_serial_"),
    );
    s.parallel = false;
    let report = unload(&c, &s, 2).await.unwrap();
    assert_eq!(names(dir.path()), ["venue_serial_000"]);
    let text = read(
        &dir.path().join("venue_serial_000"),
        UnloadCompression::None,
    );
    let expected: String = std::iter::once("i\n".to_owned())
        .chain((1..=1000).rev().map(|i| format!("{i}\n")))
        .collect();
    assert_eq!(text, expected);
    assert_eq!(report.rows, 1000);
}

#[tokio::test]
async fn compressed_files_round_trip_and_take_the_right_suffix() {
    let local = server().await;
    let c = client(&local).await;
    let dir = tempfile::tempdir().unwrap();
    let query = "select i, md5(i::text) as h, null::text as nothing from generate_series(1, 20000) i order by i";
    let mut plain = spec(query, dir.path().join("plain_"));
    plain.parallel = false;
    unload(&c, &plain, 2).await.unwrap();
    let expected = read(&dir.path().join("plain_000"), UnloadCompression::None);
    assert!(expected.starts_with("i,h,nothing\n1,c4ca4238a0b923820dcc509a6f75849b,\n"));

    for (compression, name) in [
        (UnloadCompression::Gzip, "gz_000.gz"),
        (UnloadCompression::Zstd, "zst_000.zst"),
        (UnloadCompression::Bzip2, "bz2_000.bz2"),
    ] {
        let prefix = name.split('_').next().unwrap();
        let mut s = spec(query, dir.path().join(format!("{prefix}_")));
        s.parallel = false;
        s.compression = compression;
        let report = unload(&c, &s, 2).await.unwrap();
        let path = dir.path().join(name);
        assert_eq!(read(&path, compression), expected, "{compression:?}");
        let size = std::fs::metadata(&path).unwrap().len();
        assert_eq!(report.files[0].bytes, size);
        assert!(
            size < expected.len() as u64 * 3 / 4,
            "{compression:?} compresses"
        );
    }

    // EXTENSION replaces the compression's suffix; PARALLEL ON keeps slice and part numbers.
    let mut s = spec(query, dir.path().join("ext_"));
    s.compression = UnloadCompression::Gzip;
    s.extension = Some("csv.gz".into());
    let report = unload(&c, &s, 2).await.unwrap();
    assert_eq!(report.rows, 20000);
    let ext: Vec<_> = names(dir.path())
        .into_iter()
        .filter(|n| n.starts_with("ext_"))
        .collect();
    assert_eq!(ext, ["ext_0000_part_00.csv.gz", "ext_0001_part_00.csv.gz"]);
    let first = read(&dir.path().join(&ext[0]), UnloadCompression::Gzip);
    assert!(first.starts_with("i,h,nothing\n1,"));
}

#[tokio::test]
async fn maxfilesize_starts_further_parts_with_their_own_header() {
    let local = server().await;
    let c = client(&local).await;
    let dir = tempfile::tempdir().unwrap();
    // About 12 MB of text, 6.5 MB gzipped: more than the 5 MB minimum MAXFILESIZE either way.
    let query = "select i, md5(i::text) || md5((-i)::text) as h from generate_series(1, 160000) i order by i";
    let limit: u64 = 5 * 1024 * 1024;
    let mut all_rows: Option<String> = None;
    for (compression, expected) in [
        (
            UnloadCompression::None,
            &["big_000", "big_001", "big_002"][..],
        ),
        (UnloadCompression::Gzip, &["big_000.gz", "big_001.gz"][..]),
    ] {
        let sub = dir.path().join(format!("{compression:?}"));
        let mut s = spec(query, sub.join("big_"));
        s.parallel = false;
        s.compression = compression;
        s.max_file_size_mb = Some(5);
        let report = unload(&c, &s, 2).await.unwrap();
        assert_eq!(names(&sub), expected, "{compression:?}");
        assert_eq!(report.rows, 160_000);
        let mut rows = String::new();
        for (i, f) in report.files.iter().enumerate() {
            assert!(f.bytes <= limit, "{compression:?}: {} bytes", f.bytes);
            if i + 1 < report.files.len() {
                assert!(
                    f.bytes > limit * 9 / 10,
                    "{compression:?}: only {} bytes",
                    f.bytes
                );
            }
            let text = read(Path::new(&f.location), compression);
            let body = text.strip_prefix("i,h\n").expect("a header in every file");
            assert_eq!(body.lines().count() as u64, f.rows);
            rows.push_str(body);
        }
        match &all_rows {
            None => all_rows = Some(rows),
            Some(first) => assert!(*first == rows, "{compression:?}: the same rows, in order"),
        }
    }
    assert!(
        all_rows
            .unwrap()
            .starts_with("1,c4ca4238a0b923820dcc509a6f75849b")
    );

    // PARALLEL ON: each slice starts its own further parts.
    let sub = dir.path().join("parallel");
    let mut s = spec(query, sub.join("p_"));
    s.max_file_size_mb = Some(5);
    let report = unload(&c, &s, 2).await.unwrap();
    assert_eq!(
        names(&sub),
        [
            "p_0000_part_00",
            "p_0000_part_01",
            "p_0001_part_00",
            "p_0001_part_01"
        ]
    );
    assert_eq!(report.rows, 160_000);
}

#[tokio::test]
async fn existing_files_fail_the_unload_unless_allowoverwrite_or_cleanpath() {
    let local = server().await;
    let c = client(&local).await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec("select 1 as a", dir.path().join("res_"));
    s.parallel = false;
    unload(&c, &s, 2).await.unwrap();
    std::fs::write(dir.path().join("res_old.txt"), "old").unwrap();
    std::fs::write(dir.path().join("other.txt"), "other").unwrap();

    // Default: refused, nothing touched.
    s.source = UnloadSource::Query("select 2 as a".into());
    let err = unload(&c, &s, 2).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidJob, "{err}");
    let message = err.to_string();
    assert!(message.contains("already holds 2 object(s)"), "{message}");
    assert!(message.contains("ALLOWOVERWRITE"), "{message}");
    assert_eq!(
        read(&dir.path().join("res_000"), UnloadCompression::None),
        "a\n1\n"
    );

    // ALLOWOVERWRITE: replaces res_000, leaves the rest.
    s.overwrite = Overwrite::Allow;
    unload(&c, &s, 2).await.unwrap();
    assert_eq!(
        read(&dir.path().join("res_000"), UnloadCompression::None),
        "a\n2\n"
    );
    assert_eq!(names(dir.path()), ["other.txt", "res_000", "res_old.txt"]);

    // CLEANPATH: everything under the prefix goes first, nothing else.
    s.overwrite = Overwrite::Clean;
    s.parallel = true;
    unload(&c, &s, 2).await.unwrap();
    assert_eq!(
        names(dir.path()),
        ["other.txt", "res_0000_part_00", "res_0001_part_00"]
    );
}

#[tokio::test]
async fn csv_quotes_delimiters_quotes_and_line_breaks_only() {
    let local = server().await;
    let c = client(&local).await;
    c.batch_execute(
        "create table hostile (id int, v text);
         insert into hostile values
           (1, 'a,b'), (2, 'say \"hi\"'), (3, E'line1\\nline2'), (4, E'cr\\rx'),
           (5, ''), (6, null), (7, 'ünïcödé 名前 🚀'), (8, E'back\\\\slash'), (9, 'pipe|tab' || chr(9)),
           (10, 'NULL'), (11, ' padded ')",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(
        "select id, v as \"v,1\" from hostile order by id",
        dir.path().join("csv_"),
    );
    s.parallel = false;
    unload(&c, &s, 2).await.unwrap();
    assert_eq!(
        read(&dir.path().join("csv_000"), UnloadCompression::None),
        "id,\"v,1\"\n1,\"a,b\"\n2,\"say \"\"hi\"\"\"\n3,\"line1\nline2\"\n4,\"cr\rx\"\n5,\n6,\n\
         7,ünïcödé 名前 🚀\n8,back\\slash\n9,pipe|tab\t\n10,NULL\n11, padded \n"
    );

    // Another delimiter, and NULL AS to tell NULL from the empty string.
    s.delimiter = b'|';
    s.null_as = Some("\\N".into());
    s.to = Location::Local(dir.path().join("pipe_"));
    unload(&c, &s, 2).await.unwrap();
    let text = read(&dir.path().join("pipe_000"), UnloadCompression::None);
    assert!(text.starts_with("id|v,1\n1|a,b\n"), "{text}");
    assert!(text.contains("\n5|\n6|\\N\n"), "{text}");
    assert!(text.contains("\n9|\"pipe|tab\t\"\n"), "{text}");
}

#[tokio::test]
async fn text_format_with_addquotes_escape_and_null_as() {
    let local = server().await;
    let c = client(&local).await;
    let dir = tempfile::tempdir().unwrap();
    let query = "select * from (values
        (1, 'a|b', date '2024-01-02'),
        (2, E'x\\\\y\\nz\\rw', null),
        (3, 'say \"hi\" it''s', date '2024-12-31'),
        (4, null, null)) as t(\"id\", \"name|x\", \"at\") order by 1";
    let mut s = spec(query, dir.path().join("plain_"));
    s.format = UnloadFormat::Text;
    s.delimiter = b'|';
    s.parallel = false;
    unload(&c, &s, 2).await.unwrap();
    // Redshift's default text: values as they are, NULL as nothing.
    assert_eq!(
        read(&dir.path().join("plain_000"), UnloadCompression::None),
        "id|name|x|at\n1|a|b|2024-01-02\n2|x\\y\nz\rw|\n3|say \"hi\" it's|2024-12-31\n4||\n"
    );

    s.escape = true;
    s.to = Location::Local(dir.path().join("esc_"));
    unload(&c, &s, 2).await.unwrap();
    assert_eq!(
        read(&dir.path().join("esc_000"), UnloadCompression::None),
        "id|name\\|x|at\n1|a\\|b|2024-01-02\n2|x\\\\y\\\nz\\\rw|\n3|say \"hi\" it's|2024-12-31\n4||\n"
    );

    s.add_quotes = true;
    s.null_as = Some("NULL".into());
    s.to = Location::Local(dir.path().join("quoted_"));
    unload(&c, &s, 2).await.unwrap();
    assert_eq!(
        read(&dir.path().join("quoted_000"), UnloadCompression::None),
        "\"id\"|\"name\\|x\"|\"at\"\n\"1\"|\"a\\|b\"|\"2024-01-02\"\n\"2\"|\"x\\\\y\\\nz\\\rw\"|\"NULL\"\n\
         \"3\"|\"say \\\"hi\\\" it\\'s\"|\"2024-12-31\"\n\"4\"|\"NULL\"|\"NULL\"\n"
    );

    // ESCAPE is for character columns: with DELIMITER '-' a date keeps its dashes.
    let mut s = spec(
        "select 'a-b' as t, date '2024-01-02' as d",
        dir.path().join("dash_"),
    );
    s.format = UnloadFormat::Text;
    s.delimiter = b'-';
    s.escape = true;
    s.header = false;
    s.parallel = false;
    unload(&c, &s, 2).await.unwrap();
    assert_eq!(
        read(&dir.path().join("dash_000"), UnloadCompression::None),
        "a\\-b-2024-01-02\n"
    );
}

#[tokio::test]
async fn numbers_print_as_redshift_prints_them_and_the_session_is_reset() {
    let local = server().await;
    let c = client(&local).await;
    let before: String = c
        .query_one("show extra_float_digits", &[])
        .await
        .unwrap()
        .get(0);
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(
        "select 0.1::float8 + 0.2 as d, 1::float8 / 3 as third, 0.1::float4 as r, 1.50::numeric(5,2) as n, true as b",
        dir.path().join("num_"),
    );
    s.parallel = false;
    unload(&c, &s, 2).await.unwrap();
    assert_eq!(
        read(&dir.path().join("num_000"), UnloadCompression::None),
        "d,third,r,n,b\n0.3,0.333333333333333,0.1,1.50,t\n"
    );
    let after: String = c
        .query_one("show extra_float_digits", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(after, before);
}

#[tokio::test]
async fn manifest_lists_every_file() {
    let local = server().await;
    let c = client(&local).await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(
        "select i from generate_series(1, 10) i",
        dir.path().join("venue_pipe_"),
    );
    s.manifest = true;
    s.compression = UnloadCompression::Gzip;
    let report = unload(&c, &s, 3).await.unwrap();
    assert_eq!(
        names(dir.path()),
        [
            "venue_pipe_0000_part_00.gz",
            "venue_pipe_0001_part_00.gz",
            "venue_pipe_0002_part_00.gz",
            "venue_pipe_manifest"
        ]
    );
    let manifest_path = dir.path().join("venue_pipe_manifest");
    assert_eq!(
        report.manifest.as_deref(),
        Some(manifest_path.to_str().unwrap())
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    let urls: Vec<&str> = manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["url"].as_str().unwrap())
        .collect();
    let locations: Vec<&str> = report.files.iter().map(|f| f.location.as_str()).collect();
    assert_eq!(urls, locations);
    assert_eq!(report.rows, 10);

    // The manifest is a file like the others: a second unload without ALLOWOVERWRITE fails.
    assert!(unload(&c, &s, 3).await.is_err());
    s.overwrite = Overwrite::Allow;
    unload(&c, &s, 3).await.unwrap();
}

#[tokio::test]
async fn zero_rows_still_write_files_with_the_header() {
    let local = server().await;
    let c = client(&local).await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(
        "select 1 as a, 'x' as b where false",
        dir.path().join("off_"),
    );
    s.parallel = false;
    let report = unload(&c, &s, 2).await.unwrap();
    assert_eq!(names(dir.path()), ["off_000"]);
    assert_eq!(
        read(&dir.path().join("off_000"), UnloadCompression::None),
        "a,b\n"
    );
    assert_eq!(report.rows, 0);

    s.parallel = true;
    s.compression = UnloadCompression::Zstd;
    s.to = Location::Local(dir.path().join("on_"));
    let report = unload(&c, &s, 2).await.unwrap();
    assert_eq!(report.files.len(), 2);
    for f in &report.files {
        assert_eq!(
            read(Path::new(&f.location), UnloadCompression::Zstd),
            "a,b\n"
        );
        assert_eq!(f.rows, 0);
    }
}

#[tokio::test]
async fn a_failing_query_leaves_no_files() {
    let local = server().await;
    let c = client(&local).await;
    let dir = tempfile::tempdir().unwrap();
    // Division by zero after about 9 MB of rows: the first part is complete by then.
    let mut s = spec(
        "select i, md5(i::text) || md5((-i)::text) as h, 1 / (i - 120000) as boom \
         from generate_series(1, 200000) i",
        dir.path().join("fail_"),
    );
    s.parallel = false;
    s.max_file_size_mb = Some(5);
    let err = unload(&c, &s, 2).await.unwrap_err();
    assert_eq!(err.sqlstate(), Some("22012"), "{err}");
    assert!(err.to_string().starts_with("unload to "), "{err}");
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));

    // A query that does not compile fails before CLEANPATH deletes anything.
    std::fs::write(dir.path().join("fail_keep"), "keep").unwrap();
    s.source = UnloadSource::Query("select * from no_such_table".into());
    s.overwrite = Overwrite::Clean;
    let err = unload(&c, &s, 2).await.unwrap_err();
    assert_eq!(err.sqlstate(), Some("42P01"), "{err}");
    assert_eq!(names(dir.path()), ["fail_keep"]);

    // The session still works.
    let one: i32 = c.query_one("select 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
}

#[tokio::test]
async fn cancelling_stops_at_once_and_leaves_no_files() {
    let local = server().await;
    let c = client(&local).await;
    let dir = tempfile::tempdir().unwrap();
    let s = spec(
        "select i, pg_sleep(case when i = 5000 then 30 else 0 end) from generate_series(1, 10000) i",
        dir.path().join("slow_"),
    );
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        trigger.cancel();
    });
    let started = std::time::Instant::now();
    let err = unload_postgres(&c, &s, &UnloadOptions::default(), &cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled { .. }), "{err}");
    assert!(started.elapsed().as_secs() < 10);
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
}

#[tokio::test]
async fn unloads_to_s3_on_moto() {
    let Some(s3) = etl_tests::moto::s3_test("unload::unloads_to_s3_on_moto") else {
        return;
    };
    use object_store::ObjectStoreExt as _;

    s3.create_bucket("unload-out");
    let local = server().await;
    let c = client(&local).await;
    let to: etl_core::sql::S3Url = "s3://unload-out/run/res_".parse().unwrap();
    let mut s = spec(
        "select i, 'v' || i as v from generate_series(1, 5) i order by i",
        "unused",
    );
    s.to = Location::S3(to.clone());
    s.compression = UnloadCompression::Gzip;
    s.manifest = true;
    let report = unload(&c, &s, 2).await.unwrap();
    let locations: Vec<&str> = report.files.iter().map(|f| f.location.as_str()).collect();
    assert_eq!(
        locations,
        [
            "s3://unload-out/run/res_0000_part_00.gz",
            "s3://unload-out/run/res_0001_part_00.gz"
        ]
    );
    assert_eq!(
        report.manifest.as_deref(),
        Some("s3://unload-out/run/res_manifest")
    );

    let bucket =
        etl_core::storage::Store::open(&Location::S3("s3://unload-out/".parse().unwrap())).unwrap();
    let get = |key: &'static str| {
        let store = bucket.store.clone();
        async move {
            store
                .get(&object_store::path::Path::from(key))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        }
    };
    let first = get("run/res_0000_part_00.gz").await;
    assert_eq!(report.files[0].bytes, first.len() as u64);
    assert_eq!(
        decompress(UnloadCompression::Gzip, &first),
        "i,v\n1,v1\n3,v3\n5,v5\n"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&get("run/res_manifest").await).unwrap();
    assert_eq!(
        manifest["entries"][1]["url"],
        "s3://unload-out/run/res_0001_part_00.gz"
    );

    // Existing objects: refused by default; CLEANPATH deletes only what is under the prefix.
    let put = |key: &'static str| {
        let store = bucket.store.clone();
        async move {
            store
                .put(&object_store::path::Path::from(key), "x".into())
                .await
                .unwrap();
        }
    };
    put("run/res_old").await;
    put("run/other").await;
    let err = unload(&c, &s, 2).await.unwrap_err();
    assert!(
        err.to_string().contains("already holds 4 object(s)"),
        "{err}"
    );
    s.overwrite = Overwrite::Clean;
    s.manifest = false;
    s.parallel = false;
    unload(&c, &s, 2).await.unwrap();
    let listed = bucket.list_prefix("run/").await.unwrap();
    let keys: Vec<String> = listed.iter().map(|(p, _)| p.to_string()).collect();
    assert_eq!(keys, ["run/other", "run/res_000.gz"]);
}
