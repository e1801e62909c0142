//! `etl stage`, `etl deploy`, `etl start` and `etl watch` against moto server on 127.0.0.1: the
//! `etl` binary runs with moto's environment (endpoint, test credentials, region), the test reads
//! back what it wrote with its own S3 client pointed at the same server, and sets moto up with
//! plain HTTP calls. Nothing here can reach AWS: every endpoint is moto's, the shared config and
//! credentials files are cut off, and instance metadata is disabled.
//!
//! What moto does and does not do for these commands is written down in
//! `tests/fixtures/cfn/README.md`.

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _};
use serde_json::{Value, json};

use etl_tests::moto::{self, Moto};
use etl_tests::{etl, repo_root, run};

/// `etl` with the environment of the moto server at `endpoint`, and nothing that could point it
/// anywhere else.
fn etl_on(endpoint: &str) -> Command {
    let mut cmd = etl();
    for var in [
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_CLOUDFORMATION",
        "AWS_ENDPOINT_URL_SFN",
        "AWS_ENDPOINT_URL_STS",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "tests talk to moto only"
    );
    cmd
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "etl failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// An S3 client for one bucket of the moto server (configured here, not from the environment).
fn s3(endpoint: &str, bucket: &str) -> Arc<dyn ObjectStore> {
    Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_region("us-east-1")
            .with_access_key_id("testing")
            .with_secret_access_key("testing")
            .with_bucket_name(bucket)
            .build()
            .expect("an S3 client for moto"),
    )
}

async fn get(store: &Arc<dyn ObjectStore>, key: &str) -> Vec<u8> {
    store
        .get(&ObjectPath::parse(key).unwrap())
        .await
        .unwrap_or_else(|e| panic!("cannot read {key}: {e}"))
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

async fn keys(store: &Arc<dyn ObjectStore>, prefix: &str) -> Vec<(String, u64)> {
    use futures::TryStreamExt as _;
    let mut out: Vec<(String, u64)> = store
        .list(Some(&ObjectPath::parse(prefix).unwrap()))
        .map_ok(|m| (m.location.to_string(), m.size))
        .try_collect()
        .await
        .unwrap();
    out.sort();
    out
}

/// One unsigned-but-labelled AWS API call to moto (it reads the service from the credential
/// scope and checks no signature); the status code and the body.
fn aws_call(endpoint: &str, service: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let host = endpoint.trim_start_matches("http://");
    assert!(host.starts_with("127.0.0.1:"));
    let mut stream = TcpStream::connect(host).expect("moto answers");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/{service}/aws4_request, \
         SignedHeaders=host, Signature=0\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A Step Functions call (JSON protocol).
fn sfn(endpoint: &str, action: &str, body: &Value) -> Value {
    let target = format!("AWSStepFunctions.{action}");
    let (status, body) = aws_call(
        endpoint,
        "states",
        &[
            ("X-Amz-Target", &target),
            ("Content-Type", "application/x-amz-json-1.0"),
        ],
        &body.to_string(),
    );
    assert_eq!(status, 200, "{action}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{action}: {e}: {body}"))
}

/// `application/x-www-form-urlencoded` escaping.
fn form(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A CloudFormation call (query protocol).
fn cfn(endpoint: &str, params: &[(&str, &str)]) -> String {
    let mut body = String::from("Version=2010-05-15");
    for (k, v) in params {
        body.push_str(&format!("&{k}={}", form(v)));
    }
    let (status, response) = aws_call(
        endpoint,
        "cloudformation",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &body,
    );
    assert_eq!(status, 200, "{params:?}: {response}");
    response
}

/// A state machine on moto; its ARN.
fn create_state_machine(endpoint: &str, name: &str, definition: &Value) -> String {
    let out = sfn(
        endpoint,
        "CreateStateMachine",
        &json!({
            "name": name,
            "definition": definition.to_string(),
            "roleArn": "arn:aws:iam::123456789012:role/etl-tests",
        }),
    );
    out["stateMachineArn"].as_str().unwrap().to_owned()
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn decompress(key: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if key.ends_with(".gz") {
        flate2::read::MultiGzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
    } else if key.ends_with(".zst") {
        zstd::stream::read::Decoder::new(data)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
    } else if key.ends_with(".bz2") {
        bzip2::read::MultiBzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
    } else {
        out = data.to_vec();
    }
    out
}

/// A job with two tables: `raw.usage` from two gzipped `|` files (the second without a final
/// line feed) and `raw.notes` from one zstd CSV file whose quoted fields hold line feeds, doubled
/// quotes and text that looks like a record start. Returns the job path and each table's
/// expected body (every file's records after its header, in order).
fn write_job(dir: &Path, unload_to: &str) -> (std::path::PathBuf, Vec<u8>, Vec<u8>) {
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("usage")).unwrap();
    std::fs::create_dir_all(dir.join("sql")).unwrap();
    let mut usage_body = Vec::new();
    let mut seed = 7u64;
    let mut next = || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        seed >> 33
    };
    for (f, range) in [(0, 0..30_000u32), (1, 30_000..52_000)] {
        let mut file = b"customer_id|month|data_mb\n".to_vec();
        let mut body = Vec::new();
        for i in range.clone() {
            body.extend_from_slice(
                format!("{i}|2024-{:02}-01|{}", next() % 12 + 1, next() % 1_000_000).as_bytes(),
            );
            if f == 0 || i + 1 < range.end {
                body.push(b'\n');
            }
        }
        file.extend_from_slice(&body);
        if f == 1 {
            body.push(b'\n'); // the stager ends an unterminated last record
        }
        usage_body.extend_from_slice(&body);
        std::fs::write(data.join(format!("usage/part-{f}.gz")), gz(&file)).unwrap();
    }
    let mut notes = b"id,note\n".to_vec();
    let mut notes_body = Vec::new();
    for i in 0..6_000u32 {
        let note = match i % 3 {
            0 => format!("\"plain, with a comma {}\"", next()),
            1 => format!("\"two\nlines\nfake,{i}\"\"quoted\"\"\""),
            _ => format!("unquoted {}", next()),
        };
        notes_body.extend_from_slice(format!("r{i},{note}\n").as_bytes());
    }
    notes.extend_from_slice(&notes_body);
    std::fs::write(
        data.join("notes.csv.zst"),
        zstd::encode_all(&notes[..], 3).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("sql/model.sql"),
        "create table model.x as select 1;\n",
    )
    .unwrap();
    let job = dir.join("job.json");
    std::fs::write(
        &job,
        serde_json::to_string_pretty(&json!({
            "name": "cloud-test",
            "input": "data/",
            "schemas": [{"name": "raw", "tables": [
                {"name": "usage", "files": {"prefix": "usage/"}, "columns": [
                    {"name": "customer_id", "type": "bigint"},
                    {"name": "month", "type": "date"},
                    {"name": "data_mb", "type": "bigint"}]},
                {"name": "notes", "files": ["notes.csv.zst"],
                 "format": {"csv": true, "removequotes": false, "delimiter": ",", "compression": "zstd"},
                 "columns": [{"name": "id", "type": "varchar(10)"}, {"name": "note", "type": "varchar(100)"}]}
            ]}],
            "transform": ["sql/model.sql"],
            "unload": {"query": "select * from model.x", "to": unload_to}
        }))
        .unwrap(),
    )
    .unwrap();
    (job, usage_body, notes_body)
}

/// Checks a split table on S3: every part starts with the header and then a record, the bodies
/// put back together are the input's, the parts are balanced, and the COPY manifest lists exactly
/// the parts with their sizes. Returns the parts' names relative to the prefix.
/// Where a job was staged.
struct Staged<'a> {
    store: &'a Arc<dyn ObjectStore>,
    bucket: &'a str,
    prefix: &'a str,
}

async fn check_parts(
    at: &Staged<'_>,
    table: &str,
    header: &[u8],
    expected: &[u8],
    parts: usize,
    starts_record: impl Fn(&[u8]) -> bool,
) -> Vec<String> {
    let Staged {
        store,
        bucket,
        prefix,
    } = *at;
    let objects = keys(store, &format!("{prefix}parts/{table}/")).await;
    assert_eq!(objects.len(), parts, "{table}: {objects:?}");
    let mut body = Vec::new();
    for (key, _) in &objects {
        let part = decompress(key, &get(store, key).await);
        assert!(part.starts_with(header), "{key} starts with the header");
        let rest = &part[header.len()..];
        assert!(
            !rest.is_empty() && starts_record(rest),
            "{key} starts a record: {:?}",
            text(&rest[..rest.len().min(40)])
        );
        let share = rest.len() as f64 / expected.len() as f64;
        let even = 1.0 / parts as f64;
        assert!(
            (share - even).abs() < even * 0.25,
            "{key} holds {:.1}% of the table, not about {:.1}%",
            share * 100.0,
            even * 100.0
        );
        body.extend_from_slice(rest);
    }
    assert!(
        body == expected,
        "{table}: the parts' records differ from the input's"
    );

    let manifest: Value =
        serde_json::from_slice(&get(store, &format!("{prefix}_manifests/{table}.manifest")).await)
            .unwrap();
    let entries: Vec<(String, u64, bool)> = manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["url"].as_str().unwrap().to_owned(),
                e["meta"]["content_length"].as_u64().unwrap(),
                e["mandatory"].as_bool().unwrap(),
            )
        })
        .collect();
    let listed: Vec<(String, u64, bool)> = objects
        .iter()
        .map(|(k, n)| (format!("s3://{bucket}/{k}"), *n, true))
        .collect();
    assert_eq!(entries, listed, "{table}'s COPY manifest");
    objects
        .into_iter()
        .map(|(k, _)| k.strip_prefix(prefix).unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn stage_splits_tables_into_parts_and_writes_copy_manifests() {
    let moto = moto::shared();
    let bucket = "stage-split";
    moto.create_bucket(bucket);
    let dir = tempfile::tempdir().unwrap();
    let (job, usage, notes) = write_job(dir.path(), "out/result_");

    // A local unload target cannot run on AWS: refused before anything is uploaded.
    let out = run(etl_on(moto.endpoint()).arg("stage").arg(&job).args([
        "--to",
        &format!("s3://{bucket}/refused/"),
        "--parts",
        "4",
    ]));
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("unload.to"),
        "{}",
        text(&out.stderr)
    );
    let store = s3(moto.endpoint(), bucket);
    assert!(keys(&store, "refused").await.is_empty());

    let out = run(etl_on(moto.endpoint()).arg("stage").arg(&job).args([
        "--to",
        &format!("s3://{bucket}/jobs/cloud-test"),
        "--parts",
        "4",
        "--unload-to",
        &format!("s3://{bucket}/output/cloud-test/result_"),
    ]));
    let stdout = ok(&out);
    let stderr = text(&out.stderr);
    assert_eq!(
        stdout.trim(),
        format!("s3://{bucket}/jobs/cloud-test/job.json")
    );
    assert!(
        stderr.contains("raw.usage: 4 object(s)") && stderr.contains("52000 rows"),
        "{stderr}"
    );

    let prefix = "jobs/cloud-test/";
    let at = Staged {
        store: &store,
        bucket,
        prefix,
    };
    let is_digit_record = |b: &[u8]| b[0].is_ascii_digit();
    let usage_parts = check_parts(
        &at,
        "raw.usage",
        b"customer_id|month|data_mb\n",
        &usage,
        4,
        is_digit_record,
    )
    .await;
    let is_note_record = |b: &[u8]| b[0] == b'r' && b[1].is_ascii_digit();
    let notes_parts = check_parts(&at, "raw.notes", b"id,note\n", &notes, 4, is_note_record).await;
    assert!(
        usage_parts.iter().all(|p| p.ends_with(".gz")),
        "{usage_parts:?}"
    );
    assert!(
        notes_parts.iter().all(|p| p.ends_with(".zst")),
        "{notes_parts:?}"
    );

    // The rewritten manifest points at S3, lists the parts, keeps the SQL's relative path.
    let staged: Value =
        serde_json::from_slice(&get(&store, &format!("{prefix}job.json")).await).unwrap();
    assert_eq!(staged["input"], format!("s3://{bucket}/jobs/cloud-test/"));
    assert_eq!(
        staged["schemas"][0]["tables"][0]["files"],
        json!(usage_parts)
    );
    assert_eq!(
        staged["schemas"][0]["tables"][1]["files"],
        json!(notes_parts)
    );
    assert_eq!(staged["transform"], json!(["sql/model.sql"]));
    assert_eq!(
        staged["unload"]["to"],
        format!("s3://{bucket}/output/cloud-test/result_")
    );
    assert_eq!(
        get(&store, &format!("{prefix}sql/model.sql")).await,
        b"create table model.x as select 1;\n"
    );

    // What Redshift will run for it: COPY through the manifests the stager wrote.
    let copy = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(copy.path().join("sql")).unwrap();
    std::fs::write(
        copy.path().join("job.json"),
        serde_json::to_vec(&staged).unwrap(),
    )
    .unwrap();
    std::fs::write(copy.path().join("sql/model.sql"), "select 1;").unwrap();
    let plan = ok(&run(etl().arg("plan").arg(copy.path().join("job.json"))));
    for table in ["raw.usage", "raw.notes"] {
        let from = format!("FROM 's3://{bucket}/jobs/cloud-test/_manifests/{table}.manifest'");
        assert!(plan.contains(&from), "{from} in:\n{plan}");
    }
    assert!(
        plan.contains("MANIFEST") && plan.contains("ZSTD") && plan.contains("GZIP"),
        "{plan}"
    );

    // --slices: a multiple of the slices.
    let out = run(etl_on(moto.endpoint()).arg("stage").arg(&job).args([
        "--to",
        &format!("s3://{bucket}/sliced/"),
        "--slices",
        "3",
        "--unload-to",
        &format!("s3://{bucket}/output/x_"),
    ]));
    ok(&out);
    check_parts(
        &Staged {
            store: &store,
            bucket,
            prefix: "sliced/",
        },
        "raw.usage",
        b"customer_id|month|data_mb\n",
        &usage,
        3,
        is_digit_record,
    )
    .await;
}

#[tokio::test]
async fn stage_uploads_files_as_they_are_without_a_split() {
    let moto = moto::shared();
    let bucket = "stage-plain";
    moto.create_bucket(bucket);
    let dir = tempfile::tempdir().unwrap();
    let (job, _, _) = write_job(dir.path(), &format!("s3://{bucket}/output/result_"));
    let out = run(etl_on(moto.endpoint())
        .arg("stage")
        .arg(&job)
        .args(["--to", &format!("s3://{bucket}/in/")]));
    let stdout = ok(&out);
    assert_eq!(stdout.trim(), format!("s3://{bucket}/in/job.json"));
    let store = s3(moto.endpoint(), bucket);
    let listed: BTreeSet<String> = keys(&store, "in")
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let expected: BTreeSet<String> = [
        "in/job.json",
        "in/sql/model.sql",
        "in/usage/part-0.gz",
        "in/usage/part-1.gz",
        "in/notes.csv.zst",
        "in/_manifests/raw.usage.manifest",
        "in/_manifests/raw.notes.manifest",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(listed, expected);
    for f in ["usage/part-0.gz", "usage/part-1.gz", "notes.csv.zst"] {
        assert_eq!(
            get(&store, &format!("in/{f}")).await,
            std::fs::read(dir.path().join("data").join(f)).unwrap(),
            "{f}"
        );
    }
    let manifest: Value =
        serde_json::from_slice(&get(&store, "in/_manifests/raw.usage.manifest").await).unwrap();
    let size = std::fs::metadata(dir.path().join("data/usage/part-1.gz"))
        .unwrap()
        .len();
    assert_eq!(
        manifest["entries"][1]["url"],
        format!("s3://{bucket}/in/usage/part-1.gz")
    );
    assert_eq!(manifest["entries"][1]["meta"]["content_length"], size);
    let staged: Value = serde_json::from_slice(&get(&store, "in/job.json").await).unwrap();
    assert_eq!(
        staged["schemas"][0]["tables"][0]["files"],
        json!(["usage/part-0.gz", "usage/part-1.gz"])
    );
    assert_eq!(
        staged["unload"]["to"],
        format!("s3://{bucket}/output/result_")
    );
}

/// Writes the Lambda zip, the ASL and the on-demand template an `--artifacts` deploy uploads.
fn build_artifacts(dir: &Path) {
    std::fs::create_dir_all(dir.join("lambda/etl-stack-status")).unwrap();
    std::fs::write(
        dir.join("lambda/etl-stack-status/bootstrap.zip"),
        b"PK\x05\x06 not really a zip",
    )
    .unwrap();
    std::fs::write(
        dir.join("etl.asl.json"),
        br#"{"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}"#,
    )
    .unwrap();
    std::fs::write(dir.join("redshift.yaml"), b"Resources: {}\n").unwrap();
}

fn deploy(endpoint: &str, dir: &Path, stack: &str, args: &[&str]) -> Output {
    run(etl_on(endpoint)
        .arg("deploy")
        .args(["--stack", stack, "--poll", "0.1", "--template"])
        .arg(repo_root().join("tests/fixtures/cfn/permanent-moto.yaml"))
        .arg("--lambda-dir")
        .arg(dir.join("lambda"))
        .arg("--asl")
        .arg(dir.join("etl.asl.json"))
        .arg("--redshift-template")
        .arg(dir.join("redshift.yaml"))
        .args(args))
}

#[tokio::test]
async fn deploy_creates_then_updates_the_stack_through_change_sets() {
    let moto = moto::shared();
    let endpoint = moto.endpoint();
    moto.create_bucket("deploy-artifacts");
    let dir = tempfile::tempdir().unwrap();
    build_artifacts(dir.path());

    // Artifacts missing: said before anything is uploaded.
    let out = run(etl_on(endpoint)
        .args([
            "deploy",
            "--stack",
            "etl-missing",
            "--artifacts",
            "s3://deploy-artifacts/x/",
            "--lambda-dir",
        ])
        .arg(dir.path().join("nowhere"))
        .arg("--template")
        .arg(repo_root().join("tests/fixtures/cfn/permanent-moto.yaml")));
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("etl-stack-status")
            && text(&out.stderr).contains("cargo lambda build"),
        "{}",
        text(&out.stderr)
    );

    // Every parameter given: moto tells "no changes" only for identical parameter lists.
    let params = ["-p", "ProjectName=etl-deploy", "-p", "JobBucket="];
    let create = deploy(
        endpoint,
        dir.path(),
        "etl-deploy",
        &[
            &["--artifacts", "s3://deploy-artifacts/etl/build-1"][..],
            &params,
        ]
        .concat(),
    );
    ok(&create);
    let stderr = text(&create.stderr);
    for expected in [
        "change set (create): 4 change(s)",
        "Add      StackStatusFunction AWS::Lambda::Function",
        "AWS::CloudFormation::Stack",
        "CREATE_IN_PROGRESS",
        "CREATE_COMPLETE",
        "stack etl-deploy created (CREATE_COMPLETE)",
        "s3://deploy-artifacts/etl/build-1/etl-stack-status.zip",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in:\n{stderr}");
    }
    let store = s3(endpoint, "deploy-artifacts");
    assert_eq!(
        keys(&store, "etl/build-1")
            .await
            .into_iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>(),
        [
            "etl/build-1/asl/etl.asl.json",
            "etl/build-1/cfn/permanent-moto.yaml",
            "etl/build-1/cfn/redshift.yaml",
            "etl/build-1/etl-stack-status.zip",
        ]
    );
    assert_eq!(
        get(&store, "etl/build-1/etl-stack-status.zip").await,
        b"PK\x05\x06 not really a zip"
    );
    // The stack's resources exist: the state machine it declares.
    let machines = sfn(endpoint, "ListStateMachines", &json!({}));
    assert!(
        machines.to_string().contains("stateMachine:etl-deploy-etl"),
        "{machines}"
    );

    // The same template and parameters again: nothing to do.
    let again = deploy(
        endpoint,
        dir.path(),
        "etl-deploy",
        &[
            &["--artifacts", "s3://deploy-artifacts/etl/build-1"][..],
            &params,
        ]
        .concat(),
    );
    ok(&again);
    assert!(
        text(&again.stderr).contains("stack etl-deploy: no changes"),
        "{}",
        text(&again.stderr)
    );

    // A new build: an update through a change set, parameters not given keep their value.
    let update = deploy(
        endpoint,
        dir.path(),
        "etl-deploy",
        &["--artifacts", "s3://deploy-artifacts/etl/build-2/"],
    );
    ok(&update);
    let stderr = text(&update.stderr);
    assert!(
        stderr.contains("change set (update)") && stderr.contains("UPDATE_COMPLETE"),
        "{stderr}"
    );
    assert!(!keys(&store, "etl/build-2").await.is_empty());

    // A parameter the template does not declare, and a password: usage errors.
    let out = deploy(endpoint, dir.path(), "etl-deploy", &["-p", "Nope=1"]);
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("declares no parameter Nope"),
        "{}",
        text(&out.stderr)
    );
    let out = deploy(
        endpoint,
        dir.path(),
        "etl-deploy",
        &["-p", "MasterUserPassword=hunter2"],
    );
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("never pass a password"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !text(&out.stderr).contains("hunter2"),
        "the value is not echoed: {}",
        text(&out.stderr)
    );

    // CloudFormation refuses (a required parameter is missing): exit 1 with its message.
    let out = run(etl_on(endpoint)
        .args([
            "deploy",
            "--stack",
            "etl-refused",
            "--poll",
            "0.1",
            "--template",
        ])
        .arg(repo_root().join("tests/fixtures/cfn/permanent-moto.yaml")));
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("ArtifactBucket"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn deploy_prints_the_stack_outputs() {
    let moto = moto::shared();
    let endpoint = moto.endpoint();
    moto.create_bucket("deploy-outputs");
    let dir = tempfile::tempdir().unwrap();
    build_artifacts(dir.path());
    // moto computes outputs only for stacks made by CreateStack (not by a change set): make the
    // stack that way, then update it with `etl deploy`.
    let template =
        std::fs::read_to_string(repo_root().join("tests/fixtures/cfn/permanent-moto.yaml"))
            .unwrap();
    cfn(
        endpoint,
        &[
            ("Action", "CreateStack"),
            ("StackName", "etl-outputs"),
            ("TemplateBody", &template),
            ("Parameters.member.1.ParameterKey", "ProjectName"),
            ("Parameters.member.1.ParameterValue", "etl-outputs"),
            ("Parameters.member.2.ParameterKey", "ArtifactBucket"),
            ("Parameters.member.2.ParameterValue", "deploy-outputs"),
            ("Parameters.member.3.ParameterKey", "ArtifactPrefix"),
            ("Parameters.member.3.ParameterValue", "etl/0"),
        ],
    );
    let out = deploy(
        endpoint,
        dir.path(),
        "etl-outputs",
        &[
            "--artifacts",
            "s3://deploy-outputs/etl/1/",
            "--format",
            "json",
        ],
    );
    let doc: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(doc["stack"], "etl-outputs");
    assert_eq!(doc["status"], "UPDATE_COMPLETE");
    assert_eq!(doc["outputs"]["ProjectName"], "etl-outputs");
    assert_eq!(
        doc["outputs"]["StateMachineArn"],
        "arn:aws:states:us-east-1:123456789012:stateMachine:etl-outputs-etl"
    );
    let table = ok(&deploy(
        endpoint,
        dir.path(),
        "etl-outputs",
        &["--artifacts", "s3://deploy-outputs/etl/2/"],
    ));
    assert!(
        table.contains("StateMachineArn") && table.contains("stateMachine:etl-outputs-etl"),
        "{table}"
    );
}

/// Puts a job manifest on S3 for `etl start` to read.
async fn put_manifest(endpoint: &str, bucket: &str, key: &str, manifest: &Value) -> String {
    let store = s3(endpoint, bucket);
    store
        .put(
            &ObjectPath::parse(key).unwrap(),
            serde_json::to_vec(manifest).unwrap().into(),
        )
        .await
        .unwrap();
    format!("s3://{bucket}/{key}")
}

fn small_manifest(cluster: Value) -> Value {
    json!({
        "name": "start_test",
        "input": "data/",
        "schemas": [{"name": "raw", "tables": [{"name": "t", "files": "t.gz",
                     "columns": [{"name": "a", "type": "int"}]}]}],
        "unload": {"query": "select 1", "to": "out/r_"},
        "cluster": cluster,
        "concurrency": 12
    })
}

#[tokio::test]
async fn start_sends_the_documented_input() {
    let moto = moto::shared();
    let endpoint = moto.endpoint();
    moto.create_bucket("start-jobs");
    let machine = create_state_machine(
        endpoint,
        "etl-start-test",
        &json!({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
    );
    // The permanent stack names the state machine in its outputs.
    cfn(
        endpoint,
        &[
            ("Action", "CreateStack"),
            ("StackName", "etl-start"),
            (
                "TemplateBody",
                &json!({"Resources": {"Q": {"Type": "AWS::SQS::Queue"}},
                        "Outputs": {"StateMachineArn": {"Value": machine}}})
                .to_string(),
            ),
        ],
    );
    let job = put_manifest(
        endpoint,
        "start-jobs",
        "input/start/job.json",
        &small_manifest(json!({"delete_on_success": true})),
    )
    .await;

    let out =
        run(etl_on(endpoint).args(["start", &job, "--stack", "etl-start", "--name", "start-1"]));
    let arn = ok(&out).trim().to_owned();
    assert_eq!(
        arn,
        "arn:aws:states:us-east-1:123456789012:execution:etl-start-test:start-1"
    );
    assert!(
        text(&out.stderr).contains(&format!("etl watch {arn}")),
        "{}",
        text(&out.stderr)
    );
    let described = sfn(endpoint, "DescribeExecution", &json!({"executionArn": arn}));
    let input: Value = serde_json::from_str(described["input"].as_str().unwrap()).unwrap();
    assert_eq!(
        input,
        json!({"manifest": job, "concurrency": 12,
               "cluster": {"if_exists": "reuse", "delete_on_success": true, "delete_on_failure": true}})
    );

    // Flags override the manifest; an explicit cluster stack name travels.
    let job2 = put_manifest(
        endpoint,
        "start-jobs",
        "input/start/job2.json",
        &small_manifest(json!({"stack_name": "etl-redshift-blue"})),
    )
    .await;
    let out = run(etl_on(endpoint).args([
        "start",
        &job2,
        "--state-machine",
        &machine,
        "--recreate",
        "--delete-on-success",
        "--keep-on-failure",
        "--concurrency",
        "3",
        "--name",
        "start-2",
    ]));
    let arn = ok(&out).trim().to_owned();
    let described = sfn(endpoint, "DescribeExecution", &json!({"executionArn": arn}));
    let input: Value = serde_json::from_str(described["input"].as_str().unwrap()).unwrap();
    assert_eq!(
        input,
        json!({"manifest": job2, "concurrency": 3,
               "cluster": {"if_exists": "recreate", "delete_on_success": true, "delete_on_failure": false,
                           "stack_name": "etl-redshift-blue"}})
    );

    // Refused before anything starts: exit 2.
    for (args, says) in [
        (
            vec![
                "start",
                &job,
                "--state-machine",
                &machine,
                "--concurrency",
                "41",
            ],
            "1 to 40",
        ),
        (
            vec![
                "start",
                "s3://start-jobs/input/none.json",
                "--state-machine",
                &machine,
            ],
            "does not exist",
        ),
        (
            vec![
                "start",
                &job,
                "--state-machine",
                &machine,
                "--name",
                "bad name",
            ],
            "execution name",
        ),
        (
            vec!["start", &job, "--stack", "etl-no-such-stack"],
            "does not exist",
        ),
        (
            vec!["start", "job.json", "--state-machine", &machine],
            "s3://",
        ),
    ] {
        let out = run(etl_on(endpoint).args(&args));
        assert_eq!(code(&out), 2, "{args:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {says:?} in {}",
            text(&out.stderr)
        );
    }
}

/// A moto server of its own that runs state machines (moto's `execute_state_machine`): Pass,
/// Wait, Choice, Succeed and Fail states run for real. moto 5.2 can run one execution per server
/// (a second one fails on a deep copy of the first one's thread), hence one server per test.
fn executing_moto() -> Moto {
    let moto = Moto::start();
    let host = moto.endpoint().trim_start_matches("http://").to_owned();
    let config = r#"{"stepfunctions": {"execute_state_machine": true}}"#;
    let mut stream = TcpStream::connect(&host).unwrap();
    write!(
        stream,
        "POST /moto-api/config HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{config}",
        config.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 20") || response.starts_with("HTTP/1.0 20"),
        "{response}"
    );
    moto
}

/// The shape of the ETL state machine in miniature: defaults, a wait loop, a choice that fails
/// the run when the input asks for it.
fn mini_machine() -> Value {
    json!({
        "StartAt": "ApplyDefaults",
        "States": {
            "ApplyDefaults": {"Type": "Pass", "Result": {"rounds": 0}, "ResultPath": "$.poll", "Next": "WaitForStack"},
            "WaitForStack": {"Type": "Wait", "Seconds": 1, "Next": "CheckPlan"},
            "CheckPlan": {"Type": "Choice", "Choices": [
                {"Variable": "$.concurrency", "NumericEquals": 13, "Next": "LoadFailed"}
            ], "Default": "JobSucceeded"},
            "LoadFailed": {"Type": "Fail", "Error": "EtlQueryFailed",
                           "Cause": "load raw.t failed: relation \"raw.t\" does not exist (SQLSTATE 42P01)"},
            "JobSucceeded": {"Type": "Succeed"}
        }
    })
}

async fn start_and_watch(concurrency: &str, extra: &[&str]) -> (Output, String, Moto) {
    let moto = executing_moto();
    let endpoint = moto.endpoint().to_owned();
    moto.create_bucket("watch-jobs");
    let machine = create_state_machine(&endpoint, "etl-watch", &mini_machine());
    let job = put_manifest(
        &endpoint,
        "watch-jobs",
        "input/w/job.json",
        &small_manifest(json!({})),
    )
    .await;
    let arn = ok(&run(etl_on(&endpoint).args([
        "start",
        &job,
        "--state-machine",
        &machine,
        "--concurrency",
        concurrency,
        "--name",
        "watch-1",
    ])))
    .trim()
    .to_owned();
    let out = run(etl_on(&endpoint)
        .args(["watch", &arn, "--poll", "0.2"])
        .args(extra));
    (out, arn, moto)
}

#[tokio::test]
async fn watch_follows_a_succeeding_execution() {
    let (out, _arn, _moto) = start_and_watch("5", &["--all"]).await;
    let stdout = ok(&out);
    let stderr = text(&out.stderr);
    // --all: every state, in order, and the execution's output on stdout.
    let order = [
        "ApplyDefaults",
        "WaitForStack",
        "CheckPlan",
        "JobSucceeded",
        "execution watch-1 SUCCEEDED",
    ];
    let mut at = 0;
    for name in order {
        let found = stderr[at..]
            .find(name)
            .unwrap_or_else(|| panic!("{name} after byte {at} in:\n{stderr}"));
        at += found;
    }
    assert!(
        stderr.contains("PassStateEntered") && stderr.contains("WaitStateExited"),
        "{stderr}"
    );
    let output: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(output["poll"]["rounds"], 0);
    assert_eq!(output["concurrency"], 5);
}

#[tokio::test]
async fn watch_reports_a_failed_execution_with_its_cause() {
    let (out, _arn, _moto) = start_and_watch("13", &[]).await;
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    // Without --all the plumbing (Pass, Wait, Choice) is hidden; the Fail state and the cause show.
    assert!(!stderr.contains("ApplyDefaults"), "{stderr}");
    assert!(
        stderr.contains("LoadFailed") && stderr.contains("(Fail)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("etl: execution watch-1 FAILED")
            && stderr.contains("EtlQueryFailed: load raw.t failed: relation \"raw.t\" does not exist (SQLSTATE 42P01)"),
        "{stderr}"
    );
}

#[tokio::test]
async fn watch_refuses_an_unknown_execution() {
    let moto = moto::shared();
    let out = run(etl_on(moto.endpoint()).args([
        "watch",
        "arn:aws:states:us-east-1:123456789012:execution:nope:nope",
    ]));
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with("etl: "),
        "{}",
        text(&out.stderr)
    );
}
