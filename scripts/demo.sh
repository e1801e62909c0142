#!/usr/bin/env bash
# The demo job end to end on a throwaway PostgreSQL. Installs what is missing.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_build_deps
say "building etl"
cargo build --release --quiet -p etl-cli
ETL="$CARGO_TARGET_DIR/release/etl"

JOB=examples/recommendations/job.json
say "the plan for Redshift (what the AWS run executes)"
"$ETL" plan "$JOB" --dialect redshift --input s3://my-bucket/recommendations/ | head -40
