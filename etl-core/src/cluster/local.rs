//! A throwaway PostgreSQL server: initdb in a temporary directory, started on a free port with
//! bulk-load settings, stopped and removed when dropped.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::warehouse::{ConnectOptions, SslMode};

/// The superuser of a throwaway server (trust authentication; the database is `postgres`).
pub const LOCAL_USER: &str = "etl";

const INSTALL_HINT: &str = "install the PostgreSQL server (Debian/Ubuntu: apt-get install -y postgresql; \
     macOS: brew install postgresql), or set ETL_PG_BINDIR to the folder holding initdb and postgres, \
     or pass --database-url to use an existing database";

/// Settings that make a disposable server load fast: no durability, little WAL.
const BULK_SETTINGS: &[(&str, &str)] = &[
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("wal_level", "minimal"),
    ("max_wal_senders", "0"),
    ("max_wal_size", "8GB"),
    ("checkpoint_timeout", "30min"),
    ("shared_buffers", "256MB"),
    ("maintenance_work_mem", "256MB"),
    ("work_mem", "32MB"),
    ("max_connections", "200"),
    ("logging_collector", "off"),
    ("log_min_messages", "warning"),
    ("unix_socket_permissions", "0777"),
    ("timezone", "UTC"),
];

/// Finds the PostgreSQL server binaries: `ETL_PG_BINDIR`, then `PATH`, then `pg_config --bindir`,
/// then Debian's `/usr/lib/postgresql/<version>/bin` (newest first) and other usual places.
///
/// # Errors
/// [`Error::Environment`] with the install hint when `initdb` and `postgres` are found nowhere.
pub fn find_bindir() -> Result<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = std::env::var_os("ETL_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        if has_server(&dir) {
            return Ok(dir);
        }
        return Err(Error::Environment {
            message: format!(
                "ETL_PG_BINDIR={} does not hold initdb and postgres; {INSTALL_HINT}",
                dir.display()
            ),
            source: None,
        });
    }
    let mut candidates = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if let Ok(real) = dir.join("initdb").canonicalize()
                && let Some(parent) = real.parent()
            {
                candidates.push(parent.to_path_buf());
            }
            candidates.push(dir);
        }
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .collect();
    debian.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    candidates.extend(debian.into_iter().map(|(_, p)| p));
    candidates.extend(
        [
            "/usr/local/pgsql/bin",
            "/opt/homebrew/bin",
            "/usr/pgsql/bin",
        ]
        .iter()
        .map(PathBuf::from),
    );
    candidates
        .into_iter()
        .find(|d| has_server(d))
        .ok_or_else(|| Error::Environment {
            message: format!(
                "PostgreSQL server binaries (initdb, postgres) not found; {INSTALL_HINT}"
            ),
            source: None,
        })
}

/// Options for [`Local`].
#[derive(Debug, Clone, Default)]
pub struct LocalBuilder {
    bindir: Option<PathBuf>,
    settings: Vec<(String, String)>,
    parent_dir: Option<PathBuf>,
    startup_timeout: Option<Duration>,
}

impl LocalBuilder {
    /// Uses the binaries in `dir` instead of searching.
    pub fn with_bindir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bindir = Some(dir.into());
        self
    }

    /// Adds or overrides a server setting (`-c name=value`).
    pub fn with_setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }

    /// Creates the temporary directory under `dir` instead of the system's temp folder.
    pub fn with_parent_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.parent_dir = Some(dir.into());
        self
    }

    /// How long to wait for the server to accept connections (default 60 s).
    pub fn with_startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = Some(timeout);
        self
    }

    /// Runs initdb and starts the server.
    ///
    /// # Errors
    /// [`Error::Environment`] when the binaries are missing, initdb fails or the server does not
    /// start (with the end of its log).
    pub async fn start(self) -> Result<Local> {
        let bindir = match self.bindir.clone() {
            Some(b) => b,
            None => find_bindir()?,
        };
        let owner = ServerUser::pick()?;
        let parent = self.parent_dir.clone().unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("etl-pg-")
            .tempdir_in(&parent)
            .map_err(|e| {
                Error::io(
                    "cannot create a temporary directory in",
                    parent.display(),
                    e,
                )
            })?;
        owner.give(dir.path())?;
        let data = dir.path().join("data");
        let out = owner
            .command(&bindir.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                LOCAL_USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| env_error(format!("cannot run {}/initdb", bindir.display()), e))?;
        if !out.status.success() {
            return Err(Error::Environment {
                message: format!(
                    "initdb failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                source: None,
            });
        }
        let timeout = self.startup_timeout.unwrap_or(Duration::from_secs(60));
        let mut dir = Some(dir);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let root = dir
                .as_ref()
                .expect("dir is kept between attempts")
                .path()
                .to_path_buf();
            let port = free_port()?;
            let log_path = root.join("postgres.log");
            let log = std::fs::File::create(&log_path)
                .map_err(|e| Error::io("cannot create", log_path.display(), e))?;
            owner.give(&log_path)?;
            let mut cmd = owner.command(&bindir.join("postgres"));
            cmd.arg("-D")
                .arg(&data)
                .arg("-p")
                .arg(port.to_string())
                .arg("-k")
                .arg(&root)
                .args(["-c", "listen_addresses=127.0.0.1"]);
            for (k, v) in BULK_SETTINGS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .chain(self.settings.iter().cloned())
            {
                cmd.arg("-c").arg(format!("{k}={v}"));
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(
                    log.try_clone()
                        .map_err(|e| Error::io("cannot open", log_path.display(), e))?,
                )
                .stderr(log)
                // Its own process group: a terminal's Ctrl-C reaches us, and we stop the server
                // after cancelling what runs on it.
                .process_group(0)
                .spawn()
                .map_err(|e| env_error(format!("cannot run {}/postgres", bindir.display()), e))?;
            let mut local = Local {
                dir: dir.take(),
                child: Some(child),
                port,
                bindir: bindir.clone(),
                log_path,
            };
            match local.wait_ready(timeout).await {
                Ok(()) => return Ok(local),
                Err(e) => {
                    // Someone may have taken the port between our probe and the bind: try another.
                    let port_taken = local.log_tail().contains("could not bind");
                    local.kill_child();
                    dir = local.dir.take();
                    if !port_taken || attempt >= 3 {
                        return Err(e);
                    }
                }
            }
        }
    }
}

fn env_error(message: String, e: std::io::Error) -> Error {
    Error::Environment {
        message: format!("{message}: {e}; {INSTALL_HINT}"),
        source: Some(Box::new(e)),
    }
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::io("cannot find a free port on", "127.0.0.1", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::io("cannot find a free port on", "127.0.0.1", e))?
        .port();
    Ok(port)
}

/// Who runs the server: the current user, or — when we are root, which PostgreSQL refuses — the
/// `postgres` user (or `nobody`).
#[derive(Debug, Clone, Copy)]
struct ServerUser {
    ids: Option<(u32, u32)>,
}

impl ServerUser {
    fn pick() -> Result<Self> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(ServerUser { ids: None });
        }
        for name in ["postgres", "nobody"] {
            if let Ok(Some(user)) = nix::unistd::User::from_name(name) {
                return Ok(ServerUser {
                    ids: Some((user.uid.as_raw(), user.gid.as_raw())),
                });
            }
        }
        Err(Error::Environment {
            message:
                "running as root, and PostgreSQL refuses to run as root: create an unprivileged \
                      user named postgres (useradd -r postgres) or run etl as another user"
                    .into(),
            source: None,
        })
    }

    fn give(&self, path: &Path) -> Result<()> {
        if let Some((uid, gid)) = self.ids {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| {
                Error::io("cannot hand over to the postgres user", path.display(), e)
            })?;
        }
        Ok(())
    }

    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        if let Some((uid, gid)) = self.ids {
            cmd.uid(uid).gid(gid);
            // Locale and HOME of root would confuse initdb's checks.
            cmd.env_remove("HOME");
        }
        cmd
    }
}

/// A running throwaway PostgreSQL. Dropping it stops the server and deletes its files.
#[derive(Debug)]
pub struct Local {
    dir: Option<tempfile::TempDir>,
    child: Option<Child>,
    port: u16,
    bindir: PathBuf,
    log_path: PathBuf,
}

impl KeptServer {
    /// The command that stops the server (as the server's user when we are root).
    pub fn stop_command(&self) -> String {
        let data = self.dir.join("data");
        let base = format!("{} -D {} stop", self.pg_ctl.display(), data.display());
        if nix::unistd::geteuid().is_root() {
            let owner = std::fs::metadata(&data)
                .ok()
                .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
                .and_then(|uid| {
                    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                        .ok()
                        .flatten()
                })
                .map_or_else(|| "postgres".to_owned(), |u| u.name);
            format!("runuser -u {owner} -- {base}")
        } else {
            base
        }
    }
}

/// What [`Local::keep`] leaves behind.
#[derive(Debug, Clone)]
pub struct KeptServer {
    /// Connection settings.
    pub options: ConnectOptions,
    /// The data and socket directory.
    pub dir: PathBuf,
    /// The postmaster's process id.
    pub pid: u32,
    /// `pg_ctl` to stop it later.
    pub pg_ctl: PathBuf,
}

impl Local {
    /// A builder for non-default settings.
    pub fn builder() -> LocalBuilder {
        LocalBuilder::default()
    }

    /// Starts a server with the default settings.
    ///
    /// # Errors
    /// See [`LocalBuilder::start`].
    pub async fn start() -> Result<Local> {
        Self::builder().start().await
    }

    /// Connection settings (TCP on 127.0.0.1, trust authentication, no TLS).
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            host: "127.0.0.1".into(),
            port: self.port,
            user: LOCAL_USER.into(),
            password: None,
            dbname: "postgres".into(),
            sslmode: SslMode::Disable,
            ssl_root_cert: None,
            connect_timeout: Some(10),
            application_name: Some("etl".into()),
        }
    }

    /// `postgres://etl@127.0.0.1:PORT/postgres?sslmode=disable`.
    pub fn url(&self) -> String {
        self.connect_options().url()
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder of the server binaries in use (psql is usually there too).
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// The temporary directory (data, socket, log).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("dir is set while running").path()
    }

    /// Leaves the server running and its files in place; returns how to reach and stop it.
    pub fn keep(mut self) -> KeptServer {
        let options = self.connect_options();
        let dir = self.dir.take().expect("dir is set while running").keep();
        let pid = self.child.take().map(|c| c.id()).unwrap_or_default();
        KeptServer {
            options,
            pg_ctl: self.bindir.join("pg_ctl"),
            dir,
            pid,
        }
    }

    /// Stops the server and removes its files now (dropping does the same).
    pub fn stop(mut self) {
        self.stop_server();
    }

    fn log_tail(&self) -> String {
        let Ok(mut f) = std::fs::File::open(&self.log_path) else {
            return String::new();
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(2000)));
        let mut s = String::new();
        let _ = f.read_to_string(&mut s);
        s.trim().to_owned()
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let options = self.connect_options();
        let config = options.pg_config();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(Error::Environment {
                    message: format!(
                        "the PostgreSQL server exited at start-up ({status}); its log says:\n{}",
                        self.log_tail()
                    ),
                    source: None,
                });
            }
            if let Ok((client, conn)) = config.connect(tokio_postgres::NoTls).await {
                drop(client);
                drop(conn);
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(Error::Environment {
                    message: format!(
                        "the PostgreSQL server did not accept connections within {timeout:?}; its log says:\n{}",
                        self.log_tail()
                    ),
                    source: None,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stop_server(&mut self) {
        self.kill_child();
        // Dropping the TempDir removes the data directory.
        self.dir.take();
    }

    fn kill_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = Pid::from_raw(child.id() as i32);
            // SIGINT: "fast shutdown" — roll back open transactions, exit promptly.
            let _ = kill(pid, Signal::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => {
                        let _ = kill(pid, Signal::SIGQUIT);
                        std::thread::sleep(Duration::from_millis(200));
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        self.stop_server();
    }
}
