#!/usr/bin/env python3
"""An independent check of the recommendations demo: the expected result CSV, computed in plain Python.

    python3 check.py DATA_DIR > expected.csv
    python3 check.py DATA_DIR --compare ACTUAL.csv [MORE_PARTS ...]

DATA_DIR holds the job's input files (usage/, billing/, offers.txt.gz, as etl-demo-data writes them).
The first form prints the CSV that the job's unload must produce; the second compares it with the file(s)
the job wrote (gzipped or not; a header row at the top of every part, as UNLOAD ... HEADER writes) and
exits 0 when identical, else prints the first differing rows and exits 1. Bad input data or a job.json
this script does not implement exits 2.

Nothing here shares code with etl: the files are read with the manifest's rules implemented again
(IGNOREHEADER 1; split on '|', a field starting with '"' runs to the next '"' and loses its quotes
(REMOVEQUOTES); an empty or whitespace-only VARCHAR is NULL (EMPTYASNULL, BLANKSASNULL); an empty field
of any other type is NULL; VARCHAR lengths count bytes; extra decimals are truncated, as COPY does
without ROUNDEC), and sql/01_profile.sql and sql/02_rank.sql are recomputed:

- the profile joins usage and billing on (customer_id, month) and averages per customer; the averages
  are rounded as a cast to decimal(12,1) / decimal(12,2) rounds in PostgreSQL and Redshift: half away
  from zero. They are computed exactly, as integer fractions rounded once (the databases' own
  intermediate precision is far beyond what could change a rounded average of a few months);
- an offer is costed for a customer when it is active and covers the customer's (rounded) average voice
  minutes and SMS: fee + ceil((avg data - allowance) / 1024) * nvl(overage_per_gb, 10.00) when the
  average data exceeds the allowance;
- the three cheapest per customer, ties broken by fee then offer code (byte order, as PostgreSQL's C
  collation and Redshift compare);
- the unload's order (customer_id, rank) and PostgreSQL's CSV output: a field is quoted when it holds
  ',', '"', CR or LF (or is an empty string), '"' doubled; NULL is empty.

Money is kept in integer cents and averages in integer tenths, so every step is exact.
Python 3 standard library only.
"""

import argparse
import datetime
import gzip
import io
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# The three tables exactly as job.json declares them (checked against job.json at start).
TABLES = {
    "usage": {
        "files": {"prefix": "usage/"},
        "columns": [
            ("customer_id", "bigint", False),
            ("month", "date", False),
            ("data_mb", "bigint", True),
            ("voice_minutes", "integer", True),
            ("sms_count", "integer", True),
            ("roaming_mb", "integer", True),
        ],
    },
    "billing": {
        "files": {"prefix": "billing/"},
        "columns": [
            ("customer_id", "bigint", False),
            ("month", "date", False),
            ("plan_code", "varchar(16)", False),
            ("amount", "decimal(10,2)", False),
            ("overage", "decimal(10,2)", True),
            ("paid_at", "timestamp", True),
            ("segment", "varchar(32)", True),
        ],
    },
    "offers": {
        "files": "offers.txt.gz",
        "columns": [
            ("offer_code", "varchar(16)", False),
            ("name", "varchar(64)", False),
            ("data_mb", "bigint", False),
            ("voice_minutes", "integer", False),
            ("sms_count", "integer", False),
            ("monthly_fee", "decimal(8,2)", False),
            ("overage_per_gb", "decimal(6,2)", True),
            ("active", "boolean", False),
            ("valid_from", "date", True),
        ],
    },
}

FORMAT = {
    "delimiter": "|",
    "ignoreheader": 1,
    "removequotes": True,
    "emptyasnull": True,
    "blanksasnull": True,
    "compression": "gzip",
    "dateformat": "auto",
    "timeformat": "auto",
}

TRANSFORM = ["sql/01_profile.sql", "sql/02_rank.sql"]
UNLOAD_COLUMNS = [
    "customer_id",
    "rank",
    "offer_code",
    "offer_name",
    "current_monthly_spend",
    "expected_monthly_cost",
    "monthly_saving",
]
UNLOAD_QUERY = "select " + ", ".join(UNLOAD_COLUMNS) + " from model.recommendations order by customer_id, rank"

BLANKS = " \t\v\f"


class CheckError(Exception):
    """Input this script cannot or must not accept: the load (or the job) would fail too."""


# ---------------------------------------------------------------------------------------------
# job.json: make sure this script still describes the job.


def check_job(path):
    with open(path, encoding="utf-8") as f:
        job = json.load(f)
    problems = []

    def expect(where, got, want):
        if got == want:
            return
        if isinstance(got, dict) and isinstance(want, dict):
            for key in sorted(set(got) | set(want)):
                if got.get(key) != want.get(key):
                    problems.append(f"{where}.{key}: job.json has {got.get(key)!r}, check.py implements {want.get(key)!r}")
        else:
            problems.append(f"{where}: job.json has {got!r}, check.py implements {want!r}")

    base_format = job.get("format", {})
    expect("format", base_format, FORMAT)
    expect("transform", job.get("transform"), TRANSFORM)
    schemas = job.get("schemas", [])
    expect("schemas[].name", [s.get("name") for s in schemas], ["staging"])
    tables = {t["name"]: t for s in schemas for t in s.get("tables", [])}
    expect("tables", sorted(tables), sorted(TABLES))
    for name, spec in TABLES.items():
        table = tables.get(name)
        if table is None:
            continue
        cols = [(c["name"], c["type"].lower().replace(" ", ""), c.get("nullable", True)) for c in table["columns"]]
        expect(f"{name}.columns", cols, spec["columns"])
        expect(f"{name}.files", table.get("files"), spec["files"])
        fmt = dict(base_format, **table.get("format", {}))
        expect(f"{name}.format", fmt, FORMAT)
    load = {n: t.get("load", {}).get("method", "append") for n, t in tables.items()}
    expect("load methods", load, {"usage": "replace", "billing": "replace", "offers": "upsert"})
    unload = job.get("unload", {})
    query = " ".join(unload.get("query", "").split())
    expect("unload.query", query, UNLOAD_QUERY)
    for key, want in [("format", "csv"), ("header", True), ("delimiter", ",")]:
        expect(f"unload.{key}", unload.get(key), want)
    for key in ("null_as", "addquotes", "escape"):
        if key in unload:
            problems.append(f"unload.{key}: not implemented by check.py")
    if problems:
        raise CheckError("job.json and check.py disagree (update check.py):\n  " + "\n  ".join(problems))


# ---------------------------------------------------------------------------------------------
# Reading the files with the manifest's COPY rules.


def split_fields(line):
    """Splits one record on '|' with REMOVEQUOTES: a field starting with '"' runs to the next '"'."""
    if '"' not in line:
        return line.split("|")
    fields = []
    i = 0
    n = len(line)
    while True:
        if i < n and line[i] == '"':
            close = line.find('"', i + 1)
            if close < 0:
                raise CheckError("unmatched quote")
            end = line.find("|", close + 1)
            if end < 0:
                fields.append(line[i + 1 : close] + line[close + 1 :])
                return fields
            fields.append(line[i + 1 : close] + line[close + 1 : end])
        else:
            end = line.find("|", i)
            if end < 0:
                fields.append(line[i:])
                return fields
            fields.append(line[i:end])
        i = end + 1


def varchar(limit):
    def conv(v):
        if v == "" or v.strip(BLANKS) == "":
            return None  # EMPTYASNULL, BLANKSASNULL
        if len(v.encode("utf-8")) > limit:
            raise CheckError(f"{len(v.encode('utf-8'))} bytes is longer than VARCHAR({limit}) (lengths are bytes)")
        return v

    return conv


INTEGER_RE = re.compile(r"[+-]?[0-9]+")


def integer(bits):
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def conv(v):
        if not (v.isascii() and v.isdigit()):  # the fast path: plain digits
            v = v.strip(BLANKS)
            if v == "":
                return None
            if not INTEGER_RE.fullmatch(v):
                raise CheckError(f"{v!r} is not an integer")
        i = int(v)
        if not low <= i <= high:
            raise CheckError(f"{v} is out of range for a {bits}-bit integer")
        return i

    return conv


DECIMAL_RE = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?")


def decimal(precision, scale):
    """A DECIMAL(p,s) as an integer count of 10^-s units; extra decimals are truncated (no ROUNDEC)."""

    def conv(v):
        v = v.strip(BLANKS)
        if v == "":
            return None
        m = DECIMAL_RE.fullmatch(v)
        if not m or not (m.group(2) or m.group(3)):
            raise CheckError(f"{v!r} is not a decimal number")
        sign, whole, frac = m.group(1), m.group(2) or "0", (m.group(3) or "")
        units = int(whole) * 10**scale + int((frac + "0" * scale)[:scale] or "0")
        if units >= 10**precision:
            raise CheckError(f"{v} does not fit DECIMAL({precision},{scale})")
        return -units if sign == "-" else units

    return conv


TRUE = {"t", "true", "1", "y", "yes"}
FALSE = {"f", "false", "0", "n", "no"}


def boolean(v):
    v = v.strip(BLANKS)
    if v == "":
        return None
    low = v.lower()
    if low in TRUE:
        return True
    if low in FALSE:
        return False
    raise CheckError(f"{v!r} is not a boolean")


def date():
    cache = {}

    def conv(v):
        v = v.strip(BLANKS)
        if v == "":
            return None
        d = cache.get(v)
        if d is None:
            if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", v):
                raise CheckError(f"{v!r}: check.py reads dates as YYYY-MM-DD only")
            try:
                d = datetime.date.fromisoformat(v).toordinal()
            except ValueError as e:
                raise CheckError(f"{v!r}: {e}") from None
            cache[v] = d
        return d

    return conv


TIMESTAMP_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?")


def timestamp(v):
    v = v.strip(BLANKS)
    if v == "":
        return None
    if not TIMESTAMP_RE.fullmatch(v):
        raise CheckError(f"{v!r}: check.py reads timestamps as YYYY-MM-DD HH:MM:SS[.ffffff] only")
    try:
        datetime.datetime.fromisoformat(v)
    except ValueError as e:
        raise CheckError(f"{v!r}: {e}") from None
    return v


def converter(sql_type):
    m = re.fullmatch(r"varchar\((\d+)\)", sql_type)
    if m:
        return varchar(int(m.group(1)))
    m = re.fullmatch(r"decimal\((\d+),(\d+)\)", sql_type)
    if m:
        return decimal(int(m.group(1)), int(m.group(2)))
    simple = {
        "bigint": lambda: integer(64),
        "integer": lambda: integer(32),
        "boolean": lambda: boolean,
        "date": date,
        "timestamp": lambda: timestamp,
    }
    return simple[sql_type]()


def table_files(data_dir, files):
    if isinstance(files, str):
        return [os.path.join(data_dir, files)]
    prefix = files["prefix"]
    found = []
    for root, _dirs, names in os.walk(data_dir):
        for name in names:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, data_dir).replace(os.sep, "/")
            if rel.startswith(prefix):
                found.append((rel, path))
    return [path for _rel, path in sorted(found)]


def read_table(data_dir, name):
    """Yields the typed rows of table `name`, in file order."""
    spec = TABLES[name]
    columns = spec["columns"]
    convs = [converter(t) for _n, t, _null in columns]
    not_null = [i for i, (_n, _t, nullable) in enumerate(columns) if not nullable]
    width = len(columns)
    paths = table_files(data_dir, spec["files"])
    if not paths:
        raise CheckError(f"{name}: no input file {spec['files']} in {data_dir}")
    for path in paths:
        with gzip.open(path, "rb") as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="\n") as f:
            lineno = 0
            try:
                for lineno, line in enumerate(f, 1):
                    if lineno <= FORMAT["ignoreheader"]:
                        continue
                    if line.endswith("\n"):
                        line = line[:-1]
                    fields = split_fields(line)
                    if len(fields) != width:
                        raise CheckError(f"{len(fields)} fields, the table has {width} columns")
                    try:
                        row = [conv(v) for conv, v in zip(convs, fields)]
                    except CheckError:
                        for (column, _t, _n), conv, v in zip(columns, convs, fields):
                            try:
                                conv(v)
                            except CheckError as e:
                                raise CheckError(f"column {column}: {e}") from None
                        raise
                    for i in not_null:
                        if row[i] is None:
                            raise CheckError(f"column {columns[i][0]}: NULL in a NOT NULL column")
                    yield row
            except CheckError as e:
                raise CheckError(f"{path}:{lineno}: {e}") from None
            except UnicodeDecodeError as e:
                raise CheckError(f"{path}: invalid UTF-8 after line {lineno}: {e}") from None


# ---------------------------------------------------------------------------------------------
# The transform.


def round_div(num, den):
    """num / den rounded half away from zero (den > 0), like a cast of NUMERIC to a smaller scale."""
    q = (2 * abs(num) + den) // (2 * den)
    return q if num >= 0 else -q


def fits(units, precision, what):
    if abs(units) >= 10**precision:
        raise CheckError(f"{what}: numeric field overflow (precision {precision})")
    return units


def profiles(data_dir):
    """01_profile.sql: customer_id -> (avg data, voice, sms in tenths; avg spend in cents)."""
    spend = {}  # (customer, month) -> [amount + nvl(overage, 0) in cents, ...]
    for cust, month, _plan, amount, overage, _paid, _segment in read_table(data_dir, "billing"):
        spend.setdefault((cust, month), []).append(amount + (overage or 0))
    sums = {}  # customer -> [count, data, voice, sms, spend]
    for cust, month, data, voice, sms, _roaming in read_table(data_dir, "usage"):
        bills = spend.get((cust, month))
        if not bills:
            continue  # inner join
        s = sums.get(cust)
        if s is None:
            s = sums[cust] = [0, 0, 0, 0, 0]
        for b in bills:
            s[0] += 1
            s[1] += data or 0
            s[2] += voice or 0
            s[3] += sms or 0
            s[4] += b
    out = {}
    for cust, (n, data, voice, sms, money) in sums.items():
        out[cust] = (
            fits(round_div(data * 10, n), 12, "avg_data_mb"),
            fits(round_div(voice * 10, n), 12, "avg_voice_minutes"),
            fits(round_div(sms * 10, n), 12, "avg_sms"),
            fits(round_div(money, n), 12, "avg_spend"),
        )
    return out


def offers(data_dir):
    rows = {}
    for code, name, data, voice, sms, fee, overage, active, _valid in read_table(data_dir, "offers"):
        if code in rows:
            raise CheckError(f"offers: offer_code {code!r} twice: which row an upsert keeps is the loader's choice")
        rows[code] = (code, name, data, voice, sms, fee, overage, active)
    # where o.active and len(o.offer_code) > 0 (a loaded code is never empty or blank)
    return [o for o in rows.values() if o[7] and len(o[0]) > 0]


def recommendations(data_dir):
    """02_rank.sql, in the unload's order: rows of the unload's columns (money in cents)."""
    catalogue = offers(data_dir)
    result = []
    for cust, (avg_data, avg_voice, avg_sms, spend) in sorted(profiles(data_dir).items()):
        costed = []
        for code, name, data, voice, sms, fee, overage, _active in catalogue:
            if voice * 10 < avg_voice or sms * 10 < avg_sms:
                continue
            cost = fee
            excess = avg_data - data * 10  # tenths of MB
            if excess > 0:
                gigabytes = -(-excess // 10240)  # ceil(excess / 1024.0)
                cost += gigabytes * (overage if overage is not None else 1000)
            costed.append((cost, fee, code.encode("utf-8"), code, name))
        costed.sort()
        for rank, (cost, _fee, _key, code, name) in enumerate(costed[:3], 1):
            fits(cost, 12, "expected_monthly_cost")
            saving = fits(spend - cost, 12, "monthly_saving")
            result.append((cust, rank, code, name, spend, cost, saving))
    return result


# ---------------------------------------------------------------------------------------------
# Output.


def money(cents):
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


CSV_SPECIAL = re.compile('[,"\n\r]')


def csv_field(value):
    """A text value as PostgreSQL's CSV output writes it (numbers never need quotes)."""
    if value is None:
        return ""
    if value == "" or CSV_SPECIAL.search(value):
        return '"' + value.replace('"', '""') + '"'
    return value


def expected_lines(data_dir):
    lines = [",".join(UNLOAD_COLUMNS)]
    for cust, rank, code, name, spend, cost, saving in recommendations(data_dir):
        fields = [str(cust), str(rank), csv_field(code), csv_field(name), money(spend), money(cost), money(saving)]
        lines.append(",".join(fields))
    return lines


def actual_lines(paths):
    lines = []
    for n, path in enumerate(paths):
        with open(path, "rb") as f:
            data = f.read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        text = data.decode("utf-8")
        part = text.split("\n")
        if part and part[-1] == "":
            part.pop()
        elif part:
            part[-1] += "  <- no line feed at the end of the file"
        if n > 0 and part and part[0] == lines[0]:
            part = part[1:]  # the header repeated in every part
        lines.extend(part)
    return lines


def compare(expected, actual, out):
    if expected == actual:
        return True
    shown = 0
    for i in range(max(len(expected), len(actual))):
        e = expected[i] if i < len(expected) else None
        a = actual[i] if i < len(actual) else None
        if e != a:
            print(f"line {i + 1}:", file=out)
            print(f"  expected: {e if e is not None else '(end of file)'}", file=out)
            print(f"  actual:   {a if a is not None else '(end of file)'}", file=out)
            shown += 1
            if shown == 10:
                break
    print(f"expected {len(expected)} lines, got {len(actual)}", file=out)
    return False


def quiet_stdout():
    """After a closed pipe: send what is still buffered nowhere, so exiting does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv):
    parser = argparse.ArgumentParser(
        prog="check.py",
        description="The recommendations demo's expected result, computed independently of etl.",
    )
    parser.add_argument("data_dir", metavar="DATA_DIR", help="folder holding usage/, billing/ and offers.txt.gz")
    parser.add_argument(
        "--compare",
        nargs="+",
        metavar="ACTUAL",
        help="the CSV file(s) the job unloaded: exit 0 when identical to the expected result, else 1",
    )
    parser.add_argument(
        "--job",
        default=os.path.join(HERE, "job.json"),
        help="the manifest this script must agree with (default: job.json next to it)",
    )
    args = parser.parse_args(argv)
    try:
        check_job(args.job)
        expected = expected_lines(args.data_dir)
        if args.compare:
            actual = actual_lines(args.compare)
            try:
                same = compare(expected, actual, sys.stdout)
            except BrokenPipeError:
                same = False  # only differences are printed
                quiet_stdout()
            if same:
                print(f"identical: {len(expected) - 1} rows", file=sys.stderr)
                return 0
            return 1
        try:
            sys.stdout.write("\n".join(expected) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            quiet_stdout()  # a closed pipe (| head) is not an error
        return 0
    except CheckError as e:
        print(f"check.py: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"check.py: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
