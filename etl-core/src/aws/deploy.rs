//! `etl deploy`: create or update the permanent stack (`cfn/initial.yaml`) through a CloudFormation
//! change set, with the stack's events as they happen, and upload a build's artifacts.
//!
//! The steps, as `aws cloudformation deploy` takes them: `GetTemplateSummary` (the template's
//! parameters and the capabilities it needs), `CreateChangeSet` (`CREATE` for a new stack, `UPDATE`
//! otherwise; parameters not given keep their previous value on an update), `DescribeChangeSet`
//! until it is ready (a change set without changes is deleted, and nothing happens),
//! `ExecuteChangeSet`, then `DescribeStackEvents` until the stack reaches a final status. A stack
//! that ends in a rollback or a failed status is an [`Error::StackFailed`] carrying the reasons of
//! its failed resources.
//!
//! ```no_run
//! # async fn demo() -> etl_core::Result<()> {
//! use etl_core::aws::deploy::{DeployEvent, DeployRequest, Deployer};
//! use etl_core::aws::stack::Template;
//! let deployer = Deployer::new(etl_core::aws::config().await);
//! let request = DeployRequest::new("etl", Template::Body(std::fs::read_to_string("cfn/initial.yaml").unwrap()))
//!     .with_parameter("JobBucket", "my-jobs");
//! let outcome = deployer.deploy(&request, &mut |event| {
//!     if let DeployEvent::Stack(e) = event { eprintln!("{} {} {}", e.logical_id, e.status, e.reason.as_deref().unwrap_or("")) }
//! }).await?;
//! for (key, value) in &outcome.stack.outputs { println!("{key} = {value}") }
//! # Ok(()) }
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::{
    Capability, ChangeSetStatus, ChangeSetType, Parameter, StackEvent as CfnEvent,
};
use chrono::{DateTime, Utc};

use super::stack::{Stack, Stacks, Template};
use super::{SdkConfig, sdk_error};
use crate::error::{Error, Result};
use crate::sql::S3Url;

/// What to deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployRequest {
    /// The stack's name.
    pub stack_name: String,
    /// The template.
    pub template: Template,
    /// Parameters given, `(key, value)`: each must be declared by the template.
    pub parameters: Vec<(String, String)>,
    /// Parameters set only when the template declares them and they are not in `parameters`
    /// (e.g. `ArtifactBucket` and `ArtifactPrefix` from `--artifacts`).
    pub fallback_parameters: Vec<(String, String)>,
    /// How often to poll the change set and the stack's events.
    pub poll: Duration,
}

impl DeployRequest {
    /// A request for stack `name` from `template`, polling every 5 seconds.
    pub fn new(name: impl Into<String>, template: Template) -> Self {
        DeployRequest {
            stack_name: name.into(),
            template,
            parameters: Vec::new(),
            fallback_parameters: Vec::new(),
            poll: Duration::from_secs(5),
        }
    }

    /// Adds a parameter.
    pub fn with_parameter(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.parameters.push((key.into(), value.into()));
        self
    }

    /// Adds a fallback parameter (used if declared and not given).
    pub fn with_fallback_parameter(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.fallback_parameters.push((key.into(), value.into()));
        self
    }

    /// Sets the poll interval.
    pub fn with_poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }
}

/// One change of a change set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `Add`, `Modify`, `Remove`, ...
    pub action: String,
    /// The resource's logical id.
    pub logical_id: String,
    /// `AWS::Lambda::Function`, ...
    pub resource_type: String,
    /// `True`, `False` or `Conditional` for a `Modify`.
    pub replacement: Option<String>,
}

/// One stack event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackEvent {
    /// The event's id.
    pub id: String,
    /// When it happened.
    pub timestamp: Option<DateTime<Utc>>,
    /// The resource's logical id (the stack's name for the stack itself).
    pub logical_id: String,
    /// The resource's type.
    pub resource_type: String,
    /// `CREATE_IN_PROGRESS`, `CREATE_FAILED`, ...
    pub status: String,
    /// Why, when CloudFormation says.
    pub reason: Option<String>,
}

impl StackEvent {
    /// Whether this event is a failure (`*_FAILED`), other than a cancellation caused by another
    /// resource's failure.
    pub fn is_failure(&self) -> bool {
        self.status.ends_with("_FAILED")
            && !self.reason.as_deref().is_some_and(|r| {
                r.contains("Resource creation cancelled") || r.contains("Resource update cancelled")
            })
    }

    fn from_cfn(e: &CfnEvent) -> StackEvent {
        StackEvent {
            id: e.event_id().unwrap_or_default().to_owned(),
            timestamp: e
                .timestamp()
                .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos())),
            logical_id: e.logical_resource_id().unwrap_or_default().to_owned(),
            resource_type: e.resource_type().unwrap_or_default().to_owned(),
            status: e
                .resource_status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            reason: e
                .resource_status_reason()
                .filter(|r| !r.is_empty())
                .map(str::to_owned),
        }
    }
}

/// What happens during a deploy.
#[derive(Debug)]
pub enum DeployEvent<'a> {
    /// The change set is ready: what it will do.
    ChangeSet {
        /// `CREATE` or `UPDATE`.
        kind: &'a str,
        /// Its changes.
        changes: &'a [Change],
    },
    /// The template changes nothing: the change set was deleted.
    NoChanges,
    /// A new stack event.
    Stack(&'a StackEvent),
}

/// What a deploy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployOutcome {
    /// The stack as it is now (status, outputs).
    pub stack: Stack,
    /// Whether the stack was created (rather than updated).
    pub created: bool,
    /// Whether anything changed.
    pub changed: bool,
}

/// A parameter the template declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateParameter {
    /// Its name.
    pub key: String,
    /// Whether it has a default value.
    pub has_default: bool,
    /// `NoEcho`: a secret, never to be given on a command line.
    pub no_echo: bool,
}

/// The template's declared parameters and required capabilities.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TemplateSummary {
    /// Declared parameters.
    pub parameters: Vec<TemplateParameter>,
    /// `CAPABILITY_IAM`, ...
    pub capabilities: Vec<String>,
}

/// Stack statuses that end a create or an update successfully.
const SUCCESS: &[&str] = &["CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"];

/// Deploys stacks.
#[derive(Debug, Clone)]
pub struct Deployer {
    client: Client,
    stacks: Stacks,
}

impl Deployer {
    /// A deployer with the shared configuration.
    pub fn new(config: &SdkConfig) -> Self {
        Deployer {
            client: Client::new(config),
            stacks: Stacks::new(config),
        }
    }

    /// The template's parameters and capabilities (`GetTemplateSummary`).
    ///
    /// # Errors
    /// [`Error::Aws`], e.g. for a template CloudFormation cannot parse.
    pub async fn summary(&self, template: &Template) -> Result<TemplateSummary> {
        let call = self.client.get_template_summary();
        let call = match template {
            Template::Url(u) => call.template_url(u),
            Template::Body(b) => call.template_body(b),
        };
        let out = call
            .send()
            .await
            .map_err(|e| sdk_error("CloudFormation.GetTemplateSummary", e))?;
        Ok(TemplateSummary {
            parameters: out
                .parameters()
                .iter()
                .map(|p| TemplateParameter {
                    key: p.parameter_key().unwrap_or_default().to_owned(),
                    has_default: p.default_value().is_some(),
                    no_echo: p.no_echo().unwrap_or(false),
                })
                .collect(),
            capabilities: out
                .capabilities()
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
        })
    }

    /// Creates or updates the stack and waits until it is done, reporting to `observer`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a parameter the template does not declare, or a `NoEcho` one
    /// given on the command line; [`Error::StackFailed`] when the stack cannot be updated (a failed
    /// creation must be deleted first), is busy, or ends in a failed or rolled-back status (with the
    /// failed resources' reasons); [`Error::Aws`] when CloudFormation refuses a request.
    pub async fn deploy(
        &self,
        request: &DeployRequest,
        observer: &mut (dyn FnMut(DeployEvent<'_>) + Send),
    ) -> Result<DeployOutcome> {
        let name = &request.stack_name;
        let existing = self.stacks.describe(name).await?;
        let create = match &existing {
            None => true,
            Some(s) if s.cfn_status == "REVIEW_IN_PROGRESS" => true,
            Some(s)
                if matches!(
                    s.cfn_status.as_str(),
                    "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "CREATE_FAILED"
                ) =>
            {
                let reason = self
                    .stacks
                    .first_failure(s.id.as_deref().unwrap_or(name))
                    .await?
                    .unwrap_or_else(|| "no failure recorded".into());
                return Err(Error::StackFailed {
                    stack: name.clone(),
                    status: s.cfn_status.clone(),
                    reason: format!(
                        "its creation failed ({reason}), and such a stack cannot be updated: delete it \
                         (aws cloudformation delete-stack --stack-name {name}), then deploy again"
                    ),
                });
            }
            Some(s) if s.cfn_status.ends_with("_IN_PROGRESS") => {
                return Err(Error::StackFailed {
                    stack: name.clone(),
                    status: s.cfn_status.clone(),
                    reason:
                        "another operation is in progress; wait until it ends, then deploy again"
                            .into(),
                });
            }
            Some(_) => false,
        };

        let summary = self.summary(&request.template).await?;
        let previous = if create {
            None
        } else {
            Some(self.previous_parameters(name).await?)
        };
        let parameters = resolve_parameters(request, &summary, previous.as_deref())?;
        let mut capabilities: Vec<Capability> = summary
            .capabilities
            .iter()
            .map(|c| Capability::from(c.as_str()))
            .collect();
        if !capabilities.contains(&Capability::CapabilityIam) {
            capabilities.push(Capability::CapabilityIam);
        }

        // Events already there are not this deploy's.
        let mut seen: HashSet<String> = match &existing {
            Some(s) => self
                .new_events(s.id.as_deref().unwrap_or(name), &HashSet::new())
                .await?
                .into_iter()
                .map(|e| e.id)
                .collect(),
            None => HashSet::new(),
        };

        let kind = if create {
            ChangeSetType::Create
        } else {
            ChangeSetType::Update
        };
        let change_set_name = format!("etl-deploy-{}", Utc::now().format("%Y%m%d%H%M%S%3f"));
        let call = self
            .client
            .create_change_set()
            .stack_name(name)
            .change_set_name(&change_set_name)
            .change_set_type(kind.clone())
            .description("etl deploy")
            .set_parameters(Some(parameters))
            .set_capabilities(Some(capabilities));
        let call = match &request.template {
            Template::Url(u) => call.template_url(u),
            Template::Body(b) => call.template_body(b),
        };
        let created = call
            .send()
            .await
            .map_err(|e| sdk_error("CloudFormation.CreateChangeSet", e))?;
        let change_set_id = created.id().unwrap_or(&change_set_name).to_owned();
        let stack_id = created.stack_id().unwrap_or(name).to_owned();

        let changes = match self
            .wait_for_change_set(&change_set_id, request.poll)
            .await?
        {
            Some(changes) => changes,
            None => {
                let _ = self
                    .client
                    .delete_change_set()
                    .change_set_name(&change_set_id)
                    .send()
                    .await;
                observer(DeployEvent::NoChanges);
                let stack = self.stacks.describe(&stack_id).await?.ok_or_else(|| {
                    Error::Internal(format!("stack {name} disappeared during the deploy"))
                })?;
                return Ok(DeployOutcome {
                    stack,
                    created: false,
                    changed: false,
                });
            }
        };
        observer(DeployEvent::ChangeSet {
            kind: kind.as_str(),
            changes: &changes,
        });
        if create {
            // The REVIEW_IN_PROGRESS event of the change set's creation is not news.
            for e in self.new_events(&stack_id, &seen).await? {
                seen.insert(e.id);
            }
        }

        self.client
            .execute_change_set()
            .change_set_name(&change_set_id)
            .send()
            .await
            .map_err(|e| sdk_error("CloudFormation.ExecuteChangeSet", e))?;

        let mut failures: Vec<StackEvent> = Vec::new();
        let mut first = true;
        let stack = loop {
            if !first {
                tokio::time::sleep(request.poll).await;
            }
            first = false;
            for e in self.new_events(&stack_id, &seen).await? {
                seen.insert(e.id.clone());
                if e.is_failure() {
                    failures.push(e.clone());
                }
                observer(DeployEvent::Stack(&e));
            }
            let stack = self.stacks.describe(&stack_id).await?.ok_or_else(|| {
                Error::Internal(format!("stack {name} disappeared during the deploy"))
            })?;
            if !stack.cfn_status.ends_with("_IN_PROGRESS") {
                // The final events may land after the status: one more look.
                for e in self.new_events(&stack_id, &seen).await? {
                    seen.insert(e.id.clone());
                    if e.is_failure() {
                        failures.push(e.clone());
                    }
                    observer(DeployEvent::Stack(&e));
                }
                break stack;
            }
        };
        if !SUCCESS.contains(&stack.cfn_status.as_str()) {
            let reason = failure_reason(&failures, stack.status_reason.as_deref());
            return Err(Error::StackFailed {
                stack: name.clone(),
                status: stack.cfn_status,
                reason,
            });
        }
        Ok(DeployOutcome {
            stack,
            created: create,
            changed: true,
        })
    }

    /// The parameter keys an existing stack has.
    async fn previous_parameters(&self, name: &str) -> Result<Vec<String>> {
        let out = self
            .client
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| sdk_error("CloudFormation.DescribeStacks", e))?;
        Ok(out
            .stacks()
            .iter()
            .flat_map(|s| s.parameters())
            .filter_map(|p| p.parameter_key().map(str::to_owned))
            .collect())
    }

    /// Waits for a change set to be ready; its changes, or `None` when it has none.
    async fn wait_for_change_set(&self, id: &str, poll: Duration) -> Result<Option<Vec<Change>>> {
        let mut delay = Duration::from_millis(500).min(poll);
        loop {
            let mut changes = Vec::new();
            let mut token: Option<String> = None;
            let mut status;
            let mut reason;
            loop {
                let out = self
                    .client
                    .describe_change_set()
                    .change_set_name(id)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| sdk_error("CloudFormation.DescribeChangeSet", e))?;
                status = out.status().cloned();
                reason = out.status_reason().map(str::to_owned);
                for c in out.changes() {
                    if let Some(rc) = c.resource_change() {
                        changes.push(Change {
                            action: rc
                                .action()
                                .map(|a| a.as_str().to_owned())
                                .unwrap_or_default(),
                            logical_id: rc.logical_resource_id().unwrap_or_default().to_owned(),
                            resource_type: rc.resource_type().unwrap_or_default().to_owned(),
                            replacement: rc.replacement().map(|r| r.as_str().to_owned()),
                        });
                    }
                }
                token = out.next_token().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
            match status {
                Some(ChangeSetStatus::CreateComplete) => return Ok(Some(changes)),
                Some(ChangeSetStatus::Failed) => {
                    let reason = reason.unwrap_or_default();
                    if reason.contains("didn't contain changes")
                        || reason.contains("No updates are to be performed")
                    {
                        return Ok(None);
                    }
                    return Err(Error::StackFailed {
                        stack: id.to_owned(),
                        status: "change set FAILED".into(),
                        reason,
                    });
                }
                _ => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(poll.max(Duration::from_millis(500)));
                }
            }
        }
    }

    /// The stack's events not in `seen`, oldest first.
    async fn new_events(&self, stack: &str, seen: &HashSet<String>) -> Result<Vec<StackEvent>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        'pages: loop {
            let page = self
                .client
                .describe_stack_events()
                .stack_name(stack)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_error("CloudFormation.DescribeStackEvents", e))?;
            // Newest first: stop at the first event already seen.
            for e in page.stack_events() {
                let e = StackEvent::from_cfn(e);
                if seen.contains(&e.id) {
                    break 'pages;
                }
                out.push(e);
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() || out.len() > 10_000 {
                break;
            }
        }
        out.reverse();
        // Equal timestamps keep CloudFormation's order; otherwise by time.
        out.sort_by_key(|e| e.timestamp);
        Ok(out)
    }
}

/// The parameters of the change set: given ones, fallbacks the template declares, and on an
/// update the previous value of every other declared parameter the stack has.
fn resolve_parameters(
    request: &DeployRequest,
    summary: &TemplateSummary,
    previous: Option<&[String]>,
) -> Result<Vec<Parameter>> {
    let declared = |k: &str| summary.parameters.iter().find(|p| p.key == k);
    let mut unknown = Vec::new();
    for (k, _) in &request.parameters {
        match declared(k) {
            None => unknown.push(k.clone()),
            Some(p) if p.no_echo => {
                return Err(Error::invalid(
                    "--parameter",
                    format!(
                        "{k} is a NoEcho (secret) parameter: never pass secrets on the command line \
                         (the templates generate the password in Secrets Manager)"
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    if !unknown.is_empty() {
        let mut names: Vec<&str> = summary.parameters.iter().map(|p| p.key.as_str()).collect();
        names.sort_unstable();
        return Err(Error::invalid(
            "--parameter",
            format!(
                "the template declares no parameter {}; it declares: {}",
                unknown.join(", "),
                names.join(", ")
            ),
        ));
    }
    let mut out = Vec::new();
    let mut given: HashSet<&str> = HashSet::new();
    for (k, v) in &request.parameters {
        given.insert(k);
        out.push(
            Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build(),
        );
    }
    for (k, v) in &request.fallback_parameters {
        if declared(k).is_some() && given.insert(k) {
            out.push(
                Parameter::builder()
                    .parameter_key(k)
                    .parameter_value(v)
                    .build(),
            );
        }
    }
    if let Some(previous) = previous {
        let previous: HashSet<&str> = previous.iter().map(String::as_str).collect();
        for p in &summary.parameters {
            if !given.contains(p.key.as_str()) && previous.contains(p.key.as_str()) {
                out.push(
                    Parameter::builder()
                        .parameter_key(&p.key)
                        .use_previous_value(true)
                        .build(),
                );
            }
        }
    }
    Ok(out)
}

/// The failed resources' reasons, earliest first; else the stack's own reason.
fn failure_reason(failures: &[StackEvent], stack_reason: Option<&str>) -> String {
    let resources: Vec<String> = failures
        .iter()
        .filter(|e| e.resource_type != "AWS::CloudFormation::Stack")
        .map(|e| {
            format!(
                "{} ({}) {}: {}",
                e.logical_id,
                e.resource_type,
                e.status,
                e.reason.as_deref().unwrap_or("no reason given")
            )
        })
        .collect();
    if !resources.is_empty() {
        return resources.join("; ");
    }
    failures
        .iter()
        .find_map(|e| e.reason.clone())
        .or_else(|| stack_reason.map(str::to_owned))
        .unwrap_or_else(|| "no reason given (see the stack's events in the console)".into())
}

/// The S3 `https://` URL CloudFormation reads a template from.
pub fn template_url(object: &S3Url, region: Option<&str>) -> String {
    let region = region.unwrap_or("us-east-1");
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!(
        "https://{}.s3.{region}.{suffix}/{}",
        object.bucket(),
        object.key()
    )
}

/// One file of a build to upload: where it is and its key below the artifact prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// The local file.
    pub file: PathBuf,
    /// Its key below the artifact prefix, e.g. `asl/etl.asl.json`.
    pub key: String,
}

/// The artifacts of `cfn/README.md`'s layout: the state machine definition (`asl/etl.asl.json`),
/// the on-demand template (`cfn/redshift.yaml`), and one `<binary>.zip` per Lambda zip the template
/// names (`${ArtifactPrefix}/<binary>.zip`), taken from `<lambda_dir>/<binary>/bootstrap.zip`
/// (cargo-lambda's layout) or `<lambda_dir>/<binary>.zip`.
///
/// # Errors
/// [`Error::Environment`] naming every missing file and how to build it.
pub fn artifacts(
    template: &str,
    asl: &Path,
    redshift_template: &Path,
    lambda_dir: &Path,
) -> Result<Vec<Artifact>> {
    let mut out = vec![
        Artifact {
            file: asl.to_path_buf(),
            key: "asl/etl.asl.json".into(),
        },
        Artifact {
            file: redshift_template.to_path_buf(),
            key: "cfn/redshift.yaml".into(),
        },
    ];
    let mut missing: Vec<String> = out
        .iter()
        .filter(|a| !a.file.is_file())
        .map(|a| a.file.display().to_string())
        .collect();
    let mut missing_zips = false;
    for binary in lambda_zip_names(template) {
        let candidates = [
            lambda_dir.join(&binary).join("bootstrap.zip"),
            lambda_dir.join(format!("{binary}.zip")),
        ];
        match candidates.iter().find(|c| c.is_file()) {
            Some(file) => out.push(Artifact {
                file: file.clone(),
                key: format!("{binary}.zip"),
            }),
            None => {
                missing_zips = true;
                missing.push(candidates[0].display().to_string());
            }
        }
    }
    if missing.is_empty() {
        return Ok(out);
    }
    let mut message = format!("missing build artifacts: {}", missing.join(", "));
    if missing_zips {
        message.push_str(&format!(
            "; build the Lambda zips with `cargo lambda build --release --arm64 -p etl-lambda \
             --output-format zip` (or pass --lambda-dir where they are; now {})",
            lambda_dir.display()
        ));
    }
    Err(Error::Environment {
        message,
        source: None,
    })
}

/// The `<binary>` of every `${ArtifactPrefix}/<binary>.zip` in a template, in order, once each.
pub fn lambda_zip_names(template: &str) -> Vec<String> {
    let marker = "${ArtifactPrefix}/";
    let mut out: Vec<String> = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find(marker) {
        rest = &rest[i + marker.len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect();
        if let Some(binary) = name.strip_suffix(".zip")
            && !binary.is_empty()
            && !out.iter().any(|b| b == binary)
        {
            out.push(binary.to_owned());
        }
    }
    out
}

/// Uploads artifacts below `prefix` (streamed: Lambda zips can be large); returns their URLs.
///
/// # Errors
/// [`Error::Io`] for a file that cannot be read, [`Error::Storage`] for S3.
pub async fn upload_artifacts(
    prefix: &S3Url,
    artifacts: &[Artifact],
    observer: &mut (dyn FnMut(&S3Url, u64) + Send),
) -> Result<Vec<S3Url>> {
    use object_store::ObjectStoreExt as _;
    let store = crate::storage::s3_store(prefix)?;
    let mut out = Vec::new();
    for a in artifacts {
        let url = prefix.join(&a.key);
        let body = tokio::fs::read(&a.file)
            .await
            .map_err(|e| Error::io("cannot read", a.file.display(), e))?;
        let n = body.len() as u64;
        let path = object_store::path::Path::parse(url.key())
            .map_err(|e| Error::invalid("S3 key", format!("{url}: {e}")))?;
        store
            .put(&path, object_store::PutPayload::from(body))
            .await
            .map_err(|e| Error::Storage {
                action: "cannot upload to",
                location: url.to_string(),
                source: e,
            })?;
        observer(&url, n);
        out.push(url);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(keys: &[(&str, bool)]) -> TemplateSummary {
        TemplateSummary {
            parameters: keys
                .iter()
                .map(|(k, no_echo)| TemplateParameter {
                    key: (*k).into(),
                    has_default: false,
                    no_echo: *no_echo,
                })
                .collect(),
            capabilities: vec![],
        }
    }

    fn keys(params: &[Parameter]) -> Vec<(String, Option<String>, bool)> {
        params
            .iter()
            .map(|p| {
                (
                    p.parameter_key().unwrap().to_owned(),
                    p.parameter_value().map(str::to_owned),
                    p.use_previous_value().unwrap_or(false),
                )
            })
            .collect()
    }

    #[test]
    fn parameters_keep_previous_values_on_update() {
        let s = summary(&[
            ("A", false),
            ("B", false),
            ("ArtifactPrefix", false),
            ("New", false),
        ]);
        let request = DeployRequest::new("etl", Template::Body(String::new()))
            .with_parameter("A", "1")
            .with_fallback_parameter("ArtifactPrefix", "etl/abc")
            .with_fallback_parameter("Undeclared", "x");
        let previous = ["A".to_owned(), "B".to_owned()];
        let got = keys(&resolve_parameters(&request, &s, Some(&previous)).unwrap());
        assert_eq!(
            got,
            [
                ("A".into(), Some("1".into()), false),
                ("ArtifactPrefix".into(), Some("etl/abc".into()), false),
                ("B".into(), None, true),
            ]
        );
        // On a create, nothing is previous.
        assert_eq!(resolve_parameters(&request, &s, None).unwrap().len(), 2);
    }

    #[test]
    fn unknown_and_secret_parameters_are_refused() {
        let s = summary(&[("JobBucket", false), ("MasterPassword", true)]);
        let bad =
            DeployRequest::new("etl", Template::Body(String::new())).with_parameter("Nope", "1");
        let e = resolve_parameters(&bad, &s, None).unwrap_err().to_string();
        assert!(
            e.contains("no parameter Nope") && e.contains("JobBucket"),
            "{e}"
        );
        let secret = DeployRequest::new("etl", Template::Body(String::new()))
            .with_parameter("MasterPassword", "x");
        let e = resolve_parameters(&secret, &s, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("never pass secrets"), "{e}");
    }

    #[test]
    fn failure_reasons_name_the_resources() {
        let ev = |id: &str, ty: &str, status: &str, reason: &str| StackEvent {
            id: id.into(),
            timestamp: None,
            logical_id: id.into(),
            resource_type: ty.into(),
            status: status.into(),
            reason: Some(reason.into()),
        };
        let events = [
            ev(
                "Fn",
                "AWS::Lambda::Function",
                "CREATE_FAILED",
                "S3 key does not exist",
            ),
            ev(
                "Sm",
                "AWS::StepFunctions::StateMachine",
                "CREATE_FAILED",
                "Resource creation cancelled",
            ),
            ev(
                "etl",
                "AWS::CloudFormation::Stack",
                "ROLLBACK_IN_PROGRESS",
                "The following resource(s) failed to create: [Fn]",
            ),
        ];
        let failures: Vec<StackEvent> = events.iter().filter(|e| e.is_failure()).cloned().collect();
        assert_eq!(
            failure_reason(&failures, None),
            "Fn (AWS::Lambda::Function) CREATE_FAILED: S3 key does not exist"
        );
        assert_eq!(failure_reason(&[], Some("x")), "x");
    }

    #[test]
    fn finds_the_lambda_zips_a_template_names() {
        let t = "Code:\n  S3Key: !Sub ${ArtifactPrefix}/etl-stack-status.zip\n  Key: !Sub ${ArtifactPrefix}/asl/etl.asl.json\n  S3Key: !Sub \"${ArtifactPrefix}/etl-submit.zip\"\n  S3Key: !Sub ${ArtifactPrefix}/etl-stack-status.zip";
        assert_eq!(lambda_zip_names(t), ["etl-stack-status", "etl-submit"]);
        let real = include_str!("../../../cfn/initial.yaml");
        assert_eq!(lambda_zip_names(real).len(), 8);
    }

    #[test]
    fn template_urls() {
        let u = S3Url::parse("s3://art/etl/abc/cfn/initial.yaml").unwrap();
        assert_eq!(
            template_url(&u, Some("eu-west-1")),
            "https://art.s3.eu-west-1.amazonaws.com/etl/abc/cfn/initial.yaml"
        );
        assert!(template_url(&u, Some("cn-north-1")).contains(".amazonaws.com.cn/"));
    }
}
