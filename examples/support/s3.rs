//! What the benchmarks that talk to SeaweedFS share (included with `#[path]`).

/// Creates a bucket with the shared SDK configuration (path-style, for a custom endpoint).
pub async fn create_bucket(bucket: &str) {
    let conf = ci_test_metrics::aws::load().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("create bucket");
}
