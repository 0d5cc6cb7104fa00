//! One shared AWS `SdkConfig` for the S3 store and the CloudWatch sink.
//!
//! The standard variables are honoured (`AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`,
//! `AWS_ENDPOINT_URL_CLOUDWATCH`, the credential variables and profiles). Set
//! `AWS_EC2_METADATA_DISABLED=true` when running off EC2 so the SDK never probes the
//! instance-metadata address.

use aws_config::{BehaviorVersion, SdkConfig};

/// Loads the shared SDK configuration from the environment.
///
/// When no region is configured anywhere, `us-east-1` is used so local servers work without setup.
pub async fn load() -> SdkConfig {
    let region =
        aws_config::meta::region::RegionProviderChain::default_provider().or_else("us-east-1");
    aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .load()
        .await
}

/// Prints an SDK error with its whole chain of causes (the SDK's `Display` alone says little).
pub fn describe<E: std::error::Error>(err: &E) -> String {
    aws_sdk_s3::error::DisplayErrorContext(err).to_string()
}
