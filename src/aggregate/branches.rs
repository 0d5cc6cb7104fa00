//! Branch classes and the branch filter: which builds are published, and under which `BranchClass`.
//!
//! Classes are decided by ordered rules `CLASS=GLOB|GLOB…` on the raw branch name; the first match
//! wins and unmatched branches get `branch`. The default rules are
//! `master=master|main`, `release=v*.x|release*`, `pr=PR-*`.
//!
//! The filter (`--branches`) is a comma-separated list of terms: a class name or a glob on the raw
//! branch name includes, a term starting with `!` excludes, and `all` includes everything.
//! Exclusions win over inclusions; an empty include list means `all`.

use glob::Pattern;

/// The default classification rules, in order.
pub const DEFAULT_CLASSES: &[&str] = &["master=master|main", "release=v*.x|release*", "pr=PR-*"];
/// The class of a branch no rule matched.
pub const FALLBACK_CLASS: &str = "branch";

/// Ordered classification rules plus the publish filter.
#[derive(Debug, Clone)]
pub struct BranchRules {
    filter: String,
    classes: Vec<(String, Vec<Pattern>)>,
    include: Vec<Term>,
    exclude: Vec<Term>,
}

#[derive(Debug, Clone)]
enum Term {
    All,
    Class(String),
    Glob(Pattern),
}

impl BranchRules {
    /// Builds rules from `CLASS=GLOB|GLOB` class rules (empty: the defaults) and a filter.
    pub fn new<S: AsRef<str>>(class_rules: &[S], filter: &str) -> Result<BranchRules, String> {
        let mut classes = Vec::new();
        let defaults: Vec<&str> = DEFAULT_CLASSES.to_vec();
        let rules: Vec<&str> = if class_rules.is_empty() {
            defaults
        } else {
            class_rules.iter().map(|s| s.as_ref()).collect()
        };
        for rule in rules {
            let (class, globs) = rule
                .split_once('=')
                .filter(|(c, g)| !c.trim().is_empty() && !g.trim().is_empty())
                .ok_or_else(|| format!("branch class rule {rule:?}: expected CLASS=GLOB|GLOB, e.g. release=v*.x|release*"))?;
            let patterns = globs
                .split('|')
                .map(|g| pattern(g.trim()).map_err(|e| format!("branch class rule {rule:?}: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            classes.push((class.trim().to_string(), patterns));
        }
        let known = |name: &str| name == FALLBACK_CLASS || classes.iter().any(|(c, _)| c == name);
        let (mut include, mut exclude) = (Vec::new(), Vec::new());
        for raw in filter.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (negated, name) = match raw.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, raw),
            };
            let term = if name == "all" {
                Term::All
            } else if known(name) {
                Term::Class(name.to_string())
            } else {
                Term::Glob(pattern(name).map_err(|e| format!("--branches term {raw:?}: {e}"))?)
            };
            if negated {
                exclude.push(term)
            } else {
                include.push(term)
            }
        }
        Ok(BranchRules {
            filter: filter.to_string(),
            classes,
            include,
            exclude,
        })
    }

    /// The class of a raw branch name.
    pub fn classify(&self, branch: &str) -> String {
        self.classes
            .iter()
            .find(|(_, globs)| globs.iter().any(|g| g.matches(branch)))
            .map(|(c, _)| c.clone())
            .unwrap_or_else(|| FALLBACK_CLASS.to_string())
    }

    /// Whether builds of this branch are published.
    pub fn publishes(&self, branch: &str) -> bool {
        self.selects(branch, &self.classify(branch))
    }

    /// Whether the filter takes a build of this branch that was given this class (by these rules
    /// or, for a stored summary, by the rules of the run that aggregated it).
    pub fn selects(&self, branch: &str, class: &str) -> bool {
        let hit = |t: &Term| match t {
            Term::All => true,
            Term::Class(c) => c == class,
            Term::Glob(g) => g.matches(branch),
        };
        (self.include.is_empty() || self.include.iter().any(hit)) && !self.exclude.iter().any(hit)
    }

    /// The filter as given.
    pub fn filter(&self) -> &str {
        &self.filter
    }
}

fn pattern(glob: &str) -> Result<Pattern, String> {
    Pattern::new(glob).map_err(|e| format!("bad glob {glob:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_classes() {
        let rules = BranchRules::new::<&str>(&[], "all").unwrap();
        for (branch, class) in [
            ("master", "master"),
            ("main", "master"),
            ("v1.9.x", "release"),
            ("release-2.0", "release"),
            ("PR-16336", "pr"),
            ("feature/foo", "branch"),
            ("mastermind", "branch"),
            ("v1.9.0", "branch"),
        ] {
            assert_eq!(rules.classify(branch), class, "{branch}");
        }
    }

    #[test]
    fn filters() {
        let cases: &[(&str, &str, bool)] = &[
            ("all", "PR-1", true),
            ("", "PR-1", true),
            ("master", "main", true),
            ("master", "PR-1", false),
            ("master,release", "v2.x", true),
            ("all,!pr", "PR-7", false),
            ("all,!pr", "feature/x", true),
            ("feature/*", "feature/x", true),
            ("feature/*", "master", false),
            ("!feature/*", "master", true),
            ("!feature/*", "feature/y", false),
            ("pr,!PR-13", "PR-13", false),
            ("pr,!PR-13", "PR-14", true),
        ];
        for (filter, branch, want) in cases {
            let rules = BranchRules::new::<&str>(&[], filter).unwrap();
            assert_eq!(
                rules.publishes(branch),
                *want,
                "filter {filter:?} branch {branch:?}"
            );
        }
    }

    #[test]
    fn custom_classes_replace_defaults() {
        let rules = BranchRules::new(&["stable=stable-*", "master=trunk"], "stable").unwrap();
        assert_eq!(rules.classify("stable-3"), "stable");
        assert_eq!(rules.classify("trunk"), "master");
        assert_eq!(rules.classify("master"), "branch");
        assert!(rules.publishes("stable-3"));
        assert!(!rules.publishes("trunk"));
    }

    #[test]
    fn bad_rules_are_explained() {
        assert!(BranchRules::new(&["nopattern"], "all")
            .unwrap_err()
            .contains("CLASS=GLOB"));
        assert!(BranchRules::new(&["x="], "all").is_err());
        assert!(BranchRules::new::<&str>(&[], "[unclosed")
            .unwrap_err()
            .contains("--branches"));
    }
}
