//! The Lambda functions (`etl-lambda`) against moto (Secrets Manager, CloudFormation, S3) and a
//! throwaway PostgreSQL as the warehouse; and their contract with the state machine: every Task's
//! `Parameters` make exactly the handler's event, every path the machine reads from a Task's
//! `ResultPath` exists in the handler's output.
//!
//! Tests that talk to moto run in a child process with the moto environment
//! ([`etl_tests::moto::s3_test`]); nothing here reaches real AWS: every endpoint is 127.0.0.1.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use etl_core::aws::stack::StackStatus;
use etl_core::track::Handle;
use etl_lambda::job::{
    self, Batch, CreateTablesEvent, CreateTablesOutput, LoadTableEvent, PlanItem, StatementHandle,
    StatusEvent, StatusOutput, StatusRequest, SubmitEvent, SubmitStep,
};
use etl_lambda::stack::{self, CreateEvent, CreateOutput, DeleteOutput, JobRef, StackEvent};
use etl_lambda::{ErrorName, HandlerError, Resources, Settings, WarehouseAddress};
use etl_tests::aws::{asl_functions, create_secret, get, list, put};
use etl_tests::moto::{self, S3Env};
use serde_json::{Value, json};

// ------------------------------------------------------------------------------------------------
// The contract with asl/etl.asl.json

/// Deserializes `event` into the event type of `binary`'s handler and serializes it back.
fn as_event(binary: &str, event: Value) -> Result<Value, serde_json::Error> {
    fn round<T: serde::de::DeserializeOwned + serde::Serialize>(
        v: Value,
    ) -> Result<Value, serde_json::Error> {
        let typed: T = serde_json::from_value(v)?;
        serde_json::to_value(typed)
    }
    match binary {
        "etl-stack-status" | "etl-stack-outputs" | "etl-stack-delete" => round::<StackEvent>(event),
        "etl-stack-create" => round::<CreateEvent>(event),
        "etl-create-tables" => round::<CreateTablesEvent>(event),
        "etl-load-table" => round::<LoadTableEvent>(event),
        "etl-submit" => round::<SubmitEvent>(event),
        "etl-statement-status" => round::<StatusRequest>(event),
        other => panic!("no handler for {other}"),
    }
}

fn sample_handle() -> StatementHandle {
    StatementHandle {
        statement: Handle {
            run_id: "exec-1".into(),
            step_id: "load:staging.usage".into(),
            pid: 4242,
            label: "etl-0badcafe-2".into(),
            submitted_at: "2026-01-01T00:00:00".parse().unwrap(),
            dialect: etl_core::sql::Dialect::Redshift,
            in_block: true,
            attempt: Some(1),
        },
        timeout_seconds: Some(3600),
    }
}

/// A sample output of each handler, with every optional field absent (the machine must not read
/// those by path).
fn sample_output(binary: &str) -> Value {
    let v = match binary {
        "etl-stack-status" => serde_json::to_value(StackStatus::Ready),
        "etl-stack-create" => serde_json::to_value(CreateOutput {
            stack_name: "etl-redshift".into(),
            created: true,
        }),
        "etl-stack-outputs" => serde_json::to_value(WarehouseAddress {
            host: "etl-redshift.x.eu-west-1.redshift.amazonaws.com".into(),
            port: 5439,
        }),
        "etl-stack-delete" => serde_json::to_value(DeleteOutput { deleting: true }),
        "etl-create-tables" => serde_json::to_value(CreateTablesOutput {
            run_id: "exec-1".into(),
            tables: 1,
            transform_count: 2,
            bucket: "jobs".into(),
            batches: vec![Batch {
                key: "runs/exec-1/plan/batch-0000.json".into(),
                label: "load of 1 table".into(),
                items: 1,
            }],
        }),
        "etl-load-table" | "etl-submit" => serde_json::to_value(sample_handle()),
        "etl-statement-status" => serde_json::to_value(StatusOutput {
            state: "Running".into(),
            rows: None,
            sqlstate: None,
            message: None,
            step: None,
        }),
        other => panic!("no handler for {other}"),
    };
    v.unwrap()
}

/// `$`, `$.a.b`, `$$.Execution.Name`, `$$.Map.Item.Value`.
fn read_path<'a>(state: &'a Value, context: &'a Value, path: &str) -> Option<&'a Value> {
    let (root, rest) = if let Some(rest) = path.strip_prefix("$$") {
        (context, rest)
    } else {
        (state, path.strip_prefix('$').expect("a path starts with $"))
    };
    rest.split('.')
        .filter(|p| !p.is_empty())
        .try_fold(root, |v, key| v.get(key))
}

fn write_path(state: &mut Value, path: &str, value: Value) {
    let keys: Vec<&str> = path.trim_start_matches("$.").split('.').collect();
    let mut v = state;
    for k in &keys[..keys.len() - 1] {
        v = v
            .as_object_mut()
            .unwrap()
            .entry(k.to_string())
            .or_insert_with(|| json!({}));
    }
    v.as_object_mut()
        .unwrap()
        .insert(keys[keys.len() - 1].to_owned(), value);
}

/// Evaluates a `Parameters` (or `ItemSelector`) template: `"key.$": "<path>"` entries are read.
fn evaluate(template: &Value, state: &Value, context: &Value) -> Value {
    match template {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                if let Some(k) = k.strip_suffix(".$") {
                    let path = v.as_str().expect("a path");
                    assert!(
                        !path.starts_with("States."),
                        "Task parameters use no intrinsic: {path}"
                    );
                    let value = read_path(state, context, path)
                        .unwrap_or_else(|| panic!("{path} is not in the simulated state"));
                    out.insert(k.to_owned(), value.clone());
                } else {
                    out.insert(k.clone(), evaluate(v, state, context));
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// Every `$.`-path a state reads, in any field (Variable, `*Path`, `.$` values, intrinsics).
fn read_paths(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::String(s) => {
            let bytes = s.as_bytes();
            for (i, _) in s.match_indices("$.") {
                if i > 0 && bytes[i - 1] == b'$' {
                    continue;
                }
                let end = s[i + 2..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                    .map_or(s.len(), |e| i + 2 + e);
                out.insert(s[i..end].trim_end_matches('.').to_owned());
            }
        }
        Value::Array(items) => items.iter().for_each(|v| read_paths(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                // A Task's ResultPath and a Catch's are writes, not reads; Map's inner states are
                // another scope.
                if k == "ResultPath" || k == "ItemProcessor" {
                    continue;
                }
                read_paths(v, out);
            }
        }
        _ => {}
    }
}

/// Checks one scope (the top level, or a Map's inner states): builds its state with every Task's
/// sample output at its ResultPath, evaluates every Task's Parameters into the handler's event,
/// and resolves every path the scope reads below a Task's ResultPath.
fn check_scope(
    states: &serde_json::Map<String, Value>,
    mut state: Value,
    context: &Value,
    functions: &BTreeMap<String, String>,
) -> usize {
    let tasks: Vec<(&String, &Value, &String)> = states
        .iter()
        .filter(|(_, s)| s["Type"] == "Task")
        .map(|(name, s)| {
            let resource = s["Resource"].as_str().unwrap();
            let placeholder = resource.trim_start_matches("${").trim_end_matches('}');
            let binary = functions.get(placeholder).unwrap_or_else(|| {
                panic!("{name}: {resource} is not in asl/README.md's function table")
            });
            (name, s, binary)
        })
        .collect();
    let mut results = BTreeSet::new();
    for (_, s, binary) in &tasks {
        if let Some(path) = s["ResultPath"].as_str() {
            write_path(&mut state, path, sample_output(binary));
            results.insert(path.to_owned());
        }
    }
    for (name, s, binary) in &tasks {
        let event = evaluate(&s["Parameters"], &state, context);
        let back = as_event(binary, event.clone()).unwrap_or_else(|e| {
            panic!("{name}: its Parameters {event} are not {binary}'s event: {e}")
        });
        assert_eq!(
            back, event,
            "{name}: {binary}'s event has exactly the fields the Parameters pass"
        );
        assert!(
            etl_tests::repo_root()
                .join(format!("etl-lambda/src/bin/{binary}.rs"))
                .is_file(),
            "{name}: no binary {binary}"
        );
    }
    let mut paths = BTreeSet::new();
    for s in states.values() {
        read_paths(s, &mut paths);
    }
    let mut checked = 0;
    for p in &paths {
        if results
            .iter()
            .any(|r| p == r || p.starts_with(&format!("{r}.")))
        {
            assert!(
                read_path(&state, context, p).is_some(),
                "the state machine reads {p}, which the function's output does not have"
            );
            checked += 1;
        }
    }
    checked
}

#[test]
fn asl_tasks_and_handlers_agree() {
    let asl: Value = serde_json::from_str(
        &std::fs::read_to_string(etl_tests::repo_root().join("asl/etl.asl.json")).unwrap(),
    )
    .unwrap();
    let functions = asl_functions();
    let plan = sample_output("etl-create-tables");
    // A transform statement: every Task of the child takes it (LoadTable reads only its index;
    // SubmitStatement, which CheckItem reaches for transforms and the unload, also its step).
    let item = serde_json::to_value(PlanItem {
        step: "transform".into(),
        index: 0,
        name: "transform statement 1 of 2".into(),
    })
    .unwrap();
    let context = json!({
        "Execution": {"Name": "exec-1"},
        "Map": {"Item": {"Value": item, "Index": 0}},
    });
    // The state after Normalize, plus the Pass states' fields the Tasks read.
    let top = json!({
        "manifest": "s3://jobs/recommendations/job.json",
        "concurrency": 20,
        "cluster": {"stack_name": "etl-redshift", "if_exists": "reuse", "delete_on_success": true, "delete_on_failure": true},
        "run_id": "exec-1",
        "stack": {"created": true},
        "batch": {"index": 0, "count": 1, "current": plan["batches"][0].clone()},
        "delete": {"then": "failed", "count": 0, "requests": 0, "last": {"status": "Unknown"}},
    });
    let states = asl["States"].as_object().unwrap();
    let mut checked = check_scope(states, top.clone(), &context, &functions);

    // The Distributed Map: its ItemReader reads a batch that etl-create-tables wrote, and its
    // ItemSelector makes each child execution's input from the top state and one item.
    let map = &states["RunBatch"];
    let mut top_with_plan = top;
    write_path(&mut top_with_plan, "$.plan", plan.clone());
    write_path(
        &mut top_with_plan,
        "$.warehouse",
        sample_output("etl-stack-outputs"),
    );
    let reader = evaluate(&map["ItemReader"]["Parameters"], &top_with_plan, &context);
    assert_eq!(
        reader,
        json!({"Bucket": plan["bucket"], "Key": plan["batches"][0]["key"]}),
        "the ItemReader reads the batch etl-create-tables wrote"
    );
    let item_state = evaluate(&map["ItemSelector"], &top_with_plan, &context);
    let inner = map["ItemProcessor"]["States"].as_object().unwrap();
    checked += check_scope(inner, item_state.clone(), &context, &functions);
    // Inside the child, `$.item.*` comes from an item of a batch.
    let mut item_paths = BTreeSet::new();
    for s in inner.values() {
        read_paths(s, &mut item_paths);
    }
    for p in item_paths.iter().filter(|p| p.starts_with("$.item.")) {
        assert!(
            read_path(&item_state, &context, p).is_some(),
            "the child reads {p} from a plan item"
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} result paths checked");
}

#[test]
fn asl_error_names_are_the_handlers() {
    let text = std::fs::read_to_string(etl_tests::repo_root().join("asl/etl.asl.json")).unwrap();
    let asl: Value = serde_json::from_str(&text).unwrap();
    let ours: BTreeSet<&str> = ErrorName::ALL.iter().map(|n| n.as_str()).collect();
    fn names(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("ErrorEquals", Value::Array(a)) => {
                            out.extend(a.iter().filter_map(|e| e.as_str().map(str::to_owned)));
                        }
                        ("Error", Value::String(s)) => {
                            out.insert(s.clone());
                        }
                        _ => names(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| names(v, out)),
            _ => {}
        }
    }
    let mut used = BTreeSet::new();
    names(&asl, &mut used);
    for name in &used {
        assert!(
            ours.contains(name.as_str())
                || name.starts_with("States.")
                || name.starts_with("Lambda."),
            "the state machine names {name}, which no function reports"
        );
    }
    assert!(
        used.contains("EtlRetryable"),
        "the machine retries EtlRetryable"
    );
    let readme = std::fs::read_to_string(etl_tests::repo_root().join("asl/README.md")).unwrap();
    for name in ours {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "asl/README.md documents {name}"
        );
    }
}

#[test]
fn events_reject_renamed_and_unknown_fields() {
    let ok = json!({"manifest": "s3://b/j.json", "run_id": "r", "warehouse": {"host": "h", "port": 5439}, "table_index": 0});
    assert!(serde_json::from_value::<LoadTableEvent>(ok.clone()).is_ok());
    let mut extra = ok.clone();
    extra["tableIndex"] = json!(0);
    assert!(serde_json::from_value::<LoadTableEvent>(extra).is_err());
    let mut renamed = ok.clone();
    renamed.as_object_mut().unwrap().remove("table_index");
    renamed["index"] = json!(0);
    assert!(serde_json::from_value::<LoadTableEvent>(renamed).is_err());
    let mut port_as_text = ok;
    port_as_text["warehouse"]["port"] = json!("5439");
    assert!(serde_json::from_value::<LoadTableEvent>(port_as_text).is_err());
    // The handle is opaque: it round-trips whatever etl-load-table put in it.
    let handle = serde_json::to_value(sample_handle()).unwrap();
    let back: StatementHandle = serde_json::from_value(handle.clone()).unwrap();
    assert_eq!(serde_json::to_value(back).unwrap(), handle);
    assert!(handle.to_string().len() < 1024, "a handle stays under 1 KB");
}

// ------------------------------------------------------------------------------------------------
// moto fixtures

fn assert_endpoint_is_moto(env: &S3Env, config: &etl_core::aws::SdkConfig) {
    assert_eq!(
        config.endpoint_url(),
        Some(env.endpoint()),
        "aws-config takes AWS_ENDPOINT_URL: every client talks to moto"
    );
    assert!(env.endpoint().starts_with("http://127.0.0.1:"));
}

/// Settings for the stack functions, against the template uploaded to moto.
fn stack_settings(template_url: &str, secret_arn: &str) -> Settings {
    Settings {
        project: Some("etl".into()),
        secret_arn: Some(secret_arn.into()),
        kms_key_arn: Some(
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab".into(),
        ),
        s3_role_arn: Some("arn:aws:iam::123456789012:role/etl-redshift-s3".into()),
        cfn_role_arn: None,
        template_url: Some(template_url.into()),
        subnet_group: Some("etl-subnets".into()),
        redshift_sg: Some("sg-0123456789abcdef0".into()),
        node_type: Some("ra3.xlplus".into()),
        number_of_nodes: Some("2".into()),
        database: Some("dev".into()),
        runs_url: Some("s3://lambda-jobs/runs/".into()),
        sslmode: None,
    }
}

// ------------------------------------------------------------------------------------------------
// Secrets Manager

#[tokio::test]
async fn secrets_are_read_once_and_never_shown() {
    let Some(env) = moto::s3_test("lambda::secrets_are_read_once_and_never_shown") else {
        return;
    };
    let config = etl_core::aws::config().await;
    assert_endpoint_is_moto(&env, config);
    let arn = create_secret(
        "etl-secret-read",
        &json!({"username": "etladmin", "password": "pa'ss\"word-77", "port": 5440, "dbname": "warehouse"}),
    )
    .await;
    let secrets = etl_core::aws::secrets::Secrets::new(config);
    let options = secrets.connect_options(&arn).await.unwrap();
    assert_eq!(options.user, "etladmin");
    assert_eq!(
        options.password.as_ref().unwrap().expose(),
        "pa'ss\"word-77"
    );
    assert_eq!((options.port, options.dbname.as_str()), (5440, "warehouse"));
    assert!(
        !format!("{options:?}").contains("word-77"),
        "Debug redacts the password"
    );

    // Cached for the container's life: a second read makes no call (the secret is gone by then).
    let client = etl_core::aws::secretsmanager::Client::new(config);
    client
        .delete_secret()
        .secret_id(&arn)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    assert_eq!(secrets.connect_options(&arn).await.unwrap(), options);
    secrets.forget(&arn);
    let err = secrets.connect_options(&arn).await.unwrap_err();
    assert!(
        !err.is_retryable(),
        "a missing secret is not retryable: {err}"
    );
    assert!(err.to_string().contains("etl-secret-read"), "{err}");

    // A malformed secret: the message names the field, never a value.
    let bad = create_secret(
        "etl-secret-bad",
        &json!({"username": "etladmin", "password": 77991133}),
    )
    .await;
    let err = secrets.connect_options(&bad).await.unwrap_err();
    let text = etl_core::journal::error_text(&err);
    assert!(
        text.contains("\"password\" is not a string") && !text.contains("77991133"),
        "{text}"
    );
    assert_eq!(HandlerError::from(err).name, ErrorName::EtlInvalidJob);
}

// ------------------------------------------------------------------------------------------------
// CloudFormation

#[tokio::test]
async fn stack_lifecycle_through_the_handlers() {
    let Some(env) = moto::s3_test("lambda::stack_lifecycle_through_the_handlers") else {
        return;
    };
    assert_endpoint_is_moto(&env, etl_core::aws::config().await);
    env.create_bucket("lambda-artifacts");
    let template =
        std::fs::read(etl_tests::repo_root().join("tests/fixtures/cfn/redshift-moto.yaml"))
            .unwrap();
    put("s3://lambda-artifacts/etl/test/cfn/redshift.yaml", template).await;
    let url = "https://lambda-artifacts.s3.us-east-1.amazonaws.com/etl/test/cfn/redshift.yaml";
    let secret = create_secret(
        "etl-master-stack",
        &json!({"username": "etladmin", "password": "x"}),
    )
    .await;
    let res = Resources::new(stack_settings(url, &secret));
    let name = "etl-redshift-lifecycle";
    let ev = || StackEvent {
        stack_name: name.into(),
    };
    let create_event = |run_id: &str, if_exists| CreateEvent {
        stack_name: name.into(),
        if_exists,
        job: JobRef {
            manifest: "s3://lambda-jobs/recommendations/job.json".into(),
            run_id: run_id.into(),
        },
    };
    use etl_core::job::IfExists::{Recreate, Reuse};

    assert_eq!(
        stack::status(ev(), &res).await.unwrap(),
        StackStatus::NotFound
    );
    let err = stack::outputs(ev(), &res).await.unwrap_err();
    assert_eq!(err.name, ErrorName::EtlStackFailed, "{err}");

    let created = stack::create(create_event("run-1", Reuse), &res)
        .await
        .unwrap();
    assert_eq!(
        created,
        CreateOutput {
            stack_name: name.into(),
            created: true
        }
    );
    assert_eq!(stack::status(ev(), &res).await.unwrap(), StackStatus::Ready);
    // A retried call of the same run: the stack carries its run id, so it is this run's.
    assert!(
        stack::create(create_event("run-1", Reuse), &res)
            .await
            .unwrap()
            .created
    );
    // Another run reuses it, or refuses to recreate what it did not delete.
    assert!(
        !stack::create(create_event("run-2", Reuse), &res)
            .await
            .unwrap()
            .created
    );
    let err = stack::create(create_event("run-2", Recreate), &res)
        .await
        .unwrap_err();
    assert_eq!(err.name, ErrorName::EtlStackFailed, "{err}");
    assert!(err.message.contains("etl:run-id run-1"), "{err}");

    let described = etl_core::aws::stack::Stacks::new(etl_core::aws::config().await)
        .describe(name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(described.tag("project"), Some("etl"));
    assert_eq!(described.tag("etl:run-id"), Some("run-1"));

    let out = stack::outputs(ev(), &res).await.unwrap();
    assert_eq!(out.port, 5439);
    assert!(
        out.host.starts_with(name) && out.host.ends_with(".redshift.amazonaws.com"),
        "{out:?}"
    );

    assert_eq!(
        stack::delete(ev(), &res).await.unwrap(),
        DeleteOutput { deleting: true }
    );
    assert_eq!(
        stack::status(ev(), &res).await.unwrap(),
        StackStatus::NotFound
    );
    // Deleted by id shows DELETE_COMPLETE.
    let by_id = StackEvent {
        stack_name: described.id.clone().unwrap(),
    };
    assert_eq!(
        stack::status(by_id, &res).await.unwrap(),
        StackStatus::Deleted
    );
    // Idempotent: deleting what is gone succeeds.
    assert!(stack::delete(ev(), &res).await.unwrap().deleting);

    // The input is checked before anything is created.
    let mut bad = create_event("run-3", Reuse);
    bad.stack_name = "other-redshift".into();
    assert_eq!(
        stack::create(bad, &res).await.unwrap_err().name,
        ErrorName::EtlInvalidJob
    );
    let bad = create_event("run 3; drop", Reuse);
    assert_eq!(
        stack::create(bad, &res).await.unwrap_err().name,
        ErrorName::EtlInvalidJob
    );
    let mut settings = stack_settings(url, &secret);
    settings.subnet_group = None;
    let err = stack::create(create_event("run-4", Reuse), &Resources::new(settings))
        .await
        .unwrap_err();
    assert_eq!(err.name, ErrorName::EtlInternal);
    assert!(err.message.contains("ETL_SUBNET_GROUP"), "{err}");
    assert_eq!(
        stack::status(ev(), &res).await.unwrap(),
        StackStatus::NotFound,
        "nothing was created"
    );
}

// ------------------------------------------------------------------------------------------------
// The job functions, on PostgreSQL

/// The demo job on moto's S3: manifest, transform SQL, generated data. Returns the manifest URL.
async fn stage_demo(bucket: &str, extra: impl FnOnce(&mut Value)) -> String {
    let root = etl_tests::repo_root().join("examples/recommendations");
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("job.json")).unwrap()).unwrap();
    extra(&mut manifest);
    let base = format!("s3://{bucket}/jobs/recommendations/");
    put(
        &format!("{base}job.json"),
        manifest.to_string().into_bytes(),
    )
    .await;
    for f in ["01_profile.sql", "02_rank.sql"] {
        put(
            &format!("{base}sql/{f}"),
            std::fs::read(root.join("sql").join(f)).unwrap(),
        )
        .await;
    }
    let data = tempfile::tempdir().unwrap();
    etl_tests::stdout_ok(
        std::process::Command::new(etl_tests::bin("etl-demo-data"))
            .arg("--out")
            .arg(data.path())
            .args(["--customers", "300"]),
    );
    for entry in walk(data.path()) {
        let rel = entry
            .strip_prefix(data.path())
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        put(&format!("{base}data/{rel}"), std::fs::read(&entry).unwrap()).await;
    }
    format!("{base}job.json")
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Resources for the job functions against `local`, its credentials in a moto secret.
async fn job_resources(local: &etl_tests::Local, secret_name: &str, runs: &str) -> Resources {
    let secret = create_secret(
        secret_name,
        &json!({"username": local.connect_options().user, "password": "trust"}),
    )
    .await;
    Resources::new(Settings {
        secret_arn: Some(secret),
        database: Some(local.connect_options().dbname),
        runs_url: Some(runs.into()),
        sslmode: Some("disable".into()),
        ..Settings::default()
    })
}

async fn wait_final(
    res: &Resources,
    handle: &StatementHandle,
    warehouse: &WarehouseAddress,
) -> StatusOutput {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = job::statement_status(
            StatusEvent {
                handle: handle.clone(),
                warehouse: warehouse.clone(),
            },
            res,
        )
        .await
        .unwrap();
        if out.state != "Running" || Instant::now() > deadline {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_functions_run_the_demo_on_postgres() {
    let Some(env) = moto::s3_test("lambda::job_functions_run_the_demo_on_postgres") else {
        return;
    };
    env.create_bucket("lambda-demo");
    let manifest = stage_demo("lambda-demo", |_| {}).await;
    let local = etl_tests::server().await;
    let res = job_resources(&local, "etl-master-demo", "s3://lambda-demo/runs/").await;
    let warehouse = WarehouseAddress {
        host: "127.0.0.1".into(),
        port: local.port(),
    };
    let run_id = "demo-exec-1";
    let tables_event = || CreateTablesEvent {
        manifest: manifest.clone(),
        run_id: run_id.into(),
        warehouse: warehouse.clone(),
    };

    let plan = job::create_tables(tables_event(), &res).await.unwrap();
    assert_eq!(plan.run_id, run_id);
    assert_eq!(plan.tables, 3, "{plan:?}");
    assert!(plan.transform_count >= 2, "{plan:?}");
    assert_eq!(plan.batches.len(), 1 + plan.transform_count + 1, "{plan:?}");
    // The batches: JSON arrays under ETL_RUNS_URL<run_id>/plan/, the loads first.
    let batch = |n: usize| {
        let url = format!("s3://{}/{}", plan.bucket, plan.batches[n].key);
        assert!(
            url.starts_with(&format!("s3://lambda-demo/runs/{run_id}/plan/")),
            "{url}"
        );
        url
    };
    let items: Vec<PlanItem> = serde_json::from_slice(&get(&batch(0)).await).unwrap();
    assert_eq!(items.len(), 3, "{items:?}");
    assert!(
        items
            .iter()
            .enumerate()
            .all(|(i, t)| t.index == i && t.step == "load"),
        "indexes are positions: {items:?}"
    );
    let last: Vec<PlanItem> =
        serde_json::from_slice(&get(&batch(plan.batches.len() - 1)).await).unwrap();
    assert_eq!((last[0].step.as_str(), last[0].index), ("unload", 0));
    // Safe to run twice.
    assert_eq!(
        job::create_tables(tables_event(), &res).await.unwrap(),
        plan
    );
    let db = etl_tests::client(&local).await;
    let load_event = |i| LoadTableEvent {
        manifest: manifest.clone(),
        run_id: run_id.into(),
        warehouse: warehouse.clone(),
        table_index: i,
    };
    let mut loaded = Vec::new();
    for t in &items {
        let handle = job::load_table(load_event(t.index), &res).await.unwrap();
        assert!(handle.statement.step_id.starts_with("load:"), "{handle:?}");
        let status = wait_final(&res, &handle, &warehouse).await;
        assert_eq!(status.state, "Succeeded", "{t:?}: {status:?}");
        let (schema, table) = t.name.split_once('.').unwrap();
        let qualified = format!(
            "{}.{}",
            etl_core::sql::quote_ident(schema),
            etl_core::sql::quote_ident(table)
        );
        let n = count(&db, &format!("select count(*) from {qualified}")).await;
        assert!(
            n > 0 && status.rows == Some(n as u64),
            "{t:?}: {n} rows, status {status:?}"
        );
        loaded.push((qualified, n));
    }
    // A retried load of this run loads nothing twice: its handle is already Succeeded.
    let again = job::load_table(load_event(0), &res).await.unwrap();
    assert_eq!(
        wait_final(&res, &again, &warehouse).await.state,
        "Succeeded"
    );
    assert_eq!(
        count(&db, &format!("select count(*) from {}", loaded[0].0)).await,
        loaded[0].1
    );

    let submit_event = |step, index| SubmitEvent {
        manifest: manifest.clone(),
        run_id: run_id.into(),
        warehouse: warehouse.clone(),
        step,
        index,
    };
    for i in 0..plan.transform_count {
        let handle = job::submit(submit_event(SubmitStep::Transform, i), &res)
            .await
            .unwrap();
        let status = wait_final(&res, &handle, &warehouse).await;
        assert_eq!(status.state, "Succeeded", "transform {i}: {status:?}");
    }
    let recommendations = count(&db, "select count(*) from model.recommendations").await;
    assert!(recommendations > 0);

    let handle = job::submit(submit_event(SubmitStep::Unload, 0), &res)
        .await
        .unwrap();
    let status = wait_final(&res, &handle, &warehouse).await;
    assert_eq!(status.state, "Succeeded", "{status:?}");
    assert_eq!(status.rows, Some(recommendations as u64));
    let files = list("s3://lambda-demo/jobs/recommendations/out/").await;
    assert!(
        files.iter().any(|f| f.ends_with("out/recommendations_000")),
        "the unload wrote to the manifest's folder: {files:?}"
    );

    // Everything is journaled under the run id.
    let journal = db
        .query(
            "select step_id, status from etl_meta.steps where run_id = $1 order by seq",
            &[&run_id],
        )
        .await
        .unwrap();
    assert_eq!(journal.len(), 1 + 3 + plan.transform_count + 1);
    for row in &journal {
        assert_eq!(
            row.get::<_, String>(1),
            "succeeded",
            "{}",
            row.get::<_, String>(0)
        );
    }

    // Bad input: an index out of range, the unload at another index.
    let err = job::load_table(load_event(3), &res).await.unwrap_err();
    assert_eq!(err.name, ErrorName::EtlInvalidJob, "{err}");
    let err = job::submit(
        submit_event(SubmitStep::Transform, plan.transform_count),
        &res,
    )
    .await
    .unwrap_err();
    assert_eq!(err.name, ErrorName::EtlInvalidJob, "{err}");
    let err = job::submit(submit_event(SubmitStep::Unload, 1), &res)
        .await
        .unwrap_err();
    assert_eq!(err.name, ErrorName::EtlInvalidJob, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_functions_report_bad_manifests_failures_and_timeouts() {
    let Some(env) =
        moto::s3_test("lambda::job_functions_report_bad_manifests_failures_and_timeouts")
    else {
        return;
    };
    env.create_bucket("lambda-bad");
    let local = etl_tests::server().await;
    let res = job_resources(&local, "etl-master-bad", "s3://lambda-bad/runs/").await;
    let warehouse = WarehouseAddress {
        host: "127.0.0.1".into(),
        port: local.port(),
    };
    let tables = |manifest: &str, run_id: &str| CreateTablesEvent {
        manifest: manifest.into(),
        run_id: run_id.into(),
        warehouse: warehouse.clone(),
    };

    // A manifest that is missing, or breaks rules: EtlInvalidJob with the JSON path.
    let err = job::create_tables(tables("s3://lambda-bad/none/job.json", "r1"), &res)
        .await
        .unwrap_err();
    assert_eq!(err.name, ErrorName::EtlInvalidJob);
    assert!(err.message.contains("does not exist"), "{err}");
    put(
        "s3://lambda-bad/broken/job.json",
        br#"{"name": "Bad Name", "input": "data/", "schemas": []}"#.to_vec(),
    )
    .await;
    let err = job::create_tables(tables("s3://lambda-bad/broken/job.json", "r1"), &res)
        .await
        .unwrap_err();
    assert_eq!(err.name, ErrorName::EtlInvalidJob);
    assert!(
        err.message.contains("name:") && err.message.contains("schemas:"),
        "{err}"
    );
    // A manifest on S3 never reads the function's own files.
    put(
        "s3://lambda-bad/local/job.json",
        json!({
            "name": "local", "input": "/var/task/", "transform": ["/etc/passwd"],
            "schemas": [{"name": "s", "tables": [{"name": "t", "files": "t.gz", "columns": [{"name": "a", "type": "int"}]}]}]
        })
        .to_string()
        .into_bytes(),
    )
    .await;
    let err = job::create_tables(tables("s3://lambda-bad/local/job.json", "r1"), &res)
        .await
        .unwrap_err();
    assert_eq!(err.name, ErrorName::EtlInvalidJob);
    assert!(
        err.message.contains("input:") && err.message.contains("transform[0]:"),
        "{err}"
    );

    // A job whose transforms fail, or run past the statement timeout.
    env.create_bucket("lambda-slow");
    let manifest = json!({
        "name": "slow",
        "input": "data/",
        "schemas": [{"name": "s", "tables": [{"name": "t", "files": "t.txt", "format": {"compression": "none"},
            "columns": [{"name": "a", "type": "int"}]}]}],
        "transform": ["sql/slow.sql"],
        "statement_timeout_seconds": 1
    });
    put(
        "s3://lambda-slow/job/job.json",
        manifest.to_string().into_bytes(),
    )
    .await;
    put("s3://lambda-slow/job/data/t.txt", b"a\n1\n2\n".to_vec()).await;
    put(
        "s3://lambda-slow/job/sql/slow.sql",
        b"select 1/0;\nselect pg_sleep(30);\n".to_vec(),
    )
    .await;
    let manifest = "s3://lambda-slow/job/job.json";
    let plan = job::create_tables(tables(manifest, "slow-1"), &res)
        .await
        .unwrap();
    assert_eq!(plan.transform_count, 2);
    let load = job::load_table(
        LoadTableEvent {
            manifest: manifest.into(),
            run_id: "slow-1".into(),
            warehouse: warehouse.clone(),
            table_index: 0,
        },
        &res,
    )
    .await
    .unwrap();
    assert_eq!(wait_final(&res, &load, &warehouse).await.rows, Some(2));
    let submit = |index| SubmitEvent {
        manifest: manifest.into(),
        run_id: "slow-1".into(),
        warehouse: warehouse.clone(),
        step: SubmitStep::Transform,
        index,
    };
    let failing = job::submit(submit(0), &res).await.unwrap();
    let status = wait_final(&res, &failing, &warehouse).await;
    assert_eq!(status.state, "Failed", "{status:?}");

    let slow = job::submit(submit(1), &res).await.unwrap();
    assert_eq!(slow.timeout_seconds, Some(1));
    let started = Instant::now();
    let err = loop {
        match job::statement_status(
            StatusEvent {
                handle: slow.clone(),
                warehouse: warehouse.clone(),
            },
            &res,
        )
        .await
        {
            Ok(s) => {
                assert_eq!(s.state, "Running", "{s:?}");
                assert!(started.elapsed() < Duration::from_secs(20), "no timeout");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(err.name, ErrorName::EtlTimeout, "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let db = etl_tests::client(&local).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status: String = db
            .query_one(
                "select status from etl_meta.steps where run_id = 'slow-1' and step_id = $1",
                &[&slow.statement.step_id],
            )
            .await
            .unwrap()
            .get(0);
        if status != "running" {
            assert!(status == "cancelled" || status == "failed", "{status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cancelled statement is journaled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sleeping = count(&db, "select count(*) from pg_stat_activity where query like '%pg_sleep(30)%' and pid <> pg_backend_pid()").await;
    assert_eq!(sleeping, 0, "the statement was cancelled on the server");
}

// ------------------------------------------------------------------------------------------------
// The binaries' local invoke path

fn invoke(binary: &str, env: &[(&'static str, String)], event: &str) -> (i32, Value, String) {
    use std::io::Write as _;
    let mut child = std::process::Command::new(etl_tests::bin(binary))
        .arg("--invoke")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(event.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{binary} printed {stdout:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        value,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn binaries_invoke_locally() {
    let moto = moto::shared();
    let env = moto.env();
    let (code, out, logs) = invoke(
        "etl-stack-status",
        &env,
        r#"{"stack_name": "etl-redshift-invoke"}"#,
    );
    assert_eq!((code, out), (0, json!({"status": "NotFound"})), "{logs}");
    for line in logs.lines() {
        let log: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(log["level"].is_string(), "{line}");
    }
    let (code, out, _) = invoke("etl-stack-status", &env, r#"{"stack": "etl-redshift"}"#);
    assert_eq!(code, 1);
    assert_eq!(out["errorType"], "EtlInvalidJob");
    assert!(
        out["errorMessage"].as_str().unwrap().contains("stack_name"),
        "{out}"
    );
    let (code, out, _) = invoke("etl-stack-status", &env, "not json");
    assert_eq!(
        (code, out["errorType"].as_str()),
        (1, Some("EtlInvalidJob"))
    );

    // A function deployed without its settings says which one is missing.
    let (code, out, logs) = invoke(
        "etl-statement-status",
        &env,
        &serde_json::to_string(
            &json!({"handle": sample_handle(), "warehouse": {"host": "127.0.0.1", "port": 1}}),
        )
        .unwrap(),
    );
    assert_eq!(
        (code, out["errorType"].as_str()),
        (1, Some("EtlInternal")),
        "{out} {logs}"
    );
    assert!(
        out["errorMessage"]
            .as_str()
            .unwrap()
            .contains("ETL_SECRET_ARN"),
        "{out}"
    );
    assert!(
        !logs.contains("testing"),
        "no credential in the logs: {logs}"
    );
}
