//! Batch ETL into Amazon Redshift — or into a throwaway PostgreSQL that reproduces Redshift's COPY
//! and UNLOAD semantics, so a job can be rehearsed on one machine.
//!
//! ```no_run
//! use etl_core::plan::{self, PlanOptions};
//! use etl_core::sql::Dialect;
//! use etl_core::warehouse::{ConnectOptions, Warehouse};
//! use etl_core::Job;
//!
//! # async fn demo() -> etl_core::Result<()> {
//! // Read and validate a job manifest; every problem comes back with its JSON path.
//! let job = Job::from_path("examples/recommendations/job.json")?;
//!
//! // The statements the job runs on Redshift, in order.
//! let steps = plan::build(&job, Dialect::Redshift, &PlanOptions {
//!     input: Some("s3://my-bucket/recommendations/".parse().expect("an s3:// URL")),
//!     ..PlanOptions::default()
//! })?;
//! print!("{}", plan::render(&steps));
//!
//! // Run SQL on a warehouse.
//! let warehouse = Warehouse::connect(ConnectOptions::from_url("postgres://localhost/dev")?, 4).await?;
//! let client = warehouse.get().await?;
//! let rows = client.query("select 1", &[]).await.map_err(|e| etl_core::Error::query("select 1", &e))?;
//! # Ok(()) }
//! ```
//!
//! Modules:
//! - [`job`]: the manifest, validated into typed values;
//! - [`sql`]: the only place SQL text is made (quoting, statement builders for both dialects);
//! - [`plan`]: the ordered steps of a job for a dialect;
//! - [`warehouse`]: connections (URL, `PG*` variables, Secrets Manager JSON), TLS, the pool;
//! - [`cluster`]: the throwaway PostgreSQL;
//! - [`load`]: Redshift's COPY semantics on the client;
//! - [`init`]: a job manifest written from Hive DDL or from a sample of the exported files;
//! - [`exec`]: one step of a plan executed with its journal writes, shared by `pipeline` and `steps`;
//! - [`journal`]: the run and step records in the warehouse (`etl_meta`);
//! - [`lock`]: one run of a job at a time per warehouse;
//! - [`track`]: a submitted statement's state, from any process;
//! - [`pipeline`]: a whole job on one machine (`etl run`);
//! - [`steps`]: one step per call, for the state machine's Lambda functions;
//! - [`unload`]: Redshift's UNLOAD file layout from PostgreSQL;
//! - [`storage`]: local folders and S3 behind one interface;
//! - `aws` (feature `aws`): Secrets Manager, CloudFormation, Step Functions, staging to S3.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "aws")]
pub mod aws;
pub mod cluster;
pub mod doctor;
pub mod error;
pub mod exec;
pub mod init;
pub mod job;
pub mod journal;
pub mod load;
pub mod lock;
pub mod pipeline;
pub mod plan;
pub mod reach;
pub mod sql;
pub mod steps;
pub mod storage;
pub mod track;
pub mod unload;
pub mod warehouse;

pub use error::{Error, ErrorKind, Result};
pub use job::Job;
