//! Fixtures on moto for tests that run with moto's environment, i.e. inside
//! [`crate::moto::s3_test`]'s child process: every client here is configured from that environment
//! (`AWS_ENDPOINT_URL` and test credentials), so it talks to moto on 127.0.0.1 only.
//!
//! Shared by `tests/it/lambda.rs` (the handlers called in-process) and `tests/it/asl_exec.rs` (the
//! state machine run by an ASL interpreter over the binaries).

use std::collections::BTreeMap;

use object_store::ObjectStoreExt as _;
use serde_json::Value;

/// Creates a secret in moto and returns its ARN.
///
/// # Panics
/// When moto refuses.
pub async fn create_secret(name: &str, value: &Value) -> String {
    let client = etl_core::aws::secretsmanager::Client::new(etl_core::aws::config().await);
    let out = client
        .create_secret()
        .name(name)
        .secret_string(value.to_string())
        .send()
        .await
        .expect("moto creates the secret");
    out.arn().expect("an ARN").to_owned()
}

/// Uploads `body` to `url` (`s3://bucket/key`).
///
/// # Panics
/// When the URL is not an S3 URL or the upload fails.
pub async fn put(url: &str, body: Vec<u8>) {
    let url = etl_core::sql::S3Url::parse(url).unwrap();
    let store = etl_core::storage::s3_store(&url).unwrap();
    store
        .put(&object_store::path::Path::from(url.key()), body.into())
        .await
        .unwrap_or_else(|e| panic!("cannot upload {url}: {e}"));
}

/// Downloads `url` (`s3://bucket/key`).
///
/// # Panics
/// When the URL is not an S3 URL or the object cannot be read.
pub async fn get(url: &str) -> Vec<u8> {
    let parsed = etl_core::sql::S3Url::parse(url).unwrap();
    let store = etl_core::storage::s3_store(&parsed).unwrap();
    store
        .get(&object_store::path::Path::from(parsed.key()))
        .await
        .unwrap_or_else(|e| panic!("cannot read {url}: {e}"))
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("cannot read {url}: {e}"))
        .to_vec()
}

/// The keys below `prefix` (`s3://bucket/prefix/`), relative to it.
///
/// # Panics
/// When the URL is not an S3 URL or the listing fails.
pub async fn list(prefix: &str) -> Vec<String> {
    let url = etl_core::sql::S3Url::parse(prefix).unwrap();
    let store = etl_core::storage::Store::open(&etl_core::job::Location::S3(url)).unwrap();
    store
        .list_prefix("")
        .await
        .unwrap()
        .into_iter()
        .map(|(p, _)| p.to_string())
        .collect()
}

/// The state machine's functions, from `asl/README.md`'s "Functions" table: each
/// `DefinitionSubstitutions` placeholder (`StackStatusFunctionArn`) and the binary it runs
/// (`etl-stack-status`).
///
/// # Panics
/// When the table does not list the eight functions.
pub fn asl_functions() -> BTreeMap<String, String> {
    let readme = std::fs::read_to_string(crate::repo_root().join("asl/README.md")).unwrap();
    let mut out = BTreeMap::new();
    for line in readme.lines().filter(|l| l.starts_with("| `etl-")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let binary = cells[1].trim_matches('`');
        let placeholder = cells[2]
            .trim_matches('`')
            .trim_start_matches("${")
            .trim_end_matches('}');
        out.insert(placeholder.to_owned(), binary.to_owned());
    }
    assert_eq!(out.len(), 8, "asl/README.md lists eight functions: {out:?}");
    out
}
