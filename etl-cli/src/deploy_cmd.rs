//! `etl deploy`: create or update the permanent stack through a change set, showing its events as
//! they happen; upload the build's artifacts first when asked; print the stack's outputs.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use etl_core::aws::deploy::{self, DeployEvent, DeployRequest, Deployer};
use etl_core::aws::stack::Template;
use etl_core::sql::S3Url;

use crate::Failure;
use crate::output::Format;

/// CloudFormation's limit on an inline template (`TemplateBody`).
const MAX_TEMPLATE_BODY: usize = 51_200;

/// `etl deploy` flags.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The stack's name.
    #[arg(long, default_value = "etl")]
    stack: String,

    /// A template parameter, KEY=VALUE (repeatable). On an update, parameters not given keep their
    /// value. Never a password: the templates generate it in Secrets Manager.
    #[arg(short = 'p', long = "parameter", value_name = "KEY=VALUE", value_parser = parse_parameter)]
    parameters: Vec<(String, String)>,

    /// The template.
    #[arg(long, default_value = "cfn/initial.yaml")]
    template: PathBuf,

    /// Upload the build's artifacts here first (a new prefix per build, e.g.
    /// s3://my-artifacts/etl/<git sha>/): the Lambda zips, the state machine definition, the
    /// on-demand template and this template; sets ArtifactBucket and ArtifactPrefix unless given.
    #[arg(long, value_name = "S3_URL", value_parser = parse_s3)]
    artifacts: Option<S3Url>,

    /// Where the Lambda zips are: <DIR>/<binary>/bootstrap.zip as `cargo lambda build
    /// --output-format zip` writes them (default: $CARGO_TARGET_DIR/lambda, else target/lambda).
    #[arg(long, value_name = "DIR")]
    lambda_dir: Option<PathBuf>,

    /// The state machine definition uploaded with --artifacts.
    #[arg(long, value_name = "FILE", default_value = "asl/etl.asl.json")]
    asl: PathBuf,

    /// The on-demand Redshift template uploaded with --artifacts.
    #[arg(long, value_name = "FILE", default_value = "cfn/redshift.yaml")]
    redshift_template: PathBuf,

    /// How to print the outputs.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,

    /// Seconds between looks at the stack's events.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, hide = true)]
    poll: f64,
}

fn parse_s3(s: &str) -> Result<S3Url, String> {
    S3Url::parse(s)
}

fn parse_parameter(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| "write a parameter as KEY=VALUE".to_owned())?;
    let k = k.trim();
    if k.is_empty() {
        return Err("the key is empty: write a parameter as KEY=VALUE".into());
    }
    Ok((k.to_owned(), v.to_owned()))
}

fn lambda_dir(flag: Option<PathBuf>) -> PathBuf {
    flag.unwrap_or_else(|| match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("lambda"),
        _ => PathBuf::from("target/lambda"),
    })
}

/// Runs `etl deploy`.
pub async fn run(args: DeployArgs) -> Result<(), Failure> {
    // Checked here rather than by clap, which would echo the value in its message.
    if let Some((k, _)) = args
        .parameters
        .iter()
        .find(|(k, _)| k.to_ascii_lowercase().contains("password"))
    {
        return Err(Failure::Usage(anyhow::anyhow!(
            "--parameter {k}: never pass a password on the command line; the templates generate it \
             in Secrets Manager"
        )));
    }
    let text = std::fs::read_to_string(&args.template)
        .with_context(|| format!("cannot read the template {}", args.template.display()))
        .map_err(Failure::Usage)?;
    let config = etl_core::aws::config().await;
    let terminal = std::io::stderr().is_terminal();

    let mut fallback = Vec::new();
    let template = match &args.artifacts {
        Some(prefix) => {
            let prefix = folder(prefix);
            let mut artifacts = deploy::artifacts(
                &text,
                &args.asl,
                &args.redshift_template,
                &lambda_dir(args.lambda_dir.clone()),
            )?;
            let name = args
                .template
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "initial.yaml".into());
            artifacts.push(deploy::Artifact {
                file: args.template.clone(),
                key: format!("cfn/{name}"),
            });
            eprintln!("uploading {} artifact(s) to {prefix}", artifacts.len());
            deploy::upload_artifacts(&prefix, &artifacts, &mut |url, n| {
                eprintln!("  {url} ({})", indicatif::HumanBytes(n));
            })
            .await?;
            fallback.push(("ArtifactBucket".to_owned(), prefix.bucket().to_owned()));
            fallback.push((
                "ArtifactPrefix".to_owned(),
                prefix.key().trim_end_matches('/').to_owned(),
            ));
            let region = config.region().map(|r| r.as_ref().to_owned());
            Template::Url(deploy::template_url(
                &prefix.join(&format!("cfn/{name}")),
                region.as_deref(),
            ))
        }
        None if text.len() > MAX_TEMPLATE_BODY => {
            return Err(Failure::Usage(anyhow::anyhow!(
                "{} is {} bytes, over CloudFormation's {MAX_TEMPLATE_BODY}-byte limit for an inline \
                 template: pass --artifacts s3://bucket/prefix/ to upload it",
                args.template.display(),
                text.len()
            )));
        }
        None => Template::Body(text),
    };

    let mut request = DeployRequest::new(&args.stack, template)
        .with_poll(Duration::from_secs_f64(args.poll.max(0.05)));
    request.parameters = args.parameters.clone();
    request.fallback_parameters = fallback;

    let spinner = terminal.then(|| {
        let s = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        s.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        s.set_message(format!("deploying stack {}", args.stack));
        s.enable_steady_tick(Duration::from_millis(120));
        s
    });
    let say = |text: String| match &spinner {
        Some(s) => s.println(text),
        None => eprintln!("{text}"),
    };
    let outcome = Deployer::new(config)
        .deploy(&request, &mut |event| match event {
            DeployEvent::ChangeSet { kind, changes } => {
                say(format!(
                    "change set ({}): {} change(s)",
                    kind.to_ascii_lowercase(),
                    changes.len()
                ));
                for c in changes {
                    let replacement = match c.replacement.as_deref() {
                        Some("True") => " (replacement)",
                        Some("Conditional") => " (may be replaced)",
                        _ => "",
                    };
                    say(format!(
                        "  {:<8} {} {}{replacement}",
                        c.action, c.logical_id, c.resource_type
                    ));
                }
            }
            DeployEvent::NoChanges => say(format!("stack {}: no changes", args.stack)),
            DeployEvent::Stack(e) => {
                let time = e
                    .timestamp
                    .map(|t| t.format("%H:%M:%S").to_string())
                    .unwrap_or_else(|| "--:--:--".into());
                let mut line = format!(
                    "{time}  {:<32} {:<40} {}",
                    e.logical_id, e.resource_type, e.status
                );
                if let Some(r) = &e.reason {
                    line.push_str("  ");
                    line.push_str(r);
                }
                say(line);
            }
        })
        .await;
    if let Some(s) = &spinner {
        s.finish_and_clear();
    }
    let outcome = outcome?;
    eprintln!(
        "stack {} {} ({})",
        outcome.stack.name,
        if !outcome.changed {
            "unchanged"
        } else if outcome.created {
            "created"
        } else {
            "updated"
        },
        outcome.stack.cfn_status
    );
    print_outputs(&outcome.stack, args.format)?;
    Ok(())
}

fn folder(url: &S3Url) -> S3Url {
    if url.key().is_empty() || url.key().ends_with('/') {
        url.clone()
    } else {
        url.with_suffix("/")
    }
}

fn print_outputs(stack: &etl_core::aws::stack::Stack, format: Format) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            let outputs: serde_json::Map<String, serde_json::Value> = stack
                .outputs
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
                .collect();
            let doc = serde_json::json!({
                "stack": stack.name,
                "status": stack.cfn_status,
                "outputs": outputs,
            });
            serde_json::to_writer_pretty(&mut out, &doc).map_err(anyhow::Error::from)?;
            writeln!(out)?;
        }
        Format::Csv => {
            writeln!(out, "output,value")?;
            for (k, v) in &stack.outputs {
                writeln!(out, "{},{}", csv_field(k), csv_field(v))?;
            }
        }
        Format::Table => {
            if stack.outputs.is_empty() {
                eprintln!("(the stack has no outputs)");
            } else {
                let mut table = comfy_table::Table::new();
                table
                    .load_preset(comfy_table::presets::ASCII_BORDERS_ONLY_CONDENSED)
                    .set_header(["output", "value"]);
                for (k, v) in &stack.outputs {
                    table.add_row([k, v]);
                }
                writeln!(out, "{table}")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
