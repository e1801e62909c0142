//! `etl-stack-delete`: see `asl/README.md` and [`etl_lambda::stack::delete`].

fn main() -> std::process::ExitCode {
    etl_lambda::runtime::run("etl-stack-delete", etl_lambda::stack::delete)
}
