//! End-to-end tests: the `etl` binary and the library against real PostgreSQL servers.

mod asl_exec;
mod cli_plan;
mod cli_sql;
mod cloud;
mod cloud_checks;
mod compat;
mod compat_docs;
mod compat_run;
mod copy_conformance;
mod demo_check;
mod doctor;
mod faults;
mod hostile;
mod init;
mod lambda;
mod rehearsal_sql;
mod run;
mod track;
mod unload;
