//! The manifest as written: serde structs that reject unknown fields. [`super::Job`] is the validated
//! form; nothing outside the `job` module sees these.

use serde::Deserialize;
use serde_json::Value;

use super::format::FormatSpec;

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJob {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub input: String,
    #[serde(default)]
    pub format: Option<FormatSpec>,
    pub schemas: Vec<RawSchema>,
    #[serde(default)]
    pub transform: Vec<String>,
    #[serde(default)]
    pub unload: Option<RawUnload>,
    #[serde(default)]
    pub cluster: Option<RawCluster>,
    #[serde(default)]
    pub redshift: Option<RawRedshift>,
    #[serde(default)]
    pub statement_timeout_seconds: Option<u64>,
    #[serde(default)]
    pub concurrency: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSchema {
    pub name: String,
    pub tables: Vec<RawTable>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTable {
    pub name: String,
    pub columns: Vec<RawColumn>,
    /// A file name, a list of names, or `{"prefix": "..."}`; interpreted by the validator so the error
    /// can name the path.
    pub files: Value,
    #[serde(default)]
    pub format: Option<FormatSpec>,
    #[serde(default)]
    pub load: Option<RawLoad>,
    #[serde(default)]
    pub diststyle: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default = "yes")]
    pub nullable: bool,
    #[serde(default)]
    pub encode: Option<String>,
    #[serde(default)]
    pub distkey: bool,
    #[serde(default)]
    pub sortkey: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLoad {
    pub method: String,
    #[serde(default)]
    pub keys: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUnload {
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub query_file: Option<String>,
    #[serde(default)]
    pub table: Option<String>,
    pub to: String,
    #[serde(default = "yes")]
    pub header: bool,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub delimiter: Option<String>,
    #[serde(default)]
    pub compression: Option<String>,
    #[serde(default = "yes")]
    pub parallel: bool,
    #[serde(default)]
    pub max_file_size_mb: Option<u32>,
    #[serde(default)]
    pub overwrite: Option<String>,
    #[serde(default)]
    pub manifest: bool,
    #[serde(default)]
    pub null_as: Option<String>,
    #[serde(default)]
    pub addquotes: bool,
    #[serde(default)]
    pub escape: bool,
    #[serde(default)]
    pub extension: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    #[serde(default)]
    pub stack_name: Option<String>,
    #[serde(default)]
    pub if_exists: Option<String>,
    #[serde(default)]
    pub delete_on_success: bool,
    #[serde(default = "yes")]
    pub delete_on_failure: bool,
    #[serde(default)]
    pub node_type: Option<String>,
    #[serde(default)]
    pub number_of_nodes: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedshift {
    #[serde(default)]
    pub iam_role: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
}
