#!/usr/bin/env bash
# The load/unload benchmark (bench/bench.py): etl against server-side COPY, zcat | psql \copy and
# psycopg2 on one throwaway PostgreSQL. Extra arguments go to bench.py (--rows, --repeat, --rss-rows).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_build_deps
ensure_python
pip_install psycopg2=psycopg2-binary
say "building etl and the data generator (bench-fast profile)"
cargo build --profile bench-fast --quiet -p etl-cli -p etl-demo
export ETL_BIN_DIR="$CARGO_TARGET_DIR/bench-fast"
python3 bench/bench.py "$@"
