//! Files in a local folder or on S3, through one object-store interface.
//!
//! S3 settings come from the usual AWS variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`, the container credentials of a Lambda) and
//! honour `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_S3`) for S3-compatible endpoints and tests: with
//! an endpoint, requests use path-style addressing, and plain `http://` is allowed.

use std::sync::Arc;

use futures::TryStreamExt as _;
use object_store::ObjectStore;
#[cfg(test)]
use object_store::ObjectStoreExt as _;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;

use crate::error::{Error, Result};
use crate::job::Location;
use crate::sql::S3Url;

/// An object store and a location in it.
#[derive(Clone, Debug)]
pub struct Store {
    /// The store (a local file system or one S3 bucket).
    pub store: Arc<dyn ObjectStore>,
    /// The key (or key prefix) the location names.
    pub path: ObjectPath,
    /// How to show the location to people (`s3://b/k` or a local path).
    pub display: String,
    /// Whether the location ends with `/` (a folder) rather than naming an object or a name prefix.
    pub is_dir: bool,
    /// The absolute local path, for a local location.
    pub(crate) local: Option<std::path::PathBuf>,
}

/// An S3 key as an object-store path, verbatim. (`ObjectPath::from` percent-encodes characters such
/// as `%` and `|`, which would change the key; `parse` keeps it.)
pub fn s3_key(key: &str) -> ObjectPath {
    ObjectPath::parse(key).unwrap_or_else(|_| ObjectPath::from(key))
}

impl Store {
    /// Opens `location`.
    ///
    /// # Errors
    /// [`Error::Storage`] when the S3 settings are unusable; [`Error::Io`] when a local path cannot
    /// be made absolute.
    pub fn open(location: &Location) -> Result<Store> {
        match location {
            Location::Local(p) => {
                let text = p.to_string_lossy();
                let is_dir = text.ends_with('/') || p.is_dir();
                let abs = std::path::absolute(p)
                    .map_err(|e| Error::io("cannot resolve", p.display(), e))?;
                let path = ObjectPath::from_absolute_path(&abs).map_err(|e| Error::Storage {
                    action: "cannot use the path",
                    location: abs.display().to_string(),
                    source: e.into(),
                })?;
                Ok(Store {
                    store: Arc::new(LocalFileSystem::new()),
                    path,
                    display: p.display().to_string(),
                    is_dir,
                    local: Some(abs),
                })
            }
            Location::S3(url) => Ok(Store {
                store: s3_store(url)?,
                path: s3_key(url.key()),
                display: url.to_string(),
                is_dir: url.key().ends_with('/') || url.key().is_empty(),
                local: None,
            }),
        }
    }

    /// The object `relative` below this location (joined with `/` when this is a folder, appended
    /// as a name otherwise).
    pub fn child(&self, relative: &str) -> (ObjectPath, String) {
        let path = match &self.local {
            // Local names are encoded by the object store (it decodes them back to file names).
            Some(root) => {
                let full = if self.is_dir {
                    root.join(relative)
                } else {
                    std::path::PathBuf::from(format!("{}{relative}", root.display()))
                };
                ObjectPath::from_absolute_path(&full)
                    .unwrap_or_else(|_| ObjectPath::from(full.to_string_lossy().as_ref()))
            }
            None => {
                let base = self.path.as_ref();
                let key = if base.is_empty() {
                    relative.to_owned()
                } else if self.is_dir {
                    format!("{base}/{relative}")
                } else {
                    format!("{base}{relative}")
                };
                s3_key(&key)
            }
        };
        let display = if self.is_dir && !self.display.ends_with('/') {
            format!("{}/{relative}", self.display)
        } else {
            format!("{}{relative}", self.display)
        };
        (path, display)
    }

    /// Lists every object whose key starts with `prefix` (below this location), sorted by key,
    /// with sizes.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn list_prefix(&self, prefix: &str) -> Result<Vec<(ObjectPath, u64)>> {
        let (full, display) = self.child(prefix);
        let full_text = full.to_string();
        // Object stores list by folder: list the folder part, then filter on the name prefix.
        let folder = match full_text.rfind('/') {
            Some(i) if !prefix.is_empty() && !prefix.ends_with('/') => {
                ObjectPath::from(&full_text[..i])
            }
            _ => full.clone(),
        };
        let mut out: Vec<(ObjectPath, u64)> = self
            .store
            .list(Some(&folder))
            .map_ok(|m| (m.location, m.size))
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| Error::Storage {
                action: "cannot list",
                location: display,
                source: e,
            })?
            .into_iter()
            .filter(|(p, _)| p.as_ref().starts_with(full_text.as_str()))
            .collect();
        out.sort();
        Ok(out)
    }
}

/// Opens one S3 bucket with the environment's settings and endpoint override.
///
/// # Errors
/// [`Error::Storage`] when the settings are unusable.
pub fn s3_store(url: &S3Url) -> Result<Arc<dyn ObjectStore>> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(url.bucket());
    let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .ok()
        .filter(|e| !e.is_empty());
    if let Some(endpoint) = endpoint {
        builder = builder
            .with_endpoint(&endpoint)
            .with_virtual_hosted_style_request(false)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
        builder = builder.with_region("us-east-1");
    }
    let store = builder.build().map_err(|e| Error::Storage {
        action: "cannot configure S3 access to",
        location: url.to_string(),
        source: e,
    })?;
    Ok(Arc::new(store))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_keys_are_kept_verbatim() {
        let store = Store::open(&Location::S3(S3Url::parse("s3://bkt/in/").unwrap())).unwrap();
        let (p, display) = store.child("_manifests/s.it%27s.manifest");
        assert_eq!(p.as_ref(), "in/_manifests/s.it%27s.manifest");
        assert_eq!(display, "s3://bkt/in/_manifests/s.it%27s.manifest");
        let prefix =
            Store::open(&Location::S3(S3Url::parse("s3://bkt/out/res_").unwrap())).unwrap();
        assert_eq!(
            prefix.child("0000_part_00").0.as_ref(),
            "out/res_0000_part_00"
        );
    }

    #[tokio::test]
    async fn local_names_with_odd_characters() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a%b|c.gz"), b"x").unwrap();
        let store = Store::open(&Location::Local(dir.path().to_path_buf())).unwrap();
        let (p, _) = store.child("a%b|c.gz");
        let got = store.store.get(&p).await.unwrap().bytes().await.unwrap();
        assert_eq!(&got[..], b"x");
        assert_eq!(store.list_prefix("a%").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn local_prefix_listing_is_like_s3() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "usage/part-0.gz",
            "usage/part-1.gz",
            "usage.bak",
            "usagex/y",
            "other",
        ] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"x").unwrap();
        }
        let store = Store::open(&Location::Local(dir.path().to_path_buf())).unwrap();
        assert!(store.is_dir);
        let names = |v: Vec<(ObjectPath, u64)>| -> Vec<String> {
            v.into_iter()
                .map(|(p, _)| p.filename().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            names(store.list_prefix("usage/").await.unwrap()),
            ["part-0.gz", "part-1.gz"]
        );
        // A name prefix also matches usage.bak and usagex/... exactly like S3's key prefixes.
        assert_eq!(store.list_prefix("usage").await.unwrap().len(), 4);
        let (path, display) = store.child("usage/part-0.gz");
        assert!(path.as_ref().ends_with("usage/part-0.gz"));
        assert!(display.ends_with("usage/part-0.gz"));
    }
}
