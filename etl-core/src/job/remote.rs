//! Reading a job manifest from S3 ([`Job::from_store`]): what the Lambda functions do, since only
//! the manifest's location travels through the state machine.
//!
//! Relative paths in an S3 manifest — `input`, `transform` files, `unload.to`,
//! `unload.query_file` — resolve against the manifest's S3 folder, exactly as they resolve against
//! the manifest's directory for a local file. Local absolute paths are refused: a manifest on S3
//! must never make a function read (or unload) a file of the machine it runs on.

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _};

use super::{Job, Location};
use crate::error::{Error, ManifestIssue, Result};
use crate::sql::S3Url;
use crate::storage;

/// The largest manifest or SQL file read from S3 (a manifest travels by location because it may be
/// large, but not this large).
const MAX_OBJECT_BYTES: u64 = 16 * 1024 * 1024;

impl Job {
    /// Reads, validates and resolves the manifest at `manifest` (an S3 object), reads its
    /// transform SQL (and `unload.query_file`) from S3. Input files are not checked here: the
    /// loader lists them before it loads.
    ///
    /// # Errors
    /// [`Error::InvalidJob`] listing every problem with its JSON path (a missing manifest or SQL
    /// file is one); [`Error::Storage`] when S3 cannot be read.
    pub async fn from_store(manifest: &S3Url) -> Result<Job> {
        let origin = manifest.to_string();
        let invalid = |path: &str, message: String| Error::InvalidJob {
            file: origin.clone().into(),
            issues: vec![ManifestIssue {
                path: path.to_owned(),
                message,
            }],
        };
        let store = storage::s3_store(manifest)?;
        let text = match read_text(&*store, manifest).await? {
            Some(t) => t,
            None => {
                return Err(invalid(
                    "$",
                    format!("the manifest {manifest} does not exist"),
                ));
            }
        };
        let folder = folder_of(manifest);
        let text = inline_query_file(&text, &folder, &origin).await?;
        let mut job = Job::parse(&text, &origin, std::path::Path::new(""))?;

        let mut issues = Vec::new();
        let mut rebase = |location: &mut Location, path: String| {
            if let Location::Local(p) = location {
                match p.to_str() {
                    Some(rel) if !p.is_absolute() && !rel.split('/').any(|c| c == "..") => {
                        *location = Location::S3(folder.join(rel));
                    }
                    _ => issues.push(ManifestIssue {
                        path,
                        message: format!(
                            "{:?}: a manifest on S3 takes s3:// URLs or paths relative to its folder \
                             ({folder}), without '..'",
                            p.display()
                        ),
                    }),
                }
            }
        };
        rebase(&mut job.input, "input".into());
        for (i, t) in job.transforms.iter_mut().enumerate() {
            rebase(&mut t.location, format!("transform[{i}]"));
        }
        if let Some(u) = &mut job.unload {
            rebase(&mut u.to, "unload.to".into());
        }
        for (i, t) in job.transforms.iter_mut().enumerate() {
            let Location::S3(url) = &t.location else {
                continue;
            };
            let store = if url.bucket() == manifest.bucket() {
                store.clone()
            } else {
                storage::s3_store(url)?
            };
            match read_text(&*store, url).await? {
                Some(sql) => t.sql = sql,
                None => issues.push(ManifestIssue {
                    path: format!("transform[{i}]"),
                    message: format!("{url} does not exist"),
                }),
            }
        }
        if issues.is_empty() {
            Ok(job)
        } else {
            Err(Error::InvalidJob {
                file: origin.into(),
                issues,
            })
        }
    }
}

/// `s3://b/jobs/x/job.json` → `s3://b/jobs/x/`.
fn folder_of(url: &S3Url) -> S3Url {
    let key = url.key();
    let dir = key.rfind('/').map_or("", |i| &key[..=i]);
    S3Url::parse(&format!("s3://{}/{dir}", url.bucket())).unwrap_or_else(|_| url.clone())
}

/// Reads a UTF-8 object; `None` when it does not exist.
async fn read_text(store: &dyn ObjectStore, url: &S3Url) -> Result<Option<String>> {
    let path = ObjectPath::from(url.key());
    let storage_error = |source| Error::Storage {
        action: "cannot read",
        location: url.to_string(),
        source,
    };
    let result = match store.get(&path).await {
        Ok(r) => r,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(storage_error(e)),
    };
    if result.meta.size > MAX_OBJECT_BYTES {
        return Err(Error::invalid(
            "job file",
            format!(
                "{url} is {} bytes; the limit is {MAX_OBJECT_BYTES}",
                result.meta.size
            ),
        ));
    }
    let bytes = result.bytes().await.map_err(storage_error)?;
    String::from_utf8(bytes.to_vec())
        .map(Some)
        .map_err(|_| Error::invalid("job file", format!("{url} is not UTF-8 text")))
}

/// Replaces `unload.query_file` by the file's text as `unload.query`, read from S3 (relative to
/// the manifest's folder, or an s3:// URL), so that validation never reads a local file. Text that
/// is not a JSON object is returned as it is, for [`Job::parse`] to report.
async fn inline_query_file(text: &str, folder: &S3Url, origin: &str) -> Result<String> {
    let Ok(serde_json::Value::Object(mut doc)) = serde_json::from_str::<serde_json::Value>(text)
    else {
        return Ok(text.to_owned());
    };
    let Some(serde_json::Value::Object(unload)) = doc.get_mut("unload") else {
        return Ok(text.to_owned());
    };
    let Some(serde_json::Value::String(file)) = unload.get("query_file").cloned() else {
        return Ok(text.to_owned());
    };
    let invalid = |message: String| Error::InvalidJob {
        file: origin.into(),
        issues: vec![ManifestIssue {
            path: "unload.query_file".into(),
            message,
        }],
    };
    if unload.contains_key("query") || unload.contains_key("table") {
        // Let validation say "exactly one of".
        return Ok(text.to_owned());
    }
    let url = if file.starts_with("s3://") {
        S3Url::parse(&file).map_err(invalid)?
    } else if file.is_empty()
        || file.starts_with('/')
        || file.contains("://")
        || file.split('/').any(|c| c == "..")
    {
        return Err(invalid(format!(
            "{file:?}: a manifest on S3 takes an s3:// URL or a path relative to its folder ({folder}), without '..'"
        )));
    } else {
        folder.join(&file)
    };
    let store = storage::s3_store(&url)?;
    let query = read_text(&*store, &url)
        .await?
        .ok_or_else(|| invalid(format!("{url} does not exist")))?;
    unload.remove("query_file");
    unload.insert("query".into(), serde_json::Value::String(query));
    Ok(serde_json::Value::Object(doc).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders() {
        let u = |s: &str| S3Url::parse(s).unwrap();
        assert_eq!(
            folder_of(&u("s3://bucket/jobs/x/job.json")),
            u("s3://bucket/jobs/x/")
        );
        assert_eq!(folder_of(&u("s3://bucket/job.json")), u("s3://bucket/"));
        assert_eq!(u("s3://bucket/").join("data/"), u("s3://bucket/data/"));
    }
}
