//! End-to-end tests: the `etl` binary and the library against real PostgreSQL servers.

mod cli_plan;
mod copy_conformance;
mod cli_sql;
mod compat;
mod demo_check;
mod hostile;
mod track;
mod unload;
