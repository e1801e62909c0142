//! `etl-stack-status`: see `asl/README.md` and [`etl_lambda::stack::status`].

fn main() -> std::process::ExitCode {
    etl_lambda::runtime::run("etl-stack-status", etl_lambda::stack::status)
}
