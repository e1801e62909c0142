//! The statements a job runs, in order, for one dialect: what `etl plan` prints and what the
//! engine executes.
//!
//! A plan is a list of [`Step`]s (create schemas and tables, one load per table, one step per
//! transform statement, the unload). Each step's statements run on one session; a load's
//! statements form one transaction, so a table is loaded entirely or not at all.

use crate::error::{Error, ManifestIssue, Result};
use crate::job::{Compression, Files, Job, LoadMethod, Location, Table};
use crate::sql::{
    self, CopyFromS3, CopyFromStdin, CopySource, CopyTarget, CopyToStdout, Dialect, IamRole, Ident,
    S3Url,
};

/// Name of the session-private staging table used by upserts.
pub const STAGING_TABLE: &str = "etl_staging";

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind {
    /// `CREATE SCHEMA` and `CREATE TABLE` for every table.
    CreateTables,
    /// Load one table (index into [`Job::tables`]).
    Load(usize),
    /// One statement of a transform file.
    Transform {
        /// Index into [`Job::transforms`].
        file: usize,
        /// 1-based statement number within the file.
        statement: usize,
        /// 1-based line where the statement starts.
        line: usize,
    },
    /// The unload.
    Unload,
}

/// One statement with a description for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The SQL text, without a trailing `;`.
    pub sql: String,
    /// What it is, e.g. `transform sql/model.sql statement 3 (line 12)`.
    pub context: String,
    /// A `COPY ... FROM STDIN` that the client feeds with the table's rows (PostgreSQL dialect).
    pub copy_in: bool,
}

/// A unit of work that the journal tracks and a rerun skips once it succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Stable identifier, unique within the plan: `create-tables`, `load:stage.usage`,
    /// `transform:0:3`, `unload`.
    pub id: String,
    /// What it does.
    pub kind: StepKind,
    /// Statements in order. Loads start with `BEGIN` and end with `COMMIT`.
    pub statements: Vec<Statement>,
}

/// Settings for a plan that are not in the manifest.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Replaces the job's input location (Redshift reads from S3: a local input needs this).
    pub input: Option<S3Url>,
    /// Replaces the job's IAM role.
    pub iam_role: Option<IamRole>,
    /// Replaces the unload target (Redshift writes to S3).
    pub unload_to: Option<S3Url>,
    /// Use PostgreSQL's text COPY format instead of binary for client-side loads.
    pub text_copy: bool,
    /// Where Redshift reads the COPY manifests of tables given as a list of files:
    /// [`copy_manifest_url`] below this location instead of the input (the state machine's functions
    /// write them under the run's folder, the only place they may write).
    pub copy_manifests: Option<S3Url>,
}

/// Where Redshift reads the COPY manifest of a table given as a list of files: next to the input,
/// `<input>/_manifests/<schema>.<table>.manifest`. The load step writes it before the COPY.
pub fn copy_manifest_url(input: &S3Url, table: &Table) -> S3Url {
    input.join(&format!("_manifests/{}.manifest", table_key(table)))
}

/// `<schema>.<table>` as an S3 key part: the names' characters outside `[A-Za-z0-9_-]` become
/// `%XX`, so any printable name gives a printable key.
pub fn table_key(table: &Table) -> String {
    format!(
        "{}.{}",
        url_safe(table.name.schema.as_str()),
        url_safe(table.name.table.as_str())
    )
}

/// Keeps S3 keys printable: names may hold any printable character, keys get `[a-z0-9_-]` and
/// `%XX` for the rest.
fn url_safe(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Builds the plan of `job` for `dialect`.
///
/// # Errors
/// [`Error::InvalidJob`] when the job cannot run on that dialect as configured (a Redshift plan
/// with a local input and no [`PlanOptions::input`], mixed compressions in one table).
pub fn build(job: &Job, dialect: Dialect, options: &PlanOptions) -> Result<Vec<Step>> {
    let mut issues = Vec::new();
    let mut steps = Vec::new();

    let mut create = vec![stmt("BEGIN".into(), "create tables")];
    for schema in &job.schemas {
        create.push(Statement {
            sql: sql::create_schema(schema),
            context: format!("create schema {schema}"),
            copy_in: false,
        });
    }
    for table in &job.tables {
        create.push(Statement {
            sql: sql::create_table(dialect, table),
            context: format!("create table {}", table.name),
            copy_in: false,
        });
    }
    create.push(stmt("COMMIT".into(), "create tables"));
    steps.push(Step {
        id: "create-tables".into(),
        kind: StepKind::CreateTables,
        statements: create,
    });

    let input_s3 = match (&options.input, &job.input) {
        (Some(u), _) => Some(u.clone()),
        (None, Location::S3(u)) => Some(u.clone()),
        (None, Location::Local(_)) => None,
    };
    if dialect == Dialect::Redshift && input_s3.is_none() {
        issues.push(ManifestIssue {
            path: "input".into(),
            message: "is a local folder, and Redshift's COPY reads from S3: upload the files with \
                      `etl stage` and pass --input s3://bucket/prefix/ (or set an s3:// input)"
                .into(),
        });
    }
    let iam_role = options.iam_role.as_ref().unwrap_or(&job.redshift.iam_role);

    for (ti, table) in job.tables.iter().enumerate() {
        let context = format!("load {}", table.name);
        let columns = column_names(table);
        let statements = match dialect {
            Dialect::Postgres => load_statements(table, &context, |target| Statement {
                sql: CopyFromStdin {
                    table: target,
                    columns: &columns,
                    binary: !options.text_copy,
                }
                .to_string(),
                context: context.clone(),
                copy_in: true,
            }),
            Dialect::Redshift => {
                let Some(input) = &input_s3 else { continue };
                let compression = match redshift_compression(table) {
                    Ok(c) => c,
                    Err(message) => {
                        issues.push(ManifestIssue {
                            path: format!("{}.format.compression", table.json_path),
                            message,
                        });
                        continue;
                    }
                };
                let source = match &table.files {
                    Files::List(_) => CopySource::Manifest(copy_manifest_url(
                        options.copy_manifests.as_ref().unwrap_or(input),
                        table,
                    )),
                    Files::Prefix(p) => CopySource::Prefix(input.join(p)),
                };
                load_statements(table, &context, |target| Statement {
                    sql: CopyFromS3 {
                        table: target,
                        columns: &columns,
                        source: &source,
                        iam_role,
                        region: job.redshift.region.as_deref(),
                        format: &table.format,
                        compression,
                    }
                    .to_string(),
                    context: context.clone(),
                    copy_in: false,
                })
            }
        };
        steps.push(Step {
            id: format!("load:{}", table.name),
            kind: StepKind::Load(ti),
            statements,
        });
    }

    for (fi, transform) in job.transforms.iter().enumerate() {
        for (si, stmt) in sql::split_statements(&transform.sql, dialect)
            .into_iter()
            .enumerate()
        {
            steps.push(Step {
                id: format!("transform:{fi}:{}", si + 1),
                kind: StepKind::Transform {
                    file: fi,
                    statement: si + 1,
                    line: stmt.line,
                },
                statements: vec![Statement {
                    context: format!(
                        "transform {} statement {} (line {})",
                        transform.name,
                        si + 1,
                        stmt.line
                    ),
                    sql: stmt.text,
                    copy_in: false,
                }],
            });
        }
    }

    if let Some(unload) = &job.unload {
        let query = sql::unload_query(&unload.source);
        let sql = match dialect {
            // The engine renders Redshift's CSV and text rules itself from PostgreSQL's text COPY
            // (PostgreSQL's CSV quotes empty strings; Redshift's does not).
            Dialect::Postgres => CopyToStdout::local_unload(&query).to_string(),
            Dialect::Redshift => {
                let to = match (&options.unload_to, &unload.to) {
                    (Some(u), _) => Some(u.clone()),
                    (None, Location::S3(u)) => Some(u.clone()),
                    (None, Location::Local(_)) => None,
                };
                match to {
                    Some(to) => sql::Unload {
                        spec: unload,
                        to: &to,
                        iam_role,
                        region: job.redshift.region.as_deref(),
                    }
                    .to_string(),
                    None => {
                        issues.push(ManifestIssue {
                            path: "unload.to".into(),
                            message: "is a local folder, and Redshift's UNLOAD writes to S3: pass \
                                      --unload-to s3://bucket/prefix (or set an s3:// target)"
                                .into(),
                        });
                        String::new()
                    }
                }
            }
        };
        steps.push(Step {
            id: "unload".into(),
            kind: StepKind::Unload,
            statements: vec![Statement {
                sql,
                context: "unload".into(),
                copy_in: false,
            }],
        });
    }

    if issues.is_empty() {
        Ok(steps)
    } else {
        Err(Error::InvalidJob {
            file: job.origin.clone().into(),
            issues,
        })
    }
}

fn column_names(table: &Table) -> Vec<Ident> {
    table.columns.iter().map(|c| c.name.clone()).collect()
}

/// Redshift takes one compression option per COPY.
fn redshift_compression(table: &Table) -> std::result::Result<Compression, String> {
    match (table.format.compression, &table.files) {
        (Compression::Auto, Files::List(names)) => {
            let mut found: Option<Compression> = None;
            for n in names {
                let c = Compression::Auto.for_file(n);
                match found {
                    Some(f) if f != c => {
                        return Err(format!(
                            "files of one table must share a compression for Redshift's COPY; \
                             {n:?} differs: set \"compression\" explicitly or split the table's files"
                        ));
                    }
                    _ => found = Some(c),
                }
            }
            Ok(found.unwrap_or(Compression::None))
        }
        (Compression::Auto, Files::Prefix(_)) => Err(
            "\"auto\" cannot be resolved for a prefix without listing it: set gzip, bzip2, zstd or none"
                .into(),
        ),
        (c, _) => Ok(c),
    }
}

fn stmt(sql: String, context: &str) -> Statement {
    Statement {
        sql,
        context: context.to_owned(),
        copy_in: false,
    }
}

/// The statements of one table load: one transaction, whatever the method. `copy` builds the COPY
/// into the given target (the table, or the upsert's staging table).
fn load_statements(
    table: &Table,
    ctx: &str,
    copy: impl Fn(CopyTarget<'_>) -> Statement,
) -> Vec<Statement> {
    let mut out = vec![stmt("BEGIN".into(), ctx)];
    match &table.load {
        LoadMethod::Append => out.push(copy(CopyTarget::Table(&table.name))),
        LoadMethod::Replace => {
            out.push(stmt(sql::delete_all(&table.name), ctx));
            out.push(copy(CopyTarget::Table(&table.name)));
        }
        LoadMethod::Upsert { keys } => {
            let staging = Ident::new(STAGING_TABLE).expect("valid name");
            let dedup = Ident::new(format!("{STAGING_TABLE}_dedup")).expect("valid name");
            out.push(stmt(sql::create_staging_like(&staging, &table.name), ctx));
            out.push(copy(CopyTarget::Temp(&staging)));
            for s in sql::dedup_staging(&staging, table, keys) {
                out.push(stmt(s, ctx));
            }
            out.push(stmt(
                sql::delete_matching_staging(&table.name, &staging, keys),
                ctx,
            ));
            out.push(stmt(
                sql::insert_from_staging(&table.name, &staging, table),
                ctx,
            ));
            out.push(stmt(sql::drop_temp_table(&dedup), ctx));
            out.push(stmt(sql::drop_temp_table(&staging), ctx));
        }
    }
    out.push(stmt("COMMIT".into(), ctx));
    out
}

/// Renders a plan as a script: each statement ends with `;`, each step is introduced by a comment.
pub fn render(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in steps {
        out.push_str(&format!("-- step {}\n", step.id));
        for s in &step.statements {
            out.push_str(&s.sql);
            out.push_str(";\n");
        }
        out.push('\n');
    }
    out
}
