#!/usr/bin/env python3
"""The original design's driver, for comparison: psycopg2 `copy_expert` fed by Python that applies
Redshift's rules for the demo's files (IGNOREHEADER 1, '|' delimiter, REMOVEQUOTES, EMPTYASNULL,
BLANKSASNULL, GZIP).

    python3 original_loader.py URL SCHEMA.TABLE FILE.gz
"""

import gzip
import io
import sys

import psycopg2


def fields(line):
    """Splits on '|'; a field starting with '"' runs to the next '"' and loses its quotes."""
    out, i, n = [], 0, len(line)
    while True:
        if i < n and line[i] == '"':
            j = line.index('"', i + 1)
            value = line[i + 1:j]
            k = line.find("|", j + 1)
            out.append(value + (line[j + 1:k] if k >= 0 else line[j + 1:]))
        else:
            k = line.find("|", i)
            out.append(line[i:k] if k >= 0 else line[i:])
        if k < 0:
            return out
        i = k + 1


def text_field(value):
    if value == "" or value.isspace():
        return "\\N"  # EMPTYASNULL, BLANKSASNULL; empty non-character fields are NULL too
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


class Rows(io.RawIOBase):
    """A file-like object producing COPY text rows from the gzipped input."""

    def __init__(self, path):
        self.src = gzip.open(path, "rt", encoding="utf-8", newline="\n")
        next(self.src)  # IGNOREHEADER 1
        self.buf = b""

    def readable(self):
        return True

    def readinto(self, b):
        while len(self.buf) < len(b):
            line = self.src.readline()
            if not line:
                break
            line = line.rstrip("\n").rstrip("\r")
            self.buf += ("\t".join(text_field(f) for f in fields(line)) + "\n").encode()
        n = min(len(b), len(self.buf))
        b[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        return n


def main():
    url, table, path = sys.argv[1:4]
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.copy_expert(f"COPY {table} FROM STDIN", io.BufferedReader(Rows(path), 1 << 16))
    conn.close()


if __name__ == "__main__":
    main()
