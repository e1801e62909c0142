//! What a function keeps between invocations of one container: its settings, the AWS clients,
//! the warehouse credentials and connection pool — each built on first use by the handler that
//! needs it (a stack-status function never reads the secret, nor connects anywhere), then reused.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use etl_core::aws::secrets::Secrets;
use etl_core::aws::stack::Stacks;
use etl_core::sql::{IamRole, S3Url};
use etl_core::track::Submitted;
use etl_core::warehouse::{Retry, SslMode, Warehouse};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::error::HandlerError;

/// The functions' settings: the environment variables `cfn/initial.yaml` sets (`asl/README.md`,
/// "Environment variables"), each read only by the handlers that need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `ETL_PROJECT`: the prefix of every name.
    pub project: Option<String>,
    /// `ETL_SECRET_ARN`: the master credentials.
    pub secret_arn: Option<String>,
    /// `ETL_KMS_KEY_ARN`.
    pub kms_key_arn: Option<String>,
    /// `ETL_S3_ROLE_ARN`: the role Redshift assumes for COPY and UNLOAD.
    pub s3_role_arn: Option<String>,
    /// `ETL_CFN_ROLE_ARN`: the CloudFormation service role of the Redshift stack (`RoleARN`).
    pub cfn_role_arn: Option<String>,
    /// `ETL_REDSHIFT_TEMPLATE_URL`.
    pub template_url: Option<String>,
    /// `ETL_SUBNET_GROUP`.
    pub subnet_group: Option<String>,
    /// `ETL_REDSHIFT_SG`.
    pub redshift_sg: Option<String>,
    /// `ETL_NODE_TYPE`.
    pub node_type: Option<String>,
    /// `ETL_NUMBER_OF_NODES`.
    pub number_of_nodes: Option<String>,
    /// `ETL_DATABASE`: the database to connect to (else the secret's `dbname`, else `dev`).
    pub database: Option<String>,
    /// `ETL_RUNS_URL`: where runs write their files.
    pub runs_url: Option<String>,
    /// `PGSSLMODE` (libpq's variable): `verify-full` unless set; the tests' PostgreSQL has no TLS.
    pub sslmode: Option<String>,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Self {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// Reads settings through `var` (tests pass a map).
    pub fn from_env_with(var: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| var(name).filter(|v| !v.is_empty());
        Settings {
            project: get("ETL_PROJECT"),
            secret_arn: get("ETL_SECRET_ARN"),
            kms_key_arn: get("ETL_KMS_KEY_ARN"),
            s3_role_arn: get("ETL_S3_ROLE_ARN"),
            cfn_role_arn: get("ETL_CFN_ROLE_ARN"),
            template_url: get("ETL_REDSHIFT_TEMPLATE_URL"),
            subnet_group: get("ETL_SUBNET_GROUP"),
            redshift_sg: get("ETL_REDSHIFT_SG"),
            node_type: get("ETL_NODE_TYPE"),
            number_of_nodes: get("ETL_NUMBER_OF_NODES"),
            database: get("ETL_DATABASE"),
            runs_url: get("ETL_RUNS_URL"),
            sslmode: get("PGSSLMODE"),
        }
    }

    /// A required setting.
    ///
    /// # Errors
    /// `EtlInternal` naming the variable: the function was deployed without it.
    pub fn require<'a>(
        &self,
        value: &'a Option<String>,
        variable: &str,
    ) -> Result<&'a str, HandlerError> {
        value.as_deref().ok_or_else(|| {
            HandlerError::internal(format!(
                "the function's environment lacks {variable} (cfn/initial.yaml sets it on every function)"
            ))
        })
    }

    /// `ETL_RUNS_URL` as an S3 URL (`None` when unset).
    ///
    /// # Errors
    /// `EtlInternal` when it is not an `s3://` URL.
    pub fn runs_url(&self) -> Result<Option<S3Url>, HandlerError> {
        self.runs_url
            .as_deref()
            .map(|u| {
                let u = if u.ends_with('/') {
                    u.to_owned()
                } else {
                    format!("{u}/")
                };
                S3Url::parse(&u).map_err(|e| HandlerError::internal(format!("ETL_RUNS_URL: {e}")))
            })
            .transpose()
    }

    /// `ETL_S3_ROLE_ARN` as an IAM role (`None` when unset).
    ///
    /// # Errors
    /// `EtlInternal` when it is not a role ARN.
    pub fn s3_role(&self) -> Result<Option<IamRole>, HandlerError> {
        self.s3_role_arn
            .as_deref()
            .map(|r| {
                IamRole::parse(r)
                    .map_err(|e| HandlerError::internal(format!("ETL_S3_ROLE_ARN: {e}")))
            })
            .transpose()
    }
}

/// Where the warehouse listens: the `warehouse` of the events, `etl-stack-outputs`' result.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarehouseAddress {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// A container's shared state.
pub struct Resources {
    settings: Settings,
    secrets: OnceCell<Secrets>,
    stacks: OnceCell<Stacks>,
    warehouses: tokio::sync::Mutex<HashMap<WarehouseAddress, Warehouse>>,
    in_flight: Mutex<Vec<(Warehouse, Submitted)>>,
}

impl std::fmt::Debug for Resources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resources")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// How long a function tries to reach the warehouse before it reports `EtlRetryable` (the state
/// machine retries with backoff, within the functions' short timeouts).
const CONNECT_RETRY: Duration = Duration::from_secs(20);

impl Resources {
    /// Resources over `settings`; nothing is built yet.
    pub fn new(settings: Settings) -> Self {
        Resources {
            settings,
            secrets: OnceCell::new(),
            stacks: OnceCell::new(),
            warehouses: tokio::sync::Mutex::new(HashMap::new()),
            in_flight: Mutex::new(Vec::new()),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The CloudFormation client.
    pub async fn stacks(&self) -> &Stacks {
        self.stacks
            .get_or_init(|| async { Stacks::new(etl_core::aws::config().await) })
            .await
    }

    /// The Secrets Manager client (with its cache).
    pub async fn secrets(&self) -> &Secrets {
        self.secrets
            .get_or_init(|| async { Secrets::new(etl_core::aws::config().await) })
            .await
    }

    /// A pool of connections to the warehouse at `address`, with the credentials of
    /// `ETL_SECRET_ARN` (read once per container), TLS as `PGSSLMODE` says (`verify-full` by
    /// default).
    ///
    /// # Errors
    /// `EtlInternal` without `ETL_SECRET_ARN`; the secret's errors; `EtlRetryable` when the
    /// warehouse cannot be reached yet, `EtlQueryFailed` when it refuses the credentials (the cached
    /// secret is dropped then, in case it was rotated).
    pub async fn warehouse(&self, address: &WarehouseAddress) -> Result<Warehouse, HandlerError> {
        let mut pools = self.warehouses.lock().await;
        if let Some(w) = pools.get(address) {
            return Ok(w.clone());
        }
        let arn = self
            .settings
            .require(&self.settings.secret_arn, "ETL_SECRET_ARN")?;
        let mut options = self
            .secrets()
            .await
            .connect_options(arn)
            .await?
            .with_host(&address.host)
            .with_port(address.port)
            .with_sslmode(SslMode::VerifyFull)
            .with_application_name("etl-lambda");
        if let Some(mode) = &self.settings.sslmode {
            let mode: SslMode = mode
                .parse()
                .map_err(|e| HandlerError::internal(format!("PGSSLMODE: {e}")))?;
            options = options.with_sslmode(mode);
        }
        if let Some(db) = &self.settings.database {
            options = options.with_dbname(db);
        }
        let warehouse =
            match Warehouse::connect_with(options, 2, Retry::for_up_to(CONNECT_RETRY)).await {
                Ok(w) => w,
                Err(e) => {
                    if matches!(e.sqlstate(), Some("28P01" | "28000")) {
                        self.secrets().await.forget(arn);
                    }
                    return Err(e.into());
                }
            };
        pools.insert(address.clone(), warehouse.clone());
        Ok(warehouse)
    }

    /// Keeps a submitted statement's driver: the local invoke path waits for it before the process
    /// exits (on Lambda, the frozen container keeps the connection, as a live process would).
    pub fn keep(&self, warehouse: &Warehouse, submitted: Submitted) {
        self.in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((warehouse.clone(), submitted));
    }

    /// Waits for every kept statement and journals how each ended (a failure's SQLSTATE and
    /// message, which a poller alone cannot learn on PostgreSQL).
    pub async fn settle(&self, only_finished: bool) {
        let kept: Vec<(Warehouse, Submitted)> = {
            let mut all = self
                .in_flight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if only_finished {
                let (done, running): (Vec<_>, Vec<_>) =
                    all.drain(..).partition(|(_, s)| s.is_finished());
                *all = running;
                done
            } else {
                all.drain(..).collect()
            }
        };
        for (warehouse, submitted) in kept {
            let step = submitted.handle.step_id.clone();
            match submitted.finish(&warehouse).await {
                Ok(rows) => tracing::info!(step, rows, "statement finished"),
                Err(e) => {
                    tracing::warn!(step, error = %etl_core::journal::error_text(&e), "statement failed")
                }
            }
        }
    }
}
