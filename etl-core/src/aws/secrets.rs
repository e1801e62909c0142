//! The warehouse's credentials from a Secrets Manager secret.
//!
//! The secret is JSON: `{"username": ..., "password": ...}`, optionally with `host`, `port` and
//! `dbname` (what Redshift's own secrets carry; unknown fields are ignored). [`Secrets`] fetches
//! it once per ARN and keeps the resulting [`ConnectOptions`] for the life of the process (a
//! Lambda container): a warm invocation makes no Secrets Manager call. The secret's text is never
//! logged, never put in an error message, and the password only lives in [`ConnectOptions`],
//! whose `Debug` redacts it.
//!
//! The permanent stack's master secret holds only `username` and `password`; while a cluster
//! exists, the on-demand stack's `AWS::SecretsManager::SecretTargetAttachment` adds `host`, `port`,
//! `engine` and `dbname`, and deleting the stack removes them again
//! (<https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-secretsmanager-secrettargetattachment.html>).
//! [`Secrets::endpoint_options`] is for callers that have no other source of the address (`etl sql
//! --secret-id`): it refuses a secret without `host` instead of connecting to `localhost`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;

use super::{SdkConfig, code_and_message, sdk_error};
use crate::error::{Error, Result};
use crate::warehouse::ConnectOptions;

/// A Secrets Manager client with a per-ARN cache of connection settings.
#[derive(Clone, Debug)]
pub struct Secrets {
    client: Client,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
}

/// A secret's settings, and whether it said where the warehouse is.
#[derive(Clone, Debug)]
struct Cached {
    options: ConnectOptions,
    has_host: bool,
}

impl Secrets {
    /// A client from the shared configuration.
    pub fn new(config: &SdkConfig) -> Self {
        Secrets {
            client: Client::new(config),
            cache: Arc::default(),
        }
    }

    /// The connection settings in secret `arn` (from the cache after the first call). Host and port
    /// default to what the secret says (`localhost`, 5439 when it says nothing): callers that know
    /// the endpoint set it with [`ConnectOptions::with_host`] / [`ConnectOptions::with_port`].
    ///
    /// # Errors
    /// [`Error::Aws`] when the secret cannot be read (retryable when throttled or unreachable);
    /// [`Error::InvalidInput`] when it is not the expected JSON — the message names the fields,
    /// never their values.
    pub async fn connect_options(&self, arn: &str) -> Result<ConnectOptions> {
        Ok(self.read(arn).await?.options)
    }

    /// The connection settings in secret `arn`, which must say where the warehouse is (`host`, as
    /// the on-demand stack's secret attachment writes it): for callers with no other source of the
    /// address.
    ///
    /// # Errors
    /// As [`Secrets::connect_options`]; [`Error::InvalidInput`] when the secret has no `host`,
    /// saying why (no cluster is attached to it) and what to do.
    pub async fn endpoint_options(&self, arn: &str) -> Result<ConnectOptions> {
        let cached = self.read(arn).await?;
        if !cached.has_host {
            return Err(no_host(arn));
        }
        Ok(cached.options)
    }

    async fn read(&self, arn: &str) -> Result<Cached> {
        if let Some(cached) = self.cached(arn) {
            return Ok(cached);
        }
        let text = self.fetch(arn).await?;
        let options = parse_secret(arn, &text)?;
        let cached = Cached {
            options,
            has_host: secret_has_host(&text),
        };
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(arn.to_owned(), cached.clone());
        tracing::debug!(secret = arn, "read the warehouse credentials");
        Ok(cached)
    }

    /// Forgets the cached settings of `arn` (after a login failure: the secret may have rotated).
    pub fn forget(&self, arn: &str) {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(arn);
    }

    fn cached(&self, arn: &str) -> Option<Cached> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(arn)
            .cloned()
    }

    async fn fetch(&self, arn: &str) -> Result<String> {
        const OP: &str = "SecretsManager.GetSecretValue";
        let out = match self.client.get_secret_value().secret_id(arn).send().await {
            Ok(out) => out,
            Err(e) => {
                if let (Some(code), message) = code_and_message(&e)
                    && matches!(
                        e.as_service_error(),
                        Some(GetSecretValueError::ResourceNotFoundException(_))
                    )
                {
                    return Err(Error::Aws {
                        operation: OP.into(),
                        message: format!(
                            "{code}: secret {arn} not found ({})",
                            message.unwrap_or("")
                        ),
                        retryable: false,
                    });
                }
                return Err(sdk_error(OP, e));
            }
        };
        out.secret_string().map(str::to_owned).ok_or_else(|| Error::Aws {
            operation: OP.into(),
            message: format!("secret {arn} has no string value (a binary secret?): store the JSON as a string"),
            retryable: false,
        })
    }
}

/// Whether a secret's JSON names a host (a non-empty `host` string).
fn secret_has_host(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| {
            v.get("host")
                .and_then(|h| h.as_str())
                .map(|h| !h.trim().is_empty())
        })
        .unwrap_or(false)
}

fn no_host(arn: &str) -> Error {
    Error::invalid(
        "secret",
        format!(
            "{arn} has no \"host\": no cluster is attached to it. The on-demand Redshift stack's \
             SecretTargetAttachment adds host, port and dbname while its cluster exists and removes \
             them when the stack is deleted: start a cluster (etl start), or connect with \
             --database-url"
        ),
    )
}

/// Parses a secret's JSON into connection settings. Messages name the fields, never the values
/// (serde's own messages quote the offending value, which may be the password).
///
/// # Errors
/// [`Error::InvalidInput`].
pub fn parse_secret(arn: &str, text: &str) -> Result<ConnectOptions> {
    let invalid = |why: String| {
        Error::invalid(
            "secret",
            format!(
                "{arn}: {why}; expected JSON {{\"username\", \"password\", optional \"host\", \"port\", \"dbname\"}}"
            ),
        )
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|_| invalid("the secret string is not JSON".into()))?;
    let Some(object) = value.as_object() else {
        return Err(invalid("the secret is not a JSON object".into()));
    };
    for field in ["username", "password"] {
        match object.get(field) {
            Some(serde_json::Value::String(_)) => {}
            Some(_) => return Err(invalid(format!("\"{field}\" is not a string"))),
            None => return Err(invalid(format!("\"{field}\" is missing"))),
        }
    }
    for field in ["host", "dbname"] {
        if object
            .get(field)
            .is_some_and(|v| !v.is_string() && !v.is_null())
        {
            return Err(invalid(format!("\"{field}\" is not a string")));
        }
    }
    ConnectOptions::from_secret_json(text).map_err(|e| match e {
        // from_secret_json's port messages quote only the port.
        Error::InvalidInput { message, .. } if message.starts_with("port") => invalid(message),
        _ => invalid("it does not match".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:etl-AbCdEf";

    #[test]
    fn parses_the_secret() {
        let o = parse_secret(ARN, r#"{"username":"etladmin","password":"p'w","port":5432,"host":"h","dbname":"db","engine":"redshift"}"#).unwrap();
        assert_eq!(o.user, "etladmin");
        assert_eq!(o.password.as_ref().unwrap().expose(), "p'w");
        assert_eq!(
            (o.host.as_str(), o.port, o.dbname.as_str()),
            ("h", 5432, "db")
        );
        assert!(
            !format!("{o:?}").contains("p'w"),
            "Debug redacts the password"
        );
    }

    #[test]
    fn a_secret_says_whether_it_names_the_host() {
        assert!(secret_has_host(
            r#"{"username":"u","password":"p","host":"c.x.redshift.amazonaws.com"}"#
        ));
        for text in [
            r#"{"username":"u","password":"p"}"#,
            r#"{"username":"u","password":"p","host":""}"#,
            r#"{"username":"u","password":"p","host":null}"#,
        ] {
            assert!(!secret_has_host(text), "{text}");
        }
        let message = no_host(ARN).to_string();
        assert!(
            message.contains(ARN) && message.contains("SecretTargetAttachment"),
            "{message}"
        );
    }

    #[test]
    fn errors_never_quote_the_secret() {
        for text in [
            r#"{"username":"etladmin","password":55501234}"#,
            r#"{"username":"etladmin"}"#,
            r#"{"username":"etladmin","password":"55501234","host":55501234}"#,
            "55501234",
            "not json 55501234",
        ] {
            let err = parse_secret(ARN, text).unwrap_err();
            let message = err.to_string();
            assert!(!message.contains("55501234"), "{message}");
            assert!(message.contains(ARN), "{message}");
            assert_eq!(err.kind(), crate::ErrorKind::InvalidJob);
        }
    }
}
