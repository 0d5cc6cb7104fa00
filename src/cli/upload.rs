//! `ci-test-metrics upload` (placeholder).

/// placeholder
#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> crate::Result<u8> {
    Err(crate::Error::Usage("upload is not implemented yet".into()))
}
