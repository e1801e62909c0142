//! `etl-statement-status`: see `asl/README.md` and [`etl_lambda::job::status`] (a statement's
//! handle, or a run).

fn main() -> std::process::ExitCode {
    etl_lambda::runtime::run("etl-statement-status", etl_lambda::job::status)
}
