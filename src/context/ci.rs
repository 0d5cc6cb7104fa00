//! What a CI says about a build: the table of CIs ([`PROVIDERS`]), how one is chosen (detected
//! from its marker variable, or forced with `--ci`), and the values its variables give.
//!
//! Each CI lives in its own file (`jenkins.rs`, `github.rs`, …) and exports one [`Provider`]:
//! adding a CI is one new file and one line in [`PROVIDERS`]. A provider only reads: it never
//! fails, and a value it cannot make sense of is left out (with a warning) or handed on for
//! [`super::Context::from_sources`] to refuse, naming the variable, when no flag replaces it.

use super::ContextError;

/// Every CI whose variables are read, in the order they are preferred when several are detected
/// at once (a Jenkins agent inside a GitHub runner is a Jenkins build).
pub static PROVIDERS: &[&Provider] = &[
    &super::jenkins::PROVIDER,
    &super::github::PROVIDER,
    &super::gitlab::PROVIDER,
    &super::buildkite::PROVIDER,
];

/// `--ci none`: read no CI's variables.
pub const NONE: &str = "none";

/// One CI.
#[derive(Debug)]
pub struct Provider {
    /// Short name: `--ci NAME` and the prefix of its [`super::Source`] (`github:GITHUB_SHA`).
    pub name: &'static str,
    /// For people: `GitHub Actions`.
    pub title: &'static str,
    /// The variable that says a build runs in this CI, if it is set: `GITHUB_ACTIONS`.
    pub detect: fn(&Vars) -> Option<&'static str>,
    /// The values its variables give.
    pub read: fn(&Vars) -> CiValues,
    /// The variables that give the job, the branch and the build, for error messages.
    pub names: Names,
}

/// The variables named when a required value is missing.
#[derive(Debug)]
pub struct Names {
    pub job: &'static str,
    pub branch: &'static str,
    pub build: &'static str,
    pub commit: &'static str,
}

/// A value from a CI variable, and the variable (or variables) it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub value: String,
    pub var: String,
}

impl Found {
    pub fn new(value: impl Into<String>, var: impl Into<String>) -> Found {
        Found {
            value: value.into(),
            var: var.into(),
        }
    }
}

/// What a CI's variables say. The build is a result: a CI variable that cannot be a build
/// number is an error only when no `--build` replaces it.
#[derive(Debug, Default)]
pub struct CiValues {
    pub job: Option<Found>,
    pub branch: Option<Found>,
    pub build: Option<Result<Found, ContextError>>,
    pub build_url: Option<Found>,
    pub commit: Option<Found>,
    /// `Name <email>`, `Name` or `<email>`.
    pub author: Option<Found>,
    pub user: Option<Found>,
    pub repo_url: Option<Found>,
    pub source_branch: Option<Found>,
    pub target_branch: Option<Found>,
    pub pr: Option<Found>,
    pub node: Option<Found>,
}

/// The environment, as a CI provider reads it: empty variables count as unset.
pub struct Vars<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Vars<'a> {
    pub fn new(get: &'a dyn Fn(&str) -> Option<String>) -> Vars<'a> {
        Vars { get }
    }
    /// The variable's value, if set and not empty.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.get)(name).filter(|v| !v.is_empty())
    }
    /// The variable with its name.
    pub fn found(&self, name: &str) -> Option<Found> {
        self.get(name).map(|v| Found::new(v, name))
    }
    /// The first of `names` that is set.
    pub fn first(&self, names: &[&str]) -> Option<Found> {
        names.iter().find_map(|n| self.found(n))
    }
    /// Whether the variable is set to `value`.
    pub fn is(&self, name: &str, value: &str) -> bool {
        self.get(name).as_deref() == Some(value)
    }
}

/// The CI to read: `choice` (`--ci`: a provider's name or `none`), else the one detected. Warns
/// when several are detected; with none detected, Jenkins (whose variables `upload` has always
/// read). `None` means no CI's variables are read.
pub fn choose(
    vars: &Vars,
    choice: Option<&str>,
) -> Result<Option<&'static Provider>, ContextError> {
    match choice.filter(|c| !c.is_empty()) {
        Some(NONE) => return Ok(None),
        Some(name) => {
            return PROVIDERS
                .iter()
                .copied()
                .find(|p| p.name == name)
                .map(Some)
                .ok_or_else(|| ContextError::Invalid {
                    what: "CI",
                    value: name.to_string(),
                    from: "--ci".into(),
                    reason: format!("use one of {}", names().join(", ")),
                });
        }
        None => {}
    }
    let detected: Vec<(&'static Provider, &'static str)> = PROVIDERS
        .iter()
        .filter_map(|p| (p.detect)(vars).map(|marker| (*p, marker)))
        .collect();
    match detected.as_slice() {
        [] => Ok(Some(PROVIDERS[0])),
        [(one, _)] => Ok(Some(one)),
        [(chosen, _), others @ ..] => {
            tracing::warn!("{}", several_warning(&detected, chosen, others));
            Ok(Some(chosen))
        }
    }
}

/// The one warning for several CIs' variables at once.
fn several_warning(
    detected: &[(&'static Provider, &'static str)],
    chosen: &Provider,
    others: &[(&'static Provider, &'static str)],
) -> String {
    let list: Vec<String> = detected
        .iter()
        .map(|(p, marker)| format!("{} ({marker})", p.title))
        .collect();
    let alternatives: Vec<String> = others
        .iter()
        .map(|(p, _)| format!("--ci {} for {}", p.name, p.title))
        .collect();
    format!(
        "variables of several CIs are set: {}; using {} (pass {})",
        list.join(", "),
        chosen.title,
        alternatives.join(", or ")
    )
}

/// The accepted `--ci` values.
pub fn names() -> Vec<&'static str> {
    PROVIDERS
        .iter()
        .map(|p| p.name)
        .chain([NONE])
        .collect::<Vec<_>>()
}

/// The values of the chosen CI (none with `--ci none`), and which CI that was.
pub fn read(
    var: &dyn Fn(&str) -> Option<String>,
    choice: Option<&str>,
) -> Result<(Option<&'static Provider>, CiValues), ContextError> {
    let vars = Vars::new(var);
    let provider = choose(&vars, choice)?;
    let values = provider.map(|p| (p.read)(&vars)).unwrap_or_default();
    Ok((provider, values))
}

/// One segment of a job name from free text (a workflow or step name): `%` and `/` are
/// percent-encoded, as Jenkins encodes branches, so the text stays one segment; a backslash
/// becomes `%5C`.
pub fn job_segment(text: &str) -> String {
    text.trim()
        .replace('%', "%25")
        .replace('/', "%2F")
        .replace('\\', "%5C")
}

/// `run × 100 + attempt`: a build number that only grows and gives each attempt of a run its
/// own build (`attempt` counts from 1, at most 99). Errors name the variables.
pub fn attempt_build(
    run: Option<Found>,
    attempt: Option<Found>,
    first_attempt: u64,
) -> Option<Result<Found, ContextError>> {
    let run = run?;
    let invalid = |f: &Found, reason: &str| ContextError::Invalid {
        what: "build number",
        value: f.value.clone(),
        from: f.var.clone(),
        reason: reason.into(),
    };
    let Some(number) = super::parse_number(&run.value) else {
        return Some(Err(invalid(&run, "not a whole number; pass --build")));
    };
    let (attempt_n, var) = match &attempt {
        None => (1, run.var.clone()),
        Some(a) => match super::parse_number(&a.value) {
            Some(n) => (
                n.saturating_add(1).saturating_sub(first_attempt),
                format!("{}*100+{}", run.var, a.var),
            ),
            None => return Some(Err(invalid(a, "not a whole number; pass --build"))),
        },
    };
    if !(1..=99).contains(&attempt_n) {
        let a = attempt.as_ref().unwrap_or(&run);
        return Some(Err(invalid(
            a,
            "attempts 1 to 99 fit in the build number (run × 100 + attempt); pass --build",
        )));
    }
    match number
        .checked_mul(100)
        .and_then(|n| n.checked_add(attempt_n))
    {
        Some(build) => Some(Ok(Found::new(build.to_string(), var))),
        None => Some(Err(invalid(&run, "too large; pass --build"))),
    }
}

/// `PR-<n>`, the branch a pull or merge request maps to (as Jenkins multibranch names it).
pub fn pr_branch(pr: &Found) -> Found {
    Found::new(format!("PR-{}", pr.value), pr.var.clone())
}

/// `Name <email>` from two variables, either of which may be unset.
pub fn author(vars: &Vars, name_var: &str, email_var: &str) -> Option<Found> {
    match (vars.get(name_var), vars.get(email_var)) {
        (Some(name), Some(email)) => Some(Found::new(format!("{name} <{email}>"), name_var)),
        (Some(name), None) => Some(Found::new(name, name_var)),
        (None, Some(email)) => Some(Found::new(format!("<{email}>"), email_var)),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |n| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn detection_and_forcing() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, Option<&'a str>);
        let cases: &[Case] = &[
            (&[], None, Some("jenkins")),
            (&[("GITHUB_ACTIONS", "true")], None, Some("github")),
            (&[("GITLAB_CI", "true")], None, Some("gitlab")),
            (&[("BUILDKITE", "true")], None, Some("buildkite")),
            (&[("JENKINS_URL", "http://j/")], None, Some("jenkins")),
            // Two at once: the first in the table, with a warning.
            (
                &[("JENKINS_URL", "http://j/"), ("GITHUB_ACTIONS", "true")],
                None,
                Some("jenkins"),
            ),
            (
                &[("GITHUB_ACTIONS", "true")],
                Some("gitlab"),
                Some("gitlab"),
            ),
            (&[("GITHUB_ACTIONS", "true")], Some("none"), None),
            (&[("GITHUB_ACTIONS", "false")], None, Some("jenkins")),
        ];
        for (env, choice, want) in cases {
            let get = |n: &str| {
                env.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            };
            let got = choose(&Vars::new(&get), *choice).unwrap().map(|p| p.name);
            assert_eq!(got, *want, "{env:?} {choice:?}");
        }
        let get = vars(&[]);
        let e = choose(&Vars::new(&get), Some("travis"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--ci") && e.contains("buildkite, none"), "{e}");
    }

    #[test]
    fn the_warning_names_every_ci_and_the_one_chosen() {
        let detected = [
            (PROVIDERS[0], "JENKINS_URL"),
            (PROVIDERS[1], "GITHUB_ACTIONS"),
        ];
        let w = several_warning(&detected, detected[0].0, &detected[1..]);
        assert_eq!(
            w,
            "variables of several CIs are set: Jenkins (JENKINS_URL), GitHub Actions \
             (GITHUB_ACTIONS); using Jenkins (pass --ci github for GitHub Actions)"
        );
    }

    #[test]
    fn attempts_get_their_own_build_number() {
        let f = |v: &str, var: &str| Some(Found::new(v, var));
        let build = |run, attempt, first| {
            attempt_build(run, attempt, first)
                .map(|r| r.map(|f| f.value).map_err(|e| e.to_string()))
        };
        assert_eq!(build(f("42", "R"), None, 1), Some(Ok("4201".into())));
        assert_eq!(build(f("42", "R"), f("1", "A"), 1), Some(Ok("4201".into())));
        assert_eq!(build(f("42", "R"), f("3", "A"), 1), Some(Ok("4203".into())));
        // Buildkite counts retries from 0.
        assert_eq!(build(f("42", "R"), f("0", "A"), 0), Some(Ok("4201".into())));
        assert_eq!(build(None, f("1", "A"), 1), None);
        let e = build(f("x", "R"), None, 1).unwrap().unwrap_err();
        assert!(e.contains("\"x\" (from R)") && e.contains("--build"), "{e}");
        let e = build(f("4", "R"), f("100", "A"), 1).unwrap().unwrap_err();
        assert!(e.contains("(from A)") && e.contains("1 to 99"), "{e}");
        let e = build(f("4", "R"), f("0", "A"), 1).unwrap().unwrap_err();
        assert!(e.contains("(from A)"), "{e}");
        assert!(build(f("184467440737095517", "R"), None, 1)
            .unwrap()
            .is_err());
        let max = u64::MAX.to_string();
        assert!(build(f("1", "R"), f(&max, "A"), 0).unwrap().is_err());
    }

    #[test]
    fn job_segments_stay_one_segment() {
        for (text, want) in [
            ("CI", "CI"),
            (".github/workflows/ci.yml", ".github%2Fworkflows%2Fci.yml"),
            ("rspec 1/3", "rspec 1%2F3"),
            ("100% a\\b", "100%25 a%5Cb"),
        ] {
            assert_eq!(job_segment(text), want);
        }
    }
}
