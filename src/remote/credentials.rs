//! Credentials and endpoints beyond what the store crate reads from the environment: the AWS
//! profile (`AWS_PROFILE`, `~/.aws/config`, `~/.aws/credentials`).

use anyhow::Result;
use object_store::aws::AmazonS3Builder;

/// `builder` with what the AWS profile adds (variables already set win).
pub(super) fn apply_aws_profile(builder: AmazonS3Builder) -> Result<AmazonS3Builder> {
    Ok(builder)
}
