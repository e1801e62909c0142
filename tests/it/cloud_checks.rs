//! The cloud half's checks, through the `etl` binary where a user meets them:
//!
//! - `etl sql --secret-id` reads host, port and dbname from the secret (what the on-demand stack's
//!   `SecretTargetAttachment` adds), and refuses a secret without a host (moto's Secrets Manager);
//! - `etl plan --stack`, `etl stage --stack` and `etl start` refuse a job whose input or unload
//!   bucket, or `redshift.region`, the deployment cannot reach (the permanent stack's outputs
//!   `ReachableBuckets` and `S3Region`, on moto's CloudFormation);
//! - validation of what only the cluster would refuse: ENCODE against the column type, MAXERROR
//!   above 100,000, node type × number of nodes (`etl plan`);
//! - `etl stage` refuses a file larger than S3's largest object before uploading anything.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};

use etl_tests::moto::Moto;
use etl_tests::{etl, run, server};

/// `etl` with moto's environment only (as in cloud.rs).
fn etl_on(endpoint: &str) -> Command {
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "tests talk to moto only"
    );
    let mut cmd = etl();
    for var in [
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_CLOUDFORMATION",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        "AWS_ENDPOINT_URL_SFN",
        "AWS_ENDPOINT_URL_STS",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "PGSSLMODE",
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
    cmd
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// One HTTP request to moto (it checks no signature); the status and the body.
fn http(
    endpoint: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let host = endpoint.trim_start_matches("http://");
    assert!(host.starts_with("127.0.0.1:"));
    let mut stream = TcpStream::connect(host).expect("moto answers");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn auth(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
    )
}

/// Creates a secret in moto; its ARN.
fn create_secret(endpoint: &str, name: &str, value: &Value) -> String {
    let body = json!({"Name": name, "SecretString": value.to_string()}).to_string();
    let (status, out) = http(
        endpoint,
        "POST",
        "/",
        &[
            ("Authorization", &auth("secretsmanager")),
            ("X-Amz-Target", "secretsmanager.CreateSecret"),
            ("Content-Type", "application/x-amz-json-1.1"),
        ],
        body.as_bytes(),
    );
    assert_eq!(status, 200, "CreateSecret: {out}");
    serde_json::from_str::<Value>(&out).unwrap()["ARN"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn create_bucket(endpoint: &str, bucket: &str) {
    let (status, out) = http(
        endpoint,
        "PUT",
        &format!("/{bucket}"),
        &[("Authorization", &auth("s3"))],
        b"",
    );
    assert_eq!(status, 200, "CreateBucket {bucket}: {out}");
}

fn put_object(endpoint: &str, bucket: &str, key: &str, body: &[u8]) {
    let (status, out) = http(
        endpoint,
        "PUT",
        &format!("/{bucket}/{key}"),
        &[("Authorization", &auth("s3"))],
        body,
    );
    assert_eq!(status, 200, "PutObject {bucket}/{key}: {out}");
}

fn list_keys(endpoint: &str, bucket: &str) -> Vec<String> {
    let (status, out) = http(
        endpoint,
        "GET",
        &format!("/{bucket}?list-type=2"),
        &[("Authorization", &auth("s3"))],
        b"",
    );
    assert_eq!(status, 200, "ListObjectsV2 {bucket}: {out}");
    out.split("<Key>")
        .skip(1)
        .filter_map(|s| s.split_once("</Key>"))
        .map(|(k, _)| k.to_owned())
        .collect()
}

/// `application/x-www-form-urlencoded` for one value.
fn form_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The permanent stack's stand-in: `tests/fixtures/cfn/reach-moto.yaml`, whose outputs say what it
/// reaches (as cfn/initial.yaml's `ReachableBuckets` and `S3Region` do).
fn create_reach_stack(endpoint: &str, name: &str, buckets: &str) {
    let template =
        std::fs::read_to_string(etl_tests::repo_root().join("tests/fixtures/cfn/reach-moto.yaml"))
            .unwrap();
    let form = [
        ("Action", "CreateStack"),
        ("Version", "2010-05-15"),
        ("StackName", name),
        ("TemplateBody", template.as_str()),
        ("Parameters.member.1.ParameterKey", "ReachableBuckets"),
        ("Parameters.member.1.ParameterValue", buckets),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", form_encode(v)))
    .collect::<Vec<_>>()
    .join("&");
    let (status, out) = http(
        endpoint,
        "POST",
        "/",
        &[
            ("Authorization", &auth("cloudformation")),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        form.as_bytes(),
    );
    assert_eq!(status, 200, "CreateStack: {out}");
}

// ------------------------------------------------------------------------------------ the secret

#[test]
fn sql_secret_id_refuses_a_secret_without_host() {
    let moto = Moto::start();
    let arn = create_secret(
        moto.endpoint(),
        "etl/redshift/master",
        &json!({"username": "etladmin", "password": "hunter2-never-printed"}),
    );
    let out = run(etl_on(moto.endpoint()).args(["sql", "--secret-id", &arn, "-c", "select 1"]));
    let err = text(&out.stderr);
    assert_eq!(code(&out), 2, "a configuration error: {err}");
    assert!(
        err.contains("has no \"host\"") && err.contains("SecretTargetAttachment"),
        "{err}"
    );
    assert!(
        !err.contains("localhost"),
        "it never tried localhost: {err}"
    );
    assert!(
        !err.contains("hunter2"),
        "the password is never printed: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_secret_id_connects_where_the_attached_secret_says() {
    let local = server().await;
    let moto = Moto::start();
    // What SecretTargetAttachment writes for a Redshift cluster: the engine, host, port (a number)
    // and dbname next to the credentials
    // (https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_secret_json_structure.html).
    let options = local.connect_options();
    let arn = create_secret(
        moto.endpoint(),
        "etl/redshift/master",
        &json!({
            "engine": "redshift",
            "host": options.host,
            "port": options.port,
            "username": options.user,
            "password": "unused-by-trust-auth",
            "dbname": options.dbname,
            "dbClusterIdentifier": "etl-redshift",
        }),
    );
    let out = run(etl_on(moto.endpoint()).env("PGSSLMODE", "disable").args([
        "sql",
        "--format",
        "csv",
        "--secret-id",
        &arn,
        "-c",
        "select 42 as answer",
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "answer\n42\n");
}

// ------------------------------------------------------------------------------------ reachability

fn write_job(dir: &Path, input: &str, unload_to: &str, region: Option<&str>) -> std::path::PathBuf {
    let mut job = json!({
        "name": "reach",
        "input": input,
        "schemas": [{"name": "s", "tables": [{"name": "t", "files": ["t.txt"], "columns": [{"name": "a", "type": "integer"}]}]}],
        "unload": {"query": "select a from s.t", "to": unload_to}
    });
    if let Some(r) = region {
        job["redshift"] = json!({"region": r});
    }
    std::fs::write(dir.join("t.txt"), "1\n").unwrap();
    let path = dir.join("job.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&job).unwrap()).unwrap();
    path
}

#[test]
fn plan_stage_and_start_refuse_what_the_network_cannot_reach() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    for b in ["jobs", "elsewhere"] {
        create_bucket(ep, b);
    }
    create_reach_stack(ep, "etl", "jobs,arn:aws:s3:::more-jobs");
    let dir = tempfile::tempdir().unwrap();

    // plan: a reachable job passes; input elsewhere, unload elsewhere and another region do not.
    let ok = write_job(
        dir.path(),
        "s3://jobs/input/",
        "s3://more-jobs/out/r_",
        None,
    );
    let out = run(etl_on(ep).arg("plan").arg(&ok).args(["--stack", "etl"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bad = write_job(
        dir.path(),
        "s3://elsewhere/input/",
        "s3://elsewhere/out/r_",
        Some("eu-central-1"),
    );
    let out = run(etl_on(ep).arg("plan").arg(&bad).args(["--stack", "etl"]));
    let err = text(&out.stderr);
    assert_eq!(code(&out), 2, "{err}");
    for want in [
        "input s3://elsewhere/input/",
        "unload s3://elsewhere/out/r_",
        "ExtraBucketArns=arn:aws:s3:::elsewhere",
        "admit only jobs, more-jobs",
        "redshift.region \"eu-central-1\"",
        "serves us-east-1 alone",
    ] {
        assert!(err.contains(want), "{want:?} in {err}");
    }
    // The flag overrides what the manifest says.
    let out = run(etl_on(ep).arg("plan").arg(&ok).args([
        "--stack",
        "etl",
        "--input",
        "s3://elsewhere/x/",
    ]));
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
    // Without --stack, plan stays offline and says nothing about reach.
    let out = run(etl_on(ep).arg("plan").arg(&bad));
    assert!(out.status.success(), "{}", text(&out.stderr));

    // stage: refused before anything is uploaded.
    let local = write_job(dir.path(), "./", "s3://jobs/out/r_", None);
    let out = run(etl_on(ep).arg("stage").arg(&local).args([
        "--to",
        "s3://elsewhere/staged/",
        "--stack",
        "etl",
    ]));
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("input s3://elsewhere/staged/"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        list_keys(ep, "elsewhere").is_empty(),
        "nothing was uploaded"
    );
    let out = run(etl_on(ep).arg("stage").arg(&local).args([
        "--to",
        "s3://jobs/staged/",
        "--stack",
        "etl",
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));

    // start: the staged manifest on S3 is checked against --stack before any execution starts.
    let staged = json!({
        "name": "reach",
        "input": "s3://elsewhere/input/",
        "schemas": [{"name": "s", "tables": [{"name": "t", "files": ["t.txt"], "columns": [{"name": "a", "type": "integer"}]}]}]
    });
    put_object(
        ep,
        "jobs",
        "staged/elsewhere.json",
        staged.to_string().as_bytes(),
    );
    let out = run(etl_on(ep).args(["start", "s3://jobs/staged/elsewhere.json", "--stack", "etl"]));
    let err = text(&out.stderr);
    assert_eq!(code(&out), 2, "{err}");
    assert!(
        err.contains("input s3://elsewhere/input/") && err.contains("stack etl"),
        "{err}"
    );
}

// ------------------------------------------------------------------------------------ validation

#[test]
fn plan_refuses_what_only_the_cluster_would() {
    let dir = tempfile::tempdir().unwrap();
    let job = json!({
        "name": "v",
        "input": "s3://jobs/input/",
        "format": {"maxerror": 100_001},
        "cluster": {"node_type": "ra3.4xlarge", "number_of_nodes": 1},
        "schemas": [{"name": "s", "tables": [{
            "name": "t",
            "files": ["t.txt"],
            "format": {"maxerror": 250_000},
            "columns": [
                {"name": "a", "type": "integer", "encode": "az64"},
                {"name": "b", "type": "varchar(10)", "encode": "az64"},
                {"name": "c", "type": "boolean", "encode": "delta"},
                {"name": "d", "type": "char(2)", "encode": "text255"}
            ]
        }]}]
    });
    let path = dir.path().join("job.json");
    std::fs::write(&path, job.to_string()).unwrap();
    let out = run(etl().arg("plan").arg(&path));
    let err = text(&out.stderr);
    assert_eq!(code(&out), 2, "{err}");
    for want in [
        "format.maxerror",
        "100001 is above Redshift's limit of 100000",
        "schemas[0].tables[0].format.maxerror",
        "250000 is above",
        "schemas[0].tables[0].columns[1].encode",
        "ENCODE AZ64 does not apply to VARCHAR",
        "schemas[0].tables[0].columns[2].encode",
        "ENCODE DELTA does not apply to BOOLEAN",
        "schemas[0].tables[0].columns[3].encode",
        "TEXT255 does not apply to CHAR",
        "c_Compression_encodings.html",
        "cluster.number_of_nodes",
        "a new ra3.4xlarge cluster has 2 to 32 nodes, not 1",
    ] {
        assert!(err.contains(want), "{want:?} in {err}");
    }
    assert!(
        !err.contains("columns[0].encode"),
        "AZ64 on INTEGER is fine: {err}"
    );

    // Within the limits, the same job plans.
    let mut fixed = job.clone();
    fixed["format"]["maxerror"] = json!(100_000);
    fixed["cluster"]["number_of_nodes"] = json!(2);
    let table = &mut fixed["schemas"][0]["tables"][0];
    table["format"]["maxerror"] = json!(10);
    for (i, e) in [(1, "zstd"), (2, "runlength"), (3, "bytedict")] {
        table["columns"][i]["encode"] = json!(e);
    }
    std::fs::write(&path, fixed.to_string()).unwrap();
    let out = run(etl().arg("plan").arg(&path));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

// ------------------------------------------------------------------------------------ large files

#[test]
fn stage_refuses_a_file_larger_than_s3_holds() {
    let moto = Moto::start();
    create_bucket(moto.endpoint(), "jobs");
    let dir = tempfile::tempdir().unwrap();
    let job = write_job(dir.path(), "./", "s3://jobs/out/r_", None);
    // A sparse file one byte over S3's 5 TiB object limit: no disk is used.
    let f = std::fs::File::create(dir.path().join("t.txt")).unwrap();
    f.set_len(5 * 1024 * 1024 * 1024 * 1024 + 1).unwrap();
    drop(f);
    let out = run(etl_on(moto.endpoint())
        .arg("stage")
        .arg(&job)
        .args(["--to", "s3://jobs/staged/"]));
    let err = text(&out.stderr);
    assert_eq!(code(&out), 2, "{err}");
    assert!(err.contains("5 TiB") && err.contains("t.txt"), "{err}");
    assert!(
        list_keys(moto.endpoint(), "jobs").is_empty(),
        "nothing was uploaded"
    );
}
