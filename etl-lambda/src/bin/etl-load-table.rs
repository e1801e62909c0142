//! `etl-load-table`: see `asl/README.md` and [`etl_lambda::job::load_table`].

fn main() -> std::process::ExitCode {
    etl_lambda::runtime::run("etl-load-table", etl_lambda::job::load_table)
}
