//! A moto server (<https://docs.getmoto.org/en/latest/docs/server_mode.html>) standing in for AWS:
//! S3 and the other APIs, over HTTP on 127.0.0.1.
//!
//! [`Moto::start`] runs moto's server (the same WSGI app as `python3 -m moto.server`) inside a tiny
//! `python3 -c` wrapper that binds a free port itself (port 0, so no race for the port), prints it,
//! and then reads its standard input until end of file. The wrapper's stdin is a pipe from this
//! process, so however this process ends — [`Drop`], a panic, even SIGKILL — the pipe closes, the
//! wrapper's read returns and the server exits with it: no orphan is left behind. `Drop` also kills
//! and reaps it at once.
//!
//! The S3 client of `etl-core` (object_store's `AmazonS3Builder::from_env`) takes its endpoint and
//! credentials from the process environment, and changing the environment of a running,
//! multi-threaded test process is `unsafe` (and racy: other threads read it). So tests that talk to
//! S3 run in a child process instead, started with the environment set: [`s3_test`] starts one
//! process-wide moto ([`shared`]), re-runs the calling test in a child process of the same test
//! binary with [`Moto::env`] set, and reports its outcome; inside the child, it hands the test its
//! endpoint. The shared server lives as long as the test process.
//!
//! ```no_run
//! # async fn writes_to_s3() {
//! // The body of `#[tokio::test] async fn writes_to_s3()` in tests/it/unload.rs:
//! let Some(s3) = etl_tests::moto::s3_test("unload::writes_to_s3") else {
//!     return; // it ran, and passed, in a child process
//! };
//! s3.create_bucket("out");
//! // ... anything that reads AWS_ENDPOINT_URL now talks to moto
//! # }
//! ```
//!
//! Needs `python3` with moto's server extras: `pip install 'moto[server]'` (scripts/test.sh
//! installs it).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Set in the child process of [`s3_test`]: the moto endpoint.
const CHILD_MARKER: &str = "ETL_TESTS_MOTO_ENDPOINT";

const WRAPPER: &str = r#"
import logging, sys
try:
    from moto.server import ThreadedMotoServer
except ImportError as e:
    print("missing " + str(e), flush=True)
    sys.exit(3)
logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print("ready %d" % server.get_host_and_port()[1], flush=True)
sys.stdin.read()
"#;

/// A running moto server; killed on drop.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    /// Held open: the server exits when it closes.
    _stdin: ChildStdin,
    endpoint: String,
}

impl Moto {
    /// Starts a moto server on a free port of 127.0.0.1 and waits until it answers.
    ///
    /// # Panics
    /// When `python3` or moto is missing (with the command that installs it), or the server does
    /// not come up within 30 seconds.
    pub fn start() -> Moto {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(WRAPPER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run python3 for moto ({e}): install Python 3 and `pip install 'moto[server]'`")
            });
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("moto did not start within 30 s");
            }
        };
        let port = match line.trim().split_once(' ') {
            Some(("ready", port)) => port.parse::<u16>().expect("a port number"),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "cannot start moto ({}): `pip install 'moto[server]'` (scripts/test.sh installs it)",
                    line.trim()
                );
            }
        };
        let moto = Moto {
            child,
            _stdin: stdin,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        moto.wait_until_it_answers();
        moto
    }

    fn wait_until_it_answers(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if http(&self.endpoint, "GET", "/").is_ok() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "moto at {} does not answer",
                self.endpoint
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The environment an AWS client needs to talk to this server: `AWS_ENDPOINT_URL`, test
    /// credentials, `AWS_REGION=us-east-1`.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        env_for(&self.endpoint)
    }

    /// Creates a bucket.
    ///
    /// # Panics
    /// When moto refuses.
    pub fn create_bucket(&self, bucket: &str) {
        create_bucket(&self.endpoint, bucket);
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env_for(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
    ]
}

/// The moto server shared by the whole test process, started on first use. It is never dropped:
/// it exits when the test process does (its stdin pipe closes).
pub fn shared() -> &'static Moto {
    static SHARED: OnceLock<Moto> = OnceLock::new();
    SHARED.get_or_init(Moto::start)
}

/// Inside [`s3_test`]'s child process: the moto server the environment points at.
#[derive(Debug, Clone)]
pub struct S3Env {
    endpoint: String,
}

impl S3Env {
    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Creates a bucket.
    ///
    /// # Panics
    /// When moto refuses.
    pub fn create_bucket(&self, bucket: &str) {
        create_bucket(&self.endpoint, bucket);
    }
}

/// Runs the calling test with the process environment pointing at moto.
///
/// In the test process (no moto environment yet) it starts the [`shared`] server, runs the test
/// named `test` (its path from the test crate's root, e.g. `unload::to_s3`) again in a child
/// process of this test binary with [`Moto::env`] set, panics with the child's output if that run
/// failed, and returns `None`: the calling test then returns. In the child it returns the
/// environment, and the test goes on to do its work.
///
/// # Panics
/// When the child run fails or does not run exactly one test.
pub fn s3_test(test: &str) -> Option<S3Env> {
    if let Ok(endpoint) = std::env::var(CHILD_MARKER) {
        return Some(S3Env { endpoint });
    }
    let moto = shared();
    let exe = std::env::current_exe().expect("the test binary");
    let output = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .envs(moto.env())
        .env(CHILD_MARKER, moto.endpoint())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot re-run {test} in a child process: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{test} failed in its child process ({}):\n{stdout}\n{stderr}",
        output.status
    );
    None
}

/// Creates `bucket` with a plain HTTP PUT (moto does not check signatures).
///
/// # Panics
/// When moto refuses.
pub fn create_bucket(endpoint: &str, bucket: &str) {
    let response = http(endpoint, "PUT", &format!("/{bucket}"))
        .unwrap_or_else(|e| panic!("cannot reach moto at {endpoint}: {e}"));
    assert!(
        response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"),
        "moto refused to create bucket {bucket}: {response}"
    );
}

/// One HTTP/1.1 request without a body; the whole response.
fn http(endpoint: &str, method: &str, path: &str) -> std::io::Result<String> {
    let host = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}
