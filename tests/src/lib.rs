//! Shared test harness: throwaway PostgreSQL servers, the workspace's binaries, psql.
//!
//! Every test that needs a database starts its own server ([`server`]), so tests are isolated and
//! can run in parallel; a server starts in about half a second.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use etl_core::cluster::Local;

pub mod aws;
pub mod moto;

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// Copies the demo job (`examples/recommendations`: job.json and its SQL) into `dir`; returns the
/// manifest's path. `empty_inputs` adds empty input files, for plans that need no data.
pub fn copy_example_job(dir: &Path, empty_inputs: bool) -> PathBuf {
    let src = repo_root().join("examples/recommendations");
    std::fs::copy(src.join("job.json"), dir.join("job.json")).expect("copy job.json");
    std::fs::create_dir_all(dir.join("sql")).expect("create sql/");
    for f in std::fs::read_dir(src.join("sql")).expect("list the example's sql/") {
        let f = f.expect("read the example's sql/");
        std::fs::copy(f.path(), dir.join("sql").join(f.file_name())).expect("copy a SQL file");
    }
    if empty_inputs {
        for d in ["data/usage", "data/billing"] {
            std::fs::create_dir_all(dir.join(d)).expect("create an input folder");
            std::fs::write(dir.join(d).join("part-0000.txt.gz"), b"").expect("write an input file");
        }
        std::fs::write(dir.join("data/offers.txt.gz"), b"").expect("write an input file");
    }
    dir.join("job.json")
}

/// The folder holding the workspace's binaries for this build profile (`target/debug`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/debug/deps/it-<hash> -> target/debug
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// A workspace binary, e.g. `bin("etl")`.
///
/// # Panics
/// When it has not been built: run `cargo build --workspace --bins` first (the test script does).
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` before the tests (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A `Command` for the `etl` binary.
pub fn etl() -> Command {
    let mut cmd = Command::new(bin("etl"));
    for var in [
        "DATABASE_URL",
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGDATABASE",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Starts a throwaway PostgreSQL for one test.
pub async fn server() -> Local {
    Local::start()
        .await
        .unwrap_or_else(|e| panic!("cannot start a throwaway PostgreSQL: {e}"))
}

/// A `Command` for psql (next to the server binaries when present), with no psqlrc.
pub fn psql(local: &Local) -> Command {
    let beside = local.bindir().join("psql");
    let mut cmd = Command::new(if beside.is_file() {
        beside
    } else {
        PathBuf::from("psql")
    });
    cmd.arg("-X")
        .arg("-v")
        .arg("ON_ERROR_STOP=1")
        .arg(local.url());
    cmd
}

/// Runs a command, returning its output; panics when it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Stdout as UTF-8, panicking with stderr when the command failed.
pub fn stdout_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A client connected to `local`.
pub async fn client(local: &Local) -> tokio_postgres::Client {
    etl_core::warehouse::connect(&local.connect_options(), etl_core::warehouse::Retry::NONE)
        .await
        .expect("connect")
}

/// A `Command` for `pg_ctl` on `local`'s data directory (`pg_ctl -D DATA`), run as the user that
/// owns the data directory — the `postgres` user when the tests run as root, as the server does.
/// Add the action: `pg_ctl(&local).args(["restart", "-m", "fast"])`.
pub fn pg_ctl(local: &Local) -> Command {
    use std::os::unix::fs::MetadataExt as _;
    use std::os::unix::process::CommandExt as _;
    let data = local.dir().join("data");
    let mut cmd = Command::new(local.bindir().join("pg_ctl"));
    let meta = std::fs::metadata(&data).expect("the server's data directory");
    // The same switch the harness makes when it starts the server as root.
    if meta.uid() != current_uid() {
        cmd.uid(meta.uid()).gid(meta.gid());
        cmd.env_remove("HOME");
    }
    cmd.arg("-D").arg(data);
    cmd
}

/// The user id this process runs as (the owner of `/proc/self`).
fn current_uid() -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").map_or(0, |m| m.uid())
}
