//! Plans a job and runs SQL against a URL, using only etl-core's public API.
//!
//! ```sh
//! cargo run -p etl-core --example plan_and_query -- examples/recommendations/job.json postgres://localhost/postgres
//! ```

use etl_core::Job;
use etl_core::plan::{self, PlanOptions};
use etl_core::sql::Dialect;
use etl_core::warehouse::{ConnectOptions, Warehouse};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(manifest), Some(url)) = (args.next(), args.next()) else {
        eprintln!("usage: plan_and_query JOB.json DATABASE_URL");
        std::process::exit(2);
    };

    // Validate the manifest (without requiring the input files: the plan is for S3).
    let job = Job::read(&manifest)?;
    let steps = plan::build(
        &job,
        Dialect::Redshift,
        &PlanOptions {
            input: Some("s3://my-bucket/input/".parse()?),
            unload_to: Some("s3://my-bucket/output/result_".parse()?),
            ..PlanOptions::default()
        },
    )?;
    println!("{} steps; the first statements:", steps.len());
    for step in steps.iter().take(2) {
        for s in &step.statements() {
            println!("{};", s.sql);
        }
    }

    let warehouse = Warehouse::connect(ConnectOptions::from_url(&url)?, 1).await?;
    let client = warehouse.get().await?;
    let row = client.query_one("select version()", &[]).await?;
    println!(
        "connected ({:?}): {}",
        warehouse.dialect(),
        row.get::<_, String>(0)
    );
    Ok(())
}
