#!/usr/bin/env python3
"""Structural checks of the ETL state machine (asl/etl.asl.json) against its contract (asl/README.md)
and the permanent stack (cfn/initial.yaml). Standard library only.

Checks, each printed as one PASS/FAIL line:
  loops      every cycle of the state graph runs through a Choice rule that bounds a counter
             (NumericLessThan[Path]/NumericLessThanEquals[Path] on a path that a Pass state of the same
             cycle increments with States.MathAdd). The graph follows the one routing variable,
             $.delete.then (where the shared delete loop returns): a Pass state that sets it to a
             literal, and Choice rules that compare it with StringEquals, are taken into account, so
             that the delete loop entered from the cleanup cannot "return" to the create or succeed
  retry      every Task retries the transient errors with the agreed backoff
  catch      every Task catches States.ALL into $.error (cleanup tasks: $.cleanup_error) and every Catch
             leads only to Fail states (the cleanup path never ends in Succeed), following $.delete.then
             as above
  errors     every ErrorEquals name is in the closed set, States.* or Lambda.*
  contract   every Task's Resource is a ${...FunctionArn} placeholder of a binary in asl/README.md, and its
             row in the Task table matches the Task's input fields and ResultPath
  guarded    every Choice that reads a function's result (a Task's ResultPath, a Map item) first tests
             it with Not(IsPresent): a missing field would otherwise be an uncatchable States.Runtime;
             type tests are written Not(IsX: true), never IsX: false (portable across interpreters)
  optional   no JSONPath reads an optional output field (reason, rows, sqlstate, message): a missing
             field would be a States.Runtime error that bypasses the cleanup path
  template   every placeholder is in the state machine's DefinitionSubstitutions in cfn/initial.yaml, and
             every binary has a function whose code is <ArtifactPrefix>/<binary>.zip

Usage: check_asl.py [--asl asl/etl.asl.json] [--readme asl/README.md] [--template cfn/initial.yaml]
Exit status 0 when every check passes.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CLOSED_ERRORS = {"EtlRetryable", "EtlInvalidJob", "EtlQueryFailed", "EtlStackFailed", "EtlTimeout", "EtlInternal"}
RETRY_ERRORS = {"EtlRetryable", "Lambda.ServiceException", "Lambda.AWSLambdaException",
                "Lambda.SdkClientException", "Lambda.TooManyRequestsException"}
RETRY_POLICY = {"IntervalSeconds": 2, "BackoffRate": 2, "MaxAttempts": 5}
CATCH_RESULT_PATHS = {"$.error", "$.cleanup_error"}
OPTIONAL_OUTPUT_FIELDS = ("reason", "rows", "sqlstate", "message")
UPPER_BOUND_OPS = ("NumericLessThan", "NumericLessThanEquals", "NumericLessThanPath", "NumericLessThanEqualsPath")
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


class Report:
    def __init__(self) -> None:
        self.failed = False

    def check(self, name: str, problems: list[str], ok_detail: str = "") -> None:
        if problems:
            self.failed = True
            print(f"FAIL asl {name}")
            for p in problems:
                print(f"     - {p}")
        else:
            print(f"PASS asl {name}" + (f" ({ok_detail})" if ok_detail else ""))


# --------------------------------------------------------------------------- state graph helpers

def machines(definition: dict, where: str = "") -> list[tuple[str, dict]]:
    """The top-level machine and every nested one (Map ItemProcessor/Iterator, Parallel Branches)."""
    out = [(where or "<top>", definition["States"])]
    for name, state in definition["States"].items():
        for sub in ([state.get("ItemProcessor") or state.get("Iterator")] if state.get("Type") == "Map" else []) + \
                (state.get("Branches", []) if state.get("Type") == "Parallel" else []):
            if sub:
                out.extend(machines(sub, f"{where}/{name}" if where else name))
    return out


def all_states(definition: dict) -> list[tuple[str, str, dict]]:
    return [(m, n, s) for m, states in machines(definition) for n, s in states.items()]


def walk_rule(rule: dict):
    """Yield every comparison of a Choice rule, with whether it sits under a Not or an Or."""
    stack = [(rule, False)]
    while stack:
        r, negated = stack.pop()
        if "And" in r:
            stack.extend((x, negated) for x in r["And"])
        elif "Or" in r:
            stack.extend((x, True) for x in r["Or"])  # an Or branch alone bounds nothing
        elif "Not" in r:
            stack.append((r["Not"], True))
        else:
            yield r, negated


ROUTE = "$.delete.then"  # the routing variable: where the shared delete loop returns
UNKNOWN = "*"


def route_set(state: dict) -> str | None:
    """The literal a Pass state gives the routing variable, if it sets one."""
    if state.get("Type") != "Pass" or not isinstance(state.get("Parameters"), dict):
        return None
    if ROUTE != (state.get("ResultPath") or "$") + ".then":
        return None
    value = state["Parameters"].get("then")
    return value if isinstance(value, str) else None


def route_test(rule: dict) -> str | None:
    """The value a Choice rule compares the routing variable with, if that is all it does."""
    if rule.get("Variable") == ROUTE and isinstance(rule.get("StringEquals"), str):
        return rule["StringEquals"]
    return None


def product_edges(states: dict, start: str) -> list[tuple[tuple, tuple, frozenset]]:
    """The edges of the state graph with the routing variable's value: ((state, value), (state,
    value), counters that bound the transition), for every node reachable from (start, UNKNOWN).
    Catch transitions are edges too."""
    out, seen, todo = [], set(), [(start, UNKNOWN)]
    while todo:
        node = todo.pop()
        if node in seen or node[0] not in states:
            continue
        seen.add(node)
        name, value = node
        s = states[name]
        after = route_set(s) or value
        targets = []
        if s.get("Next"):
            targets.append((s["Next"], frozenset()))
        for c in s.get("Catch", []):
            targets.append((c["Next"], frozenset()))
        if s.get("Type") == "Choice":
            decided = False
            for rule in s.get("Choices", []):
                tested = route_test(rule)
                if tested is not None and value != UNKNOWN:
                    if tested == value:
                        targets.append((rule["Next"], frozenset()))
                        decided = True
                        break
                    continue
                bounds = frozenset(
                    cmp["Variable"] for cmp, negated in walk_rule(rule)
                    if not negated and any(op in cmp for op in UPPER_BOUND_OPS))
                targets.append((rule["Next"], bounds))
            if s.get("Default") and not decided:
                targets.append((s["Default"], frozenset()))
        for target, bounds in targets:
            out.append((node, (target, after), bounds))
            todo.append((target, after))
    return out


def incremented_counters(state: dict) -> set[str]:
    """Paths a Pass state sets to States.MathAdd(<same path>, <positive step>)."""
    if state.get("Type") != "Pass" or not isinstance(state.get("Parameters"), dict):
        return set()
    base = state.get("ResultPath", "$")
    out = set()
    for key, value in state["Parameters"].items():
        if not key.endswith(".$") or not isinstance(value, str):
            continue
        m = re.fullmatch(r"States\.MathAdd\((\$[\w.]+),\s*(-?\d+)\)", value.strip())
        target = (base if base != "$" else "$") + "." + key[:-2]
        target = target.replace("$..", "$.")
        if m and m.group(1) == target and int(m.group(2)) > 0:
            out.add(target)
    return out


def simple_cycles(nodes: list[str], succ: dict[str, set[str]], limit: int = 200_000):
    """Every simple cycle once, as the list of its nodes starting from its lowest-indexed node.
    Plain depth-first enumeration: state machines are small and sparse."""
    index = {n: i for i, n in enumerate(nodes)}
    count = 0
    for start in nodes:
        lo = index[start]
        path, on_path = [start], {start}
        stack = [iter(sorted(succ.get(start, ())))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                on_path.discard(path.pop())
                continue
            if nxt == start:
                count += 1
                if count > limit:
                    raise RuntimeError(f"more than {limit} cycles")
                yield list(path)
            elif nxt not in on_path and index.get(nxt, -1) > lo:
                path.append(nxt)
                on_path.add(nxt)
                stack.append(iter(sorted(succ.get(nxt, ()))))


def check_loops(definition: dict) -> tuple[list[str], str]:
    problems, n_cycles, n_loops = [], 0, set()
    for where, states in machines(definition):
        start = definition["StartAt"] if where == "<top>" else None
        if start is None:  # a nested machine: find its StartAt
            start = next(sub["StartAt"] for _, st in machines(definition) for s in st.values()
                         for sub in ([s.get("ItemProcessor") or s.get("Iterator")] if s.get("Type") == "Map" else [])
                         + (s.get("Branches", []) if s.get("Type") == "Parallel" else [])
                         if sub and sub["States"] is states)
        es = product_edges(states, start)
        succ: dict[tuple, set[tuple]] = {}
        for a, b, _ in es:
            succ.setdefault(a, set()).add(b)
        nodes = sorted({a for a, _, _ in es} | {b for _, b, _ in es if b[0] in states})
        incs = {n: incremented_counters(s) for n, s in states.items()}
        for cycle in simple_cycles(nodes, succ):
            n_cycles += 1
            ring = list(zip(cycle, cycle[1:] + cycle[:1]))
            counters_incremented = set().union(*(incs[n[0]] for n in cycle))
            # a transition is bounded by X only if every parallel edge a->b is bounded by X
            ok_by = set()
            for a, b in ring:
                parallel = [bounds for x, y, bounds in es if x == a and y == b]
                common = frozenset.intersection(*parallel) if parallel else frozenset()
                ok_by |= common & counters_incremented
            if not ok_by:
                names = [n[0] + ("" if n[1] == UNKNOWN else f"[then={n[1]}]") for n in cycle + cycle[:1]]
                problems.append(f"{where}: unbounded cycle {' -> '.join(names)}")
            else:
                n_loops.add((where, min(ok_by)))
    return problems, f"{n_cycles} cycles, all bounded by {len(n_loops)} counters"


# --------------------------------------------------------------------------- retry / catch / errors

def check_retry(definition: dict) -> list[str]:
    problems = []
    for where, name, s in all_states(definition):
        if s.get("Type") != "Task":
            continue
        retriers = s.get("Retry", [])
        good = [r for r in retriers if RETRY_ERRORS <= set(r.get("ErrorEquals", []))
                and all(r.get(k) == v for k, v in RETRY_POLICY.items())]
        if not good:
            problems.append(f"{where}/{name}: no Retry on {sorted(RETRY_ERRORS)} with {RETRY_POLICY}")
    return problems


def reachable(states: dict, start: str) -> set[str]:
    """The states reachable from start (with the routing variable unknown there)."""
    return {start} | {b[0] for _, b, _ in product_edges(states, start) if b[0] in states}


def check_catch(definition: dict) -> list[str]:
    problems = []
    for where, states in machines(definition):
        for name, s in states.items():
            if s.get("Type") not in ("Task", "Map", "Parallel"):
                continue
            catchers = s.get("Catch", [])
            alls = [c for c in catchers if "States.ALL" in c.get("ErrorEquals", [])]
            if s.get("Type") == "Task" or catchers:
                if not alls:
                    problems.append(f"{where}/{name}: no Catch on States.ALL")
            for c in catchers:
                if c.get("ResultPath") not in CATCH_RESULT_PATHS:
                    problems.append(f"{where}/{name}: Catch ResultPath {c.get('ResultPath')!r} "
                                    f"(expected one of {sorted(CATCH_RESULT_PATHS)})")
                after = reachable(states, c["Next"])
                ends = [n for n in after if states[n].get("Type") == "Succeed"
                        or (states[n].get("End") and states[n].get("Type") != "Fail")]
                if ends:
                    problems.append(f"{where}/{name}: Catch leads to {c['Next']}, from which {sorted(ends)} "
                                    "can end the run without failing")
                if not any(states[n].get("Type") == "Fail" for n in after):
                    problems.append(f"{where}/{name}: Catch leads to {c['Next']}, which reaches no Fail state")
    return problems


def check_errors(definition: dict) -> list[str]:
    problems = []
    for where, name, s in all_states(definition):
        for kind in ("Retry", "Catch"):
            for r in s.get(kind, []):
                for e in r.get("ErrorEquals", []):
                    if e not in CLOSED_ERRORS and not e.startswith(("States.", "Lambda.")):
                        problems.append(f"{where}/{name}: {kind} names {e!r}, not in the closed set")
        if s.get("Type") == "Fail" and "Error" in s and s["Error"] not in CLOSED_ERRORS \
                and not s["Error"].startswith("States."):
            problems.append(f"{where}/{name}: Fail Error {s['Error']!r} not in the closed set")
        if s.get("Type") == "Pass" and isinstance(s.get("Parameters"), dict) and "Error" in s["Parameters"]:
            if s["Parameters"]["Error"] not in CLOSED_ERRORS:
                problems.append(f"{where}/{name}: sets Error {s['Parameters']['Error']!r}, not in the closed set")
    return problems


# --------------------------------------------------------------------------- contract

def md_tables(text: str, heading: str) -> list[list[str]]:
    """Rows (cells stripped of backticks) of the first table under the given '## ' heading."""
    m = re.search(rf"^##+ {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    if not m:
        return []
    rows: list[list[str]] = []
    for line in m.group(1).splitlines():
        line = line.strip()
        if not line.startswith("|"):
            if rows:
                break  # the first table ended
            continue
        if re.fullmatch(r"\|[\s:|-]+\|", line):
            continue
        # split on unescaped pipes: "\|" inside a cell is a literal pipe
        cells = [c.replace("\\|", "|").strip() for c in re.split(r"(?<!\\)\|", line.strip("|"))]
        rows.append(cells)
    return rows[1:]  # drop the header row


def strip_code(cell: str) -> str:
    return cell.replace("`", "").strip()


def field_list(cell: str) -> set[str]:
    cell = strip_code(cell)
    return {f.strip() for f in re.split(r"[,\s]+", cell) if f.strip() and f.strip() != "-"}


def check_contract(definition: dict, readme: str) -> tuple[list[str], str]:
    problems = []
    functions = {}
    for row in md_tables(readme, "Functions"):
        if len(row) < 2:
            continue
        binary, placeholder = strip_code(row[0]), strip_code(row[1])
        functions[placeholder] = binary
    if not functions:
        return ["asl/README.md: no '## Functions' table (binary | placeholder | ...)"], ""
    task_rows = {}
    for row in md_tables(readme, "Task states"):
        if len(row) < 4:
            problems.append(f"asl/README.md Task states: short row {row}")
            continue
        task_rows[strip_code(row[0])] = row
    tasks = [(w, n, s) for w, n, s in all_states(definition) if s.get("Type") == "Task"]
    for where, name, s in tasks:
        res = s.get("Resource", "")
        m = PLACEHOLDER.fullmatch(res)
        if not m:
            problems.append(f"{where}/{name}: Resource {res!r} is not a ${{...}} placeholder")
            continue
        if res not in functions:
            problems.append(f"{where}/{name}: placeholder {res} maps to no binary in asl/README.md's Functions table")
            continue
        row = task_rows.get(name)
        if row is None:
            problems.append(f"{where}/{name}: no row in asl/README.md's Task states table")
            continue
        binary, inputs, result_path = strip_code(row[1]), field_list(row[2]), strip_code(row[3])
        if binary != functions[res]:
            problems.append(f"{name}: README says {binary}, the ASL calls {res} = {functions[res]}")
        params = s.get("Parameters", {})
        actual = {k[:-2] if k.endswith(".$") else k for k in params}
        if actual != inputs:
            problems.append(f"{name}: input fields in the ASL {sorted(actual)} != README {sorted(inputs)}")
        rp = s.get("ResultPath", "$")
        if (rp is None and result_path != "null") or (rp is not None and rp != result_path):
            problems.append(f"{name}: ResultPath in the ASL {rp!r} != README {result_path!r}")
    for name in task_rows:
        if name not in {n for _, n, _ in tasks}:
            problems.append(f"asl/README.md documents Task state {name}, which the ASL does not have")
    used = {s.get("Resource") for _, _, s in tasks}
    for placeholder, binary in functions.items():
        if placeholder not in used:
            problems.append(f"asl/README.md lists {binary} ({placeholder}), which no Task calls")
    return problems, f"{len(tasks)} Task states, {len(functions)} binaries"


def result_roots(states: dict) -> set[str]:
    roots = {s["ResultPath"] for s in states.values() if s.get("Type") == "Task" and s.get("ResultPath")}
    for s in states.values():
        if s.get("Type") == "Map":
            for key, value in (s.get("ItemSelector") or s.get("Parameters") or {}).items():
                if key.endswith(".$") and isinstance(value, str) and value.startswith("$$.Map.Item.Value"):
                    roots.add("$." + key[:-2])
    return roots


def check_guarded_reads(definition: dict) -> tuple[list[str], str]:
    problems, n = [], 0
    # every machine's Task results and Map items (selected in the parent, read in the child)
    roots = {r for _, states in machines(definition) for r in result_roots(states)}
    for where, states in machines(definition):
        for name, s in states.items():
            if s.get("Type") != "Choice":
                continue
            tested: set[str] = set()
            for rule in s.get("Choices", []):
                inner = rule.get("Not", {})
                if inner.get("IsPresent") is True and "Variable" in inner:
                    tested.add(inner["Variable"])
                    continue
                for cmp, _ in walk_rule(rule):
                    var = cmp.get("Variable", "")
                    if any(var.startswith(r + ".") for r in roots):
                        n += 1
                        if var not in tested:
                            problems.append(f"{where}/{name}: reads {var} without a preceding rule "
                                            f"{{\"Not\": {{\"Variable\": \"{var}\", \"IsPresent\": true}}}}")
            # Is*: false is valid ASL, but some local interpreters (aws-local-stepfunctions 3.0) never
            # match it; Not(Is*: true) means the same everywhere.
            for rule in s.get("Choices", []):
                for cmp, _ in walk_rule(rule):
                    for op in ("IsPresent", "IsNull", "IsNumeric", "IsString", "IsBoolean", "IsTimestamp"):
                        if cmp.get(op) is False:
                            problems.append(f"{where}/{name}: {op}: false on {cmp.get('Variable')}; "
                                            f"write {{\"Not\": {{... \"{op}\": true}}}}")
    return sorted(set(problems)), f"{n} reads of function results"


def check_optional_reads(definition: dict) -> list[str]:
    problems = []
    text_paths = re.compile(r"\$\.[\w.]+")
    for where, name, s in all_states(definition):
        blob = json.dumps({k: v for k, v in s.items() if k not in ("Comment",)})
        for path in text_paths.findall(blob):
            last = path.rstrip(".").split(".")[-1]
            if last in OPTIONAL_OUTPUT_FIELDS:
                problems.append(f"{where}/{name}: reads {path}, an optional field")
    return problems


# --------------------------------------------------------------------------- template

def definition_substitutions(template: str) -> set[str]:
    """Keys of DefinitionSubstitutions in a YAML template, by indentation (no YAML parser needed)."""
    lines = template.splitlines()
    keys: set[str] = set()
    for i, line in enumerate(lines):
        if line.strip() == "DefinitionSubstitutions:":
            indent = len(line) - len(line.lstrip())
            for nxt in lines[i + 1:]:
                if not nxt.strip() or nxt.lstrip().startswith("#"):
                    continue
                ind = len(nxt) - len(nxt.lstrip())
                if ind <= indent:
                    break
                m = re.match(r"\s*([A-Za-z0-9_]+):", nxt)
                if m and ind == indent + 2:
                    keys.add(m.group(1))
    return keys


def check_template(asl_text: str, readme: str, template: str) -> list[str]:
    problems = []
    placeholders = set(PLACEHOLDER.findall(asl_text))
    subs = definition_substitutions(template)
    if not subs:
        problems.append("cfn/initial.yaml: no DefinitionSubstitutions found")
    for p in sorted(placeholders - subs):
        problems.append(f"placeholder ${{{p}}} is not in cfn/initial.yaml's DefinitionSubstitutions")
    for p in sorted(subs - placeholders):
        problems.append(f"DefinitionSubstitutions key {p} is not used by the ASL")
    for row in md_tables(readme, "Functions"):
        binary = strip_code(row[0])
        if not re.search(rf"S3Key: !Sub \$\{{ArtifactPrefix\}}/{re.escape(binary)}\.zip\b", template):
            problems.append(f"cfn/initial.yaml: no function with code <ArtifactPrefix>/{binary}.zip")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--asl", default=str(ROOT / "asl" / "etl.asl.json"))
    ap.add_argument("--readme", default=str(ROOT / "asl" / "README.md"))
    ap.add_argument("--template", default=str(ROOT / "cfn" / "initial.yaml"))
    args = ap.parse_args()

    asl_text = Path(args.asl).read_text()
    readme = Path(args.readme).read_text()
    template = Path(args.template).read_text()
    definition = json.loads(asl_text)

    report = Report()
    problems, detail = check_loops(definition)
    report.check("loops bounded by counters", problems, detail)
    report.check("every Task retries transient errors", check_retry(definition))
    report.check("every Task catches into the cleanup path", check_catch(definition))
    report.check("error names in the closed set", check_errors(definition))
    problems, detail = check_contract(definition, readme)
    report.check("Tasks match the contract in asl/README.md", problems, detail)
    problems, detail = check_guarded_reads(definition)
    report.check("function results tested with Not(IsPresent) before use", problems, detail)
    report.check("no read of an optional output field", check_optional_reads(definition))
    report.check("placeholders and binaries match cfn/initial.yaml", check_template(asl_text, readme, template))
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
