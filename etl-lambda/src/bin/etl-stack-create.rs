//! `etl-stack-create`: see `asl/README.md` and [`etl_lambda::stack::create`].

fn main() -> std::process::ExitCode {
    etl_lambda::runtime::run("etl-stack-create", etl_lambda::stack::create)
}
