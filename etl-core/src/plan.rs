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
    Unload {
        /// The query whose rows are unloaded, as the warehouse runs it (on PostgreSQL: rewritten
        /// by [`sql::compat::rewrite_for_postgres`] unless [`PlanOptions::no_compat`]).
        query: String,
    },
}

/// One statement with a description for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The SQL text, without a trailing `;`.
    pub sql: String,
    /// What it is, e.g. `transform sql/model.sql statement 3 (line 12)`.
    pub context: String,
}

/// How a load's row count is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowCount {
    /// The client counts the rows it streams (`COPY ... FROM STDIN`).
    Streamed,
    /// Redshift's `pg_last_copy_count()`, read in the load's transaction and journaled with it.
    LastCopyCount,
}

/// What a step runs, with its structure: executors follow it and never inspect SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Statements that run in one transaction, which also commits the step's journal row (create
    /// tables).
    Transaction(Vec<Statement>),
    /// A table load: the statements of one transaction (which also commits the step's journal
    /// row), `copy` the index of the COPY among them.
    Load {
        /// The statements, in order, without `BEGIN` and `COMMIT`.
        statements: Vec<Statement>,
        /// Which one is the COPY.
        copy: usize,
        /// Whether the client feeds the COPY (`COPY ... FROM STDIN`, PostgreSQL) or the server
        /// reads S3 (Redshift).
        client_side: bool,
        /// How the step's row count is known.
        rows: RowCount,
    },
    /// One statement: in a transaction block with its journal row when `in_block`, alone otherwise
    /// (VACUUM and the other statements that cannot run in a block: [`sql::needs_own_transaction`]).
    Statement {
        /// The statement.
        statement: Statement,
        /// Whether it commits together with its journal row.
        in_block: bool,
    },
    /// The unload: Redshift's `UNLOAD`, or on PostgreSQL the `COPY (query) TO STDOUT` whose rows
    /// the client writes in UNLOAD's file layout.
    Unload {
        /// The statement that produces the rows.
        statement: Statement,
        /// Whether the client writes the files (PostgreSQL).
        client_side: bool,
    },
}

/// A unit of work that the journal tracks and a rerun skips once it succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Stable identifier, unique within the plan whatever the names: `create-tables`,
    /// `load:stage.usage` (names outside `[a-z0-9_]` are quoted: `load:"a.b"."t"`),
    /// `transform:0:3`, `unload`.
    pub id: String,
    /// What it does.
    pub kind: StepKind,
    /// What it runs.
    pub body: Body,
}

impl Step {
    /// Every statement as a script runs it, in order: a transaction's `BEGIN` and `COMMIT`
    /// included.
    pub fn statements(&self) -> Vec<Statement> {
        let context = |s: &[Statement]| {
            s.first()
                .map(|s| s.context.clone())
                .unwrap_or_else(|| self.id.clone())
        };
        match &self.body {
            Body::Transaction(list)
            | Body::Load {
                statements: list, ..
            } => {
                let ctx = context(list);
                let mut out = vec![stmt("BEGIN".into(), &ctx)];
                out.extend(list.iter().cloned());
                out.push(stmt("COMMIT".into(), &ctx));
                out
            }
            Body::Statement { statement, .. } | Body::Unload { statement, .. } => {
                vec![statement.clone()]
            }
        }
    }

    /// A digest of what the step runs (its id and statements), journaled when the run starts so
    /// that a resume with a changed manifest is noticed. FNV-1a, stable across versions.
    pub fn digest(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |bytes: &[u8]| {
            for &b in bytes {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
        };
        feed(self.id.as_bytes());
        for s in self.statements() {
            feed(s.sql.as_bytes());
        }
        format!("{h:016x}")
    }
}

/// The step id of a table's load: `load:schema.table` when both names are plain (`[a-z0-9_]`,
/// not starting with a digit), otherwise each name double-quoted (`load:"a.b"."t"`), so no two
/// tables share an id.
pub fn load_step_id(table: &Table) -> String {
    let part = |name: &str| {
        let plain = !name.is_empty()
            && !name.as_bytes()[0].is_ascii_digit()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if plain {
            name.to_owned()
        } else {
            sql::quote_ident(name)
        }
    };
    format!(
        "load:{}.{}",
        part(table.name.schema.as_str()),
        part(table.name.table.as_str())
    )
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
    /// PostgreSQL: send the transforms and the unload query as written, without the Redshift
    /// compatibility rewrite ([`sql::compat::rewrite_for_postgres`]); the caller then also skips
    /// installing the compatibility functions. Ignored for Redshift.
    pub no_compat: bool,
}

/// A construct in a transform (or the unload query) that the rehearsal on PostgreSQL cannot
/// reproduce with Redshift's meaning ([`sql::compat::unsupported`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatWarning {
    /// The transform file's name as the manifest gives it, or `unload.query`.
    pub file: String,
    /// 1-based line in that file.
    pub line: usize,
    /// The construct as written.
    pub construct: String,
    /// Why it differs and what to write instead.
    pub instead: String,
}

impl std::fmt::Display for CompatWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} line {}: `{}` is not reproduced by the PostgreSQL rehearsal: {}",
            self.file, self.line, self.construct, self.instead
        )
    }
}

/// The constructs of `job`'s transforms and unload query that a rehearsal on PostgreSQL cannot
/// reproduce, with file and line. `etl plan` and `etl run` print them before anything runs.
pub fn compat_warnings(job: &Job) -> Vec<CompatWarning> {
    let mut out = Vec::new();
    let mut check = |file: &str, first_line: usize, text: &str| {
        for f in sql::compat::unsupported(text) {
            let line = first_line + text[..f.offset].bytes().filter(|&b| b == b'\n').count();
            out.push(CompatWarning {
                file: file.to_owned(),
                line,
                construct: f.construct,
                instead: f.instead,
            });
        }
    };
    for transform in &job.transforms {
        for stmt in sql::split_statements(&transform.sql, Dialect::Redshift) {
            check(&transform.name, stmt.line, &stmt.text);
        }
    }
    if let Some(unload) = &job.unload {
        check("unload.query", 1, &sql::unload_query(&unload.source));
    }
    out
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

    let mut create = Vec::new();
    for schema in &job.schemas {
        create.push(Statement {
            sql: sql::create_schema(schema),
            context: format!("create schema {schema}"),
        });
    }
    for table in &job.tables {
        create.push(Statement {
            sql: sql::create_table(dialect, table),
            context: format!("create table {}", table.name),
        });
    }
    steps.push(Step {
        id: "create-tables".into(),
        kind: StepKind::CreateTables,
        body: Body::Transaction(create),
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
        let body = match dialect {
            Dialect::Postgres => load_body(table, &context, true, |target| Statement {
                sql: CopyFromStdin {
                    table: target,
                    columns: &columns,
                    binary: !options.text_copy,
                }
                .to_string(),
                context: context.clone(),
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
                load_body(table, &context, false, |target| Statement {
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
                })
            }
        };
        steps.push(Step {
            id: load_step_id(table),
            kind: StepKind::Load(ti),
            body,
        });
    }

    // What PostgreSQL is sent for Redshift SQL: rewritten once, here, so that `etl plan` prints
    // exactly what `etl run` and the Lambdas execute.
    let rewrite = |text: String| -> String {
        if dialect == Dialect::Postgres && !options.no_compat {
            match sql::compat::rewrite_for_postgres(&text) {
                std::borrow::Cow::Borrowed(_) => text,
                std::borrow::Cow::Owned(t) => t,
            }
        } else {
            text
        }
    };
    for (fi, transform) in job.transforms.iter().enumerate() {
        // Split as Redshift reads the file (backslash escapes in strings), then rewrite.
        for (si, stmt) in sql::split_statements(&transform.sql, Dialect::Redshift)
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
                body: {
                    let sql = rewrite(stmt.text);
                    Body::Statement {
                        in_block: !sql::needs_own_transaction(&sql),
                        statement: Statement {
                            context: format!(
                                "transform {} statement {} (line {})",
                                transform.name,
                                si + 1,
                                stmt.line
                            ),
                            sql,
                        },
                    }
                },
            });
        }
    }

    if let Some(unload) = &job.unload {
        let query = rewrite(sql::unload_query(&unload.source));
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
            kind: StepKind::Unload { query },
            body: Body::Unload {
                statement: Statement {
                    sql,
                    context: "unload".into(),
                },
                client_side: dialect == Dialect::Postgres,
            },
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
    }
}

/// The body of one table load: one transaction, whatever the method. `copy` builds the COPY
/// into the given target (the table, or the upsert's staging table).
fn load_body(
    table: &Table,
    ctx: &str,
    client_side: bool,
    copy: impl Fn(CopyTarget<'_>) -> Statement,
) -> Body {
    let mut out = Vec::new();
    let copy_at;
    match &table.load {
        LoadMethod::Append => {
            copy_at = out.len();
            out.push(copy(CopyTarget::Table(&table.name)));
        }
        LoadMethod::Replace => {
            out.push(stmt(sql::delete_all(&table.name), ctx));
            copy_at = out.len();
            out.push(copy(CopyTarget::Table(&table.name)));
        }
        LoadMethod::Upsert { keys } => {
            let staging = Ident::new(STAGING_TABLE).expect("valid name");
            let dedup = Ident::new(format!("{STAGING_TABLE}_dedup")).expect("valid name");
            out.push(stmt(sql::create_staging_like(&staging, &table.name), ctx));
            copy_at = out.len();
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
    if client_side {
        // PostgreSQL keeps no statistics of a table a COPY filled (Redshift's COPY updates them
        // when the table was empty): without them a transform over a freshly loaded table can be
        // planned as if it had one row (measured: 100 s instead of 4 s for the demo's profile).
        out.push(stmt(sql::analyze(&table.name), ctx));
    }
    Body::Load {
        statements: out,
        copy: copy_at,
        client_side,
        rows: if client_side {
            RowCount::Streamed
        } else {
            RowCount::LastCopyCount
        },
    }
}

/// Renders a plan as a script: each statement ends with `;`, each step is introduced by a comment.
pub fn render(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in steps {
        out.push_str(&format!("-- step {}\n", step.id));
        for s in step.statements() {
            out.push_str(&s.sql);
            out.push_str(";\n");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn job(schemas: serde_json::Value) -> Job {
        let manifest = serde_json::json!({
            "name": "ids",
            "input": "s3://bucket/in/",
            "schemas": schemas,
            "transform": [],
        });
        Job::parse(&manifest.to_string(), "job.json", Path::new("/tmp")).expect("valid")
    }

    fn table(name: &str) -> serde_json::Value {
        serde_json::json!({"name": name, "files": "t.txt", "columns": [{"name": "a", "type": "int"}]})
    }

    #[test]
    fn step_ids_cannot_collide_whatever_the_names() {
        // Schema `a.b` with table `t`, and schema `a` with table `b.t`: once both `load:a.b.t`.
        let job = job(serde_json::json!([
            {"name": "a.b", "tables": [table("t")]},
            {"name": "a", "tables": [table("b.t")]},
            {"name": "plain", "tables": [table("usage"), table("with space")]},
        ]));
        let steps = build(&job, Dialect::Postgres, &PlanOptions::default()).unwrap();
        let ids: Vec<&str> = steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "create-tables",
                "load:\"a.b\".t",
                "load:a.\"b.t\"",
                "load:plain.usage",
                "load:plain.\"with space\"",
            ]
        );
        let unique: std::collections::HashSet<&&str> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
    }

    #[test]
    fn loads_say_which_statement_is_the_copy_and_analyze_on_postgres() {
        let job = job(serde_json::json!([{"name": "s", "tables": [
            {"name": "r", "files": "t.txt", "load": {"method": "replace"},
             "columns": [{"name": "a", "type": "int"}]},
            {"name": "u", "files": "t.txt", "load": {"method": "upsert", "keys": ["a"]},
             "columns": [{"name": "a", "type": "int"}]},
        ]}]));
        let pg = build(&job, Dialect::Postgres, &PlanOptions::default()).unwrap();
        let Body::Load {
            statements,
            copy,
            client_side,
            rows,
        } = &pg[1].body
        else {
            panic!("{:?}", pg[1].body)
        };
        assert!(*client_side && *rows == RowCount::Streamed);
        assert!(statements[*copy].sql.starts_with("COPY \"s\".\"r\""));
        assert_eq!(statements.last().unwrap().sql, "ANALYZE \"s\".\"r\"");
        let Body::Load {
            statements, copy, ..
        } = &pg[2].body
        else {
            panic!()
        };
        assert!(statements[*copy].sql.contains("etl_staging"));
        assert_eq!(statements.last().unwrap().sql, "ANALYZE \"s\".\"u\"");
        // The script form wraps the body in its transaction.
        let all = pg[1].statements();
        assert_eq!(all.first().unwrap().sql, "BEGIN");
        assert_eq!(all.last().unwrap().sql, "COMMIT");

        let rs = build(&job, Dialect::Redshift, &PlanOptions::default()).unwrap();
        let Body::Load {
            statements,
            client_side,
            rows,
            ..
        } = &rs[1].body
        else {
            panic!()
        };
        assert!(!*client_side && *rows == RowCount::LastCopyCount);
        assert!(!statements.iter().any(|s| s.sql.starts_with("ANALYZE")));
    }

    #[test]
    fn a_digest_changes_with_what_the_step_runs() {
        let a = job(serde_json::json!([{"name": "s", "tables": [table("t")]}]));
        let b = job(serde_json::json!([{"name": "s", "tables": [
            {"name": "t", "files": "t.txt", "columns": [{"name": "a", "type": "bigint"}]}
        ]}]));
        let pa = build(&a, Dialect::Postgres, &PlanOptions::default()).unwrap();
        let pb = build(&b, Dialect::Postgres, &PlanOptions::default()).unwrap();
        assert_eq!(pa[1].digest(), pa[1].digest());
        assert_eq!(
            pa[1].digest(),
            pb[1].digest(),
            "the load's statements are the same"
        );
        assert_ne!(pa[0].digest(), pb[0].digest(), "CREATE TABLE differs");
    }
}
