//! The on-demand Redshift stack's lifecycle in CloudFormation: status, create (idempotent, with a
//! `ClientRequestToken`), reuse or recreate, outputs, delete.
//!
//! CloudFormation's two dozen stack statuses are mapped to the few the state machine acts on
//! ([`StackStatus`], as `asl/README.md` lists them); a failed stack carries the reason of its first
//! failed resource, from the stack events, which says more than the stack's own "The following
//! resource(s) failed to create".
//!
//! ```no_run
//! # async fn demo() -> etl_core::Result<()> {
//! use etl_core::aws::stack::{CreateRequest, Stacks, Template};
//! use etl_core::job::IfExists;
//! let stacks = Stacks::new(etl_core::aws::config().await);
//! let request = CreateRequest::new("etl-redshift", Template::Url("https://b.s3.eu-west-1.amazonaws.com/p/cfn/redshift.yaml".into()))
//!     .with_parameter("NumberOfNodes", "1")
//!     .with_tag("etl:run-id", "run-1")
//!     .with_client_request_token(etl_core::aws::stack::request_token("create", "run-1"));
//! let created = stacks.create_or_reuse(&request, IfExists::Reuse, ("etl:run-id", "run-1")).await?;
//! let endpoint = stacks.endpoint("etl-redshift").await?;
//! # Ok(()) }
//! ```

use std::fmt;

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::operation::create_stack::CreateStackError;
use aws_sdk_cloudformation::types::{Parameter, ResourceStatus, Tag};

use super::{SdkConfig, code_and_message, sdk_error};
use crate::error::{Error, Result};
use crate::job::IfExists;

/// Where a stack stands, in the terms the state machine acts on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "status")]
pub enum StackStatus {
    /// No such stack.
    NotFound,
    /// `CREATE_IN_PROGRESS`, `REVIEW_IN_PROGRESS`.
    Creating,
    /// `CREATE_COMPLETE`, `UPDATE_COMPLETE`, `UPDATE_ROLLBACK_COMPLETE`, `IMPORT_COMPLETE`: usable.
    Ready,
    /// An update or import in progress (or cleaning up after one).
    Updating,
    /// `DELETE_IN_PROGRESS`.
    Deleting,
    /// `ROLLBACK_IN_PROGRESS`, `IMPORT_ROLLBACK_IN_PROGRESS`: a create (or import) failed and
    /// CloudFormation is deleting what it had built — for a cluster, as long as a deletion takes.
    /// It refuses `DeleteStack` until the rollback ends (then `ROLLBACK_COMPLETE`, [`Failed`]).
    ///
    /// [`Failed`]: StackStatus::Failed
    RollingBack,
    /// `DELETE_COMPLETE` (only seen when a stack is described by its id).
    Deleted,
    /// Failed: `CREATE_FAILED`, `ROLLBACK_COMPLETE`, `ROLLBACK_FAILED`, `DELETE_FAILED`,
    /// `UPDATE_FAILED`, `UPDATE_ROLLBACK_FAILED`, `IMPORT_ROLLBACK_COMPLETE`,
    /// `IMPORT_ROLLBACK_FAILED`, or a status this version does not know.
    Failed {
        /// Why: the first failed resource's reason, else the stack's status reason, else the status.
        reason: String,
    },
}

impl StackStatus {
    /// Maps a CloudFormation status (`CREATE_COMPLETE`, ...) as `asl/README.md` specifies.
    /// `reason` is used for the failed statuses (the status itself when `None`).
    pub fn from_cfn(status: &str, reason: Option<&str>) -> StackStatus {
        let failed = |what: &str| StackStatus::Failed {
            reason: match reason {
                Some(r) if !r.is_empty() => format!("{status}: {r}"),
                _ => what.to_owned(),
            },
        };
        match status {
            "CREATE_IN_PROGRESS" | "REVIEW_IN_PROGRESS" => StackStatus::Creating,
            "CREATE_COMPLETE"
            | "UPDATE_COMPLETE"
            | "UPDATE_ROLLBACK_COMPLETE"
            | "IMPORT_COMPLETE" => StackStatus::Ready,
            "UPDATE_IN_PROGRESS"
            | "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"
            | "UPDATE_ROLLBACK_IN_PROGRESS"
            | "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"
            | "IMPORT_IN_PROGRESS" => StackStatus::Updating,
            "DELETE_IN_PROGRESS" => StackStatus::Deleting,
            "DELETE_COMPLETE" => StackStatus::Deleted,
            "ROLLBACK_IN_PROGRESS" | "IMPORT_ROLLBACK_IN_PROGRESS" => StackStatus::RollingBack,
            "CREATE_FAILED"
            | "ROLLBACK_COMPLETE"
            | "ROLLBACK_FAILED"
            | "DELETE_FAILED"
            | "UPDATE_FAILED"
            | "UPDATE_ROLLBACK_FAILED" => failed(status),
            s if s.starts_with("IMPORT_ROLLBACK_") => failed(status),
            other => failed(&format!("unexpected CloudFormation status {other}")),
        }
    }

    /// The name the state machine compares: `NotFound`, `Creating`, `Ready`, ...
    pub fn name(&self) -> &'static str {
        match self {
            StackStatus::NotFound => "NotFound",
            StackStatus::Creating => "Creating",
            StackStatus::Ready => "Ready",
            StackStatus::Updating => "Updating",
            StackStatus::Deleting => "Deleting",
            StackStatus::Deleted => "Deleted",
            StackStatus::RollingBack => "RollingBack",
            StackStatus::Failed { .. } => "Failed",
        }
    }

    /// The failure reason, for [`StackStatus::Failed`].
    pub fn reason(&self) -> Option<&str> {
        match self {
            StackStatus::Failed { reason } => Some(reason),
            _ => None,
        }
    }
}

impl fmt::Display for StackStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StackStatus::Failed { reason } => write!(f, "Failed ({reason})"),
            other => f.write_str(other.name()),
        }
    }
}

/// What to do about an existing stack before using it — the state machine's `CheckExistingStack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Create it (it does not exist).
    Create,
    /// Use it as it is.
    Use,
    /// Wait for it to finish creating or updating, then use it.
    WaitThenUse,
    /// Wait for its deletion to finish, then create it.
    WaitThenCreate,
    /// Delete it, wait, then create it.
    DeleteThenCreate,
}

/// Decides what to do with a stack in `status` when the job says `if_exists`: a failed stack is
/// always deleted and created again; `recreate` deletes a usable one too.
pub fn decide(status: &StackStatus, if_exists: IfExists) -> Action {
    match (status, if_exists) {
        (StackStatus::NotFound | StackStatus::Deleted, _) => Action::Create,
        (StackStatus::Deleting, _) => Action::WaitThenCreate,
        (StackStatus::Failed { .. } | StackStatus::RollingBack, _) => Action::DeleteThenCreate,
        (
            StackStatus::Ready | StackStatus::Creating | StackStatus::Updating,
            IfExists::Recreate,
        ) => Action::DeleteThenCreate,
        (StackStatus::Ready, IfExists::Reuse) => Action::Use,
        (StackStatus::Creating | StackStatus::Updating, IfExists::Reuse) => Action::WaitThenUse,
    }
}

/// The template of a new stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Template {
    /// `TemplateURL`: an `https://` URL of an S3 object.
    Url(String),
    /// `TemplateBody`: the template itself (up to 51,200 bytes).
    Body(String),
}

/// A `CreateStack` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    /// Stack name.
    pub name: String,
    /// Its template.
    pub template: Template,
    /// Parameters, `(key, value)`.
    pub parameters: Vec<(String, String)>,
    /// Tags, `(key, value)`.
    pub tags: Vec<(String, String)>,
    /// Makes a retried request the same request ([`request_token`]).
    pub client_request_token: Option<String>,
    /// `TimeoutInMinutes`.
    pub timeout_minutes: Option<i32>,
    /// `RoleARN`: the service role CloudFormation uses for every operation on the stack, its
    /// rollback and deletion included (the permanent stack's `RedshiftStackRole`), instead of the
    /// caller's permissions
    /// (<https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-iam-servicerole.html>).
    pub role_arn: Option<String>,
}

impl CreateRequest {
    /// A request for stack `name` from `template`, without parameters or tags.
    pub fn new(name: impl Into<String>, template: Template) -> Self {
        CreateRequest {
            name: name.into(),
            template,
            parameters: Vec::new(),
            tags: Vec::new(),
            client_request_token: None,
            timeout_minutes: None,
            role_arn: None,
        }
    }

    /// Sets the service role (`RoleARN`) CloudFormation creates, updates and deletes the stack with.
    pub fn with_role_arn(mut self, arn: impl Into<String>) -> Self {
        self.role_arn = Some(arn.into());
        self
    }

    /// Adds a parameter.
    pub fn with_parameter(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.parameters.push((key.into(), value.into()));
        self
    }

    /// Adds a tag.
    pub fn with_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push((key.into(), value.into()));
        self
    }

    /// Sets the `ClientRequestToken`.
    pub fn with_client_request_token(mut self, token: impl Into<String>) -> Self {
        self.client_request_token = Some(token.into());
        self
    }

    /// Sets `TimeoutInMinutes`.
    pub fn with_timeout_minutes(mut self, minutes: i32) -> Self {
        self.timeout_minutes = Some(minutes);
        self
    }
}

/// A `ClientRequestToken` derived from a run id: `<purpose>-<run id>` cut to CloudFormation's rules
/// (letters, digits and `-`, at most 128), with a hash of the exact run id, so two run ids that
/// differ only in characters the token cannot hold still get different tokens.
pub fn request_token(purpose: &str, run_id: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in purpose.bytes().chain([0]).chain(run_id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect()
    };
    let mut token = format!("etl-{}-{}", clean(purpose), clean(run_id));
    token.truncate(128 - 17);
    token.push_str(&format!("-{h:016x}"));
    token
}

/// Checks a Redshift stack name: it must start with `<project>-redshift` (the functions' IAM policy
/// allows no other), and, being the cluster identifier too, have 1 to 63 lower-case letters,
/// digits and single hyphens, starting with a letter and not ending with a hyphen.
///
/// # Errors
/// [`Error::InvalidInput`] naming the rule broken.
pub fn check_stack_name(name: &str, project: &str) -> Result<()> {
    let prefix = format!("{project}-redshift");
    let invalid = |why: String| Error::invalid("stack name", format!("{name:?} {why}"));
    if !name.starts_with(&prefix) {
        return Err(invalid(format!("must start with {prefix:?}")));
    }
    let valid_identifier = (1..=63).contains(&name.len())
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.ends_with('-')
        && !name.contains("--");
    if !valid_identifier {
        return Err(invalid(
            "is not a valid Redshift cluster identifier: 1 to 63 lower-case letters, digits and single \
             hyphens, starting with a letter and not ending with a hyphen"
                .into(),
        ));
    }
    Ok(())
}

/// A described stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    /// Its name.
    pub name: String,
    /// Its id (ARN).
    pub id: Option<String>,
    /// CloudFormation's status, e.g. `CREATE_COMPLETE`.
    pub cfn_status: String,
    /// `StackStatusReason`.
    pub status_reason: Option<String>,
    /// Its tags, `(key, value)`.
    pub tags: Vec<(String, String)>,
    /// Its outputs, `(key, value)`.
    pub outputs: Vec<(String, String)>,
}

impl Stack {
    /// The status as the state machine sees it (a failure's reason is the stack's own here;
    /// [`Stacks::status`] looks for the first failed resource).
    pub fn status(&self) -> StackStatus {
        StackStatus::from_cfn(&self.cfn_status, self.status_reason.as_deref())
    }

    /// A tag's value.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// An output's value.
    pub fn output(&self, key: &str) -> Option<&str> {
        self.outputs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The cluster's endpoint from the outputs `EndpointAddress` and `EndpointPort`.
    ///
    /// # Errors
    /// [`Error::StackFailed`] when an output is missing or the port is not a port number.
    pub fn endpoint(&self) -> Result<Endpoint> {
        let failed = |reason: String| Error::StackFailed {
            stack: self.name.clone(),
            status: self.cfn_status.clone(),
            reason,
        };
        let host = self
            .output(OUTPUT_ADDRESS)
            .filter(|h| !h.is_empty())
            .ok_or_else(|| failed(format!("the stack has no output {OUTPUT_ADDRESS}")))?;
        let port = self
            .output(OUTPUT_PORT)
            .ok_or_else(|| failed(format!("the stack has no output {OUTPUT_PORT}")))?;
        let port = port.trim().parse::<u16>().map_err(|_| {
            failed(format!(
                "output {OUTPUT_PORT} {port:?} is not a port number"
            ))
        })?;
        Ok(Endpoint {
            host: host.to_owned(),
            port,
        })
    }
}

/// The stack output holding the cluster's host name.
pub const OUTPUT_ADDRESS: &str = "EndpointAddress";
/// The stack output holding the cluster's port.
pub const OUTPUT_PORT: &str = "EndpointPort";

/// Where the cluster listens.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// What a create did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// This request created it (or a retry of this request already had).
    Created,
    /// It existed, created by someone else, and is reused.
    Reused,
}

/// A CloudFormation client.
#[derive(Clone, Debug)]
pub struct Stacks {
    client: Client,
}

fn is_missing(code: Option<&str>, message: Option<&str>) -> bool {
    code == Some("ValidationError") && message.is_some_and(|m| m.contains("does not exist"))
}

impl Stacks {
    /// A client from the shared configuration.
    pub fn new(config: &SdkConfig) -> Self {
        Stacks {
            client: Client::new(config),
        }
    }

    /// Describes stack `name` (a name or a stack id); `None` when it does not exist.
    ///
    /// # Errors
    /// [`Error::Aws`] (retryable when throttled).
    pub async fn describe(&self, name: &str) -> Result<Option<Stack>> {
        let out = match self.client.describe_stacks().stack_name(name).send().await {
            Ok(out) => out,
            Err(e) => {
                let (code, message) = code_and_message(&e);
                if is_missing(code, message) {
                    return Ok(None);
                }
                return Err(sdk_error("CloudFormation.DescribeStacks", e));
            }
        };
        let Some(s) = out.stacks().first() else {
            return Ok(None);
        };
        Ok(Some(Stack {
            name: s.stack_name().unwrap_or(name).to_owned(),
            id: s.stack_id().map(str::to_owned),
            cfn_status: s
                .stack_status()
                .map(|st| st.as_str().to_owned())
                .unwrap_or_default(),
            status_reason: s.stack_status_reason().map(str::to_owned),
            tags: s
                .tags()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or_default().to_owned(),
                        t.value().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
            outputs: s
                .outputs()
                .iter()
                .map(|o| {
                    (
                        o.output_key().unwrap_or_default().to_owned(),
                        o.output_value().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
        }))
    }

    /// The stack's status; a failed stack's reason is its first failed resource's.
    ///
    /// # Errors
    /// [`Error::Aws`] (retryable when throttled).
    pub async fn status(&self, name: &str) -> Result<StackStatus> {
        let Some(stack) = self.describe(name).await? else {
            return Ok(StackStatus::NotFound);
        };
        let status = stack.status();
        if let StackStatus::Failed { .. } = status {
            let first = self
                .first_failure(stack.id.as_deref().unwrap_or(name))
                .await?;
            if let Some(reason) = first {
                return Ok(StackStatus::Failed {
                    reason: format!("{}: {reason}", stack.cfn_status),
                });
            }
        }
        Ok(status)
    }

    /// The reason of the earliest failed resource in the stack's events (`<logical id>: <reason>`),
    /// skipping the stack's own summary events and the cancellations that follow a failure.
    ///
    /// # Errors
    /// [`Error::Aws`].
    pub async fn first_failure(&self, name: &str) -> Result<Option<String>> {
        let mut pages = self
            .client
            .describe_stack_events()
            .stack_name(name)
            .into_paginator()
            .send();
        let mut earliest = None;
        let mut fallback = None;
        // Events come newest first: the last failure seen is the earliest one.
        let mut page_count = 0;
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    let (code, message) = code_and_message(&e);
                    if is_missing(code, message) {
                        return Ok(None);
                    }
                    return Err(sdk_error("CloudFormation.DescribeStackEvents", e));
                }
            };
            for event in page.stack_events() {
                let failed = matches!(
                    event.resource_status(),
                    Some(
                        ResourceStatus::CreateFailed
                            | ResourceStatus::DeleteFailed
                            | ResourceStatus::UpdateFailed
                            | ResourceStatus::ImportFailed
                            | ResourceStatus::RollbackFailed
                    )
                );
                if !failed {
                    continue;
                }
                let reason = event.resource_status_reason().unwrap_or("no reason given");
                let text = format!("{}: {reason}", event.logical_resource_id().unwrap_or("?"));
                let summary = event.resource_type() == Some("AWS::CloudFormation::Stack");
                if summary {
                    fallback = Some(text);
                } else if !reason.contains("Resource creation cancelled") {
                    earliest = Some(text);
                }
            }
            page_count += 1;
            if page_count >= 10 {
                break;
            }
        }
        Ok(earliest.or(fallback))
    }

    /// Starts creating a stack. Returns `false` when a stack of that name already exists (and
    /// this request did not create it: a retried request with the same token answers `true`).
    ///
    /// # Errors
    /// [`Error::Aws`] (retryable when throttled); [`Error::StackFailed`] when CloudFormation refuses
    /// the request (bad template or parameters, missing capability, quota).
    pub async fn create(&self, request: &CreateRequest) -> Result<bool> {
        let mut call = self
            .client
            .create_stack()
            .stack_name(&request.name)
            .set_client_request_token(request.client_request_token.clone())
            .set_timeout_in_minutes(request.timeout_minutes)
            .set_role_arn(request.role_arn.clone());
        call = match &request.template {
            Template::Url(url) => call.template_url(url),
            Template::Body(body) => call.template_body(body),
        };
        for (k, v) in &request.parameters {
            call = call.parameters(
                Parameter::builder()
                    .parameter_key(k)
                    .parameter_value(v)
                    .build(),
            );
        }
        for (k, v) in &request.tags {
            call = call.tags(Tag::builder().key(k).value(v).build());
        }
        match call.send().await {
            Ok(out) => {
                tracing::info!(stack = %request.name, id = out.stack_id().unwrap_or(""), "stack creation started");
                Ok(true)
            }
            Err(e) => {
                let refused = match e.as_service_error() {
                    Some(CreateStackError::AlreadyExistsException(_)) => return Ok(false),
                    Some(
                        CreateStackError::InsufficientCapabilitiesException(_)
                        | CreateStackError::LimitExceededException(_)
                        | CreateStackError::TokenAlreadyExistsException(_),
                    ) => true,
                    _ => code_and_message(&e).0 == Some("ValidationError"),
                };
                if refused {
                    let (code, message) = code_and_message(&e);
                    return Err(Error::StackFailed {
                        stack: request.name.clone(),
                        status: "not created (CreateStack refused it)".into(),
                        reason: format!(
                            "{}: {}",
                            code.unwrap_or("?"),
                            message.unwrap_or("no message")
                        ),
                    });
                }
                Err(sdk_error("CloudFormation.CreateStack", e))
            }
        }
    }

    /// Creates the stack, or decides about the existing one: one tagged `owner` (`(key, value)`,
    /// e.g. the run id) is this run's (a retried create) → [`Created::Created`]; otherwise
    /// `if_exists = reuse` reuses it when it is usable (ready, or still creating or updating) →
    /// [`Created::Reused`]; anything else is [`Error::StackFailed`].
    ///
    /// # Errors
    /// [`Error::StackFailed`] as above, or from [`Stacks::create`]; [`Error::Aws`].
    pub async fn create_or_reuse(
        &self,
        request: &CreateRequest,
        if_exists: IfExists,
        owner: (&str, &str),
    ) -> Result<Created> {
        if self.create(request).await? {
            return Ok(Created::Created);
        }
        let Some(stack) = self.describe(&request.name).await? else {
            // Gone between the two calls (a deletion finished): the caller may retry.
            return Err(Error::Aws {
                operation: "CloudFormation.CreateStack".into(),
                message: format!(
                    "stack {} existed and then disappeared; try again",
                    request.name
                ),
                retryable: true,
            });
        };
        if stack.tag(owner.0) == Some(owner.1) {
            return Ok(Created::Created);
        }
        let status = stack.status();
        match (if_exists, &status) {
            (
                IfExists::Reuse,
                StackStatus::Ready | StackStatus::Creating | StackStatus::Updating,
            ) => Ok(Created::Reused),
            _ => Err(Error::StackFailed {
                stack: request.name.clone(),
                status: stack.cfn_status.clone(),
                reason: format!(
                    "the stack already exists ({status}), created by {}; with if_exists = {} it cannot be used",
                    stack
                        .tag(owner.0)
                        .map_or_else(|| "someone else".to_owned(), |o| format!("{} {o}", owner.0)),
                    match if_exists {
                        IfExists::Reuse => "reuse",
                        IfExists::Recreate => "recreate",
                    }
                ),
            }),
        }
    }

    /// The cluster's endpoint from the stack's outputs.
    ///
    /// # Errors
    /// [`Error::StackFailed`] when the stack does not exist or lacks the outputs; [`Error::Aws`].
    pub async fn endpoint(&self, name: &str) -> Result<Endpoint> {
        match self.describe(name).await? {
            Some(stack) => stack.endpoint(),
            None => Err(Error::StackFailed {
                stack: name.to_owned(),
                status: "NotFound".into(),
                reason: "the stack does not exist".into(),
            }),
        }
    }

    /// Starts deleting the stack. Idempotent: a stack that does not exist (any more), or is being
    /// deleted, is a success. A stack in transition (an update or a rollback in progress) refuses
    /// deletion for a while: [`Error::Aws`] with `retryable`.
    ///
    /// # Errors
    /// [`Error::Aws`].
    pub async fn delete(&self, name: &str) -> Result<()> {
        let Some(stack) = self.describe(name).await? else {
            return Ok(());
        };
        match stack.cfn_status.as_str() {
            "DELETE_IN_PROGRESS" | "DELETE_COMPLETE" => return Ok(()),
            s if s.ends_with("_IN_PROGRESS")
                && s != "CREATE_IN_PROGRESS"
                && s != "REVIEW_IN_PROGRESS" =>
            {
                return Err(in_transition(name, s));
            }
            _ => {}
        }
        let target = stack.id.as_deref().unwrap_or(name);
        match self.client.delete_stack().stack_name(target).send().await {
            Ok(_) => {
                tracing::info!(stack = name, "stack deletion started");
                Ok(())
            }
            Err(e) => {
                let (code, message) = code_and_message(&e);
                if is_missing(code, message) {
                    return Ok(());
                }
                if code == Some("ValidationError")
                    && message.is_some_and(|m| {
                        m.contains("cannot be deleted") || m.contains("IN_PROGRESS")
                    })
                {
                    return Err(Error::Aws {
                        operation: "CloudFormation.DeleteStack".into(),
                        message: format!(
                            "stack {name} is in transition: {}",
                            message.unwrap_or("")
                        ),
                        retryable: true,
                    });
                }
                Err(sdk_error("CloudFormation.DeleteStack", e))
            }
        }
    }
}

fn in_transition(name: &str, status: &str) -> Error {
    Error::Aws {
        operation: "CloudFormation.DeleteStack".into(),
        message: format!(
            "stack {name} is {status} and cannot be deleted until that ends; try again"
        ),
        retryable: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_maps_as_the_contract_says() {
        let cases = [
            ("CREATE_IN_PROGRESS", "Creating"),
            ("REVIEW_IN_PROGRESS", "Creating"),
            ("CREATE_COMPLETE", "Ready"),
            ("UPDATE_COMPLETE", "Ready"),
            ("UPDATE_ROLLBACK_COMPLETE", "Ready"),
            ("IMPORT_COMPLETE", "Ready"),
            ("UPDATE_IN_PROGRESS", "Updating"),
            ("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "Updating"),
            ("UPDATE_ROLLBACK_IN_PROGRESS", "Updating"),
            ("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "Updating"),
            ("IMPORT_IN_PROGRESS", "Updating"),
            ("DELETE_IN_PROGRESS", "Deleting"),
            ("DELETE_COMPLETE", "Deleted"),
            ("CREATE_FAILED", "Failed"),
            ("ROLLBACK_IN_PROGRESS", "RollingBack"),
            ("ROLLBACK_COMPLETE", "Failed"),
            ("ROLLBACK_FAILED", "Failed"),
            ("DELETE_FAILED", "Failed"),
            ("UPDATE_FAILED", "Failed"),
            ("UPDATE_ROLLBACK_FAILED", "Failed"),
            ("IMPORT_ROLLBACK_IN_PROGRESS", "RollingBack"),
            ("IMPORT_ROLLBACK_FAILED", "Failed"),
            ("IMPORT_ROLLBACK_COMPLETE", "Failed"),
            ("SOMETHING_NEW", "Failed"),
        ];
        for (cfn, name) in cases {
            assert_eq!(StackStatus::from_cfn(cfn, None).name(), name, "{cfn}");
        }
        assert_eq!(
            StackStatus::from_cfn("ROLLBACK_COMPLETE", Some("Cluster: quota")).reason(),
            Some("ROLLBACK_COMPLETE: Cluster: quota")
        );
        assert_eq!(
            StackStatus::from_cfn("DELETE_FAILED", None).reason(),
            Some("DELETE_FAILED")
        );
    }

    #[test]
    fn status_serializes_as_the_state_machine_reads_it() {
        let json = |s: &StackStatus| serde_json::to_value(s).unwrap();
        assert_eq!(
            json(&StackStatus::Ready),
            serde_json::json!({"status": "Ready"})
        );
        assert_eq!(
            json(&StackStatus::Failed { reason: "x".into() }),
            serde_json::json!({"status": "Failed", "reason": "x"})
        );
    }

    #[test]
    fn decisions_follow_check_existing_stack() {
        use IfExists::{Recreate, Reuse};
        let failed = StackStatus::Failed { reason: "r".into() };
        assert_eq!(decide(&StackStatus::NotFound, Reuse), Action::Create);
        assert_eq!(decide(&StackStatus::Deleted, Recreate), Action::Create);
        assert_eq!(
            decide(&StackStatus::Deleting, Reuse),
            Action::WaitThenCreate
        );
        assert_eq!(decide(&failed, Reuse), Action::DeleteThenCreate);
        assert_eq!(decide(&StackStatus::Ready, Reuse), Action::Use);
        assert_eq!(
            decide(&StackStatus::Ready, Recreate),
            Action::DeleteThenCreate
        );
        assert_eq!(decide(&StackStatus::Creating, Reuse), Action::WaitThenUse);
        assert_eq!(
            decide(&StackStatus::Updating, Recreate),
            Action::DeleteThenCreate
        );
    }

    #[test]
    fn tokens_fit_cloudformation() {
        let t = request_token("create", "recommendations-2026:01.x_y");
        assert!(
            t.len() <= 128 && t.starts_with("etl-create-recommendations-2026-01-x-y-"),
            "{t}"
        );
        assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        assert_ne!(t, request_token("create", "recommendations-2026-01-x-y"));
        assert_eq!(t, request_token("create", "recommendations-2026:01.x_y"));
        assert!(request_token("create", &"x".repeat(300)).len() <= 128);
    }

    #[test]
    fn stack_names() {
        assert!(check_stack_name("etl-redshift", "etl").is_ok());
        assert!(check_stack_name("etl-redshift-2", "etl").is_ok());
        assert!(check_stack_name("other-redshift", "etl").is_err());
        assert!(check_stack_name("etl-redshift-", "etl").is_err());
        assert!(check_stack_name("etl-redshift--x", "etl").is_err());
        assert!(check_stack_name("etl-redshift-X", "etl").is_err());
        assert!(check_stack_name(&format!("etl-redshift-{}", "a".repeat(60)), "etl").is_err());
        let err = check_stack_name("x", "etl").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidJob);
    }

    #[test]
    fn endpoints_from_outputs() {
        let mut s = Stack {
            name: "etl-redshift".into(),
            id: None,
            cfn_status: "CREATE_COMPLETE".into(),
            status_reason: None,
            tags: vec![],
            outputs: vec![
                ("EndpointAddress".into(), "h.example".into()),
                ("EndpointPort".into(), "5439".into()),
            ],
        };
        assert_eq!(
            s.endpoint().unwrap(),
            Endpoint {
                host: "h.example".into(),
                port: 5439
            }
        );
        s.outputs.pop();
        assert_eq!(
            s.endpoint().unwrap_err().kind(),
            crate::ErrorKind::StackFailed
        );
    }
}
