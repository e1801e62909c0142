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
// A Map state in Distributed mode runs each item as a child execution with its own history (the
// interpreter has no Distributed mode; see distributedMap below and tests/asl/README.md).
//
// Output (stdout): {"status": "SUCCEEDED"|"FAILED"|"TIMED_OUT", "output"?, "error"?, "cause"?,
// "history": the parent's [{type, state?, state_type?, index?, error?, cause?, attempt?}],
// "history_events": the parent's Step Functions history events (by the model of asl/README.md),
// "max_child_history_events", "map_runs": [{map_run, state, reader, items, succeeded, failed,
// aborted, max_concurrency, max_running, status}], "children": [{name, parent, map_run, map_state,
// index, status, error?, cause?, history, history_events}], "invocations": [{seq, execution,
// state, binary, event, output? | error?, exit, ms}], "anomalies": [...], "patches": [...],
// "seconds"}. The functions' logs go to stderr, each line prefixed with its invocation. Exit
// status 0 when the execution ran (whatever its outcome), 2 when it could not be run.
//
// The interpreter is loaded with a few fixes applied in memory (PATCHES below; `patches` in the
// output lists them); each must match the installed version exactly, or the runner refuses to run.

import { spawn } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
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
    what: 'Map state in Distributed mode (ProcessorConfig.Mode DISTRIBUTED): the interpreter ran it as an inline Map (the iterations inside the parent execution, no ItemReader, no tolerated failure threshold). The runner runs each item as a child execution with its own history instead (distributedMap below)',
    find: '    const state = this.stateDefinition;\n    let items = input;\n',
    replace: '    const state = this.stateDefinition;\n    if (state.ItemProcessor?.ProcessorConfig?.Mode === "DISTRIBUTED") {\n      return this.buildExecutionResult(await globalThis.__etlDistributedMap({ state, stateName: this.stateName, input, context, options, processPayloadTemplate, jsonPathQuery, IntegerConstraint, StateMachine }));\n    }\n    let items = input;\n',
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

function invoke(state, binary, event, execution) {
  const record = { seq: invocations.length, execution: execution ?? config.execution_name, state, binary, event };
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

// Every execution (the parent and each child of a Distributed Map) gets its own handlers, so that
// its Task attempts are counted in its own history.
const taskStates = states.filter(([, s]) => s.Type === 'Task');
const unmapped = taskStates.filter(([, s]) => typeof config.functions[s.Resource] !== 'string').map(([n, s]) => `${n} (${s.Resource})`);
if (unmapped.length > 0) die(`Task states without a local function (nothing may call AWS): ${unmapped.join(', ')}`);
for (const name of Object.keys(hooks)) {
  if (!taskStates.some(([n]) => n === name)) die(`before_task names ${name}, which is not a Task state`);
}
function handlersFor(exec) {
  const out = {};
  for (const [name, state] of taskStates) {
    out[name] = async (event) => {
      await before(name);
      exec.task_attempts += 1;
      return invoke(name, config.functions[state.Resource], event, exec.name);
    };
  }
  return out;
}

// ------------------------------------------------------------------------------------ run

// ------------------------------------------------------------------------------------ executions

// One record per execution: the parent, then each child execution of a Distributed Map.
const executions = [];
function newExecution(name, extra = {}) {
  const exec = { name, ...extra, status: 'RUNNING', history: [], task_attempts: 0 };
  executions.push(exec);
  return exec;
}

function collect(exec, eventLogs) {
  return (async () => {
    for await (const e of eventLogs) {
      const entry = { type: e.type };
      if (e.state) {
        entry.state = e.state.name;
        if (e.type === 'StateEntered') entry.state_type = e.state.type;
      }
      if (e.parentState) entry.state = e.parentState.name;
      if (e.index !== undefined) entry.index = e.index;
      if (e.Error !== undefined) entry.error = e.Error;
      if (e.Cause !== undefined) entry.cause = typeof e.Cause === 'string' ? e.Cause : String(e.Cause?.message ?? e.Cause);
      if (e.retry) entry.attempt = e.retry.attempt;
      exec.history.push(entry);
    }
  })();
}

// Step Functions' history events of an execution, from what the interpreter reports, after the
// event types of the HistoryEvent reference (asl/README.md, "History budget"): ExecutionStarted and
// its end; <Type>StateEntered and <Type>StateExited for every state entered (a Fail state has no
// exit, counted anyway: an upper bound); three per Task attempt (TaskScheduled, TaskStarted,
// TaskSucceeded or TaskFailed; a retry is another attempt); four more for a Distributed Map
// (MapStateStarted, MapRunStarted, MapRunSucceeded or MapRunFailed, MapStateSucceeded or
// MapStateFailed). Child executions have their own history: none of their events count here.
function historyEvents(exec) {
  let n = 2 + 3 * exec.task_attempts;
  for (const e of exec.history) {
    if (e.type !== 'StateEntered') continue;
    n += 2;
    if (e.state_type === 'Map' && distributedStates.has(e.state)) n += 4;
  }
  return n;
}
const distributedStates = new Set(states.filter(([, s]) => s.Type === 'Map' && s.ItemProcessor?.ProcessorConfig?.Mode === 'DISTRIBUTED').map(([n]) => n));
for (const name of distributedStates) {
  const unsupported = ['ItemBatcher', 'ResultWriter'].filter((k) => states.find(([n]) => n === name)[1][k] !== undefined);
  if (unsupported.length > 0) die(`the Distributed Map ${name} uses ${unsupported.join(', ')}, which this runner does not model (tests/asl/README.md)`);
}

// ------------------------------------------------------------------------------------ Distributed Map

function sha256(data) {
  return createHash('sha256').update(data).digest('hex');
}

// GET s3://bucket/key from the endpoint of the functions' environment (moto), signed with AWS
// Signature Version 4 as any S3 client would (moto refuses anonymous reads of a private bucket).
async function s3Get(bucket, key) {
  const endpoint = env.AWS_ENDPOINT_URL;
  if (!endpoint || !/^http:\/\/127\.0\.0\.1:/.test(endpoint)) throw new Error(`the functions' AWS_ENDPOINT_URL is not a local endpoint (${endpoint}): nothing may call AWS`);
  const url = new URL(`${endpoint.replace(/\/$/, '')}/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`);
  const region = env.AWS_REGION ?? 'us-east-1';
  const amzDate = new Date().toISOString().replace(/[:-]|\.\d{3}/g, '');
  const day = amzDate.slice(0, 8);
  const payload = sha256('');
  const signed = 'host;x-amz-content-sha256;x-amz-date';
  const canonical = ['GET', url.pathname, '', `host:${url.host}`, `x-amz-content-sha256:${payload}`, `x-amz-date:${amzDate}`, '', signed, payload].join('\n');
  const scope = `${day}/${region}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
  let k = `AWS4${env.AWS_SECRET_ACCESS_KEY ?? ''}`;
  for (const part of [day, region, 's3', 'aws4_request']) k = createHmac('sha256', k).update(part).digest();
  const signature = createHmac('sha256', k).update(toSign).digest('hex');
  const res = await fetch(url, {
    headers: {
      'x-amz-content-sha256': payload,
      'x-amz-date': amzDate,
      authorization: `AWS4-HMAC-SHA256 Credential=${env.AWS_ACCESS_KEY_ID ?? ''}/${scope}, SignedHeaders=${signed}, Signature=${signature}`,
    },
  });
  const body = await res.text();
  if (!res.ok) throw new Error(`GetObject s3://${bucket}/${key}: HTTP ${res.status}: ${body.slice(0, 300)}`);
  return body;
}

function statesError(name, message) {
  const e = new Error(message);
  e.name = name;
  return e;
}

let mapRuns = 0;
const mapRunReports = [];

// A Map state in Distributed mode, as the Step Functions Developer Guide describes it
// (state-map-distributed, input-output-itemreader, maprun-fail-threshold): the items come from
// the ItemReader (here: s3:getObject of a JSON array) or ItemsPath; each item, after ItemSelector,
// is the input of a child execution of ItemProcessor with its own history; at most MaxConcurrency
// run at once; when more children fail than ToleratedFailurePercentage / ToleratedFailureCount
// allow (default: none), the Map Run fails with States.ExceedToleratedFailureThreshold and the
// children still running are stopped. The result is the children's outputs, in item order.
globalThis.__etlDistributedMap = async ({ state, stateName, input, context, options, processPayloadTemplate, jsonPathQuery, IntegerConstraint, StateMachine }) => {
  const run = `${config.execution_name}/${stateName}/${++mapRuns}`;
  const report = { map_run: run, state: stateName, items: 0, succeeded: 0, failed: 0, aborted: 0, max_running: 0 };
  mapRunReports.push(report);
  let items;
  if (state.ItemReader) {
    const reader = state.ItemReader;
    if (reader.Resource !== 'arn:aws:states:::s3:getObject' || reader.ReaderConfig?.InputType !== 'JSON') {
      throw statesError('States.Runtime', `ItemReader ${JSON.stringify(reader)}: this runner reads only a JSON array with arn:aws:states:::s3:getObject`);
    }
    const where = processPayloadTemplate(reader.Parameters, input, context);
    report.reader = where;
    try {
      items = JSON.parse(await s3Get(where.Bucket, where.Key));
    } catch (e) {
      throw statesError('States.ItemReaderFailed', `cannot read the items from s3://${where.Bucket}/${where.Key}: ${e.message}`);
    }
    if (!Array.isArray(items)) throw statesError('States.ItemReaderFailed', `s3://${where.Bucket}/${where.Key} is not a JSON array`);
    if (reader.ReaderConfig.MaxItems !== undefined) items = items.slice(0, reader.ReaderConfig.MaxItems);
  } else {
    items = state.ItemsPath ? jsonPathQuery(state.ItemsPath, input, context) : input;
    if (!Array.isArray(items)) throw statesError('States.Runtime', 'the Map state\'s items are not an array');
  }
  report.items = items.length;
  let limit = state.MaxConcurrency;
  if (state.MaxConcurrencyPath) {
    limit = jsonPathQuery(state.MaxConcurrencyPath, input, context, { constraints: [IntegerConstraint.greaterThanOrEqual(0)], ignoreDefinedValueConstraint: true });
  }
  limit = limit || 10000; // 0 or absent: Step Functions' limit of 10,000 concurrent children
  report.max_concurrency = limit;
  const toleratedPct = state.ToleratedFailurePercentage ?? 0;
  const toleratedCount = state.ToleratedFailureCount ?? (state.ToleratedFailurePercentage !== undefined ? Infinity : 0);
  const exceeded = () => report.failed > toleratedCount || (100 * report.failed) / items.length > toleratedPct;
  const child = new StateMachine(state.ItemProcessor, { ...options.stateMachineOptions, validationOptions: { noValidate: true } });
  const overrides = options.runOptions?.overrides ?? {};
  const outputs = new Array(items.length);
  const running = new Map(); // child execution -> its abort function
  const logs = [];
  let next = 0;
  let failure = null;
  const worker = async () => {
    while (next < items.length && !failure) {
      const index = next++;
      context.Map = { Item: { Index: index, Value: items[index] } };
      const childInput = state.ItemSelector ? processPayloadTemplate(state.ItemSelector, input, context) : items[index];
      delete context.Map;
      const exec = newExecution(`${run}:${index}`, { parent: config.execution_name, map_run: run, map_state: stateName, index });
      const started = child.run(childInput, {
        overrides: { ...overrides, taskResourceLocalHandlers: handlersFor(exec) },
        context: { Execution: { Name: exec.name } },
      });
      running.set(exec, started.abort);
      report.max_running = Math.max(report.max_running, running.size);
      logs.push(collect(exec, started.eventLogs));
      try {
        outputs[index] = await started.result;
        exec.status = 'SUCCEEDED';
        report.succeeded += 1;
      } catch (e) {
        if (exec.status === 'ABORTED') {
          report.aborted += 1;
        } else {
          const cause = e.cause ?? e; // ExecutionError wraps the error that ended the execution
          exec.status = 'FAILED';
          exec.error = cause.name;
          exec.cause = cause.message;
          report.failed += 1;
          if (exceeded() && !failure) {
            failure = statesError('States.ExceedToleratedFailureThreshold', `Map Run ${run}: ${report.failed} of ${items.length} child executions failed, more than the tolerated ${toleratedPct} %; the first: ${exec.name}`);
            for (const [other, abort] of running) {
              if (other === exec) continue;
              other.status = 'ABORTED';
              abort();
            }
          }
        }
      } finally {
        running.delete(exec);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  await Promise.race([Promise.all(logs), new Promise((r) => setTimeout(r, 2000))]);
  report.status = failure ? 'FAILED' : 'SUCCEEDED';
  if (failure) throw failure;
  return outputs;
};

// ------------------------------------------------------------------------------------ run

const { StateMachine } = loadInterpreter();
let machine;
try {
  machine = new StateMachine(definition); // validated, ARNs and paths included
} catch (e) {
  die(e.message);
}
const parent = newExecution(config.execution_name);
const execution = machine.run(input, {
  overrides: {
    taskResourceLocalHandlers: handlersFor(parent),
    waitTimeOverrides: perState(config.wait_ms ?? 0, states.filter(([, s]) => s.Type === 'Wait').map(([n]) => n)),
    retryIntervalOverrides: perState(config.retry_ms ?? 0, states.filter(([, s]) => s.Retry).map(([n]) => n)),
  },
  context: { Execution: { Name: config.execution_name } },
});
const history = parent.history;
const logging = collect(parent, execution.eventLogs);

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

parent.status = report.status;
for (const exec of executions) exec.history_events = historyEvents(exec);
const children = executions.slice(1);
Object.assign(report, {
  history,
  history_events: parent.history_events,
  max_child_history_events: children.reduce((m, e) => Math.max(m, e.history_events), 0),
  map_runs: mapRunReports,
  children: children.map(({ task_attempts, ...rest }) => rest),
  invocations,
  anomalies,
  patches: PATCHES.map((p) => p.what),
  seconds: (Date.now() - started) / 1000,
});
// Exit only once the report is written: a pipe takes a large one in several writes, and
// process.exit() would cut it short.
process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(0));
