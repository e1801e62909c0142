//! Validated values that end up inside SQL string literals: S3 locations and IAM roles.

use std::fmt;

/// An `s3://bucket/key` location (a key prefix or an object).
///
/// Invariants: the bucket follows S3's naming rules (3–63 characters of lower-case letters, digits,
/// `.` and `-`, starting and ending with a letter or digit); the key has no control characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(into = "String")]
pub struct S3Url {
    bucket: String,
    key: String,
}

impl S3Url {
    /// Parses `s3://bucket/key`.
    ///
    /// # Errors
    /// Says which part is wrong.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{url:?} must start with s3://"))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && bucket.as_bytes()[0].is_ascii_alphanumeric()
            && bucket.as_bytes()[bucket.len() - 1].is_ascii_alphanumeric();
        if !valid_bucket {
            return Err(format!(
                "{bucket:?} is not a valid S3 bucket name (3-63 lower-case letters, digits, '.' or '-')"
            ));
        }
        if let Some(c) = key.chars().find(|c| c.is_control()) {
            return Err(format!("the S3 key contains the control character {c:?}"));
        }
        Ok(S3Url {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key (or key prefix), without a leading `/`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// A location below this one: `join("a.gz")` on `s3://b/p/` gives `s3://b/p/a.gz`. A `/` is
    /// inserted when the key does not end with one (and is not empty).
    pub fn join(&self, relative: &str) -> S3Url {
        let mut key = self.key.clone();
        if !key.is_empty() && !key.ends_with('/') {
            key.push('/');
        }
        key.push_str(relative.trim_start_matches('/'));
        S3Url {
            bucket: self.bucket.clone(),
            key,
        }
    }

    /// Appends text to the key without inserting a `/` (an UNLOAD name prefix).
    pub fn with_suffix(&self, suffix: &str) -> S3Url {
        S3Url {
            bucket: self.bucket.clone(),
            key: format!("{}{suffix}", self.key),
        }
    }
}

impl fmt::Display for S3Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

impl fmt::Debug for S3Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl From<S3Url> for String {
    fn from(u: S3Url) -> String {
        u.to_string()
    }
}

impl std::str::FromStr for S3Url {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, crate::Error> {
        S3Url::parse(s).map_err(|e| crate::Error::invalid("S3 URL", e))
    }
}

impl<'de> serde::Deserialize<'de> for S3Url {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        S3Url::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The IAM role(s) Redshift assumes for COPY and UNLOAD: `default` (the cluster's default role) or
/// one or more role ARNs, chained with commas as Redshift allows.
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize)]
#[serde(into = "String")]
pub struct IamRole(String);

impl IamRole {
    /// The cluster's default IAM role (`IAM_ROLE default`).
    pub fn default_role() -> Self {
        IamRole("default".into())
    }

    /// Parses `default` or `arn:aws:iam::123456789012:role/Name[,arn:...]`.
    ///
    /// # Errors
    /// Says which ARN is malformed.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.eq_ignore_ascii_case("default") {
            return Ok(Self::default_role());
        }
        for arn in text.split(',') {
            let parts: Vec<&str> = arn.splitn(6, ':').collect();
            let ok = parts.len() == 6
                && parts[0] == "arn"
                && matches!(parts[1], "aws" | "aws-cn" | "aws-us-gov")
                && parts[2] == "iam"
                && parts[3].is_empty()
                && parts[4].len() == 12
                && parts[4].bytes().all(|b| b.is_ascii_digit())
                && parts[5].strip_prefix("role/").is_some_and(|name| {
                    !name.is_empty()
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
                });
            if !ok {
                return Err(format!(
                    "{arn:?} is not an IAM role ARN like arn:aws:iam::123456789012:role/RedshiftS3Access (or \"default\")"
                ));
            }
        }
        Ok(IamRole(text.to_owned()))
    }

    /// Whether this is the cluster's default role.
    pub fn is_default(&self) -> bool {
        self.0 == "default"
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<IamRole> for String {
    fn from(r: IamRole) -> String {
        r.0
    }
}

impl<'de> serde::Deserialize<'de> for IamRole {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IamRole::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        let u = S3Url::parse("s3://my-bucket/in/usage.gz").unwrap();
        assert_eq!(u.bucket(), "my-bucket");
        assert_eq!(u.key(), "in/usage.gz");
        let p = S3Url::parse("s3://my-bucket/in").unwrap();
        assert_eq!(p.join("a.gz").to_string(), "s3://my-bucket/in/a.gz");
        assert_eq!(
            S3Url::parse("s3://bkt").unwrap().join("x").to_string(),
            "s3://bkt/x"
        );
        assert_eq!(p.with_suffix("_x").to_string(), "s3://my-bucket/in_x");
        for bad in [
            "http://b/k",
            "s3://B/k",
            "s3://ab/k",
            "s3://-ab/k",
            "s3://bkt/a\nb",
        ] {
            assert!(S3Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn iam_roles() {
        assert!(IamRole::parse("default").unwrap().is_default());
        let r = IamRole::parse("arn:aws:iam::123456789012:role/RedshiftS3Access").unwrap();
        assert_eq!(
            r.as_str(),
            "arn:aws:iam::123456789012:role/RedshiftS3Access"
        );
        assert!(
            IamRole::parse("arn:aws:iam::123456789012:role/a,arn:aws:iam::210987654321:role/b")
                .is_ok()
        );
        for bad in [
            "arn:aws:iam::12345:role/x",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:iam::123456789012:role/x'; drop",
            "",
        ] {
            assert!(IamRole::parse(bad).is_err(), "{bad}");
        }
    }
}
