#!/usr/bin/env node
// Runs a state machine definition in a real ASL interpreter (aws-local-stepfunctions) with every Task
// state handled by a local etl-lambda binary, and prints how the execution ended as one JSON document.
//
//   NODE_OPTIONS="--require tests/asl/polyfill.cjs" \
//       node tests/asl/run.mjs DEFINITION SUBSTITUTIONS INPUT CONFIG
//
// DEFINITION     the ASL file as deployed: asl/etl.asl.json with its ${...} placeholders
// SUBSTITUTIONS  JSON file {"Placeholder": "value"}: replaced as CloudFormation's
//                DefinitionSubstitutions replaces them (text substitution of every ${Placeholder},
//                before the JSON is parsed); a placeholder without a value is an error
// INPUT          JSON file: the execution input
// CONFIG         JSON file:
//   execution_name          $$.Execution.Name (the run id of the ETL functions)        required
//   bin_dir                 the folder holding the etl-lambda binaries                 required
//   functions               {"<function ARN after substitution>": "<binary>"}; every Task
//                           state's Resource must be one of them (nothing reaches AWS)   required
//   env                     the functions' environment (only PATH is inherited)         {}
//   wait_ms                 every Wait state's duration in ms, or {"State": ms, "*": ms}  0
//   retry_ms                every Retry pause in ms, or {"State": ms, "*": ms}            0
//   invoke_timeout_seconds  a function still without a result is killed: Sandbox.Timedout 900
//   timeout_seconds         the execution is aborted after this: status TIMED_OUT         900
//   settle_timeout_seconds  how long to wait for the functions' processes at the end       120
//   before_task             {"State": {"binary": ..., "event": ...}}: invoke that function once
//                           before the state's first invocation (to stage a race, e.g. a stack
//                           created by someone else between two states); recorded as state
//                           "before <State>"; its failure is an anomaly                     {}
//
// Each Task runs `<bin_dir>/<binary> --invoke` with the Task's input on stdin. Its first line on
// stdout is the result; `{"errorType": ..., "errorMessage": ...}` (with exit status 1) is a function
// error, thrown as an Error whose name is errorType — the name Retry and Catch match, as Step
// Functions uses a Lambda error's errorType — and whose message, the Cause, is that JSON line, as
// Step Functions' Cause is the function's error payload. The state machine goes on as soon as the
// line is there: a function that submitted a statement keeps its process (and the statement's
// session) until the statement ends, as a Lambda container keeps it, so that the state machine's
// status polls see it running. The runner waits for every process before it prints.
//
// Output (stdout): {"status": "SUCCEEDED"|"FAILED"|"TIMED_OUT", "output"?, "error"?, "cause"?,
// "history": [{type, state?, index?, error?, cause?, attempt?}], "invocations": [{seq, state, binary,
// event, output? | error?, exit, ms}], "anomalies": [...], "patches": [...], "seconds"}. The
// functions' logs go to stderr, each line prefixed with its invocation. Exit status 0 when the
// execution ran (whatever its outcome), 2 when it could not be run.
//
// The interpreter is loaded with a few fixes applied in memory (PATCHES below; `patches` in the
// output lists them); each must match the installed version exactly, or the runner refuses to run.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import path from 'node:path';

const started = Date.now();

function die(message) {
  process.stderr.write(`asl-run: ${message}\n`);
  process.exit(2);
}

function readJson(file, what) {
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    die(`cannot read the ${what} ${file}: ${e.message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    die(`the ${what} ${file} is not JSON: ${e.message}`);
  }
}

// ------------------------------------------------------------------------------------ interpreter

// Where aws-local-stepfunctions 3.0.0 departs from Step Functions, fixed in its code as it is loaded.
const PATCHES = [
  {
    what: 'Pass state: a falsy Result (false, 0, "", null) is the result; the interpreter tested `if (Result)` and passed the input through instead (MarkStackNotOwned sets $.stack.created to false)',
    find: 'if (this.stateDefinition.Result) {',
    replace: 'if (this.stateDefinition.Result !== void 0) {',
  },
  {
    what: 'States.JsonMerge returns a new object; the interpreter merged into its first argument, which changed the state input',
    find: 'return Object.assign(obj1, obj2);',
    replace: 'return Object.assign({}, obj1, obj2);',
  },
  {
    what: "Task state without TimeoutSeconds: no timeout of its own (Step Functions' default is 99999999 s, and the function's own timeout applies); the interpreter failed such a Task with States.Timeout after 60 s. The runner enforces invoke_timeout_seconds instead",
    find: 'var DEFAULT_TIMEOUT_SECONDS = 60;',
    replace: 'var DEFAULT_TIMEOUT_SECONDS = 2147483;', // setTimeout's limit (2^31 - 1 ms)
  },
  {
    what: 'Choice type tests written with false (IsPresent, IsNull, IsNumeric, IsString, IsBoolean, IsTimestamp: false) match when the test fails; the interpreter never matched them (asl/etl.asl.json avoids them anyway: Not(IsX: true))',
    pattern: /return (\w+True) && (.+);/g,
    replace: 'return $1 === ($2);',
    count: 6,
  },
];

function loadInterpreter() {
  const require = createRequire(import.meta.url);
  let file;
  try {
    file = require.resolve('aws-local-stepfunctions'); // its CommonJS build
  } catch (e) {
    die(`aws-local-stepfunctions is not installed: run \`npm ci\` in ${path.dirname(new URL(import.meta.url).pathname)} (${e.message})`);
  }
  let source = readFileSync(file, 'utf8');
  for (const p of PATCHES) {
    const found = p.pattern ? (source.match(p.pattern) || []).length : source.split(p.find).length - 1;
    const want = p.count ?? 1;
    if (found !== want) {
      die(`the interpreter at ${file} is not the version this runner was written for: found ${found} (not ${want}) places for the fix "${p.what}"`);
    }
    source = p.pattern ? source.replace(p.pattern, p.replace) : source.split(p.find).join(p.replace);
  }
  const mod = new Module(file);
  mod.filename = file;
  mod.paths = Module._nodeModulePaths(path.dirname(file));
  mod._compile(source, file);
  return mod.exports;
}

// ------------------------------------------------------------------------------------ arguments

const args = process.argv.slice(2);
if (args.length !== 4 || args.some((a) => a === '-h' || a === '--help')) {
  die('usage: node run.mjs DEFINITION SUBSTITUTIONS INPUT CONFIG (see the top of this file)');
}
const [definitionFile, substitutionsFile, inputFile, configFile] = args;
if (typeof Promise.withResolvers !== 'function') {
  die('Promise.withResolvers is missing (Node < 22): run with NODE_OPTIONS="--require <tests/asl/polyfill.cjs>"');
}
if (typeof AbortSignal.any !== 'function') {
  die(`AbortSignal.any is missing: aws-local-stepfunctions needs Node 18.17 or later (tested with 18.20 and 20.20), this is ${process.version}`);
}

const substitutions = readJson(substitutionsFile, 'substitutions');
const input = readJson(inputFile, 'input');
const config = readJson(configFile, 'config');
for (const key of ['execution_name', 'bin_dir', 'functions']) {
  if (config[key] === undefined) die(`the config lacks "${key}"`);
}

// DefinitionSubstitutions: every ${Name} of the text, before parsing, as CloudFormation does.
let definitionText;
try {
  definitionText = readFileSync(definitionFile, 'utf8');
} catch (e) {
  die(`cannot read the definition ${definitionFile}: ${e.message}`);
}
const missing = new Set();
definitionText = definitionText.replace(/\$\{([^}]*)\}/g, (whole, name) => {
  const value = substitutions[name];
  if (typeof value !== 'string') {
    missing.add(name);
    return whole;
  }
  return value;
});
if (missing.size > 0) die(`no substitution for ${[...missing].map((n) => '${' + n + '}').join(', ')}`);
let definition;
try {
  definition = JSON.parse(definitionText);
} catch (e) {
  die(`the definition is not JSON after the substitutions: ${e.message}`);
}

// Every state, nested ones included (Map ItemProcessor/Iterator, Parallel Branches).
function allStates(machine) {
  const out = [];
  for (const [name, state] of Object.entries(machine.States ?? {})) {
    out.push([name, state]);
    const nested = state.Type === 'Map' ? [state.ItemProcessor ?? state.Iterator] : state.Type === 'Parallel' ? state.Branches : [];
    for (const sub of nested ?? []) if (sub) out.push(...allStates(sub));
  }
  return out;
}
const states = allStates(definition);

function perState(setting, names) {
  const out = {};
  for (const name of names) {
    const v = typeof setting === 'object' && setting !== null ? (setting[name] ?? setting['*']) : setting;
    if (v !== undefined) out[name] = Number(v);
  }
  return out;
}

// ------------------------------------------------------------------------------------ functions

const invocations = [];
const anomalies = [];
const processes = new Set(); // promises of the functions' exits
const running = new Set(); // the functions' processes that have not exited
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', ...config.env };
const invokeTimeoutMs = (config.invoke_timeout_seconds ?? 900) * 1000;

function lambdaError(name, cause) {
  const e = new Error(cause);
  e.name = name;
  return e;
}

function isDiagnostic(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && typeof v.errorType === 'string' && typeof v.errorMessage === 'string' && Object.keys(v).length === 2;
}

function forward(stream, prefix) {
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    rest += chunk;
    let nl;
    while ((nl = rest.indexOf('\n')) >= 0) {
      process.stderr.write(`${prefix} ${rest.slice(0, nl)}\n`);
      rest = rest.slice(nl + 1);
    }
  });
  stream.on('end', () => {
    if (rest) process.stderr.write(`${prefix} ${rest}\n`);
  });
}

function invoke(state, binary, event) {
  const record = { seq: invocations.length, state, binary, event };
  invocations.push(record);
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    let done = false;
    let answered = false; // a first line arrived
    const finish = (fn, value) => {
      if (done) return;
      done = true;
      record.ms = Date.now() - t0;
      fn(value);
    };
    const child = spawn(path.join(config.bin_dir, binary), ['--invoke'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    running.add(child);
    const exited = new Promise((res) => {
      child.on('error', (e) => {
        record.exit = null;
        finish(reject, lambdaError('Lambda.Unknown', JSON.stringify({ errorType: 'Lambda.Unknown', errorMessage: `cannot run ${binary}: ${e.message}` })));
        res();
      });
      child.on('close', (code, signal) => {
        running.delete(child);
        record.exit = code ?? signal;
        res();
      });
    });
    processes.add(exited);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(reject, lambdaError('Sandbox.Timedout', JSON.stringify({ errorType: 'Sandbox.Timedout', errorMessage: `Task timed out after ${invokeTimeoutMs / 1000} seconds` })));
    }, invokeTimeoutMs);
    forward(child.stderr, `[#${record.seq} ${state}]`);
    child.stdin.on('error', () => {}); // a function that exits without reading its event
    child.stdin.end(JSON.stringify(event));

    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      if (answered) return;
      out += chunk;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      const line = out.slice(0, nl);
      answered = true;
      let value;
      try {
        value = JSON.parse(line);
      } catch (e) {
        anomalies.push(`#${record.seq} ${state}: ${binary} printed a line that is not JSON: ${line.slice(0, 200)}`);
        finish(reject, lambdaError('Lambda.Unknown', JSON.stringify({ errorType: 'Lambda.Unknown', errorMessage: `not JSON: ${line.slice(0, 200)}` })));
        return;
      }
      if (isDiagnostic(value)) {
        // A function error: the process exits 1 at once (nothing of it keeps running).
        record.error = value;
        exited.then(() => {
          clearTimeout(timer);
          if (record.exit !== 1) anomalies.push(`#${record.seq} ${state}: ${binary} reported ${value.errorType} but exited ${record.exit}`);
          finish(reject, lambdaError(value.errorType, line));
        });
      } else {
        clearTimeout(timer);
        record.output = value;
        exited.then(() => {
          if (record.exit !== 0) anomalies.push(`#${record.seq} ${state}: ${binary} printed a result but exited ${record.exit}`);
        });
        finish(resolve, value);
      }
    });
    exited.then(() => {
      clearTimeout(timer);
      if (!done && !answered) {
        anomalies.push(`#${record.seq} ${state}: ${binary} exited ${record.exit} without a result`);
        finish(reject, lambdaError('Runtime.ExitError', JSON.stringify({ errorType: 'Runtime.ExitError', errorMessage: `${binary} exited ${record.exit} without a result` })));
      }
    });
  });
}

const hooks = config.before_task ?? {};
const hooked = new Set();
async function before(name) {
  const hook = hooks[name];
  if (!hook || hooked.has(name)) return;
  hooked.add(name);
  try {
    await invoke(`before ${name}`, hook.binary, hook.event);
  } catch (e) {
    anomalies.push(`before ${name}: ${hook.binary} failed: ${e.name}: ${e.message}`);
  }
}

const handlers = {};
const unmapped = [];
for (const [name, state] of states) {
  if (state.Type !== 'Task') continue;
  const binary = config.functions[state.Resource];
  if (typeof binary !== 'string') {
    unmapped.push(`${name} (${state.Resource})`);
    continue;
  }
  handlers[name] = async (event) => {
    await before(name);
    return invoke(name, binary, event);
  };
}
if (unmapped.length > 0) die(`Task states without a local function (nothing may call AWS): ${unmapped.join(', ')}`);
for (const name of Object.keys(hooks)) {
  if (!handlers[name]) die(`before_task names ${name}, which is not a Task state`);
}

// ------------------------------------------------------------------------------------ run

const { StateMachine } = loadInterpreter();
let machine;
try {
  machine = new StateMachine(definition); // validated, ARNs and paths included
} catch (e) {
  die(e.message);
}
const execution = machine.run(input, {
  overrides: {
    taskResourceLocalHandlers: handlers,
    waitTimeOverrides: perState(config.wait_ms ?? 0, states.filter(([, s]) => s.Type === 'Wait').map(([n]) => n)),
    retryIntervalOverrides: perState(config.retry_ms ?? 0, states.filter(([, s]) => s.Retry).map(([n]) => n)),
  },
  context: { Execution: { Name: config.execution_name } },
});

const history = [];
const logging = (async () => {
  for await (const e of execution.eventLogs) {
    const entry = { type: e.type };
    if (e.state) entry.state = e.state.name;
    if (e.parentState) entry.state = e.parentState.name;
    if (e.index !== undefined) entry.index = e.index;
    if (e.Error !== undefined) entry.error = e.Error;
    if (e.Cause !== undefined) entry.cause = typeof e.Cause === 'string' ? e.Cause : String(e.Cause?.message ?? e.Cause);
    if (e.retry) entry.attempt = e.retry.attempt;
    history.push(entry);
  }
})();

let timedOut = false;
const timeout = setTimeout(() => {
  timedOut = true;
  execution.abort();
}, (config.timeout_seconds ?? 900) * 1000);

const report = {};
try {
  report.output = await execution.result;
  report.status = 'SUCCEEDED';
} catch (e) {
  if (timedOut) {
    report.status = 'TIMED_OUT';
  } else {
    const cause = e.cause ?? e; // ExecutionError wraps the error that ended the execution
    report.status = 'FAILED';
    report.error = cause.name;
    report.cause = cause.message;
  }
}
clearTimeout(timeout);
await Promise.race([logging, new Promise((r) => setTimeout(r, 1000))]);

// The functions that submitted statements exit when their statements end.
const settleMs = (config.settle_timeout_seconds ?? 120) * 1000;
const settled = await Promise.race([
  Promise.all([...processes]).then(() => true),
  new Promise((r) => setTimeout(() => r(false), settleMs)),
]);
if (!settled) {
  anomalies.push(`${running.size} function(s) still running ${settleMs / 1000} s after the execution ended: killed`);
  for (const child of running) child.kill('SIGKILL');
}

Object.assign(report, {
  history,
  invocations,
  anomalies,
  patches: PATCHES.map((p) => p.what),
  seconds: (Date.now() - started) / 1000,
});
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exit(0);
