//! `etl-create-tables`: see `asl/README.md` and [`etl_lambda::job::create_tables`].

fn main() -> std::process::ExitCode {
    etl_lambda::runtime::run("etl-create-tables", etl_lambda::job::create_tables)
}
