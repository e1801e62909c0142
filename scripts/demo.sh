#!/usr/bin/env bash
# The demo job end to end on a throwaway PostgreSQL: generate the input files, then `etl run`
# (create tables, load the three tables in parallel with Redshift's COPY rules, transform, unload
# the CSV). Installs what is missing.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_build_deps
say "building etl and the demo data generator"
cargo build --quiet -p etl-cli -p etl-demo
BIN="$CARGO_TARGET_DIR/debug"

DEMO=examples/recommendations
say "generating the demo's input files in $DEMO/data"
"$BIN/etl-demo-data" --out "$DEMO/data" "$@"

say "etl run $DEMO/job.json"
"$BIN/etl" run "$DEMO/job.json"

say "the recommendations are in $DEMO/out/recommendations_000:"
head -n 6 "$DEMO/out/recommendations_000"
