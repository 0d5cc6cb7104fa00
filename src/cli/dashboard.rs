//! `ci-test-metrics dashboard` (render, deploy, templates) and `ci-test-metrics alarms deploy`.

use crate::dashboard::alarms::{alarm_specs, AlarmOptions};
use crate::dashboard::deploy::{deploy_alarms, deploy_dashboard, discover_jobs};
use crate::dashboard::template::{render, RenderOptions, Rendered, Template, BUILTIN};
use crate::dashboard::DashboardError;
use crate::error::exit;

/// CloudWatch dashboards for the per-job test metrics.
///
/// The default template shows, for each job: TestDuration p50/p90/p99, TotalTestTime with an
/// anomaly-detection band, Tests/Failures/Errors/Skipped and Builds; above them an overview of
/// all jobs built from SEARCH expressions (new jobs appear there without a redeploy). A
/// "Branch class" switch in the dashboard toolbar flips the per-job rows between master,
/// release, pr and branch; `--branch-class all` renders one line per class instead.
///
/// Examples:
///
///   ci-test-metrics dashboard render --jobs mxnet/unix-cpu,mxnet/unix-gpu > body.json
///
///   ci-test-metrics dashboard deploy --name ci-tests --discover --dry-run
///
///   ci-test-metrics dashboard deploy --name ci-tests-pr --discover --branch-class pr
///
/// More jobs than fit one dashboard (500 widgets, 2,500 metrics, or --jobs-per-dashboard) are
/// split into NAME-1, NAME-2, ... Every body is validated before it is printed or deployed.
/// Deploying an unchanged body does nothing. See docs/dashboards.md.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    pub command: DashboardCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum DashboardCommand {
    /// Print the dashboard body; several bodies as one JSON object {name: body}.
    Render(DashboardArgs),
    /// Create or update the dashboard(s) with PutDashboard (GetDashboard first; unchanged ones are left alone).
    Deploy(DeployArgs),
    /// List the built-in templates.
    Templates,
}

/// Which jobs, and where their metrics are.
#[derive(Debug, clap::Args)]
pub struct Jobs {
    /// Jobs to include (Jenkins full job names without the branch), comma-separated or repeated.
    #[arg(long, value_delimiter = ',', num_args = 1.., conflicts_with = "discover")]
    pub jobs: Vec<String>,

    /// Find the jobs with ListMetrics: every job with a `Builds` metric in the namespace (for the
    /// branch class, or any class with `all`).
    #[arg(long)]
    pub discover: bool,

    /// CloudWatch namespace the metrics are in (the one `aggregate --namespace` used).
    #[arg(
        long,
        env = "CI_TEST_METRICS_NAMESPACE",
        default_value = "CITestMetrics"
    )]
    pub namespace: String,

    /// Branch class to show: master, release, pr, branch (or a custom class), or all.
    #[arg(long, default_value = "master")]
    pub branch_class: String,
}

#[derive(Debug, clap::Args)]
pub struct DashboardArgs {
    #[command(flatten)]
    pub jobs: Jobs,

    /// A built-in template (`default`, `overview`; see `dashboard templates`) or a template file.
    #[arg(long, default_value = "default")]
    pub template: String,

    /// Dashboard name (A-Z a-z 0-9 - _); split dashboards get -1, -2, ...
    #[arg(long, default_value = "ci-test-metrics")]
    pub name: String,

    /// Region the widgets read from [default: the SDK's region, else us-east-1].
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,

    /// At most this many jobs per dashboard (fewer when CloudWatch's limits demand it).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs_per_dashboard: u32,
}

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub dashboard: DashboardArgs,

    /// Say what would be created or updated (reading CloudWatch), but write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Per-job CloudWatch alarms on TotalTestTime and p90 TestDuration.
///
/// Each job gets two alarms, named PREFIX/JOB/CLASS/TotalTestTime and
/// PREFIX/JOB/CLASS/TestDuration. They compare the metric with a CloudWatch anomaly-detection band
/// (ANOMALY_DETECTION_BAND(m1, BAND)) and fire when a period is above the band: slower than the
/// job's own history predicts. No baseline needs maintaining. Deploying again changes nothing
/// unless the specification changed (a fingerprint in the description tells).
///
/// Examples:
///
///   ci-test-metrics alarms deploy --discover --dry-run
///
///   ci-test-metrics alarms deploy --jobs mxnet/unix-cpu --sns-topic arn:aws:sns:us-east-1:123456789012:ci-slow
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct AlarmsArgs {
    #[command(subcommand)]
    pub command: AlarmsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum AlarmsCommand {
    /// Create or update the alarms (DescribeAlarms first; unchanged ones are left alone).
    Deploy(AlarmsDeployArgs),
}

#[derive(Debug, clap::Args)]
pub struct AlarmsDeployArgs {
    #[command(flatten)]
    pub jobs: Jobs,

    /// SNS topic ARN to notify when an alarm fires and when it is OK again.
    #[arg(long)]
    pub sns_topic: Option<String>,

    /// Alarm names start with this.
    #[arg(long, default_value = "ci-test-metrics")]
    pub prefix: String,

    /// Width of the anomaly band, in standard deviations (larger: fewer alarms).
    #[arg(long, default_value_t = 2.0)]
    pub band: f64,

    /// Alarm period in seconds (a multiple of 60).
    #[arg(long, default_value_t = 3600)]
    pub period: i32,

    /// Periods evaluated.
    #[arg(long, default_value_t = 1)]
    pub evaluation_periods: i32,

    /// Breaching periods among them that fire the alarm.
    #[arg(long, default_value_t = 1)]
    pub datapoints_to_alarm: i32,

    /// Print the alarms as JSON with what would happen to each (reading CloudWatch); write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Dashboard errors carry their own exit codes (bad template 1, no jobs 3, AWS 4); see
/// [`crate::error::dashboard_exit_code`].
fn finish(result: Result<u8, DashboardError>) -> crate::Result<u8> {
    Ok(result?)
}

pub async fn run(args: Args) -> crate::Result<u8> {
    finish(match args.command {
        DashboardCommand::Templates => {
            for (name, text) in BUILTIN {
                let t = Template::parse(name, text);
                let what = t.map(|t| t.description).unwrap_or_else(|e| e.to_string());
                println!("{name}\t{what}");
            }
            Ok(exit::OK)
        }
        DashboardCommand::Render(a) => render_cmd(&a).await,
        DashboardCommand::Deploy(a) => deploy_cmd(&a).await,
    })
}

async fn client() -> (aws_sdk_cloudwatch::Client, Option<String>) {
    let conf = crate::aws::load().await;
    let region = conf.region().map(|r| r.to_string());
    (aws_sdk_cloudwatch::Client::new(&conf), region)
}

/// The jobs from the flags, or discovered; errors when there are none.
async fn jobs(
    j: &Jobs,
    client: Option<&aws_sdk_cloudwatch::Client>,
) -> Result<Vec<String>, DashboardError> {
    let jobs: Vec<String> = match (j.discover, client) {
        (true, Some(c)) => discover_jobs(c, &j.namespace, &j.branch_class).await?,
        _ => j.jobs.iter().filter(|s| !s.is_empty()).cloned().collect(),
    };
    if jobs.is_empty() {
        return Err(DashboardError::NoJobs(if j.discover {
            format!(
                "no job published Builds in namespace {:?} for branch class {:?}",
                j.namespace, j.branch_class
            )
        } else {
            "give --jobs J1,J2 or --discover".into()
        }));
    }
    Ok(jobs)
}

async fn rendered(a: &DashboardArgs, need_client: bool) -> Result<RenderedSet, DashboardError> {
    let template = Template::load(&a.template)?;
    let (client, sdk_region) = if need_client || a.jobs.discover {
        let (c, r) = client().await;
        (Some(c), r)
    } else {
        (None, None)
    };
    let jobs = if template.per_job.is_empty() && template.per_job_all.is_none() {
        Vec::new()
    } else {
        jobs(&a.jobs, client.as_ref()).await?
    };
    let opts = RenderOptions {
        name: a.name.clone(),
        namespace: a.jobs.namespace.clone(),
        region: a
            .region
            .clone()
            .or(sdk_region)
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".into()),
        branch_class: a.jobs.branch_class.clone(),
        jobs_per_dashboard: a.jobs_per_dashboard as usize,
    };
    let dashboards = render(&template, &jobs, &opts)?;
    Ok(RenderedSet {
        client,
        jobs: jobs.len(),
        dashboards,
    })
}

struct RenderedSet {
    client: Option<aws_sdk_cloudwatch::Client>,
    jobs: usize,
    dashboards: Vec<Rendered>,
}

async fn render_cmd(a: &DashboardArgs) -> Result<u8, DashboardError> {
    let set = rendered(a, false).await?;
    if let [one] = set.dashboards.as_slice() {
        println!("{}", one.json());
    } else {
        let all: serde_json::Map<String, serde_json::Value> = set
            .dashboards
            .iter()
            .map(|d| {
                (
                    d.name.clone(),
                    serde_json::to_value(&d.body).unwrap_or_default(),
                )
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
    }
    eprintln!(
        "rendered {} dashboard(s) for {} job(s), all valid",
        set.dashboards.len(),
        set.jobs
    );
    Ok(exit::OK)
}

async fn deploy_cmd(a: &DeployArgs) -> Result<u8, DashboardError> {
    let set = rendered(&a.dashboard, true).await?;
    let Some(client) = set.client else {
        return Err(DashboardError::NoJobs("no CloudWatch client".into()));
    };
    for d in &set.dashboards {
        let action = deploy_dashboard(&client, d, a.dry_run).await?;
        println!(
            "{}: {} ({} jobs, {} widgets)",
            d.name,
            action.describe(a.dry_run),
            d.jobs.len(),
            d.body.widgets.len()
        );
    }
    Ok(exit::OK)
}

pub async fn run_alarms(args: AlarmsArgs) -> crate::Result<u8> {
    let AlarmsCommand::Deploy(a) = args.command;
    finish(alarms_deploy(&a).await)
}

async fn alarms_deploy(a: &AlarmsDeployArgs) -> Result<u8, DashboardError> {
    let (client, _) = client().await;
    let jobs = jobs(&a.jobs, Some(&client)).await?;
    let opts = AlarmOptions {
        prefix: a.prefix.clone(),
        namespace: a.jobs.namespace.clone(),
        branch_class: a.jobs.branch_class.clone(),
        sns_topic: a.sns_topic.clone(),
        band: a.band,
        period: a.period,
        evaluation_periods: a.evaluation_periods,
        datapoints_to_alarm: a.datapoints_to_alarm,
    };
    let specs = alarm_specs(&jobs, &opts).map_err(DashboardError::Alarm)?;
    let actions: Vec<String> = match deploy_alarms(&client, &specs, a.dry_run).await {
        Ok(done) => done
            .iter()
            .map(|(_, action)| action.describe(a.dry_run).to_string())
            .collect(),
        // A dry run still shows the alarms when CloudWatch cannot be read (no account yet).
        Err(e) if a.dry_run => {
            tracing::warn!("cannot read the current alarms, so each one is shown as new: {e}");
            vec!["would create (current alarms unknown)".to_string(); specs.len()]
        }
        Err(e) => return Err(e),
    };
    if a.dry_run {
        let out: Vec<serde_json::Value> = specs
            .iter()
            .zip(&actions)
            .map(|(s, action)| serde_json::json!({"action": action, "alarm": s}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        for (spec, action) in specs.iter().zip(&actions) {
            println!("{}: {action}", spec.name);
        }
    }
    Ok(exit::OK)
}
