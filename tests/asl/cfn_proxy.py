#!/usr/bin/env python3
"""A CloudFormation endpoint in front of moto that plays a stack's rollback, which moto cannot.

moto creates (and rolls back) a stack in one request, so a stack is never seen in
ROLLBACK_IN_PROGRESS. CloudFormation's documented lifecycle of a failed create is
CREATE_IN_PROGRESS -> ROLLBACK_IN_PROGRESS (it deletes what it built: for a cluster, as long as a
cluster deletion takes) -> ROLLBACK_COMPLETE, from which DeleteStack deletes the stack
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/view-stack-events.html, stack status
codes). This proxy forwards every request to moto and rewrites only the status of one stack in
DescribeStacks answers, once moto has the stack:

  --mode rollback --describes N  the first N describes say ROLLBACK_IN_PROGRESS, the next ones
                                 ROLLBACK_COMPLETE, until a DeleteStack reaches moto; then moto's own
                                 answers (the stack is gone)
  --mode stuck                   ROLLBACK_IN_PROGRESS for ever (a rollback that never ends)
  --mode unreadable --describes N  after N describes, DescribeStacks is throttled (HTTP 400
                                 Throttling, as CloudFormation answers past its rate limit) for ever

Every DescribeStacks of the stack, and what it answered, is appended to the --log file as one JSON
line. Prints "ready <port>" when it listens on 127.0.0.1; exits when its standard input closes.
Standard library only.

Usage: cfn_proxy.py --upstream http://127.0.0.1:PORT --stack NAME --mode MODE [--describes N] --log FILE
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None
LOCK = threading.Lock()
STATE = {"describes": 0, "deleted": False}


def log(entry: dict) -> None:
    with open(ARGS.log, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        action = form.get("Action", [""])[0]
        name = form.get("StackName", [""])[0]
        ours = name == ARGS.stack or f":stack/{ARGS.stack}/" in name  # by name, or by stack id
        if action == "DescribeStacks" and ours and ARGS.mode == "unreadable":
            with LOCK:
                throttled = STATE["describes"] >= ARGS.describes
                STATE["describes"] += 1
            if throttled:
                log({"action": action, "answer": "Throttling"})
                self.reply(400, b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
                                b"<Message>Rate exceeded</Message></Error><RequestId>1</RequestId></ErrorResponse>")
                return
        status, headers, answer = self.forward(body)
        if action == "DeleteStack" and ours and status == 200:
            with LOCK:
                STATE["deleted"] = True
        if action == "DescribeStacks" and ours and status == 200 and b"<StackStatus>" in answer:
            with LOCK:
                n = STATE["describes"]
                STATE["describes"] += 1
                deleted = STATE["deleted"]
            fake = None
            if ARGS.mode == "stuck":
                fake = "ROLLBACK_IN_PROGRESS"
            elif ARGS.mode == "rollback" and not deleted:
                fake = "ROLLBACK_IN_PROGRESS" if n < ARGS.describes else "ROLLBACK_COMPLETE"
            if fake:
                answer = re.sub(rb"<StackStatus>[A-Z_]+</StackStatus>",
                                b"<StackStatus>" + fake.encode() + b"</StackStatus>", answer, count=1)
            log({"action": action, "answer": fake or re.search(rb"<StackStatus>([A-Z_]+)<", answer).group(1).decode()})
        self.reply(status, answer, headers)

    def forward(self, body: bytes):
        request = urllib.request.Request(ARGS.upstream.rstrip("/") + self.path, data=body, method="POST")
        for k, v in self.headers.items():
            if k.lower() not in ("host", "content-length", "connection"):
                request.add_header(k, v)
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def reply(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {"Content-Type": "text/xml"}).items():
            if k.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--stack", required=True)
    ap.add_argument("--mode", choices=["rollback", "stuck", "unreadable"], required=True)
    ap.add_argument("--describes", type=int, default=0)
    ap.add_argument("--log", required=True)
    ARGS = ap.parse_args()
    if not re.fullmatch(r"http://127\.0\.0\.1:\d+/?", ARGS.upstream):
        sys.exit("cfn_proxy: --upstream must be a local moto server")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"ready {server.server_address[1]}", flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
