#!/usr/bin/env python3
"""Load and unload benchmark: etl against the references, on one throwaway PostgreSQL, in one run.

    python3 bench/bench.py [--rows 1000000] [--repeat 3] [--rss-rows 10000000]

(run through scripts/bench.sh, which builds the binaries and installs psycopg2). It generates the demo
job's three tables (usage, billing, offers; about --rows rows together, gzipped '|'-delimited text with a
header), starts one `etl server`, and loads the same rows with every method, the three tables in
parallel each time:

  (a) server-side COPY (FORMAT csv) from pre-decompressed, pre-cleaned files: the limit for text COPY
  (b) zcat FILE.gz | psql -c '\\copy ... (FORMAT csv, DELIMITER '|', HEADER)'
  (c) psycopg2 copy_expert with the Redshift rules applied in Python (the original design's driver)
  (d) etl run on the gzipped files with the full Redshift semantics, binary COPY (and text COPY)

and unloads the billing table with psql '\\copy (query) TO' and with etl's UNLOAD. It reports wall time
(the best of --repeat runs), rows/s, MB/s of decompressed input, the clients' peak RSS and the ratios to
(a), as a Markdown table on stdout. With --rss-rows it also loads that many rows with etl alone and
reports its peak RSS.
"""

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples", "recommendations"))
import check  # noqa: E402  (the demo's independent reader: split_fields)

TABLES = ["usage", "billing", "offers"]


def binary(name):
    path = os.path.join(os.environ["ETL_BIN_DIR"], name)
    if not os.path.exists(path):
        sys.exit(f"bench: {path} is missing: run scripts/bench.sh")
    return path


def table_file(data, table):
    if table == "offers":
        return os.path.join(data, "offers.txt.gz")
    return os.path.join(data, table, "part-0000.txt.gz")


def generate(out, rows):
    subprocess.run([binary("etl-demo-data"), "--out", out, "--rows", str(rows)], check=True,
                   stderr=subprocess.DEVNULL)


def clean_csv(src, dst):
    """Applies the manifest's rules once, for the server-side reference: CSV, NULL unquoted-empty."""
    n = 0
    with gzip.open(src, "rt", encoding="utf-8", newline="\n") as f, open(dst, "w", encoding="utf-8") as out:
        next(f)
        for line in f:
            fields = check.split_fields(line.rstrip("\n").rstrip("\r"))
            cells = []
            for v in fields:
                if v == "" or v.isspace():
                    cells.append("")
                elif any(c in v for c in ',"\n\r'):
                    cells.append('"' + v.replace('"', '""') + '"')
                else:
                    cells.append(v)
            out.write(",".join(cells) + "\n")
            n += 1
    os.chmod(dst, 0o644)
    return n


def decompressed_bytes(path):
    with gzip.open(path, "rb") as f:
        return sum(len(chunk) for chunk in iter(lambda: f.read(1 << 20), b""))


def run_parallel(commands):
    """Runs pipelines in parallel; returns (wall seconds, summed peak RSS in KiB of all processes)."""
    start = time.perf_counter()
    procs = []
    for pipeline in commands:
        prev = None
        for i, argv in enumerate(pipeline):
            p = subprocess.Popen(argv, stdin=prev.stdout if prev else subprocess.DEVNULL,
                                 stdout=subprocess.PIPE if i < len(pipeline) - 1 else subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
            if prev:
                prev.stdout.close()
            procs.append(p)
            prev = p
    rss, failures = 0, []
    for p in procs:
        _, status, usage = os.wait4(p.pid, 0)
        rss += usage.ru_maxrss
        if os.waitstatus_to_exitcode(status) != 0:
            failures.append((p.args, p.stderr.read().decode(errors="replace")))
    wall = time.perf_counter() - start
    if failures:
        sys.exit(f"bench: a command failed: {failures[0]}")
    return wall, rss


def psql(url, sql):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True,
                   stdout=subprocess.DEVNULL)


def count(url, table):
    out = subprocess.run(["psql", "-X", "-At", url, "-c", f"select count(*) from staging.{table}"],
                         check=True, capture_output=True, text=True).stdout
    return int(out.strip())


def create_tables(url, job):
    plan = subprocess.run([binary("etl"), "plan", "--dialect", "postgres", job], check=True,
                          capture_output=True, text=True).stdout
    create = plan.split("-- step create-tables\n", 1)[1].split("-- step ", 1)[0]
    psql(url, "set client_min_messages = warning; drop schema if exists staging cascade")
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url], input=create, text=True, check=True,
                   stdout=subprocess.DEVNULL)


def write_jobs(work, data):
    """The demo job without transforms (loads only), and an unload-only job."""
    with open(os.path.join(ROOT, "examples", "recommendations", "job.json")) as f:
        job = json.load(f)
    job["input"] = data
    job.pop("transform", None)
    job.pop("unload", None)
    for t in job["schemas"][0]["tables"]:
        t["load"] = {"method": "append"}
    load = os.path.join(work, "load.json")
    with open(load, "w") as f:
        json.dump(job, f)
    dummy = os.path.join(work, "dummy")
    os.makedirs(dummy, exist_ok=True)
    with open(os.path.join(dummy, "d.txt"), "w") as f:
        f.write("a\n1\n")
    unload = {
        "name": "unload-bench",
        "input": dummy,
        "format": {"compression": "none"},
        "schemas": [{"name": "bench_dummy", "tables": [{"name": "d", "files": "d.txt",
                                                        "columns": [{"name": "a", "type": "int"}]}]}],
        "unload": {"query": "select * from staging.billing", "to": os.path.join(work, "unload", "billing_"),
                   "format": "csv", "header": True, "parallel": False, "overwrite": "clean"},
    }
    unload_path = os.path.join(work, "unload.json")
    with open(unload_path, "w") as f:
        json.dump(unload, f)
    return load, unload_path


def etl_load(url, job, text=False):
    argv = [binary("etl"), "run", job, "--database-url", url, "--concurrency", "3", "--no-compat"]
    if text:
        argv.append("--text-copy")
    return run_parallel([[argv]])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rss-rows", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="etl-bench-")
    os.chmod(work, 0o755)
    data = os.path.join(work, "data")
    print(f"generating about {args.rows:,} rows in {data}", file=sys.stderr)
    generate(data, args.rows)
    files = {t: table_file(data, t) for t in TABLES}
    clean = {}
    rows = {}
    for t in TABLES:
        clean[t] = os.path.join(work, f"{t}.csv")
        rows[t] = clean_csv(files[t], clean[t])
    total_rows = sum(rows.values())
    mb = sum(decompressed_bytes(files[t]) for t in TABLES) / 1e6
    gz_mb = sum(os.path.getsize(files[t]) for t in TABLES) / 1e6
    load_job, unload_job = write_jobs(work, data)

    server = subprocess.Popen([binary("etl"), "server"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True)
    url = server.stdout.readline().strip()
    here = os.path.dirname(os.path.abspath(__file__))
    methods = [
        ("(a) server-side COPY of pre-cleaned CSV", lambda: run_parallel(
            [[["psql", "-X", "-q", url, "-c", f"COPY staging.{t} FROM '{clean[t]}' (FORMAT csv)"]] for t in TABLES])),
        ("(b) zcat | psql \\copy", lambda: run_parallel(
            [[["zcat", files[t]], ["psql", "-X", "-q", url, "-c",
                                   f"\\copy staging.{t} FROM STDIN (FORMAT csv, DELIMITER '|', HEADER true)"]]
             for t in TABLES])),
        ("(c) psycopg2 copy_expert, rules in Python", lambda: run_parallel(
            [[[sys.executable, os.path.join(here, "original_loader.py"), url, f"staging.{t}", files[t]]]
             for t in TABLES])),
        ("(d) etl run, binary COPY", lambda: etl_load(url, load_job)),
        ("(d) etl run, text COPY", lambda: etl_load(url, load_job, text=True)),
    ]
    results = []
    try:
        for name, fn in methods:
            best = None
            for _ in range(args.repeat):
                create_tables(url, load_job)
                psql(url, "checkpoint")
                wall, rss = fn()
                for t in TABLES:
                    got = count(url, t)
                    if got != rows[t]:
                        sys.exit(f"bench: {name} loaded {got} rows into {t}, expected {rows[t]}")
                if best is None or wall < best[0]:
                    best = (wall, rss)
            results.append((name, *best))
            print(f"{name}: {best[0]:.2f}s", file=sys.stderr)

        # Unload: the billing table (last loaded by etl), psql \copy vs etl's UNLOAD step.
        out_csv = os.path.join(work, "psql-unload.csv")
        unload = []
        best = None
        for _ in range(args.repeat):
            wall, rss = run_parallel([[["psql", "-X", "-q", url, "-c",
                                        f"\\copy (select * from staging.billing) TO '{out_csv}' (FORMAT csv, HEADER)"]]])
            best = min(best or (wall, rss), (wall, rss))
        unload.append(("psql \\copy (query) TO file", *best))
        best = None
        for _ in range(args.repeat):
            start = time.perf_counter()
            proc = subprocess.run([binary("etl"), "run", unload_job, "--database-url", url, "--json", "--no-compat"],
                                  check=True, capture_output=True, text=True)
            report = json.loads(proc.stdout)
            step = next(s for s in report["steps"] if s["id"] == "unload")
            wall = step["seconds"]
            best = min(best or (wall, 0), (wall, 0))
        unload.append(("etl UNLOAD step (CSV, header)", best[0], None))

        rss_line = None
        if args.rss_rows:
            big = os.path.join(work, "big")
            print(f"generating about {args.rss_rows:,} rows for the memory check", file=sys.stderr)
            generate(big, args.rss_rows)
            with open(load_job) as f:
                job = json.load(f)
            job["input"] = big
            big_job = os.path.join(work, "big.json")
            with open(big_job, "w") as f:
                json.dump(job, f)
            create_tables(url, big_job)
            wall, rss = etl_load(url, big_job)
            big_rows = sum(count(url, t) for t in TABLES)
            rss_line = (big_rows, wall, rss)
    finally:
        server.send_signal(2)
        server.wait()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    ref = results[0][1]
    print(f"Load: {total_rows:,} rows in 3 tables ({mb:.1f} MB as text, {gz_mb:.1f} MB gzipped), "
          f"the three tables in parallel, best of {args.repeat}, on {os.cpu_count()} CPUs.\n")
    print("| method | wall | rows/s | MB/s | client peak RSS | vs (a) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, wall, rss in results:
        print(f"| {name} | {wall:.2f} s | {total_rows / wall:,.0f} | {mb / wall:.1f} | "
              f"{rss / 1024:.1f} MiB | {wall / ref:.2f} |")
    print("\nUnload of staging.billing "
          f"({rows['billing']:,} rows) to one CSV file with a header:\n")
    print("| method | wall | vs psql |")
    print("|---|---:|---:|")
    for name, wall, _ in unload:
        print(f"| {name} | {wall:.2f} s | {wall / unload[0][1]:.2f} |")
    if rss_line:
        big_rows, wall, rss = rss_line
        print(f"\netl run at {big_rows:,} rows: {wall:.1f} s, client peak RSS {rss / 1024:.1f} MiB.")
    walls = [w for _, w, _ in results]
    d = walls[3]
    print(f"\nRatios: (d)/(a) = {d / walls[0]:.2f}, (d)/(b) = {d / walls[1]:.2f}, "
          f"(d)/(c) = {d / walls[2]:.2f}, unload etl/psql = {unload[1][1] / unload[0][1]:.2f}.")


if __name__ == "__main__":
    main()
