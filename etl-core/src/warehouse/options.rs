//! Connection settings, following libpq's conventions: a `postgres://` URL, the `PG*` environment
//! variables, or a Secrets Manager secret's JSON as Redshift stores it.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// TLS policy, with libpq's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, without certificate checks (libpq's default).
    #[default]
    Prefer,
    /// TLS required; the certificate is not checked.
    Require,
    /// TLS required; the certificate chain is checked, not the host name.
    VerifyCa,
    /// TLS required; chain and host name are checked. The default for Redshift secrets.
    VerifyFull,
}

impl std::str::FromStr for SslMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" | "allow" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::invalid(
                    "sslmode",
                    format!("{other:?}: use disable, prefer, require, verify-ca or verify-full"),
                ));
            }
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        })
    }
}

/// A password. `Debug` and `Display` print `********`; serializing it (to a secret) is explicit.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(p: impl Into<String>) -> Self {
        Password(p.into())
    }

    /// The password itself: only for handing to the driver.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

/// Where and how to connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectOptions {
    /// Host name, IP address, or a directory holding a Unix socket (absolute path).
    pub host: String,
    /// Port (5432 for PostgreSQL, 5439 for Redshift).
    pub port: u16,
    /// User name.
    pub user: String,
    /// Password, if the server asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Password>,
    /// Database name.
    pub dbname: String,
    /// TLS policy.
    #[serde(default)]
    pub sslmode: SslMode,
    /// A PEM file of root certificates to trust in addition to the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_root_cert: Option<PathBuf>,
    /// Seconds to wait for a connection (per attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<u64>,
    /// `application_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_name: Option<String>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "postgres".into());
        ConnectOptions {
            host: "localhost".into(),
            port: 5432,
            dbname: user.clone(),
            user,
            password: None,
            sslmode: SslMode::Prefer,
            ssl_root_cert: None,
            connect_timeout: Some(10),
            application_name: Some("etl".into()),
        }
    }
}

fn bad_url(message: impl Into<String>) -> Error {
    Error::invalid("database URL", message)
}

impl ConnectOptions {
    /// Parses `postgres://user:password@host:port/dbname?sslmode=...` (also `postgresql://` and
    /// `redshift://`). Percent-encoded parts are decoded; `host=/path` in the query selects a Unix
    /// socket directory, as in libpq. Unset parts fall back to the `PG*` variables, then to libpq's
    /// defaults.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the part that is wrong (never echoing the password).
    pub fn from_url(url: &str) -> Result<Self> {
        let parsed = url::Url::parse(url).map_err(|e| {
            bad_url(format!(
                "{e}; expected postgres://user:password@host:port/dbname?sslmode=require"
            ))
        })?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql" | "redshift") {
            return Err(bad_url(format!(
                "scheme {:?} is not postgres:// (or postgresql://, redshift://)",
                parsed.scheme()
            )));
        }
        let mut o = Self::from_env_with(|k| std::env::var(k).ok())?;
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        if let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) {
            o.host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
        }
        if let Some(port) = parsed.port() {
            o.port = port;
        } else if parsed.scheme() == "redshift" {
            o.port = 5439;
        }
        if !parsed.username().is_empty() {
            o.user = decode(parsed.username());
        }
        if let Some(p) = parsed.password() {
            o.password = Some(Password::new(decode(p)));
        }
        let path = parsed.path().trim_start_matches('/');
        if !path.is_empty() {
            o.dbname = decode(path);
        }
        if parsed.scheme() == "redshift" && !url.contains("sslmode=") {
            o.sslmode = SslMode::VerifyFull;
        }
        for (k, v) in parsed.query_pairs() {
            match k.as_ref() {
                "sslmode" => o.sslmode = v.parse()?,
                "host" => o.host = v.into_owned(),
                "port" => {
                    o.port = v
                        .parse()
                        .map_err(|_| bad_url(format!("port {v:?} is not a number")))?
                }
                "user" => o.user = v.into_owned(),
                "password" => o.password = Some(Password::new(v.into_owned())),
                "dbname" => o.dbname = v.into_owned(),
                "sslrootcert" => o.ssl_root_cert = Some(PathBuf::from(v.as_ref())),
                "connect_timeout" => {
                    o.connect_timeout = Some(v.parse().map_err(|_| {
                        bad_url(format!("connect_timeout {v:?} is not a number of seconds"))
                    })?)
                }
                "application_name" => o.application_name = Some(v.into_owned()),
                other => {
                    return Err(bad_url(format!(
                        "unsupported parameter {other:?}; supported: sslmode, host, port, user, \
                         password, dbname, sslrootcert, connect_timeout, application_name"
                    )));
                }
            }
        }
        Ok(o)
    }

    /// Reads the libpq variables: PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE,
    /// PGSSLROOTCERT, PGCONNECT_TIMEOUT, PGAPPNAME.
    ///
    /// # Errors
    /// When PGPORT, PGSSLMODE or PGCONNECT_TIMEOUT is malformed.
    pub fn from_env() -> Result<Self> {
        Self::from_env_with(|k| std::env::var(k).ok())
    }

    /// [`ConnectOptions::from_env`] over any variable lookup (for tests and embedding).
    ///
    /// # Errors
    /// When PGPORT, PGSSLMODE or PGCONNECT_TIMEOUT is malformed.
    pub fn from_env_with(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut o = ConnectOptions::default();
        let var = |k: &str| var(k).filter(|v| !v.is_empty());
        if let Some(h) = var("PGHOST") {
            o.host = h;
        }
        if let Some(p) = var("PGPORT") {
            o.port = p
                .parse()
                .map_err(|_| Error::invalid("PGPORT", format!("{p:?} is not a port number")))?;
        }
        if let Some(u) = var("PGUSER") {
            o.dbname = u.clone();
            o.user = u;
        }
        if let Some(p) = var("PGPASSWORD") {
            o.password = Some(Password::new(p));
        }
        if let Some(d) = var("PGDATABASE") {
            o.dbname = d;
        }
        if let Some(s) = var("PGSSLMODE") {
            o.sslmode = s.parse()?;
        }
        if let Some(c) = var("PGSSLROOTCERT") {
            o.ssl_root_cert = Some(c.into());
        }
        if let Some(t) = var("PGCONNECT_TIMEOUT") {
            o.connect_timeout = Some(t.parse().map_err(|_| {
                Error::invalid(
                    "PGCONNECT_TIMEOUT",
                    format!("{t:?} is not a number of seconds"),
                )
            })?);
        }
        if let Some(a) = var("PGAPPNAME") {
            o.application_name = Some(a);
        }
        Ok(o)
    }

    /// Reads a Secrets Manager secret's JSON as Redshift stores it: `username`, `password`, and
    /// optionally `host`, `port` (number or string), `dbname`. TLS defaults to `verify-full`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the missing or malformed field (never the password).
    pub fn from_secret_json(json: &str) -> Result<Self> {
        #[derive(Deserialize)]
        struct Secret {
            username: String,
            password: String,
            #[serde(default)]
            host: Option<String>,
            #[serde(default)]
            port: Option<serde_json::Value>,
            #[serde(default, alias = "dbName", alias = "database")]
            dbname: Option<String>,
        }
        let secret: Secret = serde_json::from_str(json).map_err(|e| {
            // serde_json's message names the field but not the value.
            Error::invalid(
                "secret",
                format!(
                    "{e}; expected {{\"username\", \"password\", \"host\", \"port\", \"dbname\"}}"
                ),
            )
        })?;
        let port = match secret.port {
            None => 5439,
            Some(serde_json::Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| Error::invalid("secret", format!("port {n} is out of range")))?,
            Some(serde_json::Value::String(s)) => s
                .parse()
                .map_err(|_| Error::invalid("secret", format!("port {s:?} is not a number")))?,
            Some(other) => {
                return Err(Error::invalid(
                    "secret",
                    format!("port {other} is not a number"),
                ));
            }
        };
        Ok(ConnectOptions {
            host: secret.host.unwrap_or_else(|| "localhost".into()),
            port,
            user: secret.username,
            password: Some(Password::new(secret.password)),
            dbname: secret.dbname.unwrap_or_else(|| "dev".into()),
            sslmode: SslMode::VerifyFull,
            ssl_root_cert: None,
            connect_timeout: Some(10),
            application_name: Some("etl".into()),
        })
    }

    /// Sets the host (builder style).
    pub fn with_host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// Sets the port.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Sets the TLS mode.
    pub fn with_sslmode(mut self, mode: SslMode) -> Self {
        self.sslmode = mode;
        self
    }

    /// Sets the database.
    pub fn with_dbname(mut self, dbname: impl Into<String>) -> Self {
        self.dbname = dbname.into();
        self
    }

    /// Sets the application name.
    pub fn with_application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = Some(name.into());
        self
    }

    /// `user@host:port/dbname`, for messages: never the password.
    pub fn target(&self) -> String {
        format!("{}@{}:{}/{}", self.user, self.host, self.port, self.dbname)
    }

    /// A URL psql accepts. Contains the password when there is one: print
    /// [`ConnectOptions::redacted_url`] instead.
    pub fn url(&self) -> String {
        self.url_with(self.password.as_ref().map(|p| p.expose()))
    }

    /// The URL with the password replaced by `********`.
    pub fn redacted_url(&self) -> String {
        self.url_with(self.password.as_ref().map(|_| "********"))
    }

    fn url_with(&self, password: Option<&str>) -> String {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let mut out = format!("postgres://{}", enc(&self.user));
        if let Some(p) = password {
            out.push(':');
            out.push_str(&enc(p));
        }
        let socket = self.host.starts_with('/');
        out.push('@');
        if !socket {
            out.push_str(&self.host);
        }
        out.push_str(&format!(
            ":{}/{}?sslmode={}",
            self.port,
            enc(&self.dbname),
            self.sslmode
        ));
        if socket {
            out.push_str("&host=");
            out.push_str(&enc(&self.host));
        }
        out
    }

    /// The tokio-postgres configuration. TLS verification is applied by the connector built in
    /// [`super::tls_connector`]; tokio-postgres only knows whether to ask for TLS.
    pub(crate) fn pg_config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname);
        if let Some(p) = &self.password {
            c.password(p.expose());
        }
        if let Some(t) = self.connect_timeout {
            c.connect_timeout(Duration::from_secs(t));
        }
        if let Some(a) = &self.application_name {
            c.application_name(a);
        }
        c.ssl_mode(match self.sslmode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        c.keepalives(true);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn url_parts_are_decoded() {
        let o = ConnectOptions::from_url(
            "postgres://an%40user:p%40ss%3Aw@db.example.com:5433/my%20db?sslmode=verify-full&application_name=x",
        )
        .unwrap();
        assert_eq!(o.user, "an@user");
        assert_eq!(o.password.as_ref().unwrap().expose(), "p@ss:w");
        assert_eq!(o.host, "db.example.com");
        assert_eq!(o.port, 5433);
        assert_eq!(o.dbname, "my db");
        assert_eq!(o.sslmode, SslMode::VerifyFull);
        assert_eq!(o.application_name.as_deref(), Some("x"));
    }

    #[test]
    fn unix_socket_and_redshift_scheme() {
        let o = ConnectOptions::from_url("postgres:///db?host=/tmp/sock&port=6000&user=u").unwrap();
        assert_eq!(o.host, "/tmp/sock");
        assert_eq!(o.port, 6000);
        let r = ConnectOptions::from_url(
            "redshift://u:p@cluster.abc.eu-west-1.redshift.amazonaws.com/dev",
        )
        .unwrap();
        assert_eq!(r.port, 5439);
        assert_eq!(
            r.sslmode,
            SslMode::VerifyFull,
            "TLS verified by default against Redshift"
        );
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, expect) in [
            ("mysql://x/y", "scheme \"mysql\""),
            ("postgres://h/db?sslmode=maybe", "\"maybe\": use disable"),
            ("postgres://h/db?port=abc", "port \"abc\""),
            (
                "postgres://h/db?frobnicate=1",
                "unsupported parameter \"frobnicate\"",
            ),
            ("not a url", "expected postgres://"),
        ] {
            let err = ConnectOptions::from_url(url).unwrap_err().to_string();
            assert!(err.contains(expect), "{url}: {err}");
        }
    }

    #[test]
    fn passwords_are_never_printed() {
        let o = ConnectOptions::from_url("postgres://u:hunter2@h/db").unwrap();
        let debug = format!("{o:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!o.target().contains("hunter2"));
        assert!(!o.redacted_url().contains("hunter2"));
        assert!(o.url().contains("hunter2"));
        let err = ConnectOptions::from_url("postgres://u:hunter2@h/db?sslmode=bad")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn libpq_variables() {
        let o = ConnectOptions::from_env_with(env(&[
            ("PGHOST", "10.0.0.1"),
            ("PGPORT", "5439"),
            ("PGUSER", "etl"),
            ("PGPASSWORD", "pw"),
            ("PGSSLMODE", "require"),
        ]))
        .unwrap();
        assert_eq!(o.host, "10.0.0.1");
        assert_eq!(o.port, 5439);
        assert_eq!(o.user, "etl");
        assert_eq!(
            o.dbname, "etl",
            "PGDATABASE defaults to the user, as in libpq"
        );
        assert_eq!(o.sslmode, SslMode::Require);
        let err = ConnectOptions::from_env_with(env(&[("PGPORT", "x")])).unwrap_err();
        assert!(err.to_string().contains("PGPORT"));
    }

    #[test]
    fn redshift_secret_json() {
        let o = ConnectOptions::from_secret_json(
            r#"{"username":"admin","password":"s3cr'et","engine":"redshift","host":"c.x.redshift.amazonaws.com","port":"5439","dbname":"dev","dbClusterIdentifier":"c"}"#,
        );
        // Unknown fields (engine, dbClusterIdentifier) are tolerated: Redshift secrets carry them.
        let o = o.unwrap();
        assert_eq!(o.port, 5439);
        assert_eq!(o.sslmode, SslMode::VerifyFull);
        assert_eq!(o.password.unwrap().expose(), "s3cr'et");
        let err = ConnectOptions::from_secret_json(r#"{"username":"a"}"#).unwrap_err();
        assert!(err.to_string().contains("password"), "{err}");
        let url =
            ConnectOptions::from_secret_json(r#"{"username":"a","password":"p","port":5432}"#)
                .unwrap()
                .url();
        assert!(
            url.starts_with("postgres://a:p@localhost:5432/dev"),
            "{url}"
        );
    }
}
