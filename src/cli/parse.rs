//! `ci-test-metrics parse` (placeholder).

/// placeholder
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> crate::Result<u8> {
    Err(crate::Error::Usage("parse is not implemented yet".into()))
}
