//! The demo's independent checker (`examples/recommendations/check.py`) agrees with the demo's SQL.
//!
//! Data from `etl-demo-data` is loaded into a throwaway PostgreSQL without etl's loader — decompressed
//! and cleaned here with the manifest's rules written once more (skip the header, split on `|` with
//! REMOVEQUOTES, empty or blank VARCHAR → NULL, empty other → NULL), then psql `\copy ... csv` — and
//! the two transform files run on it. The unload query's CSV must equal check.py's output byte for byte.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use etl_tests::{Local, bin, psql, repo_root, run, server, stdout_ok};
use flate2::read::GzDecoder;
use serde_json::Value;

fn demo_dir() -> PathBuf {
    repo_root().join("examples/recommendations")
}

fn job() -> Value {
    let text = fs::read_to_string(demo_dir().join("job.json")).expect("read job.json");
    serde_json::from_str(&text).expect("job.json is JSON")
}

/// A table of the manifest: name, (column, type, nullable), file spec.
struct Table {
    name: String,
    columns: Vec<(String, String, bool)>,
    files: Value,
}

fn tables(job: &Value) -> Vec<Table> {
    job["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            assert_eq!(s["name"], "staging", "the demo's input schema");
            s["tables"].as_array().unwrap().iter()
        })
        .map(|t| Table {
            name: t["name"].as_str().unwrap().to_owned(),
            columns: t["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap().to_owned(),
                        c["type"].as_str().unwrap().to_owned(),
                        c["nullable"].as_bool().unwrap_or(true),
                    )
                })
                .collect(),
            files: t["files"].clone(),
        })
        .collect()
}

/// The table's files under `data`: one name, or every file whose relative path starts with a prefix.
fn files(data: &Path, spec: &Value) -> Vec<PathBuf> {
    if let Some(name) = spec.as_str() {
        return vec![data.join(name)];
    }
    let prefix = spec["prefix"].as_str().expect("files: a name or a prefix");
    let (dir, start) = prefix.rsplit_once('/').unwrap_or(("", prefix));
    let mut found: Vec<PathBuf> = fs::read_dir(data.join(dir))
        .expect("list the prefix's folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(start))
        .collect();
    found.sort();
    found
}

/// Splits a record on `|`; a field starting with `"` runs to the next `"`, which are removed.
fn split(line: &str) -> Vec<&str> {
    let mut fields = Vec::new();
    let mut rest = line;
    loop {
        if let Some(inner) = rest.strip_prefix('"') {
            let close = inner.find('"').expect("closing quote");
            fields.push(&inner[..close]);
            let after = &inner[close + 1..];
            assert!(
                after.is_empty() || after.starts_with('|'),
                "text after a closing quote: {line}"
            );
            match after.strip_prefix('|') {
                Some(next) => rest = next,
                None => return fields,
            }
        } else {
            match rest.split_once('|') {
                Some((field, next)) => {
                    fields.push(field);
                    rest = next;
                }
                None => {
                    fields.push(rest);
                    return fields;
                }
            }
        }
    }
}

/// One table's files as a CSV for `\copy ... csv`: NULL unquoted and empty, every value quoted.
fn clean(table: &Table, data: &Path) -> String {
    let blank = |c: char| matches!(c, ' ' | '\t' | '\u{b}' | '\u{c}');
    let mut csv = String::new();
    for path in files(data, &table.files) {
        let mut text = String::new();
        GzDecoder::new(fs::File::open(&path).unwrap())
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for line in text.lines().skip(1) {
            let fields = split(line);
            assert_eq!(fields.len(), table.columns.len(), "{line}");
            let row: Vec<String> = fields
                .iter()
                .zip(&table.columns)
                .map(|(f, (_, ty, _))| {
                    let value = if ty.starts_with("varchar") {
                        *f
                    } else {
                        f.trim_matches(blank)
                    };
                    if value.chars().all(blank) {
                        String::new()
                    } else {
                        format!("\"{}\"", value.replace('"', "\"\""))
                    }
                })
                .collect();
            csv.push_str(&row.join(","));
            csv.push('\n');
        }
    }
    csv
}

/// Runs one psql command, failing the test on error; returns its unaligned, tuples-only output.
fn psql_c(local: &Local, command: &str) -> String {
    stdout_ok(psql(local).args(["-q", "-t", "-A", "-c", command]))
}

/// Runs a SQL file with psql, failing the test on error.
fn psql_f(local: &Local, file: &Path) {
    stdout_ok(psql(local).arg("-q").arg("-f").arg(file));
}

/// Redshift's `nvl` and `len`: etl's compatibility file when it exists, else two scratch definitions.
fn install_compat(local: &Local) {
    let compat = repo_root().join("sql/compat/postgres.sql");
    if compat.is_file() {
        stdout_ok(
            psql(local)
                .args(["-q", "--single-transaction", "-f"])
                .arg(&compat),
        );
    }
    let visible = |f: &str| {
        psql_c(
            local,
            &format!("select exists (select from pg_proc where proname = '{f}' and pg_function_is_visible(oid))"),
        )
        .trim()
            == "t"
    };
    if !visible("nvl") {
        psql_c(
            local,
            "create function nvl(anycompatible, anycompatible) returns anycompatible \
             language sql immutable as 'select coalesce($1, $2)'",
        );
    }
    if !visible("len") {
        psql_c(
            local,
            "create function len(text) returns integer language sql immutable as 'select length($1)'",
        );
    }
}

fn check_py() -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(demo_dir().join("check.py"));
    cmd
}

/// Generates data with `args`, runs the SQL on PostgreSQL and check.py; returns (sql csv, check csv).
async fn sql_and_checker(args: &[&str]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run(Command::new(bin("etl-demo-data"))
        .arg("--out")
        .arg(&data)
        .args(args));
    assert!(
        out.status.success(),
        "etl-demo-data failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let local = server().await;
    let job = job();
    psql_c(&local, "create schema staging");
    for table in tables(&job) {
        let columns: Vec<String> = table
            .columns
            .iter()
            .map(|(name, ty, nullable)| {
                format!("{name} {ty}{}", if *nullable { "" } else { " not null" })
            })
            .collect();
        psql_c(
            &local,
            &format!(
                "create table staging.{} ({})",
                table.name,
                columns.join(", ")
            ),
        );
        let csv = dir.path().join(format!("{}.csv", table.name));
        fs::write(&csv, clean(&table, &data)).unwrap();
        psql_c(
            &local,
            &format!(
                "\\copy staging.{} from '{}' with (format csv)",
                table.name,
                csv.display()
            ),
        );
    }
    install_compat(&local);
    for file in job["transform"].as_array().unwrap() {
        psql_f(&local, &demo_dir().join(file.as_str().unwrap()));
    }
    let query = job["unload"]["query"].as_str().unwrap();
    let result = dir.path().join("result.csv");
    psql_c(
        &local,
        &format!(
            "\\copy ({query}) to '{}' with (format csv, header)",
            result.display()
        ),
    );
    let from_sql = fs::read_to_string(&result).unwrap();
    let from_check = stdout_ok(check_py().arg(&data));

    // --compare agrees, and catches a changed value.
    let compared = run(check_py().arg(&data).arg("--compare").arg(&result));
    assert!(
        compared.status.success(),
        "check.py --compare: {}{}",
        String::from_utf8_lossy(&compared.stdout),
        String::from_utf8_lossy(&compared.stderr)
    );
    let mut lines: Vec<&str> = from_sql.lines().collect();
    let changed = lines[1].replacen(',', ",9", 1);
    lines[1] = &changed;
    let tampered = dir.path().join("tampered.csv");
    fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    let compared = run(check_py().arg(&data).arg("--compare").arg(&tampered));
    assert_eq!(compared.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&compared.stdout).starts_with("line 2:\n"));

    (from_sql, from_check)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checker_and_sql_agree_on_the_default_demo_data() {
    let (sql, check) = sql_and_checker(&[]).await;
    assert_eq!(check, sql);
    let rows = sql.lines().count() - 1;
    assert!(rows > 5000, "{rows} rows");
    // The special cases reach the result: quoted in CSV, the delimiter inside, multibyte text.
    assert!(sql.contains(",\"Home, Office & Travel\","));
    assert!(sql.contains(",Family | Unlimited,"));
    assert!(sql.contains(",Dúo Ñandú 10 GB,"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checker_and_sql_agree_on_four_months_in_several_parts() {
    // Four months make averages that end in exactly .x5 (half away from zero), parts split customers.
    let (sql, check) = sql_and_checker(&[
        "--customers",
        "900",
        "--months",
        "4",
        "--offers",
        "40",
        "--files-per-table",
        "3",
        "--seed",
        "7",
    ])
    .await;
    assert_eq!(check, sql);
    assert!(sql.lines().count() > 2000);
}
