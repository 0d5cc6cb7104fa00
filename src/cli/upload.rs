//! `ci-test-metrics upload`: one build's result files, then its `context.json`, to a store.

use crate::context::{Context, Overrides};
use crate::store::Store;
use crate::upload::{self, UploadError};
use std::path::PathBuf;
use std::time::Duration;

/// Upload this build's JUnit result files, then its context.json, to S3 or a directory.
///
/// Each file matching PATTERN (globs, relative to --working-dir) goes to
/// `{job}/{branch}/{build}/{name}` in the store, where the name is the file's path below the
/// pattern's leading wildcard-free directories, `/` encoded as `%2F` (and `%` as `%25`):
/// `**/junit.xml` stores `a/junit.xml` as `a%2Fjunit.xml`, `build/*.xml` stores `build/r.xml` as
/// `r.xml`. Then `context.json` (who, what, where, and a manifest with each file's size, SHA-256
/// and test count) is written last, marking the build complete. Only PutObject is used: a role
/// allowed `s3:PutObject` on `arn:aws:s3:::BUCKET/*` is enough.
///
/// Every value comes from the CI's own variables: Jenkins (JOB_NAME, BRANCH_NAME, BUILD_NUMBER,
/// GIT_COMMIT, CHANGE_*, …), GitHub Actions (GITHUB_REPOSITORY, GITHUB_WORKFLOW, GITHUB_JOB,
/// GITHUB_RUN_NUMBER, GITHUB_SHA, the event at GITHUB_EVENT_PATH, …), GitLab CI
/// (CI_PROJECT_PATH, CI_JOB_NAME, CI_JOB_ID, CI_COMMIT_SHA, CI_MERGE_REQUEST_*, …) or Buildkite
/// (BUILDKITE_PIPELINE_SLUG, BUILDKITE_STEP_KEY, BUILDKITE_BUILD_NUMBER, BUILDKITE_COMMIT, …),
/// detected from JENKINS_URL or JOB_NAME, GITHUB_ACTIONS, GITLAB_CI or BUILDKITE; --ci chooses
/// one, and with two CIs' variables at once one warning names the one used. docs/upload.md
/// lists which variable gives each field. Pull and merge requests get the branch `PR-<n>`, as
/// Jenkins multibranch names them, so branch classes and `analyze --pr-gate` work the same; a
/// GitHub pull request's commit is its head, not the merge commit GitHub builds. A re-run is a
/// build of its own (GitHub: run × 100 + attempt; GitLab: the job ID; Buildkite: build × 100 +
/// retry + 1), so no attempt's results replace or double another's. Each flag below overrides
/// its variable. What the CI leaves out is read from the git checkout in --working-dir: the
/// commit, its author and time (`git log -1`), the branch and the origin URL. context.json
/// records where each value came from (`sources`: `github:GITHUB_SHA`, `flag:--job`, `git`). For
/// a Jenkins multibranch job `mxnet-validation/unix-cpu/PR-16336` the job is
/// `mxnet-validation/unix-cpu` and the branch `PR-16336`; in keys the branch is encoded as
/// Jenkins does (`feature/foo` → `feature%2Ffoo`).
///
/// Names are checked, never guessed: a job, branch or file name with `..`, a leading `/`, a
/// backslash, a control character, or over 255 bytes is refused; nothing may be written under
/// `_ci-test-metrics/`, and a store URL inside it (`s3://BUCKET/_ci-test-metrics`) or a mistyped
/// one (`s3:/BUCKET`, `S3://BUCKET`) is refused with the corrected form.
///
/// A result file that is not valid JUnit is still uploaded as the raw artifact, its parse error
/// is recorded in the manifest, and the aggregator counts it in ParseErrors: it is visible
/// without failing the stage. By default that is a warning and exit 0; with --strict it is
/// exit 2 (after everything was uploaded).
///
/// The whole upload is bounded by --timeout (default 60 s): connecting, every attempt and every
/// retry included, and each retried attempt is logged as a warning. With --soft-fail a timeout,
/// like any other failure, prints one warning line and exits 0, so an unreachable store never
/// stalls or fails the build.
///
/// Exit codes: 0 uploaded (also with files that are not JUnit, unless --strict; or any failure
/// with --soft-fail), 1 bad flags, names, CI variables or store URL, 2 a file could not be read, or with
/// --strict a file is not valid JUnit, 3 no file matched, 4 the store refused, failed or timed
/// out (context.json is then not written).
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    /// Glob patterns of result files, e.g. 'build/*.xml' or '**/nosetests*.xml'.
    #[arg(value_name = "PATTERN", required = true)]
    pub patterns: Vec<String>,

    /// Where to upload: s3://BUCKET[/PREFIX], file://DIR or a directory.
    /// [default: s3://$MXNET_CI_UNITTEST_ARTIFACT_BUCKET, else $CI_TEST_METRICS_STORE]
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,

    /// Directory the patterns are relative to.
    #[arg(long, short = 'C', value_name = "DIR", default_value = ".")]
    pub working_dir: PathBuf,

    /// The CI whose variables give the values below [default: the one detected: JENKINS_URL or
    /// JOB_NAME, GITHUB_ACTIONS=true, GITLAB_CI=true or BUILDKITE=true; `none` reads no CI
    /// variables].
    #[arg(long, value_name = "CI", help_heading = "Build (flags override CI variables)",
          value_parser = clap::builder::PossibleValuesParser::new(crate::context::ci::names()))]
    pub ci: Option<String>,
    /// Job name, Jenkins folders separated by `/` [default: $JOB_NAME, minus its last segment
    /// when $BRANCH_NAME is set].
    #[arg(long, help_heading = "Build (flags override CI variables)")]
    pub job: Option<String>,
    /// Raw branch name, e.g. PR-16336 or feature/foo [default: $BRANCH_NAME, else $GIT_BRANCH
    /// without `origin/`, else git's current branch].
    #[arg(long, help_heading = "Build (flags override CI variables)")]
    pub branch: Option<String>,
    /// Build number [default: $BUILD_NUMBER].
    #[arg(long, help_heading = "Build (flags override CI variables)")]
    pub build: Option<String>,
    /// Commit built [default: $GIT_COMMIT, else git's HEAD].
    #[arg(long, help_heading = "Build (flags override CI variables)")]
    pub commit: Option<String>,
    /// Author of the commit, `Name <email>` [default: $CHANGE_AUTHOR_DISPLAY_NAME and
    /// $CHANGE_AUTHOR_EMAIL, else HEAD's author from git].
    #[arg(long, help_heading = "Build (flags override CI variables)")]
    pub author: Option<String>,
    /// Repository URL, for commit links in reports [default: $GIT_URL, else git's
    /// remote.origin.url; credentials in it are dropped].
    #[arg(long, help_heading = "Build (flags override CI variables)")]
    pub repo_url: Option<String>,
    /// Jenkins user behind the change [default: $CHANGE_AUTHOR (pull requests)].
    #[arg(long, help_heading = "Build (flags override CI variables)")]
    pub user: Option<String>,
    /// When the build ran, RFC 3339 (stored in UTC) [default: now].
    #[arg(long, help_heading = "Build (flags override CI variables)")]
    pub timestamp: Option<String>,
    /// Link to the build [default: $BUILD_URL].
    #[arg(long, help_heading = "Build (flags override CI variables)")]
    pub build_url: Option<String>,
    /// Agent the build ran on [default: $NODE_NAME].
    #[arg(long, help_heading = "Build (flags override CI variables)")]
    pub node: Option<String>,
    /// The pull request's source branch [default: $CHANGE_BRANCH, else the branch].
    #[arg(long, help_heading = "Build (flags override CI variables)")]
    pub source_branch: Option<String>,
    /// The pull request's target branch [default: $CHANGE_TARGET].
    #[arg(long, help_heading = "Build (flags override CI variables)")]
    pub target_branch: Option<String>,
    /// Pull request number [default: $CHANGE_ID].
    #[arg(long, help_heading = "Build (flags override CI variables)")]
    pub pr: Option<String>,

    /// When no file matches, still write context.json (an empty manifest) and exit 0.
    #[arg(long)]
    pub allow_empty: bool,
    /// Never fail the build: on any error (a timeout included) print a one-line warning and
    /// exit 0.
    #[arg(long)]
    pub soft_fail: bool,
    /// Exit 2 when a matched file is not valid JUnit (it is still uploaded and recorded).
    #[arg(long)]
    pub strict: bool,
    /// Give up after this many seconds for the whole upload, retries included; each attempt
    /// gets a third of it (raise it for very large files) and connecting a sixth (5 s at most).
    #[arg(long, value_name = "SECONDS", env = "CI_TEST_METRICS_UPLOAD_TIMEOUT",
          default_value_t = DEFAULT_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,
    /// Files uploaded at the same time.
    #[arg(long, value_name = "N", default_value_t = upload::DEFAULT_CONCURRENCY,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Show what would be uploaded, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output: a short text summary, or JSON with every key and the whole context.json.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

/// The whole upload's time limit unless --timeout says otherwise: a CI stage can afford it.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

const EXAMPLES: &str = "\
Examples:
  # In a Jenkins pipeline step (bucket from the global property MXNET_CI_UNITTEST_ARTIFACT_BUCKET):
  sh \"ci-test-metrics upload --soft-fail 'nosetests_*.xml'\"
  bat 'ci-test-metrics.exe upload --soft-fail nosetests_*.xml'
  # (examples/jenkins/Jenkinsfile_utils.groovy wraps this in collect_test_results_unix/_windows)

  # In a GitHub Actions, GitLab CI or Buildkite step, after the tests (also when they failed):
  ci-test-metrics upload --soft-fail --store s3://my-bucket 'build/test-results/**/*.xml'
  # (examples/github/, examples/gitlab/, examples/buildkite/ are ready to copy)

  # A Jenkins agent inside a GitHub runner: say which CI's variables to read:
  ci-test-metrics upload --ci github --soft-fail 'junit.xml'

  # By hand, outside any CI, to a local directory:
  ci-test-metrics upload --store ./ci-results --job mxnet-validation/unix-cpu \\
      --branch feature/foo --build 42 --commit $(git rev-parse HEAD) 'build/**/*.xml'
  # → ./ci-results/mxnet-validation/unix-cpu/feature%2Ffoo/42/{*.xml, context.json}

  # A monorepo: every package's junit.xml, each under its own relative path:
  ci-test-metrics upload --soft-fail '**/junit.xml'
  # → …/42/{packages%2Fa%2Fjunit.xml, packages%2Fb%2Fjunit.xml, context.json}

  # A tighter limit for the whole upload (or CI_TEST_METRICS_UPLOAD_TIMEOUT=20):
  ci-test-metrics upload --soft-fail --timeout 20 'nosetests_*.xml'

  # See what would be uploaded, as JSON:
  ci-test-metrics upload --dry-run --format json --store s3://my-bucket '*.xml'

Against a local S3 server, set AWS_ENDPOINT_URL (path-style addressing is then used).";

pub async fn run(args: Args) -> crate::Result<u8> {
    let soft_fail = args.soft_fail;
    let seconds = args.timeout;
    let deadline = tokio::time::timeout(Duration::from_secs(seconds), run_inner(args));
    let result = match deadline.await {
        Ok(result) => result,
        Err(_) => Err(UploadError::TimedOut { seconds }.into()),
    };
    match result {
        Ok(code) => Ok(code),
        Err(e) if soft_fail => {
            eprintln!(
                "warning: upload failed; exiting 0 because of --soft-fail: {}",
                chain(&e)
            );
            Ok(crate::error::exit::OK)
        }
        Err(e) => Err(e),
    }
}

/// An error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

async fn run_inner(args: Args) -> crate::Result<u8> {
    let url = super::store_url(args.store.as_deref(), |n| std::env::var(n).ok())?;
    let flags = Overrides {
        ci: args.ci,
        job: args.job,
        branch: args.branch,
        build: args.build,
        build_url: args.build_url,
        commit: args.commit,
        author: args.author,
        user: args.user,
        repo_url: args.repo_url,
        source_branch: args.source_branch,
        target_branch: args.target_branch,
        pr: args.pr,
        timestamp: args.timestamp,
        node: args.node,
    };
    let git = crate::git::Git::new(&args.working_dir);
    let context = Context::from_sources(
        |n| std::env::var(n).ok(),
        || git.head(),
        &flags,
        // Whole seconds: enough for build times, and easy to read.
        time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc()),
    )
    .map_err(UploadError::from)?;
    let sources = upload::find_files(&args.working_dir, &args.patterns)?;
    if sources.is_empty() && !args.allow_empty {
        return Err(UploadError::NoFiles {
            patterns: args.patterns,
            dir: args.working_dir,
        }
        .into());
    }
    let timeouts = crate::store::s3::Timeouts::within(Duration::from_secs(args.timeout));
    let store = Store::open_with(&url, timeouts)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::InvalidUrl { .. } => crate::Error::Usage(e.to_string()),
            e => e.into(),
        })?;
    let outcome = upload::upload(
        &store,
        context,
        sources,
        usize::from(args.concurrency),
        args.dry_run,
    )
    .await?;
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&outcome)
                .map_err(|e| crate::Error::Usage(e.to_string()))?
        ),
        Format::Text => print_text(&outcome),
    }
    let broken: Vec<String> = outcome
        .context
        .files
        .iter()
        .filter(|f| f.error.is_some())
        .map(|f| f.name.clone())
        .collect();
    if broken.is_empty() {
        Ok(crate::error::exit::OK)
    } else if args.strict {
        Err(UploadError::NotJUnit { files: broken }.into())
    } else {
        tracing::warn!(
            "{} file(s) are not valid JUnit ({}); uploaded and noted in {}; exit 0 \
             (--strict exits 2)",
            broken.len(),
            broken.join(", "),
            crate::layout::CONTEXT_FILE
        );
        Ok(crate::error::exit::OK)
    }
}

fn print_text(outcome: &upload::Outcome) {
    let files = &outcome.context.files;
    let bytes: u64 = files.iter().map(|f| f.bytes).sum();
    let verb = if outcome.dry_run {
        "would upload"
    } else {
        "uploaded"
    };
    let sep = if outcome.store.ends_with('/') {
        ""
    } else {
        "/"
    };
    println!(
        "{verb} {} file(s), {bytes} bytes, then {} to {}{sep}{}",
        files.len(),
        crate::layout::CONTEXT_FILE,
        outcome.store,
        outcome.build_prefix
    );
    for f in files {
        let parsed = match (&f.tests, &f.error) {
            (Some(n), _) => format!("{n} tests"),
            (None, Some(e)) => format!("not JUnit: {e}"),
            (None, None) => String::new(),
        };
        println!("  {}  {} bytes  {parsed}", f.name, f.bytes);
    }
}
