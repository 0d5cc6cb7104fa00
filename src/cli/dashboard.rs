//! `ci-test-metrics dashboard` and `ci-test-metrics alarms` (placeholder).

/// placeholder
#[derive(Debug, clap::Args)]
pub struct Args {}

/// placeholder
#[derive(Debug, clap::Args)]
pub struct AlarmsArgs {}

pub async fn run(_args: Args) -> crate::Result<u8> {
    Err(crate::Error::Usage(
        "dashboard is not implemented yet".into(),
    ))
}

pub async fn run_alarms(_args: AlarmsArgs) -> crate::Result<u8> {
    Err(crate::Error::Usage("alarms is not implemented yet".into()))
}
