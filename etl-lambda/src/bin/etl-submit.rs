//! `etl-submit`: see `asl/README.md` and [`etl_lambda::job::submit`].

fn main() -> std::process::ExitCode {
    etl_lambda::runtime::run("etl-submit", etl_lambda::job::submit)
}
