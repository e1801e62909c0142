#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and end-to-end tests against real PostgreSQL
# servers, moto and an ASL interpreter, and the infrastructure checks. Installs what is missing.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_build_deps
ensure_python
ensure_node
# moto's server (S3, Secrets Manager, CloudFormation, Step Functions on 127.0.0.1) for the AWS tests.
pip_install "moto.server=moto[server]"

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy (all targets, all features, warnings are errors)"
cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings

say "building the binaries the end-to-end tests drive"
cargo build --workspace --bins --quiet

say "cargo test"
cargo test --workspace --all-features --quiet

if [ -f tests/infra/check.sh ]; then
  say "infrastructure checks (cfn-lint, cfn-guard, ASL)"
  bash tests/infra/check.sh
fi

say "all tests passed"
