//! Where the warehouse comes from: a throwaway PostgreSQL ([`Local`]), an existing database (a URL),
//! or the Redshift CloudFormation stack (the `aws` feature).

mod local;

pub use local::{KeptServer, LOCAL_USER, Local, LocalBuilder, find_bindir};
