//! The tracker's decision core: what a submitted statement is doing, decided from observations
//! alone — the step's journal row, the server's live-session rows and its history rows — by pure
//! functions. The SQL around it ([`super::observe`]) only gathers the rows; what must then be done
//! (a conditional journal conclusion, ending a session) is part of the [`Decision`], executed by
//! the caller.
//!
//! What the views show and what they do not (Amazon Redshift Database Developer Guide):
//! - `STV_INFLIGHT` lists queries running on the compute nodes only — "does not show leader-node
//!   only queries" (BEGIN, COMMIT, the gaps between the statements of a block) — and keeps 15
//!   characters of the query group
//!   (<https://docs.aws.amazon.com/redshift/latest/dg/r_STV_INFLIGHT.html>,
//!   <https://docs.aws.amazon.com/redshift/latest/dg/r_query_group.html>);
//! - `STV_RECENTS` has `status` `Running` for statements running or waiting in a queue, and its
//!   `pid` is -1 once a statement is done
//!   (<https://docs.aws.amazon.com/redshift/latest/dg/r_STV_RECENTS.html>);
//! - `STV_SESSIONS` lists the active sessions with their start time
//!   (<https://docs.aws.amazon.com/redshift/latest/dg/r_STV_SESSIONS.html>): a session with the
//!   handle's PID that started after the step did is another session (PIDs are reused);
//! - `SYS_QUERY_HISTORY` has a row for every query of the session, running or finished, the
//!   tracker's own included, with `status` planning / queued / running / returning / failed /
//!   canceled / success; a `success` does not say the query's transaction committed — the page
//!   says to join `SYS_TRANSACTION_HISTORY` for that
//!   (<https://docs.aws.amazon.com/redshift/latest/dg/SYS_QUERY_HISTORY.html>), which only
//!   superusers see (<https://docs.aws.amazon.com/redshift/latest/dg/SYS_TRANSACTION_HISTORY.html>);
//! - system tables do not follow the consistency model of ordinary tables, so one view may show
//!   what another does not yet (history lag)
//!   (<https://docs.aws.amazon.com/redshift/latest/dg/cm_chap_system-tables.html>);
//! - inside a transaction block a query cannot be cancelled, only its session terminated, which
//!   releases its locks and rolls it back
//!   (<https://docs.aws.amazon.com/redshift/latest/dg/PG_CANCEL_BACKEND.html>).
//!
//! The rules:
//! 1. The journal, read last, is the truth for a statement in a block: its `succeeded` commits
//!    with the statement. A conclusion is only ever written over the same attempt while it is
//!    unfinished ([`crate::journal::conclude_step`]).
//! 2. No `failed` conclusion while the submitting session is alive inside its block, unless the
//!    server reports the failure itself (a failed or cancelled query of the block, a rolled-back
//!    transaction, an aborted transaction on PostgreSQL) or the statement timed out.
//! 3. A `failed`, cancelled or timed-out conclusion while the session is alive ends that session
//!    ([`Stop::Terminate`]) so that its locks go — its client may be frozen (a Lambda between
//!    invocations) and would hold them for ever.
//! 4. Once the session is gone, a block whose journal row did not commit did not commit.

use std::time::Duration;

use chrono::NaiveDateTime;

use super::{Handle, State};
use crate::journal::{Status, TrackedStep};
use crate::sql::{self, Dialect};

/// How long after a step started a missing history row is taken for history lag rather than a
/// statement that never ran (statements outside a block on Redshift, whose history is the only
/// witness once their session is gone). `SYS_QUERY_HISTORY` holds running queries too, so a
/// long statement has had its row for long when it ends.
pub const HISTORY_LAG: Duration = Duration::from_secs(120);

/// What `SYS_QUERY_HISTORY.query_label` (character(320)) keeps: the whole label.
const HISTORY_LABEL: usize = 320;

/// Everything one poll saw, in the order it was read: the journal (read first, for the attempt's
/// start, and again last), the poller's own session and clock, and the server's rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The step's journal row, read after the server's rows; `None` when the journal does not
    /// know the step.
    pub journal: Option<TrackedStep>,
    /// When this attempt started: the journal's `started_at`, else the handle's `submitted_at`.
    /// History rows and sessions are judged against it.
    pub since: NaiveDateTime,
    /// The PID of the session the observation was made from.
    pub observer_pid: i32,
    /// The server's clock when the observation was made (UTC).
    pub now: NaiveDateTime,
    /// The server's rows.
    pub live: Live,
}

/// The server's rows about the handle's session.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Live {
    /// Not read (the journal already told).
    #[default]
    NotRead,
    /// Redshift's system views, filtered by PID (and start time for the history).
    Redshift {
        /// `STV_SESSIONS` rows with the PID.
        sessions: Vec<SessionRow>,
        /// `STV_INFLIGHT` rows with the PID.
        inflight: Vec<InflightRow>,
        /// `STV_RECENTS` rows with the PID and status `Running`.
        recents: Vec<RecentRow>,
        /// `SYS_QUERY_HISTORY` rows of the session since the attempt started, oldest first.
        history: Vec<HistoryRow>,
        /// `SYS_TRANSACTION_HISTORY` rows of those queries' transactions; `None` when they
        /// could not be read (superusers only).
        transactions: Option<Vec<TransactionRow>>,
    },
    /// PostgreSQL's `pg_stat_activity` row with the PID.
    Postgres {
        /// The row, if a session has that PID.
        activity: Option<ActivityRow>,
    },
}

/// An `STV_SESSIONS` row.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    /// `process`.
    pub process: i32,
    /// `starttime` (the session's start).
    pub starttime: NaiveDateTime,
}

/// An `STV_INFLIGHT` row.
#[derive(Debug, Clone, PartialEq)]
pub struct InflightRow {
    /// `pid`.
    pub pid: i32,
    /// `label`: the query group, cut to 15 characters and blank-padded.
    pub label: String,
    /// `starttime`.
    pub starttime: NaiveDateTime,
    /// `xid`.
    pub xid: i64,
}

/// An `STV_RECENTS` row.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentRow {
    /// `pid` (-1 once done).
    pub pid: i32,
    /// `status`: `Running` or `Done`.
    pub status: String,
    /// `starttime`.
    pub starttime: NaiveDateTime,
}

/// A `SYS_QUERY_HISTORY` row.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    /// `query_id`.
    pub query_id: i64,
    /// `transaction_id`.
    pub transaction_id: i64,
    /// `query_label`.
    pub label: String,
    /// `status`: planning, queued, running, returning, failed, canceled or success.
    pub status: String,
    /// `start_time`.
    pub start_time: NaiveDateTime,
    /// `end_time`.
    pub end_time: Option<NaiveDateTime>,
    /// `returned_rows`.
    pub returned_rows: Option<i64>,
    /// `error_message`.
    pub error: Option<String>,
    /// `query_text` (possibly truncated).
    pub text: String,
}

/// A `SYS_TRANSACTION_HISTORY` row.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionRow {
    /// `transaction_id`.
    pub transaction_id: i64,
    /// `status`: committed or rolledback.
    pub status: String,
}

/// A `pg_stat_activity` row.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityRow {
    /// `pid`.
    pub pid: i32,
    /// `application_name` (the label).
    pub application_name: String,
    /// `state`: active, idle, idle in transaction, idle in transaction (aborted), ...
    pub state: Option<String>,
    /// `backend_start` (UTC).
    pub backend_start: NaiveDateTime,
    /// `query`: the running or last statement.
    pub query: String,
}

/// How to stop the handle's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Cancel its running statement (outside a block on Redshift; anywhere on PostgreSQL).
    Cancel,
    /// End the session: its transaction rolls back and its locks go.
    Terminate,
}

/// A conclusion to write to the journal, conditionally (see [`crate::journal::conclude_step`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conclusion {
    /// `succeeded`, `failed` or `cancelled`.
    pub status: Status,
    /// Rows, when known.
    pub rows: Option<u64>,
    /// The message, for a failure.
    pub message: Option<String>,
}

/// What one poll concludes, and what the caller must do about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The statement's state.
    pub state: State,
    /// A conclusion to journal (conditional on the attempt still being unfinished).
    pub conclude: Option<Conclusion>,
    /// The session to stop first.
    pub stop: Option<Stop>,
    /// Seconds it has run, when it ran past its timeout.
    pub timed_out: Option<f64>,
    /// Why, in a few words (logs, tests).
    pub why: &'static str,
}

impl Decision {
    fn state(state: State, why: &'static str) -> Self {
        Decision {
            state,
            conclude: None,
            stop: None,
            timed_out: None,
            why,
        }
    }

    fn running(why: &'static str) -> Self {
        Self::state(State::Running, why)
    }

    fn ended(status: Status, message: String, alive: bool, why: &'static str) -> Self {
        let state = match status {
            Status::Cancelled => State::Cancelled,
            _ => State::Failed {
                sqlstate: None,
                message: message.clone(),
            },
        };
        Decision {
            state,
            conclude: Some(Conclusion {
                status,
                rows: None,
                message: Some(message),
            }),
            stop: alive.then_some(Stop::Terminate),
            timed_out: None,
            why,
        }
    }
}

/// The state a finished journal row records; `None` while it is pending or running.
pub fn from_journal(row: &TrackedStep) -> Option<State> {
    match row.status {
        Status::Succeeded => Some(State::Succeeded {
            rows: row.rows.map(|r| r.max(0) as u64),
        }),
        Status::Failed => Some(State::Failed {
            sqlstate: row.sqlstate.clone(),
            message: row.error.clone().unwrap_or_default(),
        }),
        Status::Cancelled => Some(State::Cancelled),
        Status::Running | Status::Pending => None,
    }
}

/// Whether a view that keeps `width` characters of the label shows `label`: `kept` (blank-padded,
/// as Redshift's `character(n)` columns are) equals the label cut to `width` characters. Labels
/// of [`crate::journal::step_label`] are 15 characters, so this is an exact comparison in every
/// view.
pub fn label_matches(kept: &str, label: &str, width: usize) -> bool {
    let want: String = label.chars().take(width).collect();
    kept.trim_end() == want
}

/// Whether `text` is one of the statements the tracker itself sends on the step's session before
/// the step's own ([`super::begin`]): its clock and PID, its journal start and read-back, its
/// label. They are in the session's history like any query and say nothing about the step.
pub fn is_own_statement(dialect: Dialect, text: &str) -> bool {
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let before_parameters = |s: String| -> String {
        let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
        match s.find('$') {
            Some(i) => s[..i].to_owned(),
            None => s,
        }
    };
    let label = sql::set_label(dialect, "x");
    let own = [
        sql::session_info(dialect),
        before_parameters(sql::journal::start_step(dialect)),
        before_parameters(sql::journal::observe_step().to_owned()),
        label[..label.find('\'').unwrap_or(label.len())].to_owned(),
    ];
    own.iter().any(|p| text.starts_with(p.trim_end()))
}

/// What the statement behind `handle` is doing, from `obs`; `timeout` is the statement's limit.
pub fn decide(handle: &Handle, obs: &Observation, timeout: Option<Duration>) -> Decision {
    let Some(row) = &obs.journal else {
        return Decision::state(
            State::Unknown {
                reason: format!(
                    "the journal has no step {} in run {}",
                    handle.step_id, handle.run_id
                ),
            },
            "no journal row",
        );
    };
    if let Some(state) = from_journal(row) {
        return Decision::state(state, "the journal records the outcome");
    }
    if let Some(attempt) = handle.attempt
        && attempt != row.attempt
    {
        return Decision::state(
            State::Unknown {
                reason: format!(
                    "attempt {} of step {} started after this handle's attempt {attempt}: poll \
                     that attempt's handle",
                    row.attempt, handle.step_id
                ),
            },
            "superseded by a later attempt",
        );
    }
    let decision = match &obs.live {
        Live::NotRead => Decision::running("not observed"),
        Live::Redshift {
            sessions,
            inflight,
            recents,
            history,
            transactions,
        } => decide_redshift(
            handle,
            obs,
            sessions,
            inflight,
            recents,
            history,
            transactions.as_deref(),
        ),
        Live::Postgres { activity } => decide_postgres(handle, obs, activity.as_ref()),
    };
    with_timeout(handle, obs, decision, timeout)
}

/// A running statement past its limit, on a live session: concluded failed, its session ended.
fn with_timeout(
    handle: &Handle,
    obs: &Observation,
    decision: Decision,
    timeout: Option<Duration>,
) -> Decision {
    let Some(limit) = timeout else {
        return decision;
    };
    if decision.state != State::Running || !session_alive(handle, obs) {
        return decision;
    }
    let elapsed = (obs.now - obs.since).as_seconds_f64();
    if elapsed <= limit.as_secs_f64() {
        return decision;
    }
    let mut d = Decision::ended(
        Status::Failed,
        format!(
            "timed out after {elapsed:.1} s (statement timeout {} s); its session was ended",
            limit.as_secs_f64()
        ),
        true,
        "timed out",
    );
    d.timed_out = Some(elapsed);
    d
}

/// Whether the handle's own session is alive (not a reused PID, not the observer's session).
pub fn session_alive(handle: &Handle, obs: &Observation) -> bool {
    if handle.pid == obs.observer_pid {
        return false;
    }
    match &obs.live {
        Live::NotRead => false,
        Live::Redshift { sessions, .. } => sessions
            .iter()
            .any(|s| s.process == handle.pid && s.starttime <= obs.since),
        Live::Postgres { activity } => activity.as_ref().is_some_and(|a| ours(handle, obs, a)),
    }
}

fn ours(handle: &Handle, obs: &Observation, a: &ActivityRow) -> bool {
    a.pid == handle.pid
        && a.application_name == handle.label
        && a.backend_start <= obs.since
        && handle.pid != obs.observer_pid
}

/// The history rows of the step: the handle's session and label, not the tracker's own.
fn step_rows<'a>(handle: &Handle, history: &'a [HistoryRow]) -> Vec<&'a HistoryRow> {
    history
        .iter()
        .filter(|h| label_matches(&h.label, &handle.label, HISTORY_LABEL))
        .filter(|h| !is_own_statement(Dialect::Redshift, &h.text))
        .collect()
}

fn in_progress(status: &str) -> bool {
    matches!(
        status.trim(),
        "planning" | "queued" | "running" | "returning"
    )
}

/// Whether the server shows the step's statement running (or queued) on Redshift.
fn redshift_busy(
    handle: &Handle,
    inflight: &[InflightRow],
    recents: &[RecentRow],
    steps: &[&HistoryRow],
) -> bool {
    inflight
        .iter()
        .any(|r| r.pid == handle.pid && label_matches(&r.label, &handle.label, sql::INFLIGHT_LABEL))
        || recents
            .iter()
            .any(|r| r.pid == handle.pid && r.status.trim() == "Running")
        || steps.iter().any(|h| in_progress(&h.status))
}

fn decide_redshift(
    handle: &Handle,
    obs: &Observation,
    _sessions: &[SessionRow],
    inflight: &[InflightRow],
    recents: &[RecentRow],
    history: &[HistoryRow],
    transactions: Option<&[TransactionRow]>,
) -> Decision {
    let alive = session_alive(handle, obs);
    let steps = step_rows(handle, history);
    let txn = |xid: i64| {
        transactions
            .and_then(|t| t.iter().find(|t| t.transaction_id == xid))
            .map(|t| t.status.trim().to_owned())
    };
    // The server reports the failure itself.
    if let Some(h) = steps
        .iter()
        .find(|h| matches!(h.status.trim(), "failed" | "canceled"))
    {
        let status = if h.status.trim() == "canceled" {
            Status::Cancelled
        } else {
            Status::Failed
        };
        let message = h
            .error
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .unwrap_or(if status == Status::Cancelled {
                "cancelled"
            } else {
                "failed"
            })
            .to_owned();
        return Decision::ended(status, message, alive, "a query of the step failed");
    }
    if let Some(h) = steps
        .iter()
        .find(|h| txn(h.transaction_id).as_deref() == Some("rolledback"))
    {
        let _ = h;
        return Decision::ended(
            Status::Failed,
            "the statement's transaction was rolled back".into(),
            alive,
            "its transaction rolled back",
        );
    }
    let busy = redshift_busy(handle, inflight, recents, &steps);
    if handle.in_block {
        if alive {
            // Running, queued, between the statements of the block or committing: the journal
            // row commits with it. A `success` in the history is a statement of the block, not
            // the block.
            return Decision::running(if busy {
                "the block runs"
            } else {
                "the session is alive inside its block"
            });
        }
        // The session is gone, so its transaction is over; the journal, read after, did not see
        // the block's journal row commit: it rolled back.
        let message = steps
            .iter()
            .rev()
            .find_map(|h| h.error.as_deref().map(str::trim).filter(|m| !m.is_empty()))
            .unwrap_or(
                "the statement's session ended without committing it (it failed, was \
                 cancelled, or the session died)",
            )
            .to_owned();
        return Decision::ended(
            Status::Failed,
            message,
            false,
            "the session ended mid-block",
        );
    }
    // Outside a block: the statement commits on its own, and its history row is the witness.
    if busy {
        return Decision::running("the statement runs");
    }
    if let Some(h) = steps.iter().rev().find(|h| h.status.trim() == "success") {
        let rows = h.returned_rows.map(|r| r.max(0) as u64);
        return Decision {
            state: State::Succeeded { rows },
            conclude: Some(Conclusion {
                status: Status::Succeeded,
                rows,
                message: None,
            }),
            stop: None,
            timed_out: None,
            why: "its history row says success",
        };
    }
    if alive {
        return Decision::running("the session is alive");
    }
    if (obs.now - obs.since).to_std().unwrap_or_default() < HISTORY_LAG {
        return Decision::running("no history row yet (history lags)");
    }
    Decision::state(
        State::Unknown {
            reason: "the statement ran outside a transaction block, its session is gone and \
                     SYS_QUERY_HISTORY has no row for it"
                .into(),
        },
        "no witness",
    )
}

fn decide_postgres(handle: &Handle, obs: &Observation, activity: Option<&ActivityRow>) -> Decision {
    let gone = || {
        if handle.in_block {
            Decision::ended(
                Status::Failed,
                "the statement's session ended without committing it (it failed, was \
                 cancelled, or the session died)"
                    .into(),
                false,
                "the session ended without committing",
            )
        } else {
            Decision::state(
                State::Unknown {
                    reason: "the statement ran outside a transaction block and its session is \
                             gone; PostgreSQL keeps no history to tell how it ended"
                        .into(),
                },
                "no witness",
            )
        }
    };
    let Some(a) = activity.filter(|a| ours(handle, obs, a)) else {
        // No session with that PID, or another one (another label or a later start).
        return gone();
    };
    match a.state.as_deref() {
        Some("idle in transaction (aborted)") => Decision::ended(
            Status::Failed,
            "the statement failed (its transaction is aborted)".into(),
            true,
            "aborted transaction",
        ),
        Some("idle in transaction") => Decision::running("between the statements of its block"),
        Some("idle") if is_own_statement(Dialect::Postgres, &a.query) => {
            Decision::running("labelled; the statement is not sent yet")
        }
        Some("idle") => gone(),
        _ => Decision::running("active"),
    }
}

/// How `etl cancel` / [`super::cancel`] stops the statement behind `handle`, if it still runs:
/// inside a Redshift block only ending the session works; on PostgreSQL a running statement is
/// cancelled and a block waiting between statements ended.
pub fn stop_for_cancel(handle: &Handle, obs: &Observation) -> Option<Stop> {
    let row = obs.journal.as_ref()?;
    if from_journal(row).is_some() || handle.attempt.is_some_and(|a| a != row.attempt) {
        return None;
    }
    if !session_alive(handle, obs) {
        return None;
    }
    match &obs.live {
        Live::Redshift { .. } if handle.in_block => Some(Stop::Terminate),
        Live::Redshift { .. } => Some(Stop::Cancel),
        Live::Postgres {
            activity: Some(a), ..
        } => match a.state.as_deref() {
            Some("idle") => None,
            Some(s) if s.starts_with("idle in transaction") => Some(Stop::Terminate),
            _ => Some(Stop::Cancel),
        },
        _ => None,
    }
}

/// Whether the server has the statement (running, or done with it): what [`super::submit`] waits
/// for before it returns, so that a poll from elsewhere finds it.
pub fn visible(handle: &Handle, obs: &Observation) -> bool {
    if obs.journal.as_ref().and_then(from_journal).is_some() {
        return true;
    }
    match &obs.live {
        Live::NotRead => false,
        Live::Redshift {
            inflight,
            recents,
            history,
            ..
        } => {
            let steps = step_rows(handle, history);
            !steps.is_empty() || redshift_busy(handle, inflight, recents, &steps)
        }
        Live::Postgres { activity } => activity.as_ref().is_some_and(|a| {
            ours(handle, obs, a)
                && (a.state.as_deref() != Some("idle")
                    || !is_own_statement(Dialect::Postgres, &a.query))
        }),
    }
}

/// Whether the statement no longer runs (after a cancel): its session is gone, or shows nothing
/// running.
pub fn stopped(handle: &Handle, obs: &Observation) -> bool {
    if !session_alive(handle, obs) {
        return true;
    }
    match &obs.live {
        Live::NotRead => true,
        Live::Redshift {
            inflight,
            recents,
            history,
            ..
        } => !redshift_busy(handle, inflight, recents, &step_rows(handle, history)),
        Live::Postgres { activity } => activity.as_ref().is_none_or(|a| {
            matches!(
                a.state.as_deref(),
                Some("idle" | "idle in transaction (aborted)")
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    //! The scenario table: every situation the Amazon Redshift Database Developer Guide describes
    //! for the views the tracker reads (and PostgreSQL's `pg_stat_activity` states), each with
    //! the page it comes from and the decision it must lead to.

    use super::*;

    const DG: &str = "https://docs.aws.amazon.com/redshift/latest/dg/";
    const PID: i32 = 4242;
    const OBSERVER: i32 = 77;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%H:%M:%S%.f")
            .or_else(|_| {
                NaiveDateTime::parse_from_str(&format!("2026-01-01 {s}"), "%Y-%m-%d %H:%M:%S%.f")
            })
            .unwrap()
    }

    fn label() -> String {
        crate::journal::step_label("run-1", 100_000)
    }

    fn handle(dialect: Dialect, in_block: bool) -> Handle {
        Handle {
            run_id: "run-1".into(),
            step_id: "transform:1:1".into(),
            pid: PID,
            label: label(),
            submitted_at: t("10:00:00"),
            dialect,
            in_block,
            attempt: Some(2),
        }
    }

    fn journal(status: Status) -> TrackedStep {
        TrackedStep {
            status,
            attempt: 2,
            rows: Some(3),
            sqlstate: None,
            error: None,
            started_at: Some(t("10:00:00.5")),
        }
    }

    /// A Redshift observation at 10:05 of a running step whose session started at 09:59.
    fn redshift() -> Observation {
        Observation {
            journal: Some(journal(Status::Running)),
            since: t("10:00:00.5"),
            observer_pid: OBSERVER,
            now: t("10:05:00"),
            live: Live::Redshift {
                sessions: vec![SessionRow {
                    process: PID,
                    starttime: t("09:59:00"),
                }],
                inflight: vec![],
                recents: vec![],
                history: vec![],
                transactions: None,
            },
        }
    }

    fn postgres(state: &str, query: &str) -> Observation {
        Observation {
            journal: Some(journal(Status::Running)),
            since: t("10:00:00.5"),
            observer_pid: OBSERVER,
            now: t("10:05:00"),
            live: Live::Postgres {
                activity: Some(ActivityRow {
                    pid: PID,
                    application_name: label(),
                    state: Some(state.into()),
                    backend_start: t("09:59:00"),
                    query: query.into(),
                }),
            },
        }
    }

    fn live(o: &mut Observation) -> &mut Live {
        &mut o.live
    }

    fn gone(mut o: Observation) -> Observation {
        if let Live::Redshift { sessions, .. } = live(&mut o) {
            sessions.clear();
        }
        o
    }

    fn with_history(mut o: Observation, rows: Vec<HistoryRow>) -> Observation {
        if let Live::Redshift { history, .. } = live(&mut o) {
            *history = rows;
        }
        o
    }

    fn with_transactions(mut o: Observation, rows: Vec<(i64, &str)>) -> Observation {
        if let Live::Redshift { transactions, .. } = live(&mut o) {
            *transactions = Some(
                rows.into_iter()
                    .map(|(transaction_id, s)| TransactionRow {
                        transaction_id,
                        status: s.into(),
                    })
                    .collect(),
            );
        }
        o
    }

    fn with_inflight(mut o: Observation, kept_label: &str) -> Observation {
        if let Live::Redshift { inflight, .. } = live(&mut o) {
            inflight.push(InflightRow {
                pid: PID,
                label: format!("{kept_label:<320}"),
                starttime: t("10:01:00"),
                xid: 900,
            });
        }
        o
    }

    fn with_recent(mut o: Observation) -> Observation {
        if let Live::Redshift { recents, .. } = live(&mut o) {
            recents.push(RecentRow {
                pid: PID,
                status: format!("{:<20}", "Running"),
                starttime: t("10:01:00"),
            });
        }
        o
    }

    /// A SYS_QUERY_HISTORY row of the session, blank-padded like its character(n) columns.
    fn q(xid: i64, status: &str, text: &str) -> HistoryRow {
        HistoryRow {
            query_id: xid * 10,
            transaction_id: xid,
            label: format!("{:<320}", label()),
            status: format!("{status:<10}"),
            start_time: t("10:00:01"),
            end_time: (!in_progress(status)).then(|| t("10:00:02")),
            returned_rows: Some(7),
            error: (status == "failed").then(|| format!("{:<512}", "ERROR: division by zero")),
            text: format!("{text:<100}"),
        }
    }

    fn own_start_step() -> String {
        sql::journal::start_step(Dialect::Redshift)
    }

    #[derive(Debug, PartialEq)]
    enum Expect {
        Running,
        Succeeded,
        Failed,
        Cancelled,
        Unknown,
    }

    fn kind(s: &State) -> Expect {
        match s {
            State::Running => Expect::Running,
            State::Succeeded { .. } => Expect::Succeeded,
            State::Failed { .. } => Expect::Failed,
            State::Cancelled => Expect::Cancelled,
            State::Unknown { .. } => Expect::Unknown,
        }
    }

    struct Scenario {
        name: &'static str,
        page: &'static str,
        handle: Handle,
        obs: Observation,
        timeout: Option<Duration>,
        state: Expect,
        conclude: Option<Status>,
        stop: Option<Stop>,
    }

    fn s(
        name: &'static str,
        page: &'static str,
        handle: Handle,
        obs: Observation,
        state: Expect,
        conclude: Option<Status>,
        stop: Option<Stop>,
    ) -> Scenario {
        Scenario {
            name,
            page,
            handle,
            obs,
            timeout: None,
            state,
            conclude,
            stop,
        }
    }

    fn scenarios() -> Vec<Scenario> {
        use Expect::*;
        let rs = |in_block| handle(Dialect::Redshift, in_block);
        let pg = |in_block| handle(Dialect::Postgres, in_block);
        let block = "INSERT INTO s.t SELECT * FROM s.u";
        let vacuum = "VACUUM s.t";
        let mut reused = redshift();
        if let Live::Redshift { sessions, .. } = live(&mut reused) {
            sessions[0].starttime = t("10:03:00");
        }
        let mut own_session = redshift();
        own_session.observer_pid = PID;
        let mut superseded = redshift();
        superseded.journal.as_mut().unwrap().attempt = 3;
        let mut young = gone(redshift());
        young.now = t("10:00:30");
        let mut timed_out = with_inflight(redshift(), &label());
        timed_out.now = t("11:00:00");
        let mut pg_reused = postgres("active", block);
        if let Live::Postgres { activity: Some(a) } = live(&mut pg_reused) {
            a.application_name = "psql".into();
        }
        let mut pg_late = postgres("active", block);
        if let Live::Postgres { activity: Some(a) } = live(&mut pg_late) {
            a.backend_start = t("10:03:00");
        }
        let mut pg_gone = postgres("active", block);
        pg_gone.live = Live::Postgres { activity: None };
        let mut done = redshift();
        done.journal = Some(journal(Status::Succeeded));
        let legacy = Handle {
            label: "etl-0badcafe-100".into(),
            ..rs(false)
        };
        vec![
            s(
                "the journal records success (committed with the block)",
                "SYS_QUERY_HISTORY.html",
                rs(true),
                done,
                Succeeded,
                None,
                None,
            ),
            s(
                "queued in WLM and in no view yet: session alive, nothing anywhere",
                "cm-c-wlm-system-tables-and-views.html",
                rs(true),
                redshift(),
                Running,
                None,
                None,
            ),
            s(
                "queued in WLM: STV_RECENTS shows it Running (running or waiting in a queue)",
                "r_STV_RECENTS.html",
                rs(true),
                with_recent(redshift()),
                Running,
                None,
                None,
            ),
            s(
                "queued in WLM: SYS_QUERY_HISTORY status queued",
                "SYS_QUERY_HISTORY.html",
                rs(true),
                with_history(redshift(), vec![q(900, "queued", block)]),
                Running,
                None,
                None,
            ),
            s(
                "running on the compute nodes: STV_INFLIGHT row with the label",
                "r_STV_INFLIGHT.html",
                rs(true),
                with_inflight(redshift(), &label()),
                Running,
                None,
                None,
            ),
            s(
                "between statements of a block: first statement success, nothing in STV_INFLIGHT",
                "r_STV_INFLIGHT.html",
                rs(true),
                with_history(redshift(), vec![q(900, "success", "DELETE FROM s.t")]),
                Running,
                None,
                None,
            ),
            s(
                "COMMIT in progress (leader node only): every statement success, session alive",
                "r_STV_INFLIGHT.html",
                rs(true),
                with_history(
                    redshift(),
                    vec![
                        q(900, "success", block),
                        q(
                            900,
                            "success",
                            "UPDATE etl_meta.steps SET status = 'succeeded'",
                        ),
                    ],
                ),
                Running,
                None,
                None,
            ),
            s(
                "the tracker's own start_step UPDATE on the labelled session (block)",
                "SYS_QUERY_HISTORY.html",
                rs(true),
                with_history(redshift(), vec![q(800, "success", &own_start_step())]),
                Running,
                None,
                None,
            ),
            s(
                "the tracker's own start_step UPDATE is not the statement's success (no block)",
                "SYS_QUERY_HISTORY.html",
                rs(false),
                with_history(redshift(), vec![q(800, "success", &own_start_step())]),
                Running,
                None,
                None,
            ),
            s(
                "history success without a committed transaction, session alive: not failed",
                "SYS_QUERY_HISTORY.html",
                rs(true),
                with_history(redshift(), vec![q(900, "success", block)]),
                Running,
                None,
                None,
            ),
            s(
                "history success, transaction rolled back (SYS_TRANSACTION_HISTORY), session alive",
                "SYS_TRANSACTION_HISTORY.html",
                rs(true),
                with_transactions(
                    with_history(redshift(), vec![q(900, "success", block)]),
                    vec![(900, "rolledback")],
                ),
                Failed,
                Some(Status::Failed),
                Some(Stop::Terminate),
            ),
            s(
                "history success, transaction committed, no block: succeeded",
                "SYS_TRANSACTION_HISTORY.html",
                rs(false),
                with_transactions(
                    gone(with_history(redshift(), vec![q(900, "success", vacuum)])),
                    vec![(900, "committed")],
                ),
                Succeeded,
                Some(Status::Succeeded),
                None,
            ),
            s(
                "history success, no block, transactions not readable (regular user): succeeded",
                "SYS_TRANSACTION_HISTORY.html",
                rs(false),
                gone(with_history(redshift(), vec![q(900, "success", vacuum)])),
                Succeeded,
                Some(Status::Succeeded),
                None,
            ),
            s(
                "a query of the block failed, session alive (client frozen): failed, session ended",
                "SYS_QUERY_HISTORY.html",
                rs(true),
                with_history(redshift(), vec![q(900, "failed", block)]),
                Failed,
                Some(Status::Failed),
                Some(Stop::Terminate),
            ),
            s(
                "a query of the block was canceled, session alive: cancelled, session ended",
                "SYS_QUERY_HISTORY.html",
                rs(true),
                with_history(redshift(), vec![q(900, "canceled", block)]),
                Cancelled,
                Some(Status::Cancelled),
                Some(Stop::Terminate),
            ),
            s(
                "a session gone mid-block: the journal row did not commit, so neither did the block",
                "r_STV_SESSIONS.html",
                rs(true),
                gone(with_history(redshift(), vec![q(900, "running", block)])),
                Failed,
                Some(Status::Failed),
                None,
            ),
            s(
                "a reused PID: a session with the PID that started after the step is another one",
                "r_STV_SESSIONS.html",
                rs(true),
                reused,
                Failed,
                Some(Status::Failed),
                None,
            ),
            s(
                "the observer's own session has the PID: the statement is not running",
                "r_STV_SESSIONS.html",
                rs(true),
                own_session,
                Failed,
                Some(Status::Failed),
                None,
            ),
            s(
                "label cut to 15 characters in STV_INFLIGHT: the 15-character label matches exactly",
                "r_query_group.html",
                rs(false),
                with_inflight(gone(redshift()), &label()[..15]),
                Running,
                None,
                None,
            ),
            s(
                "a legacy 16-character label, cut to 15 in STV_INFLIGHT, still matches its prefix",
                "r_query_group.html",
                legacy,
                with_inflight(gone(redshift()), "etl-0badcafe-10"),
                Running,
                None,
                None,
            ),
            s(
                "another label on the PID in STV_INFLIGHT is not the step's statement",
                "r_STV_INFLIGHT.html",
                rs(false),
                with_inflight(gone(redshift()), "etl-zzzzzzzzzzz"),
                Unknown,
                None,
                None,
            ),
            s(
                "the tracker's own statements are no witness once the session is gone (no block)",
                "SYS_QUERY_HISTORY.html",
                rs(false),
                gone(with_history(
                    redshift(),
                    vec![
                        q(800, "success", &own_start_step()),
                        q(801, "success", &sql::set_label(Dialect::Redshift, &label())),
                    ],
                )),
                Unknown,
                None,
                None,
            ),
            s(
                "history lag: no block, session gone, no history row yet, 30 s after the start",
                "cm_chap_system-tables.html",
                rs(false),
                young,
                Running,
                None,
                None,
            ),
            s(
                "history lag over: no block, session gone, still no history row",
                "cm_chap_system-tables.html",
                rs(false),
                gone(redshift()),
                Unknown,
                None,
                None,
            ),
            s(
                "history lag: no block, session gone, history still says running",
                "cm_chap_system-tables.html",
                rs(false),
                gone(with_history(redshift(), vec![q(900, "running", vacuum)])),
                Running,
                None,
                None,
            ),
            s(
                "another attempt of the step started after this handle's",
                "SYS_QUERY_HISTORY.html",
                rs(true),
                superseded,
                Unknown,
                None,
                None,
            ),
            Scenario {
                timeout: Some(Duration::from_secs(60)),
                ..s(
                    "past its timeout, session alive in its block: failed, session ended",
                    "PG_TERMINATE_BACKEND.html",
                    rs(true),
                    timed_out,
                    Failed,
                    Some(Status::Failed),
                    Some(Stop::Terminate),
                )
            },
            // PostgreSQL (https://www.postgresql.org/docs/current/monitoring-stats.html).
            s(
                "PostgreSQL active",
                "pg_stat_activity",
                pg(true),
                postgres("active", block),
                Running,
                None,
                None,
            ),
            s(
                "PostgreSQL idle in transaction (between the statements of its block)",
                "pg_stat_activity",
                pg(true),
                postgres("idle in transaction", block),
                Running,
                None,
                None,
            ),
            s(
                "PostgreSQL idle in transaction (aborted): failed, session ended",
                "pg_stat_activity",
                pg(true),
                postgres("idle in transaction (aborted)", block),
                Failed,
                Some(Status::Failed),
                Some(Stop::Terminate),
            ),
            s(
                "PostgreSQL labelled but the request not sent yet (last query is the tracker's)",
                "pg_stat_activity",
                pg(true),
                postgres("idle", &sql::set_label(Dialect::Postgres, &label())),
                Running,
                None,
                None,
            ),
            s(
                "PostgreSQL idle after its block: it ended without committing",
                "pg_stat_activity",
                pg(true),
                postgres("idle", "COMMIT"),
                Failed,
                Some(Status::Failed),
                None,
            ),
            s(
                "PostgreSQL gone",
                "pg_stat_activity",
                pg(true),
                pg_gone.clone(),
                Failed,
                Some(Status::Failed),
                None,
            ),
            s(
                "PostgreSQL gone, no block: no history to tell",
                "pg_stat_activity",
                pg(false),
                pg_gone,
                Unknown,
                None,
                None,
            ),
            s(
                "PostgreSQL reused PID with another application_name",
                "pg_stat_activity",
                pg(true),
                pg_reused,
                Failed,
                Some(Status::Failed),
                None,
            ),
            s(
                "PostgreSQL reused PID, started after the step",
                "pg_stat_activity",
                pg(true),
                pg_late,
                Failed,
                Some(Status::Failed),
                None,
            ),
        ]
    }

    #[test]
    fn scenario_table() {
        let mut failures = Vec::new();
        for sc in scenarios() {
            let d = decide(&sc.handle, &sc.obs, sc.timeout);
            let got = (
                kind(&d.state),
                d.conclude.as_ref().map(|c| c.status),
                d.stop,
            );
            let want = (sc.state, sc.conclude, sc.stop);
            if got != want {
                failures.push(format!(
                    "{} ({DG}{}): got {got:?} ({}), want {want:?}",
                    sc.name, sc.page, d.why
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn no_failed_while_the_session_is_alive_in_its_block_without_the_servers_word() {
        // Whatever the history's successes, views and lag: alive in its block means running.
        for sc in scenarios() {
            let d = decide(&sc.handle, &sc.obs, sc.timeout);
            // Alive inside its block: on PostgreSQL an idle session has left its block.
            let idle = matches!(&sc.obs.live, Live::Postgres { activity: Some(a) } if a.state.as_deref() == Some("idle"));
            if let State::Failed { .. } | State::Cancelled = d.state
                && session_alive(&sc.handle, &sc.obs)
                && !idle
            {
                assert_eq!(
                    d.stop,
                    Some(Stop::Terminate),
                    "{}: a failed block's session is ended",
                    sc.name
                );
                let server_said = d.timed_out.is_some()
                    || matches!(
                        d.why,
                        "a query of the step failed"
                            | "its transaction rolled back"
                            | "aborted transaction"
                    );
                assert!(
                    server_said,
                    "{}: failed only on the server's word ({})",
                    sc.name, d.why
                );
            }
        }
    }

    #[test]
    fn timeouts_report_seconds() {
        let mut o = with_inflight(redshift(), &label());
        o.now = t("10:01:00.5");
        let d = decide(
            &handle(Dialect::Redshift, true),
            &o,
            Some(Duration::from_secs(30)),
        );
        assert_eq!(d.timed_out, Some(60.0));
        let d = decide(
            &handle(Dialect::Redshift, true),
            &o,
            Some(Duration::from_secs(61)),
        );
        assert_eq!(d.state, State::Running);
        assert_eq!(d.timed_out, None);
    }

    #[test]
    fn labels_compare_by_what_each_view_keeps() {
        // https://docs.aws.amazon.com/redshift/latest/dg/r_query_group.html: 30 characters in
        // STL_QUERY and SVL_QLOG, 15 in STV_INFLIGHT.
        let l = label();
        assert!(label_matches(&format!("{l:<320}"), &l, 15));
        assert!(label_matches(&format!("{l:<320}"), &l, 30));
        assert!(!label_matches("etl-00000000000", &l, 15));
        let long = "etl-0123456789abcdefghijklmnopqrstuvwxyz";
        assert!(label_matches(&long[..15], long, 15));
        assert!(label_matches(&long[..30], long, 30));
        assert!(!label_matches(&long[..15], long, 30));
    }

    #[test]
    fn own_statements_are_recognised() {
        for d in [Dialect::Redshift, Dialect::Postgres] {
            assert!(is_own_statement(d, &sql::session_info(d)));
            assert!(is_own_statement(d, &sql::journal::start_step(d)));
            assert!(is_own_statement(d, sql::journal::observe_step()));
            assert!(is_own_statement(d, &sql::set_label(d, &label())));
            assert!(!is_own_statement(
                d,
                "UPDATE etl_meta.steps SET status = 'succeeded' WHERE run_id = 'r'"
            ));
            assert!(!is_own_statement(d, "INSERT INTO s.t SELECT 1"));
        }
    }

    #[test]
    fn cancel_signals_only_its_own_live_session() {
        assert_eq!(
            stop_for_cancel(&handle(Dialect::Redshift, true), &redshift()),
            Some(Stop::Terminate)
        );
        assert_eq!(
            stop_for_cancel(&handle(Dialect::Redshift, false), &redshift()),
            Some(Stop::Cancel)
        );
        let mut reused = redshift();
        if let Live::Redshift { sessions, .. } = live(&mut reused) {
            sessions[0].starttime = t("10:03:00");
        }
        assert_eq!(
            stop_for_cancel(&handle(Dialect::Redshift, true), &reused),
            None
        );
        let mut done = redshift();
        done.journal = Some(journal(Status::Succeeded));
        assert_eq!(
            stop_for_cancel(&handle(Dialect::Redshift, true), &done),
            None
        );
        let pg = handle(Dialect::Postgres, true);
        assert_eq!(
            stop_for_cancel(&pg, &postgres("active", "x")),
            Some(Stop::Cancel)
        );
        assert_eq!(
            stop_for_cancel(&pg, &postgres("idle in transaction", "x")),
            Some(Stop::Terminate)
        );
        assert_eq!(stop_for_cancel(&pg, &postgres("idle", "COMMIT")), None);
        let mut stale = pg.clone();
        stale.label = "etl-00000000000".into();
        assert_eq!(stop_for_cancel(&stale, &postgres("active", "x")), None);
    }

    #[test]
    fn handles_keep_their_json_form() {
        let old = r#"{"run_id":"r","step_id":"s","pid":1,"label":"etl-0badcafe-2",
            "submitted_at":"2026-01-01 10:00:00.123456","dialect":"redshift","in_block":true}"#;
        let h: Handle = serde_json::from_str(old).unwrap();
        assert_eq!(h.submitted_at, t("10:00:00.123456"));
        assert_eq!(h.attempt, None);
        let json = serde_json::to_string(&h).unwrap();
        assert!(
            json.contains(r#""submitted_at":"2026-01-01 10:00:00.123456""#),
            "{json}"
        );
        let whole: Handle = serde_json::from_str(&old.replace(".123456", "")).unwrap();
        assert_eq!(whole.submitted_at, t("10:00:00"));
        assert!(
            serde_json::from_str::<Handle>(&old.replace("10:00:00.123456", "yesterday")).is_err()
        );
    }
}
