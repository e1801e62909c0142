//! Generates the demo job's input files.
fn main() {}
