//! `etl-stack-outputs`: see `asl/README.md` and [`etl_lambda::stack::outputs`].

fn main() -> std::process::ExitCode {
    etl_lambda::runtime::run("etl-stack-outputs", etl_lambda::stack::outputs)
}
