//! What S3 the deployed network reaches, decided before anything runs.
//!
//! The cluster runs in a VPC without internet gateway or NAT, with enhanced VPC routing: its COPY
//! and UNLOAD reach S3 only through the VPC's S3 gateway endpoint
//! (<https://docs.aws.amazon.com/redshift/latest/mgmt/enhanced-vpc-routing.html>). A gateway
//! endpoint serves buckets of its own region only
//! (<https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-s3.html>), and its policy
//! (`cfn/initial.yaml`) admits only the job bucket and the buckets of `ExtraBucketArns`. A job
//! whose input or unload is in another bucket, or whose `redshift.region` names another region,
//! passes every other check and then hangs on the cluster until the statement times out.
//!
//! The permanent stack says what it serves in two outputs, `ReachableBuckets` (bucket names or
//! bucket ARNs, comma-separated) and `S3Region`; [`Reach::check`] compares a job with them, and
//! `etl plan --stack`, `etl stage --stack` and `etl start` refuse a job that does not fit, with
//! the reason and the fix.

use crate::error::{Error, Result};
use crate::job::{Job, Location};
use crate::sql::S3Url;

/// The output of the permanent stack that lists the buckets it reaches.
pub const BUCKETS_OUTPUT: &str = "ReachableBuckets";
/// The output of the permanent stack that names the region whose S3 it reaches.
pub const REGION_OUTPUT: &str = "S3Region";

/// The buckets and region a deployment reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// The permanent stack's name (for messages).
    pub stack: String,
    /// Bucket names.
    pub buckets: Vec<String>,
    /// The region.
    pub region: String,
}

impl Reach {
    /// From a stack's outputs; `None` when the stack does not have both outputs (deployed before
    /// they existed: nothing to check against).
    pub fn from_outputs(stack: &str, outputs: &[(String, String)]) -> Option<Reach> {
        let get = |key: &str| {
            outputs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let buckets = get(BUCKETS_OUTPUT)?
            .split(',')
            .map(str::trim)
            .filter(|b| !b.is_empty())
            // arn:aws:s3:::bucket, as ExtraBucketArns takes them.
            .map(|b| b.rsplit(":::").next().unwrap_or(b).to_owned())
            .collect();
        Some(Reach {
            stack: stack.to_owned(),
            buckets,
            region: get(REGION_OUTPUT)?.to_owned(),
        })
    }

    /// Checks that the job's input and unload buckets are reachable and that `redshift.region` is
    /// absent or the deployment's. `input` and `unload_to` replace the manifest's locations (the
    /// flags of `etl plan` and `etl stage`); local locations are not checked (`etl stage` puts
    /// them on S3 first, where this check sees them).
    ///
    /// # Errors
    /// [`Error::InvalidJob`]-kind [`Error::InvalidInput`] listing every problem, each with its fix.
    pub fn check(&self, job: &Job, input: Option<&S3Url>, unload_to: Option<&S3Url>) -> Result<()> {
        let mut problems = Vec::new();
        let input = input.cloned().or_else(|| match &job.input {
            Location::S3(u) => Some(u.clone()),
            Location::Local(_) => None,
        });
        let unload = unload_to
            .cloned()
            .or_else(|| match job.unload.as_ref().map(|u| &u.to) {
                Some(Location::S3(u)) => Some(u.clone()),
                _ => None,
            });
        for (what, url) in [("input", input), ("unload", unload)] {
            if let Some(url) = url
                && !self.buckets.iter().any(|b| b == url.bucket())
            {
                problems.push(self.bucket_problem(what, &url));
            }
        }
        if let Some(region) = &job.redshift.region
            && *region != self.region
        {
            problems.push(format!(
                "redshift.region {region:?}: the cluster reaches S3 only through its VPC's gateway \
                 endpoint, which serves {} alone (enhanced VPC routing, no NAT: \
                 https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-s3.html); copy the \
                 data to a bucket in {} and remove redshift.region",
                self.region, self.region
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid(
                format!("job (what stack {} reaches)", self.stack),
                problems.join("; "),
            ))
        }
    }

    fn bucket_problem(&self, what: &str, url: &S3Url) -> String {
        format!(
            "{what} {url} is in bucket {:?}, which the deployment cannot reach: its S3 gateway \
             endpoint and roles admit only {} (stack {} output {BUCKETS_OUTPUT}). Use a location in \
             {} (etl stage --to s3://{}/...), or redeploy the stack with \
             ExtraBucketArns=arn:aws:s3:::{} (a bucket in {})",
            url.bucket(),
            self.buckets.join(", "),
            self.stack,
            if self.buckets.len() == 1 {
                "that bucket"
            } else {
                "one of them"
            },
            self.buckets.first().map(String::as_str).unwrap_or("..."),
            url.bucket(),
            self.region
        )
    }

    /// Reads stack `name`'s outputs; `Ok(None)` when it has no such outputs.
    ///
    /// # Errors
    /// [`Error::Aws`] when the stack cannot be described; [`Error::InvalidInput`] when it does not
    /// exist.
    #[cfg(feature = "aws")]
    pub async fn from_stack(config: &crate::aws::SdkConfig, name: &str) -> Result<Option<Reach>> {
        let stacks = crate::aws::stack::Stacks::new(config);
        match stacks.describe(name).await? {
            Some(stack) => Ok(Reach::from_outputs(name, &stack.outputs)),
            None => Err(Error::invalid(
                "--stack",
                format!("stack {name:?} does not exist: name the permanent stack (etl deploy)"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(buckets: &str) -> Vec<(String, String)> {
        vec![
            (BUCKETS_OUTPUT.into(), buckets.into()),
            (REGION_OUTPUT.into(), "eu-west-1".into()),
        ]
    }

    #[test]
    fn outputs_name_buckets_or_bucket_arns() {
        let r = Reach::from_outputs(
            "etl",
            &outputs("jobs,arn:aws:s3:::more, arn:aws-cn:s3:::cn"),
        )
        .unwrap();
        assert_eq!(r.buckets, ["jobs", "more", "cn"]);
        assert_eq!(r.region, "eu-west-1");
        assert_eq!(Reach::from_outputs("etl", &outputs("jobs")[..1]), None);
    }

    fn job(input: &str, unload: &str, region: Option<&str>) -> Job {
        let mut j = serde_json::json!({
            "name": "r",
            "input": input,
            "schemas": [{"name": "s", "tables": [{"name": "t", "files": ["t.txt"],
                "columns": [{"name": "a", "type": "integer"}]}]}],
            "unload": {"query": "select 1", "to": unload}
        });
        if let Some(r) = region {
            j["redshift"] = serde_json::json!({"region": r});
        }
        Job::parse(&j.to_string(), "job.json", std::path::Path::new("/tmp")).unwrap()
    }

    #[test]
    fn a_job_outside_the_reach_is_refused_with_the_fix() {
        let r = Reach::from_outputs("etl", &outputs("jobs,arn:aws:s3:::more")).unwrap();
        assert!(
            r.check(
                &job("s3://jobs/in/", "s3://more/out/r_", Some("eu-west-1")),
                None,
                None
            )
            .is_ok()
        );
        assert!(
            r.check(&job("local/", "out/r_", None), None, None).is_ok(),
            "local is staged first"
        );
        let err = r
            .check(
                &job("s3://other/in/", "s3://jobs/out/r_", Some("us-east-1")),
                None,
                None,
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("input s3://other/in/")
                && err.contains("ExtraBucketArns=arn:aws:s3:::other"),
            "{err}"
        );
        assert!(
            err.contains("redshift.region \"us-east-1\"") && err.contains("eu-west-1"),
            "{err}"
        );
        assert!(!err.contains("unload"), "{err}");
        let other = S3Url::parse("s3://other/out/").unwrap();
        let err = r
            .check(
                &job("s3://jobs/in/", "s3://jobs/out/r_", None),
                None,
                Some(&other),
            )
            .unwrap_err();
        assert!(err.to_string().contains("unload s3://other/out/"), "{err}");
    }
}
