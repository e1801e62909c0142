//! The stack functions: `etl-stack-status`, `etl-stack-create`, `etl-stack-outputs`,
//! `etl-stack-delete` (`asl/README.md`, "Functions").

use etl_core::aws::stack::{self, CreateRequest, Created, StackStatus, Template};
use etl_core::job::IfExists;
use serde::{Deserialize, Serialize};

use crate::error::HandlerError;
use crate::resources::{Resources, WarehouseAddress};

/// The tag that names the run that created a stack.
pub const RUN_ID_TAG: &str = "etl:run-id";

/// How long CloudFormation may take to create the stack before it rolls back.
pub const CREATE_TIMEOUT_MINUTES: i32 = 60;

/// The input of `etl-stack-status`, `etl-stack-outputs` and `etl-stack-delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackEvent {
    /// The Redshift stack's name.
    pub stack_name: String,
}

/// `etl-stack-create`'s `job`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRef {
    /// The manifest's S3 URL.
    pub manifest: String,
    /// The run id (the execution name).
    pub run_id: String,
}

/// The input of `etl-stack-create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEvent {
    /// The Redshift stack's name.
    pub stack_name: String,
    /// Reuse an existing stack, or (when one appeared meanwhile) fail.
    pub if_exists: IfExists,
    /// The run.
    pub job: JobRef,
}

/// The output of `etl-stack-create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOutput {
    /// The stack's name.
    pub stack_name: String,
    /// Whether this run created it (`false`: an existing stack is reused).
    pub created: bool,
}

/// The output of `etl-stack-delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteOutput {
    /// Always `true`: the deletion started, is under way, or the stack is gone.
    pub deleting: bool,
}

/// `etl-stack-status`: the stack's status as the state machine sees it, `{"status": ...,
/// "reason"?: ...}` (the reason of a failed stack is its first failed resource's).
///
/// # Errors
/// `EtlRetryable` when CloudFormation throttles or cannot be reached; `EtlInternal` otherwise.
pub async fn status(event: StackEvent, res: &Resources) -> Result<StackStatus, HandlerError> {
    let status = res.stacks().await.status(&event.stack_name).await?;
    tracing::info!(stack = %event.stack_name, %status, "stack status");
    Ok(status)
}

/// `etl-stack-create`: checks the name, then creates the stack from `ETL_REDSHIFT_TEMPLATE_URL`
/// with the permanent stack's values as parameters, tagged with the project and the run id, with a
/// `ClientRequestToken` derived from the run id. A stack that already exists is this run's when it
/// carries this run id (`created: true`, a retried call), is reused with `if_exists = reuse`
/// (`created: false`), and is `EtlStackFailed` otherwise.
///
/// # Errors
/// `EtlInvalidJob` for a bad stack name or run id; `EtlStackFailed` when CloudFormation refuses the
/// request or another run's stack is in the way; `EtlRetryable` when throttled; `EtlInternal` when
/// a setting is missing.
pub async fn create(event: CreateEvent, res: &Resources) -> Result<CreateOutput, HandlerError> {
    let s = res.settings();
    let project = s.require(&s.project, "ETL_PROJECT")?;
    stack::check_stack_name(&event.stack_name, project)?;
    etl_core::journal::check_run_id(&event.job.run_id)?;
    if !event.job.manifest.starts_with("s3://") {
        return Err(HandlerError::invalid(format!(
            "job.manifest {:?} must be an s3:// URL",
            event.job.manifest
        )));
    }
    let template = s.require(&s.template_url, "ETL_REDSHIFT_TEMPLATE_URL")?;
    let mut request = CreateRequest::new(&event.stack_name, Template::Url(template.to_owned()))
        .with_tag("project", project)
        .with_tag(RUN_ID_TAG, &event.job.run_id)
        .with_client_request_token(stack::request_token("create", &event.job.run_id))
        .with_timeout_minutes(CREATE_TIMEOUT_MINUTES)
        .with_parameter("ProjectName", project);
    for (parameter, value, variable) in [
        ("NodeType", &s.node_type, "ETL_NODE_TYPE"),
        ("NumberOfNodes", &s.number_of_nodes, "ETL_NUMBER_OF_NODES"),
        ("DatabaseName", &s.database, "ETL_DATABASE"),
        ("MasterSecretArn", &s.secret_arn, "ETL_SECRET_ARN"),
        ("KmsKeyArn", &s.kms_key_arn, "ETL_KMS_KEY_ARN"),
        ("S3RoleArn", &s.s3_role_arn, "ETL_S3_ROLE_ARN"),
        ("SubnetGroupName", &s.subnet_group, "ETL_SUBNET_GROUP"),
        ("SecurityGroupId", &s.redshift_sg, "ETL_REDSHIFT_SG"),
    ] {
        request = request.with_parameter(parameter, s.require(value, variable)?);
    }
    // CloudFormation, not this function, holds the Redshift permissions (cfn/README.md).
    if let Some(role) = &s.cfn_role_arn {
        request = request.with_role_arn(role);
    }
    let created = res
        .stacks()
        .await
        .create_or_reuse(&request, event.if_exists, (RUN_ID_TAG, &event.job.run_id))
        .await?;
    tracing::info!(stack = %event.stack_name, run = %event.job.run_id, ?created, "stack create");
    Ok(CreateOutput {
        stack_name: event.stack_name,
        created: created == Created::Created,
    })
}

/// `etl-stack-outputs`: the cluster's endpoint from the stack's outputs `EndpointAddress` and
/// `EndpointPort`.
///
/// # Errors
/// `EtlStackFailed` when the stack or an output is missing; `EtlRetryable` when throttled.
pub async fn outputs(event: StackEvent, res: &Resources) -> Result<WarehouseAddress, HandlerError> {
    let endpoint = res.stacks().await.endpoint(&event.stack_name).await?;
    Ok(WarehouseAddress {
        host: endpoint.host,
        port: endpoint.port,
    })
}

/// `etl-stack-delete`: starts deleting the stack; a stack that does not exist (any more) is a
/// success.
///
/// # Errors
/// `EtlRetryable` while the stack is in transition (an update or rollback in progress) or when
/// throttled; `EtlInternal` otherwise.
pub async fn delete(event: StackEvent, res: &Resources) -> Result<DeleteOutput, HandlerError> {
    res.stacks().await.delete(&event.stack_name).await?;
    Ok(DeleteOutput { deleting: true })
}
