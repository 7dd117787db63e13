//! Credentials and endpoints beyond what the store crate reads from the environment: the AWS
//! profile (`AWS_PROFILE`, `~/.aws/config`, `~/.aws/credentials`, `credential_process`) and
//! the instance-metadata variables. Environment variables win over the profile.

use anyhow::{bail, Result};
use object_store::aws::AmazonS3Builder;

/// `builder` (made from the environment) with what the AWS profile adds; an error when no
/// credentials can be found anywhere (one line, before any job starts).
pub(super) fn apply_aws_profile(builder: AmazonS3Builder, url: &str) -> Result<AmazonS3Builder> {
    let env = |name: &str| std::env::var(name).ok();
    let home = env("HOME").map(std::path::PathBuf::from);
    let profile = crate::aws_profile::resolve(&env, home.as_deref())?;
    let mut b = builder;
    if let Some(v) = &profile.access_key_id {
        b = b.with_access_key_id(v);
    }
    if let Some(v) = &profile.secret_access_key {
        b = b.with_secret_access_key(v);
    }
    if let Some(v) = &profile.session_token {
        b = b.with_token(v);
    }
    if env("AWS_REGION").is_none() && env("AWS_DEFAULT_REGION").is_none() {
        if let Some(v) = &profile.region {
            b = b.with_region(v);
        }
    }
    if env("AWS_ENDPOINT_URL").is_none() && env("AWS_ENDPOINT").is_none() {
        if let Some(v) = &profile.endpoint_url {
            b = b.with_endpoint(v);
        }
    }
    if let Some(v) = env("AWS_EC2_METADATA_SERVICE_ENDPOINT") {
        b = b.with_metadata_endpoint(v);
    }
    let elsewhere = [
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ]
    .iter()
    .any(|v| env(v).is_some());
    let unsigned = env("AWS_SKIP_SIGNATURE").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let no_instance =
        env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if profile.access_key_id.is_none() && !elsewhere && !unsigned && no_instance {
        bail!(
            "{url}: no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials (instance metadata is off: AWS_EC2_METADATA_DISABLED)"
        );
    }
    Ok(b)
}
