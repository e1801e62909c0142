//! Fault injection (issue 10, "the journal never lies"): the demo job, as a REPLACE, an APPEND and
//! an UPSERT job, is hit at every point where a run can die — SIGKILL of `etl run` at the create
//! step, early, mid and late in a load, in every transform statement and in the unload; Ctrl-C
//! (SIGINT) mid-load and mid-transform; the server restarted (fast and immediate) mid-load and
//! mid-transform; the loading backend terminated; a second run of the job, and the same run id
//! twice, while a run is active — and then resumed at once with the same run id, while orphaned
//! statements may still run on the server. After each, every table and the unloaded CSV must equal
//! a clean run's (row counts and row checksums: 0 rows lost, 0 duplicated), no step or run may be
//! left `running` in `etl_meta`, the run must be `succeeded`, and nothing of the job may still run
//! on the server.
//!
//! Every case has its own PostgreSQL server and folder; the input data is generated once. A fault
//! point is found by watching the server, never by sleeping: the step journaled `running` in
//! `etl_meta.steps`, its session in `pg_stat_activity` (PID and label), the load's
//! `pg_stat_progress_copy.tuples_processed`, the locks a transform's session holds. Statements too
//! short to be caught running (`CREATE SCHEMA`, `DROP TABLE`) are held on the server by a lock the
//! test takes, so the kill lands while they run and the resume meets a live orphan; the test lets
//! go once the resume said it is waiting ("an earlier attempt is still running on the server").
//!
//! Points where a load may be in flight run for each load method; the create, transform and unload
//! points (no load in flight: the method cannot matter to the step hit) run once each, the methods
//! taken in turn — `ETL_FAULTS_MATRIX=full` runs them for every method too.
//! `ETL_FAULTS=append/kill-load` runs only the cases whose name contains the text;
//! `ETL_FAULTS_THREADS` sets how many cases run at once (default 2).
//!
//! Also here: the smaller journal tests on the user's path — colliding names, reserved schemas, a
//! statement cancelled by someone else.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use etl_tests::{Local, bin, client, etl, pg_ctl, run, server};

/// The tables a run writes, compared with the clean run's.
const TABLES: &[&str] = &[
    "staging.usage",
    "staging.billing",
    "staging.offers",
    "model.customer_profile",
    "model.recommendations",
];

/// How long any one wait may take before the case is reported as stuck.
const STUCK: Duration = Duration::from_secs(180);

/// Generator arguments: 200,000 customers × 3 months, about 580,000 rows each in usage and billing
/// (2 files each). With 60,000 customers an idle 2-CPU machine loaded the usage table faster
/// than the test's 10 ms probe could catch nine tenths of it; at this size the usage load takes
/// a few seconds even there, and the 40 cases stay within minutes.
const GENERATOR_ARGS: &[&str] = &["--customers", "200000", "--files-per-table", "2"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Method {
    Replace,
    Append,
    Upsert,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Replace => "replace",
            Method::Append => "append",
            Method::Upsert => "upsert",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Early,
    Mid,
    Late,
}

#[derive(Debug, Clone, Copy)]
enum During {
    Load,
    Transform,
}

/// Where and how a run is hit.
#[derive(Debug, Clone, Copy)]
enum Point {
    /// SIGKILL while the create step's `CREATE SCHEMA` runs (held by a lock).
    KillCreate,
    /// SIGKILL while staging.usage loads: after its first rows, half, three quarters.
    KillLoad(Phase),
    /// SIGKILL while transform statement N (0-based, of 5) runs.
    KillTransform(usize),
    /// SIGKILL while the unload streams rows.
    KillUnload,
    /// Ctrl-C.
    Interrupt(During),
    /// `pg_ctl restart -m fast|immediate`.
    Restart(&'static str, During),
    /// `pg_terminate_backend` on the session loading staging.usage.
    TerminateLoad,
    /// A second `etl run` (a new run id) while the first loads: refused at once.
    SecondRun,
    /// The same run id in a second process while the first loads: refused at once.
    SameRunId,
    /// The same run id with `--wait`: waits for the first, then finds everything done.
    SameRunIdWaits,
}

impl Point {
    fn name(self) -> String {
        let phase = |p: Phase| match p {
            Phase::Early => "early",
            Phase::Mid => "mid",
            Phase::Late => "late",
        };
        let during = |d: During| match d {
            During::Load => "load",
            During::Transform => "transform",
        };
        match self {
            Point::KillCreate => "kill-create".into(),
            Point::KillLoad(p) => format!("kill-load-{}", phase(p)),
            Point::KillTransform(i) => format!("kill-transform-{}", i + 1),
            Point::KillUnload => "kill-unload".into(),
            Point::Interrupt(d) => format!("sigint-{}", during(d)),
            Point::Restart(mode, d) => format!("restart-{mode}-{}", during(d)),
            Point::TerminateLoad => "terminate-load".into(),
            Point::SecondRun => "second-run".into(),
            Point::SameRunId => "same-run-id".into(),
            Point::SameRunIdWaits => "same-run-id-wait".into(),
        }
    }

    /// Whether a load may be in flight at this point (so the load method matters).
    fn during_load(self) -> bool {
        matches!(
            self,
            Point::KillLoad(_)
                | Point::Interrupt(During::Load)
                | Point::Restart(_, During::Load)
                | Point::TerminateLoad
                | Point::SecondRun
                | Point::SameRunId
                | Point::SameRunIdWaits
        )
    }

    fn all() -> Vec<Point> {
        let mut v = vec![
            Point::KillCreate,
            Point::KillLoad(Phase::Early),
            Point::KillLoad(Phase::Mid),
            Point::KillLoad(Phase::Late),
        ];
        v.extend((0..5).map(Point::KillTransform));
        v.extend([
            Point::KillUnload,
            Point::Interrupt(During::Load),
            Point::Interrupt(During::Transform),
            Point::Restart("fast", During::Load),
            Point::Restart("immediate", During::Load),
            Point::Restart("fast", During::Transform),
            Point::Restart("immediate", During::Transform),
            Point::TerminateLoad,
            Point::SecondRun,
            Point::SameRunId,
            Point::SameRunIdWaits,
        ]);
        v
    }
}

/// The demo's input, generated once for every case.
struct Dataset {
    _dir: tempfile::TempDir,
    data: PathBuf,
}

fn generate() -> Dataset {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run(std::process::Command::new(bin("etl-demo-data"))
        .arg("--out")
        .arg(&data)
        .args(GENERATOR_ARGS));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Dataset { _dir: dir, data }
}

/// A copy of the demo job in `dir` reading `data`, with every table loaded by `method` (REPLACE is
/// the demo as shipped: usage and billing REPLACE, offers UPSERT). Returns the manifest's path.
fn write_job(dir: &Path, data: &Path, method: Method) -> PathBuf {
    let job = etl_tests::copy_example_job(dir, false);
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&job).unwrap()).unwrap();
    m["input"] = format!("{}/", data.display()).into();
    for t in m["schemas"][0]["tables"].as_array_mut().unwrap() {
        let keys = if t["name"] == "offers" {
            serde_json::json!(["offer_code"])
        } else {
            serde_json::json!(["customer_id", "month"])
        };
        match method {
            Method::Replace => {}
            Method::Append => t["load"] = serde_json::json!({"method": "append"}),
            Method::Upsert => t["load"] = serde_json::json!({"method": "upsert", "keys": keys}),
        }
    }
    std::fs::write(&job, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    job
}

/// What a clean run leaves: per table (rows, checksum), and the unload folder's files.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    tables: BTreeMap<String, (i64, String)>,
    files: BTreeMap<String, Vec<u8>>,
}

/// Rows and an order-independent checksum of the rows (a duplicated row adds its hash twice, a
/// lost one not at all).
async fn table_sums(c: &tokio_postgres::Client) -> Result<BTreeMap<String, (i64, String)>, String> {
    let mut out = BTreeMap::new();
    for t in TABLES {
        let row = c
            .query_one(
                &format!(
                    "select count(*), coalesce(sum(hashtextextended(x::text, 0)::numeric), 0)::text from {t} x"
                ),
                &[],
            )
            .await
            .map_err(|e| format!("cannot read {t}: {e}"))?;
        out.insert((*t).to_owned(), (row.get(0), row.get(1)));
    }
    Ok(out)
}

fn unload_files(case_dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir(case_dir.join("out")) {
        for f in dir.flatten() {
            out.insert(
                f.file_name().to_string_lossy().into_owned(),
                std::fs::read(f.path()).unwrap_or_default(),
            );
        }
    }
    out
}

/// An `etl run` in the background, its stderr in a file.
struct EtlRun {
    child: Child,
    stderr: PathBuf,
}

impl EtlRun {
    fn start(job: &Path, url: &str, run_id: Option<&str>, extra: &[&str], stderr: PathBuf) -> Self {
        let mut cmd = etl();
        cmd.arg("run")
            .arg(job)
            .args(["--database-url", url])
            .args(extra);
        if let Some(id) = run_id {
            cmd.args(["--run-id", id]);
        }
        let file = std::fs::File::create(&stderr).unwrap();
        let child = cmd
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start etl: {e}"));
        EtlRun { child, stderr }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(self.pid(), signal);
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits for the process; kills it and says so when it takes longer than `limit`.
    fn wait(&mut self, limit: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.exited() {
                return Ok(s);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!(
                    "etl did not end within {limit:?}; its stderr:\n{}",
                    self.stderr()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for EtlRun {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Stops a server that `pg_ctl restart` detached from the harness (the harness only stops the
/// postmaster it started itself) before the harness deletes its files.
struct RestartedServer<'a>(&'a Local);

impl Drop for RestartedServer<'_> {
    fn drop(&mut self) {
        let _ = run(pg_ctl(self.0).args(["stop", "-m", "immediate", "-w"]));
    }
}

/// One case: its server, folder, job and monitoring connection.
struct Case<'a> {
    point: Point,
    rt: tokio::runtime::Runtime,
    local: Local,
    url: String,
    dir: tempfile::TempDir,
    job: PathBuf,
    ids: Vec<String>,
    run_id: String,
    reference: &'a Outcome,
}

/// A client the case's runtime drives; reconnected when a server restart dropped it.
async fn connect(local: &Local) -> tokio_postgres::Client {
    client(local).await
}

impl Case<'_> {
    fn mon(&self) -> tokio_postgres::Client {
        self.rt.block_on(connect(&self.local))
    }

    fn step(&self, i: usize) -> &str {
        &self.ids[i]
    }

    /// Polls `probe` (a query returning one bigint; an error counts as "not yet": the journal may
    /// not exist yet, the server may be restarting) until `ok` holds; fails when `etl` exits first.
    fn wait_point(
        &self,
        mon: &tokio_postgres::Client,
        first: &mut EtlRun,
        what: &str,
        probe: &str,
        step: &str,
        ok: impl Fn(i64) -> bool,
    ) -> Result<(), String> {
        let start = Instant::now();
        loop {
            let v = self.rt.block_on(async {
                mon.query_one(probe, &[&self.run_id, &step])
                    .await
                    .ok()
                    .and_then(|r| r.get::<_, Option<i64>>(0))
            });
            if v.is_some_and(&ok) {
                return Ok(());
            }
            if let Some(status) = first.exited() {
                return Err(format!(
                    "fault point not reached ({what}): etl ended first ({status}); make the data \
                     larger. Its stderr:\n{}",
                    first.stderr()
                ));
            }
            if start.elapsed() > STUCK {
                return Err(format!("fault point not reached ({what}) within {STUCK:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The steps' ids as `etl plan` names them, in plan order (for the demo: create, the three loads,
/// the five transform statements, the unload).
fn plan_ids(job: &Path) -> Vec<String> {
    let out = etl_tests::stdout_ok(etl().args(["plan", "--dialect", "postgres"]).arg(job));
    out.lines()
        .filter_map(|l| l.strip_prefix("-- step "))
        .map(|s| s.trim().to_owned())
        .collect()
}

/// The step's session: journaled `running`, with the journaled PID and label live on the server.
const LIVE_STEP: &str = "from etl_meta.steps s join pg_stat_activity a \
     on a.pid = s.pid and a.application_name = s.label \
     where s.run_id = $1 and s.step_id = $2 and s.status = 'running'";

/// Rows the step's COPY has processed so far (`pg_stat_progress_copy`, PostgreSQL 14+).
fn probe_copied() -> String {
    let (from, filter) = LIVE_STEP.split_once(" where ").unwrap();
    format!(
        "select max(p.tuples_processed) {from} \
         join pg_stat_progress_copy p on p.pid = a.pid where {filter}"
    )
}

fn probe_waiting_on_lock() -> String {
    format!("select count(*) {LIVE_STEP} and a.wait_event_type = 'Lock'")
}

/// The step's session is executing and holds a lock on `relation` (its statement is reading it).
fn probe_reading(relation: &str) -> String {
    format!(
        "select count(*) {LIVE_STEP} and a.state = 'active' and exists (select 1 from pg_locks l \
         where l.pid = a.pid and l.relation = to_regclass('{relation}'))"
    )
}

/// What the test holds on the server so that a short statement stays running.
struct Hold {
    client: tokio_postgres::Client,
}

fn run_case(
    ds: &Dataset,
    method: Method,
    point: Point,
    reference: &Outcome,
) -> Result<String, String> {
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let local = rt.block_on(server());
    let url = local.url();
    let dir = tempfile::tempdir().unwrap();
    let job = write_job(dir.path(), &ds.data, method);
    let name = format!("{}/{}", method.name(), point.name());
    let case = Case {
        point,
        ids: {
            let ids = plan_ids(&job);
            assert_eq!(ids.len(), 10, "the demo's plan has 10 steps: {ids:?}");
            ids
        },
        run_id: format!("fault-{}-{}", method.name(), point.name()),
        rt,
        url,
        dir,
        job,
        local,
        reference,
    };
    // Declared after `case`, so it goes first: the restarted server stops before its files go.
    let _stop = matches!(point, Point::Restart(..)).then(|| RestartedServer(&case.local));
    let detail = inject(&case)?;
    let problems = verify(&case);
    if problems.is_empty() {
        Ok(format!(
            "{name}: ok in {:.1} s{detail}",
            started.elapsed().as_secs_f64()
        ))
    } else {
        Err(format!("{name}:\n  {}", problems.join("\n  ")))
    }
}

/// Hits the run at the case's point, then resumes it. Returns notes for the report.
fn inject(case: &Case<'_>) -> Result<String, String> {
    let mon = case.mon();
    let dir = case.dir.path();
    let mut notes = String::new();
    // Statements too short to catch are held by a lock of ours (see the module docs).
    let hold_setup: Option<(&str, &str)> = match case.point {
        Point::KillCreate => Some(("", "begin; create schema staging")),
        Point::KillTransform(0) => Some(("", "begin; create schema model")),
        Point::KillTransform(1) => Some((
            "create schema model; create table model.customer_profile (x int)",
            "begin; lock table model.customer_profile in access share mode",
        )),
        Point::KillTransform(3) => Some((
            "create schema model; create table model.recommendations (x int)",
            "begin; lock table model.recommendations in access share mode",
        )),
        _ => None,
    };
    let hold = hold_setup.map(|(before, held)| {
        case.rt.block_on(async {
            let c = connect(&case.local).await;
            if !before.is_empty() {
                c.batch_execute(before).await.unwrap();
            }
            c.batch_execute(held).await.unwrap();
            Hold { client: c }
        })
    });

    let mut first = EtlRun::start(
        &case.job,
        &case.url,
        Some(&case.run_id),
        &[],
        dir.join("first.stderr"),
    );
    let usage = case.step(1).to_owned();
    let copied = probe_copied();
    let kill = nix::sys::signal::Signal::SIGKILL;
    let mut expect_waiting = false;
    match case.point {
        Point::KillCreate => {
            case.wait_point(
                &mon,
                &mut first,
                "create held",
                &probe_waiting_on_lock(),
                case.step(0),
                |n| n > 0,
            )?;
            first.signal(kill);
            expect_waiting = true;
        }
        Point::KillLoad(phase) => {
            wait_load(case, &mon, &mut first, phase)?;
            first.signal(kill);
        }
        Point::KillTransform(i) => {
            let step = case.step(4 + i);
            match i {
                2 => case.wait_point(
                    &mon,
                    &mut first,
                    "profile CTAS reading staging.usage",
                    &probe_reading("staging.usage"),
                    step,
                    |n| n > 0,
                )?,
                4 => case.wait_point(
                    &mon,
                    &mut first,
                    "recommendations CTAS reading the profile",
                    &probe_reading("model.customer_profile"),
                    step,
                    |n| n > 0,
                )?,
                _ => {
                    case.wait_point(
                        &mon,
                        &mut first,
                        "transform held",
                        &probe_waiting_on_lock(),
                        step,
                        |n| n > 0,
                    )?;
                    expect_waiting = true;
                }
            }
            first.signal(kill);
        }
        Point::KillUnload => {
            case.wait_point(
                &mon,
                &mut first,
                "the unload streaming rows",
                &copied,
                case.step(9),
                |n| n > 0,
            )?;
            first.signal(kill);
        }
        Point::Interrupt(during) => {
            wait_during(case, &mon, &mut first, during)?;
            first.signal(nix::sys::signal::Signal::SIGINT);
            let status = first.wait(Duration::from_secs(30))?;
            let err = first.stderr();
            if status.code() != Some(130) || !err.contains("interrupted") {
                return Err(format!(
                    "Ctrl-C: expected exit 130 and \"interrupted\", got {status}:\n{err}"
                ));
            }
            // The CLI cancels its statements before it exits: nothing of it is still executing.
            let active: i64 = case.rt.block_on(async {
                mon.query_one(
                    "select count(*) from pg_stat_activity where application_name like 'etl-%' \
                     and state = 'active'",
                    &[],
                )
                .await
                .unwrap()
                .get(0)
            });
            if active != 0 {
                return Err(format!(
                    "after Ctrl-C, {active} statement(s) of the run still execute on the server"
                ));
            }
        }
        Point::Restart(mode, during) => {
            wait_during(case, &mon, &mut first, during)?;
            let log = case.local.dir().join("restarted.log");
            let out = run(pg_ctl(&case.local)
                .args(["restart", "-m", mode, "-w", "-t", "120", "-l"])
                .arg(&log));
            if !out.status.success() {
                return Err(format!(
                    "pg_ctl restart -m {mode} failed: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        Point::TerminateLoad => {
            wait_load(case, &mon, &mut first, Phase::Mid)?;
            let n: i64 = case.rt.block_on(async {
                mon.query_one(
                    &format!("select count(pg_terminate_backend(a.pid)) {LIVE_STEP}"),
                    &[&case.run_id, &usage],
                )
                .await
                .unwrap()
                .get(0)
            });
            assert_eq!(n, 1, "one loading session terminated");
        }
        Point::SecondRun | Point::SameRunId | Point::SameRunIdWaits => {
            wait_load(case, &mon, &mut first, Phase::Early)?;
            let (id, extra): (Option<&str>, &[&str]) = match case.point {
                Point::SecondRun => (None, &[]),
                Point::SameRunId => (Some(&case.run_id), &[]),
                _ => (Some(&case.run_id), &["--wait"]),
            };
            let mut second =
                EtlRun::start(&case.job, &case.url, id, extra, dir.join("second.stderr"));
            if matches!(case.point, Point::SameRunIdWaits) {
                // It must not work while the first runs: it ends after the first, and succeeds.
                let t = Instant::now();
                while first.exited().is_none() {
                    if let Some(status) = second.exited() {
                        return Err(format!(
                            "etl run --wait ended ({status}) while the run it should wait for was \
                             still active:\n{}",
                            second.stderr()
                        ));
                    }
                    if t.elapsed() > STUCK {
                        return Err("the first run did not end".into());
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let status = second.wait(STUCK)?;
                if !status.success() {
                    return Err(format!(
                        "etl run --wait failed after the first run ended ({status}):\n{}",
                        second.stderr()
                    ));
                }
            } else {
                let t = Instant::now();
                let status = second.wait(Duration::from_secs(60))?;
                let err = second.stderr();
                let waited = t.elapsed();
                let first_alive = first.exited().is_none();
                if status.code() != Some(1) || !err.contains(&case.run_id) || !first_alive {
                    return Err(format!(
                        "a second run while one is active must be refused at once with exit 1, \
                         naming the active run {}: it ended {status} after {waited:?} (the first \
                         run {}), stderr:\n{err}",
                        case.run_id,
                        if first_alive {
                            "still running"
                        } else {
                            "had already ended"
                        }
                    ));
                }
                notes.push_str(&format!("; refused in {:.1} s", waited.as_secs_f64()));
            }
        }
    }
    let status = first.wait(STUCK)?;
    let first_err = first.stderr();
    match case.point {
        Point::KillCreate | Point::KillLoad(_) | Point::KillTransform(_) | Point::KillUnload => {
            if status.signal() != Some(9) {
                return Err(format!(
                    "etl ended ({status}) before the SIGKILL landed:\n{first_err}"
                ));
            }
        }
        Point::Restart(..) | Point::TerminateLoad => {
            if status.code() != Some(1) {
                return Err(format!(
                    "a run whose server went away must fail with exit 1, got {status}:\n{first_err}"
                ));
            }
        }
        Point::SecondRun | Point::SameRunId | Point::SameRunIdWaits => {
            if !status.success() {
                return Err(format!(
                    "the first run failed while a second one was started ({status}):\n{first_err}"
                ));
            }
        }
        Point::Interrupt(_) => {}
    }

    // Resume at once, while orphans may still run.
    let mut resume = EtlRun::start(
        &case.job,
        &case.url,
        Some(&case.run_id),
        &[],
        dir.join("resume.stderr"),
    );
    if let Some(hold) = hold {
        // Let the held orphan go once the resume has seen it (or ended without waiting).
        let t = Instant::now();
        let mut seen = false;
        while t.elapsed() < Duration::from_secs(60) && resume.exited().is_none() {
            if resume.stderr().contains("still running on the server") {
                seen = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        case.rt
            .block_on(hold.client.batch_execute("rollback"))
            .unwrap();
        drop(hold);
        if expect_waiting && !seen {
            let status = resume.wait(STUCK)?;
            return Err(format!(
                "the resume did not wait for the orphaned statement still running on the server \
                 (no \"an earlier attempt is still running on the server\"); it ended {status}:\n{}",
                resume.stderr()
            ));
        }
        notes.push_str("; the resume waited for the orphan");
    }
    let status = resume.wait(STUCK)?;
    if !notes.contains("orphan") && resume.stderr().contains("still running on the server") {
        notes.push_str("; the resume waited for the orphan");
    }
    if !status.success() {
        return Err(format!(
            "the resume failed ({status}):\n{}\n--- the faulted run's stderr:\n{first_err}",
            resume.stderr()
        ));
    }
    Ok(notes)
}

/// Waits until staging.usage has loaded the phase's share of its rows.
fn wait_load(
    case: &Case<'_>,
    mon: &tokio_postgres::Client,
    first: &mut EtlRun,
    phase: Phase,
) -> Result<(), String> {
    let rows = case.reference.tables["staging.usage"].0;
    let (what, min) = match phase {
        Phase::Early => ("the usage load's first rows", 1),
        Phase::Mid => ("half of the usage load", rows / 2),
        Phase::Late => ("three quarters of the usage load", rows * 3 / 4),
    };
    case.wait_point(mon, first, what, &probe_copied(), case.step(1), |n| {
        n >= min
    })
}

/// Waits until the usage load is half done, or the profile's CTAS (the longest transform) reads.
fn wait_during(
    case: &Case<'_>,
    mon: &tokio_postgres::Client,
    first: &mut EtlRun,
    during: During,
) -> Result<(), String> {
    match during {
        During::Load => wait_load(case, mon, first, Phase::Mid),
        During::Transform => case.wait_point(
            mon,
            first,
            "profile CTAS reading staging.usage",
            &probe_reading("staging.usage"),
            case.step(6),
            |n| n > 0,
        ),
    }
}

/// Compares the case's warehouse and unload folder with the clean run's, and checks the journal
/// and the server's sessions. Returns what is wrong, with the journal rows when anything is.
fn verify(case: &Case<'_>) -> Vec<String> {
    let mut problems = Vec::new();
    let c = case.mon();
    case.rt.block_on(async {
        // Nothing of the job still executes once the resume has ended ...
        let active: Vec<String> = c
            .query(
                "select application_name || ' (' || state || '): ' || left(query, 80) \
                 from pg_stat_activity where application_name like 'etl-%' and state = 'active'",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !active.is_empty() {
            problems.push(format!(
                "still running on the server after the resume: {active:?}"
            ));
        }
        // ... and its sessions go as its connections close.
        let t = Instant::now();
        loop {
            let n: i64 = c
                .query_one(
                    "select count(*) from pg_stat_activity where application_name like 'etl-%'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if n == 0 {
                break;
            }
            if t.elapsed() > Duration::from_secs(10) {
                problems.push(format!(
                    "{n} session(s) labelled etl-* remain 10 s after the resume"
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        match table_sums(&c).await {
            Ok(tables) => {
                for (t, (rows, sum)) in &tables {
                    let (want_rows, want_sum) = &case.reference.tables[t];
                    if rows != want_rows {
                        problems.push(format!(
                            "{t}: {rows} rows, the clean run has {want_rows} ({})",
                            if rows > want_rows {
                                "duplicated"
                            } else {
                                "lost"
                            }
                        ));
                    } else if sum != want_sum {
                        problems.push(format!(
                            "{t}: {rows} rows as in the clean run, but other rows"
                        ));
                    }
                }
            }
            Err(e) => problems.push(e),
        }
        let running: Vec<String> = c
            .query(
                "select run_id || ' ' || step_id from etl_meta.steps where status = 'running' \
                 union all select 'run ' || run_id from etl_meta.runs where status = 'running'",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !running.is_empty() {
            problems.push(format!("left running in etl_meta: {running:?}"));
        }
        let status: Option<String> = c
            .query_opt(
                "select status from etl_meta.runs where run_id = $1",
                &[&case.run_id],
            )
            .await
            .unwrap()
            .map(|r| r.get(0));
        if status.as_deref() != Some("succeeded") {
            problems.push(format!("etl_meta.runs says {status:?}, not succeeded"));
        }
        let unfinished: i64 = c
            .query_one(
                "select count(*) from etl_meta.steps where run_id = $1 and status <> 'succeeded'",
                &[&case.run_id],
            )
            .await
            .unwrap()
            .get(0);
        if unfinished != 0 {
            problems.push(format!("{unfinished} step(s) of the run not succeeded"));
        }
        if !problems.is_empty() {
            let journal: Vec<String> = c
                .query(
                    "select step_id || ' ' || status || ' attempts=' || attempts || ' rows=' || \
                     coalesce(rows::text, '-') || coalesce(' sqlstate=' || sqlstate, '') || \
                     coalesce(' error=' || left(error, 200), '') \
                     from etl_meta.steps where run_id = $1 order by seq",
                    &[&case.run_id],
                )
                .await
                .map(|rows| rows.iter().map(|r| r.get(0)).collect())
                .unwrap_or_default();
            problems.push(format!("journal: {journal:#?}"));
        }
    });
    let files = unload_files(case.dir.path());
    if files != case.reference.files {
        let names = |m: &BTreeMap<String, Vec<u8>>| {
            m.iter()
                .map(|(k, v)| format!("{k} ({} bytes)", v.len()))
                .collect::<Vec<_>>()
        };
        problems.push(format!(
            "unload folder: {:?}, the clean run's: {:?}",
            names(&files),
            names(&case.reference.files)
        ));
    }
    if !problems.is_empty() {
        for f in ["first.stderr", "second.stderr", "resume.stderr"] {
            if let Ok(text) = std::fs::read_to_string(case.dir.path().join(f)) {
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                problems.push(format!("{f} (end):\n    {}", tail.join("\n    ")));
            }
        }
    }
    problems
}

/// A clean run of the job on its own server: what every faulted run must end with.
fn clean_run(ds: &Dataset, method: Method) -> (Outcome, f64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let local = rt.block_on(server());
    let dir = tempfile::tempdir().unwrap();
    let job = write_job(dir.path(), &ds.data, method);
    let t = Instant::now();
    let out =
        run(etl()
            .arg("run")
            .arg(&job)
            .args(["--database-url", &local.url(), "--run-id", "clean"]));
    let seconds = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "the clean {} run failed:\n{}",
        method.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    let tables = rt.block_on(async { table_sums(&client(&local).await).await.unwrap() });
    let outcome = Outcome {
        tables,
        files: unload_files(dir.path()),
    };
    assert!(
        outcome.files.len() == 1 && outcome.files.values().all(|f| f.len() > 1000),
        "one CSV file: {:?}",
        outcome.files.keys()
    );
    (outcome, seconds)
}

#[test]
fn every_fault_point_leaves_what_a_clean_run_leaves() {
    let filter = std::env::var("ETL_FAULTS").unwrap_or_default();
    let threads: usize = std::env::var("ETL_FAULTS_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let started = Instant::now();
    let ds = generate();
    let full = std::env::var("ETL_FAULTS_MATRIX").is_ok_and(|v| v == "full");
    const METHODS: [Method; 3] = [Method::Replace, Method::Append, Method::Upsert];
    let mut cases: Vec<(Method, Point)> = Vec::new();
    for (i, point) in Point::all().into_iter().enumerate() {
        // A point while a load may be in flight is tried with every load method; the others
        // (create, transforms, unload: every load finished or none begun) with one, in turn.
        let methods = if full || point.during_load() {
            METHODS.to_vec()
        } else {
            vec![METHODS[i % 3]]
        };
        for method in methods {
            if format!("{}/{}", method.name(), point.name()).contains(&filter) {
                cases.push((method, point));
            }
        }
    }
    let mut methods: Vec<Method> = cases.iter().map(|(m, _)| *m).collect();
    methods.sort();
    methods.dedup();
    let references: BTreeMap<Method, (Outcome, f64)> = std::thread::scope(|s| {
        let handles: Vec<_> = methods
            .iter()
            .map(|&m| {
                let ds = &ds;
                (m, s.spawn(move || clean_run(ds, m)))
            })
            .collect();
        handles
            .into_iter()
            .map(|(m, h)| (m, h.join().expect("a clean run")))
            .collect()
    });
    for (m, (outcome, seconds)) in &references {
        eprintln!(
            "clean {} run: {seconds:.1} s, usage {} rows",
            m.name(),
            outcome.tables["staging.usage"].0
        );
    }
    // On an empty warehouse the three methods load the same rows: one truth for every case.
    let first = &references.values().next().expect("a case").0;
    for (m, (outcome, _)) in &references {
        assert_eq!(
            outcome,
            first,
            "the clean {} run differs from the others",
            m.name()
        );
    }

    let queue = Mutex::new(cases.into_iter());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let next = queue.lock().unwrap().next();
                    let Some((method, point)) = next else { break };
                    let reference = &references[&method].0;
                    let name = format!("{}/{}", method.name(), point.name());
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        run_case(&ds, method, point, reference)
                    }))
                    .unwrap_or_else(|p| {
                        Err(format!(
                            "{name}: panicked: {}",
                            p.downcast_ref::<String>()
                                .map(String::as_str)
                                .or_else(|| p.downcast_ref::<&str>().copied())
                                .unwrap_or("?")
                        ))
                    });
                    match &r {
                        Ok(line) => eprintln!("{line}"),
                        Err(e) => eprintln!("FAILED {e}"),
                    }
                    results.lock().unwrap().push(r);
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    eprintln!(
        "{} fault case(s), {} failed, in {:.0} s",
        results.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failed.is_empty(),
        "{} of {} fault point(s) failed:\n\n{}",
        failed.len(),
        results.len(),
        failed
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

/// Polls `sql` (one bigint, `$1` the run id, `$2` the step id) until it is positive.
async fn wait_positive(c: &tokio_postgres::Client, sql: &str, run_id: &str, step: &str) {
    let t = Instant::now();
    loop {
        let n = c
            .query_one(sql, &[&run_id, &step])
            .await
            .ok()
            .and_then(|r| r.get::<_, Option<i64>>(0))
            .unwrap_or(0);
        if n > 0 {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "never saw: {sql}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `{"name": "collide", ...}`: schema `a.b` with table `t`, and schema `a` with table `b.t`, both
/// APPEND (a reload would double its rows), from `one.txt` and `two.txt`.
fn colliding_job(dir: &Path) -> PathBuf {
    let table = |name: &str, file: &str| {
        serde_json::json!({"name": name, "files": file, "load": {"method": "append"},
            "columns": [{"name": "id", "type": "int", "nullable": false}]})
    };
    let manifest = serde_json::json!({
        "name": "collide",
        "input": ".",
        "format": {"compression": "none", "maxerror": 0},
        "schemas": [
            {"name": "a.b", "tables": [table("t", "one.txt")]},
            {"name": "a", "tables": [table("b.t", "two.txt")]},
        ],
    });
    std::fs::write(dir.join("job.json"), manifest.to_string()).unwrap();
    dir.join("job.json")
}

/// Issue 10: `a.b`.`t` and `a`.`b.t` were both step `load:a.b.t`, so a resume skipped the failed
/// one (left empty, the run "succeeded") or reloaded the finished one (APPEND rows twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colliding_names_are_two_steps_and_a_resume_neither_skips_nor_doubles() {
    let local = server().await;
    let url = local.url();
    let c = client(&local).await;
    for (n, failing) in ["one.txt", "two.txt"].into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let job = colliding_job(dir.path());
        // One header row (the default IGNOREHEADER 1), then the rows.
        let good = |f: &str| {
            if f == "one.txt" {
                "id\n1\n2\n3\n"
            } else {
                "id\n10\n20\n"
            }
        };
        for f in ["one.txt", "two.txt"] {
            let text = if f == failing {
                format!("{}not a number\n", good(f))
            } else {
                good(f).to_owned()
            };
            std::fs::write(dir.path().join(f), text).unwrap();
        }
        let run_id = format!("collide-{n}");
        let out =
            run(etl()
                .arg("run")
                .arg(&job)
                .args(["--database-url", &url, "--run-id", &run_id]));
        assert_eq!(
            out.status.code(),
            Some(1),
            "the load of {failing} fails:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Fixed; the resume loads the failed table and leaves the finished one alone.
        std::fs::write(dir.path().join(failing), good(failing)).unwrap();
        let out =
            run(etl()
                .arg("run")
                .arg(&job)
                .args(["--database-url", &url, "--run-id", &run_id]));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let count = |sql: &'static str| {
            let c = &c;
            async move { c.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
        };
        assert_eq!(
            (
                count(r#"select count(*) from "a.b"."t""#).await,
                count(r#"select count(*) from "a"."b.t""#).await
            ),
            (3, 2),
            "failing {failing}: each table has its rows once"
        );
        let ids: Vec<String> = c
            .query(
                "select step_id from etl_meta.steps where run_id = $1 order by seq",
                &[&run_id],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut distinct = ids.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), ids.len(), "distinct step ids: {ids:?}");
        assert_eq!(ids.len(), 3, "create and two loads: {ids:?}");
        c.batch_execute(r#"drop schema "a.b" cascade; drop schema "a" cascade"#)
            .await
            .unwrap();
    }
}

/// A one-table manifest with schema `schema` (table `runs`, REPLACE).
fn schema_job(dir: &Path, schema: &str) -> PathBuf {
    std::fs::write(dir.join("t.txt"), "1\n").unwrap();
    let manifest = serde_json::json!({
        "name": "reserved",
        "input": ".",
        "format": {"compression": "none"},
        "schemas": [{"name": schema, "tables": [{"name": "runs", "files": "t.txt",
            "load": {"method": "replace"}, "columns": [{"name": "run_id", "type": "int"}]}]}],
    });
    let path = dir.join(format!("{schema}.json"));
    std::fs::write(&path, manifest.to_string()).unwrap();
    path
}

/// Issue 10: a manifest with schema `etl_meta` and table `runs` (REPLACE) deleted the journal and
/// reported success. It is refused at validation — by `etl plan` and by `etl run`, before anything
/// touches the warehouse — with the JSON path of the name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_using_the_journal_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let job = schema_job(dir.path(), "etl_meta");
    let out = run(etl().args(["plan", "--dialect", "postgres"]).arg(&job));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("schemas[0].name") && err.contains("etl_meta"),
        "{err}"
    );

    let local = server().await;
    let url = local.url();
    let fine = schema_job(dir.path(), "s");
    let out = run(etl()
        .arg("run")
        .arg(&fine)
        .args(["--database-url", &url, "--run-id", "before"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(etl().arg("run").arg(&job).args(["--database-url", &url]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("schemas[0].name") && err.contains("etl_meta"),
        "{err}"
    );
    let c = client(&local).await;
    let runs: Vec<String> = c
        .query("select run_id from etl_meta.runs", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(runs, ["before"], "the journal is intact");
}

/// `pg_catalog` (and the other system schemas) passed validation and failed late, on the server.
#[test]
fn system_schemas_are_refused_at_validation() {
    let dir = tempfile::tempdir().unwrap();
    for schema in ["pg_catalog", "information_schema", "pg_toast"] {
        let job = schema_job(dir.path(), schema);
        let out = run(etl().args(["plan", "--dialect", "postgres"]).arg(&job));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{schema}: {err}");
        assert!(
            err.contains("schemas[0].name") && err.contains(schema),
            "{schema}: {err}"
        );
    }
    // And `etl run` refuses it before connecting: no server is started for it.
    let job = schema_job(dir.path(), "pg_catalog");
    let out = run(etl().arg("run").arg(&job));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("schemas[0].name"), "{err}");
}

/// A statement cancelled on the server by someone else (`pg_cancel_backend` from another session,
/// SQLSTATE 57014) is a failed statement with the server's message and exit 1 — exit 130 and
/// "interrupted" belong to the user's own Ctrl-C.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_cancelled_by_someone_else_fails_with_the_servers_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.txt"), "a\n1\n").unwrap();
    std::fs::write(dir.path().join("slow.sql"), "select pg_sleep(60);\n").unwrap();
    let job = dir.path().join("job.json");
    std::fs::write(
        &job,
        r#"{"name": "slow", "input": ".", "format": {"compression": "none", "ignoreheader": 1},
            "transform": ["slow.sql"],
            "schemas": [{"name": "s", "tables": [{"name": "t", "files": "t.txt",
                "columns": [{"name": "a", "type": "int"}]}]}]}"#,
    )
    .unwrap();
    let ids = plan_ids(&job);
    let transform = ids
        .iter()
        .find(|id| id.starts_with("transform"))
        .expect("a transform step")
        .clone();
    let local = server().await;
    let c = client(&local).await;
    let mut etl_run = EtlRun::start(
        &job,
        &local.url(),
        Some("cancelled"),
        &[],
        dir.path().join("stderr"),
    );
    let active = format!("select count(*) {LIVE_STEP} and a.state = 'active'");
    wait_positive(&c, &active, "cancelled", &transform).await;
    let n: i64 = c
        .query_one(
            &format!("select count(pg_cancel_backend(a.pid)) {LIVE_STEP}"),
            &[&"cancelled", &transform],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let status = etl_run.wait(Duration::from_secs(30)).unwrap();
    let err = etl_run.stderr();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("canceling statement due to user request"),
        "the server's message: {err}"
    );
    assert!(!err.contains("interrupted"), "{err}");
    let row = c
        .query_one(
            "select s.status, s.sqlstate, r.status from etl_meta.steps s \
             join etl_meta.runs r using (run_id) where s.run_id = 'cancelled' and s.step_id = $1",
            &[&transform],
        )
        .await
        .unwrap();
    let (step, sqlstate, run): (String, Option<String>, String) =
        (row.get(0), row.get(1), row.get(2));
    assert!(
        matches!(step.as_str(), "failed" | "cancelled")
            && sqlstate.as_deref() == Some("57014")
            && run == "failed",
        "journaled as a statement that ended with 57014 and a failed run: {step} {sqlstate:?} {run}"
    );
}
