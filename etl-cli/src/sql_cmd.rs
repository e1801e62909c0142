//! `etl sql`: ad-hoc SQL, psql style.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use futures::StreamExt as _;
use tokio_postgres::SimpleQueryMessage;

use etl_core::sql::{Dialect, split_statements};
use etl_core::warehouse::{self, Retry};

use crate::Failure;
use crate::conn::ConnArgs;
use crate::output::{Format, printer};

/// `etl sql` flags.
#[derive(Debug, Args)]
pub struct SqlArgs {
    #[command(flatten)]
    conn: ConnArgs,

    /// SQL to run; repeatable, and each may hold several statements.
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    commands: Vec<String>,

    /// A file of SQL statements (`-` for stdin); repeatable. Runs after the -c statements.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    files: Vec<PathBuf>,

    /// Output format of result sets.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,

    /// The dialect the SQL is written in. `redshift` on a PostgreSQL database (a rehearsal, `etl
    /// run --keep`, `etl server`) installs the Redshift compatibility functions and rewrites the
    /// SQL exactly as `etl run` rewrites a transform; on Redshift it is sent as written. Default:
    /// sent as written.
    #[arg(long, value_enum, value_name = "DIALECT")]
    dialect: Option<crate::plan_cmd::DialectArg>,
}

/// One script to run and where it came from, for messages.
struct Script {
    origin: String,
    text: String,
}

fn scripts(args: &SqlArgs) -> anyhow::Result<Vec<Script>> {
    let mut out: Vec<Script> = args
        .commands
        .iter()
        .enumerate()
        .map(|(i, c)| Script {
            origin: format!("-c #{}", i + 1),
            text: c.clone(),
        })
        .collect();
    let read_stdin = || -> anyhow::Result<String> {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read SQL from stdin")?;
        Ok(s)
    };
    for f in &args.files {
        let text = if f.as_os_str() == "-" {
            read_stdin()?
        } else {
            std::fs::read_to_string(f)
                .map_err(|e| etl_core::Error::io("cannot read", f.display(), e))?
        };
        out.push(Script {
            origin: f.display().to_string(),
            text,
        });
    }
    if out.is_empty() {
        out.push(Script {
            origin: "stdin".into(),
            text: read_stdin()?,
        });
    }
    Ok(out)
}

/// The command tag psql prints for a statement without a result set, derived from its first words
/// (tokio-postgres reports only the row count).
fn command_tag(sql: &str, rows: u64) -> String {
    let words: Vec<String> = sql
        .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
        .filter(|w| !w.is_empty())
        .take(2)
        .map(str::to_ascii_uppercase)
        .collect();
    match words.first().map(String::as_str) {
        Some("INSERT") => format!("INSERT 0 {rows}"),
        Some(w @ ("UPDATE" | "DELETE" | "MERGE" | "COPY" | "FETCH" | "MOVE")) => {
            format!("{w} {rows}")
        }
        Some("CREATE" | "DROP" | "ALTER" | "GRANT" | "REVOKE" | "TRUNCATE" | "COMMENT") => {
            let second = words.get(1).cloned().unwrap_or_default();
            format!("{} {second}", words[0]).trim().to_owned()
        }
        Some(w) => w.to_owned(),
        None => String::new(),
    }
}

/// Runs `etl sql`.
pub async fn run(args: SqlArgs) -> Result<(), Failure> {
    let scripts = scripts(&args).map_err(Failure::Usage)?;
    let options = args.conn.options().await?;
    let client = warehouse::connect(&options, Retry::NONE).await?;
    let dialect = warehouse::detect_dialect(&client).await?;
    let rewrite = matches!(args.dialect, Some(crate::plan_cmd::DialectArg::Redshift))
        && dialect == Dialect::Postgres;
    if rewrite {
        etl_core::exec::install_compat(&client).await?;
    }
    let tls = warehouse::tls_connector(&options)?;
    let cancel = client.cancel_token();

    let stdout = std::io::stdout();
    let mut out = printer(
        args.format,
        Box::new(std::io::BufWriter::new(stdout.lock())),
    );
    for script in &scripts {
        // Redshift SQL is split as Redshift reads it (backslash escapes in strings).
        let split_as = if rewrite { Dialect::Redshift } else { dialect };
        for (n, stmt) in split_statements(&script.text, split_as)
            .into_iter()
            .enumerate()
        {
            let context = format!("{} statement {} (line {})", script.origin, n + 1, stmt.line);
            let text = if rewrite {
                for f in etl_core::sql::compat::unsupported(&stmt.text) {
                    let line = stmt.line + stmt.text[..f.offset].matches('\n').count();
                    eprintln!(
                        "etl: warning: {} line {line}: `{}` is not reproduced on PostgreSQL: {}",
                        script.origin, f.construct, f.instead
                    );
                }
                etl_core::sql::compat::rewrite_for_postgres(&stmt.text).into_owned()
            } else {
                stmt.text.clone()
            };
            let stmt = etl_core::sql::SplitStatement { text, ..stmt };
            let work = run_statement(&client, &stmt.text, dialect, args.format, out.as_mut());
            let result = tokio::select! {
                r = work => r,
                _ = tokio::signal::ctrl_c() => {
                    // Dropping the future does not stop the server: cancel explicitly.
                    let _ = cancel.cancel_query(tls.clone()).await;
                    return Err(Failure::Interrupted);
                }
            };
            match result {
                Ok(()) => {}
                Err(StatementError::Io(e)) => return Err(Failure::Failed(e.into())),
                Err(StatementError::Db(e)) => {
                    let err = etl_core::Error::query(context, &e);
                    return Err(match crate::errors::caret(&stmt.text, &err) {
                        // The caret goes after the message, so the message is rendered here.
                        Some(c) => {
                            Failure::Failed(anyhow::anyhow!("{:#}\n{c}", anyhow::Error::new(err)))
                        }
                        None => Failure::from(err),
                    });
                }
            }
        }
    }
    Ok(())
}

enum StatementError {
    Db(tokio_postgres::Error),
    Io(std::io::Error),
}

async fn run_statement(
    client: &tokio_postgres::Client,
    sql: &str,
    dialect: Dialect,
    format: Format,
    out: &mut dyn crate::output::Printer,
) -> Result<(), StatementError> {
    // JSON wants column types, which the simple protocol does not send: describe first.
    let types = if format == Format::Json && dialect == Dialect::Postgres {
        client.prepare(sql).await.ok().map(|s| {
            s.columns()
                .iter()
                .map(|c| c.type_().clone())
                .collect::<Vec<_>>()
        })
    } else {
        None
    };
    let stream = client
        .simple_query_raw(sql)
        .await
        .map_err(StatementError::Db)?;
    futures::pin_mut!(stream);
    let mut in_result = false;
    while let Some(msg) = stream.next().await {
        match msg.map_err(StatementError::Db)? {
            SimpleQueryMessage::RowDescription(cols) => {
                let names: Vec<String> = cols.iter().map(|c| c.name().to_owned()).collect();
                out.begin(&names, types.as_deref())
                    .map_err(StatementError::Io)?;
                in_result = true;
            }
            SimpleQueryMessage::Row(row) => {
                let values: Vec<Option<&str>> = (0..row.len()).map(|i| row.get(i)).collect();
                out.row(&values).map_err(StatementError::Io)?;
            }
            SimpleQueryMessage::CommandComplete(rows) => {
                if in_result {
                    out.end().map_err(StatementError::Io)?;
                    in_result = false;
                } else {
                    out.command(&command_tag(sql, rows))
                        .map_err(StatementError::Io)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::command_tag;

    #[test]
    fn tags() {
        assert_eq!(command_tag("insert into t values (1)", 1), "INSERT 0 1");
        assert_eq!(command_tag("create table t(a int)", 0), "CREATE TABLE");
        assert_eq!(command_tag("  delete from t", 4), "DELETE 4");
        assert_eq!(command_tag("begin", 0), "BEGIN");
    }
}
