//! `etl init`: write a job manifest from Hive `CREATE TABLE` statements, from a sample of the exported
//! files, or both. The manifest goes to stdout or `-o FILE`; the report of how each column's type was
//! decided, and what to check by hand, goes to stderr.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use etl_core::init::{self, DEFAULT_SAMPLE_ROWS, InitOptions};

use crate::Failure;

/// `--header`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum HeaderArg {
    /// Decide from the data (without DDL) or from `skip.header.line.count` (with DDL).
    Auto,
    /// Every file starts with one header line.
    Yes,
    /// No header line.
    No,
}

/// `etl init` flags.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Hive DDL: one or many CREATE TABLE statements as SHOW CREATE TABLE prints them (`-` for stdin).
    #[arg(long, value_name = "DDL.sql")]
    from_hive: Option<PathBuf>,

    /// Exported files: a folder with one sub-folder (or file) per table, or one file.
    #[arg(long, value_name = "DIR")]
    sample: Option<PathBuf>,

    /// At most this many data rows are read per table.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SAMPLE_ROWS)]
    rows: u64,

    /// Put every table in this schema (default: the Hive database, or `public`).
    #[arg(long)]
    schema: Option<String>,

    /// The job's name (default: from the DDL file or the sample folder).
    #[arg(long)]
    name: Option<String>,

    /// The manifest's `input` folder or s3:// prefix (default: the sample folder, else `data/`).
    #[arg(long)]
    input: Option<String>,

    /// Whether the files start with a header line.
    #[arg(long, value_enum, default_value_t = HeaderArg::Auto)]
    header: HeaderArg,

    /// Load ARRAY, MAP, STRUCT, UNIONTYPE and BINARY columns as VARCHAR(65535) holding Hive's text
    /// form, instead of refusing them.
    #[arg(long)]
    complex_as_varchar: bool,

    /// Write the manifest to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Overwrite the -o file if it exists.
    #[arg(long)]
    force: bool,
}

/// Runs `etl init`.
pub fn run(args: InitArgs) -> Result<(), Failure> {
    if args.from_hive.is_none() && args.sample.is_none() {
        return Err(Failure::Usage(anyhow::anyhow!(
            "give --from-hive DDL.sql, --sample DIR, or both"
        )));
    }
    if args.rows == 0 {
        return Err(Failure::Usage(anyhow::anyhow!("--rows must be at least 1")));
    }
    if let Some(out) = &args.output
        && out.exists()
        && !args.force
    {
        return Err(Failure::Usage(anyhow::anyhow!(
            "{} exists: give --force to overwrite it, or another -o",
            out.display()
        )));
    }
    let hive_ddl = match &args.from_hive {
        None => None,
        Some(p) if p.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the DDL from stdin")
                .map_err(Failure::Usage)?;
            Some(("stdin".to_owned(), text))
        }
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))
                .map_err(Failure::Usage)?;
            Some((p.display().to_string(), text))
        }
    };
    if let Some(s) = &args.sample
        && !s.exists()
    {
        return Err(Failure::Usage(anyhow::anyhow!(
            "--sample {}: no such file or folder",
            s.display()
        )));
    }
    let manifest_dir = match args.output.as_ref().and_then(|o| o.parent()) {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let opts = InitOptions {
        hive_ddl,
        sample: args.sample,
        rows: args.rows,
        schema: args.schema,
        name: args.name,
        input: args.input,
        header: match args.header {
            HeaderArg::Auto => None,
            HeaderArg::Yes => Some(true),
            HeaderArg::No => Some(false),
        },
        complex_as_varchar: args.complex_as_varchar,
        manifest_dir,
    };
    let out = init::init(&opts)?;
    eprint!("{}", out.report);
    match &args.output {
        Some(path) => {
            let mut f = if args.force {
                std::fs::File::create(path)
            } else {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(path)
            }
            .with_context(|| format!("cannot create {}", path.display()))
            .map_err(Failure::Usage)?;
            f.write_all(out.manifest.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "wrote {}; check it with: etl plan {}",
                path.display(),
                path.display()
            );
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(out.manifest.as_bytes())?;
            stdout.flush()?;
        }
    }
    Ok(())
}
