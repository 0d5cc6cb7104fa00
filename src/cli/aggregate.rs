//! `ci-test-metrics aggregate` (placeholder).

/// placeholder
#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> crate::Result<u8> {
    Err(crate::Error::Usage(
        "aggregate is not implemented yet".into(),
    ))
}
