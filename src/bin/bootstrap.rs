//! `bootstrap`: the AWS Lambda entry point for the `provided.al2023` runtime (feature `lambda`).
//! Everything it does lives in [`ci_test_metrics::lambda`]; configuration is environment only.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ci_test_metrics::lambda::init_logging();
    ci_test_metrics::lambda::run().await
}
