//! Integration tests: the shipped CI integrations and CloudFormation templates, checked by the
//! validators we did not write (from the test virtualenv): `check-jsonschema` with its built-in
//! GitHub workflow, GitHub action, GitLab CI and Buildkite schemas, `actionlint` for the GitHub
//! files, and `cfn-lint` over every CloudFormation template in the repository.

use crate::common;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs a validator with network hygiene (no metadata probe, static credentials).
fn run(tool: &Path, args: &[&str], dir: &Path) -> Output {
    let out = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "ctm-admin")
        .env("AWS_SECRET_ACCESS_KEY", "ctm-admin-secret")
        .env("AWS_REGION", "us-east-1")
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", tool.display()));
    eprintln!(
        "{} {args:?}: exit {:?}\n{}{}",
        tool.display(),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `check-jsonschema --builtin-schema vendor.NAME FILES`: its schemas ship in the package, so
/// this works offline.
fn schema_check(tool: &Path, schema: &str, files: &[PathBuf]) -> Output {
    let mut args = vec!["--builtin-schema".to_string(), format!("vendor.{schema}")];
    args.extend(files.iter().map(|f| f.to_string_lossy().into_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(tool, &args, &common::repo())
}

fn example(rel: &str) -> PathBuf {
    common::repo().join("examples").join(rel)
}

#[test]
fn ci_files_pass_their_builtin_schemas() {
    let Some(tool) = common::venv_tool("check-jsonschema") else {
        return;
    };
    let table = [
        ("github-workflows", "github/ci-test-metrics.yml"),
        ("github-actions", "github/action.yml"),
        ("gitlab-ci", "gitlab/ci-test-metrics.gitlab-ci.yml"),
        ("buildkite", "buildkite/pipeline.yml"),
    ];
    for (schema, file) in table {
        let out = schema_check(&tool, schema, &[example(file)]);
        assert!(out.status.success(), "{file} against vendor.{schema}");
    }
    // The check can fail: a workflow without jobs, a pipeline step of an unknown kind.
    let dir = tempfile::tempdir().unwrap();
    let broken = [
        ("github-workflows", "on: push\nname: x\n"),
        ("buildkite", "steps:\n  - nonsense: true\n    command: 3\n"),
    ];
    for (schema, text) in broken {
        let path = dir.path().join(format!("{schema}.yml"));
        std::fs::write(&path, text).unwrap();
        let out = schema_check(&tool, schema, &[path]);
        assert!(
            !out.status.success(),
            "a broken file passes vendor.{schema}"
        );
    }
}

#[test]
fn github_files_pass_actionlint() {
    let Some(tool) = common::venv_tool("actionlint") else {
        return;
    };
    // The layout of a repository that copied them: actionlint then also checks the workflow's
    // use of the local composite action (its inputs).
    let lay_out = |workflow: &str| {
        let repo = tempfile::tempdir().unwrap();
        let workflows = repo.path().join(".github/workflows");
        let action = repo.path().join(".github/actions/ci-test-metrics");
        std::fs::create_dir_all(&workflows).unwrap();
        std::fs::create_dir_all(&action).unwrap();
        std::fs::create_dir_all(repo.path().join(".git")).unwrap();
        std::fs::write(workflows.join("ci-test-metrics.yml"), workflow).unwrap();
        std::fs::copy(example("github/action.yml"), action.join("action.yml")).unwrap();
        repo
    };
    let workflow = std::fs::read_to_string(example("github/ci-test-metrics.yml")).unwrap();
    let repo = lay_out(&workflow);
    let out = run(&tool, &["-no-color"], repo.path());
    assert!(out.status.success(), "actionlint found problems");
    // An input the action does not have is caught.
    let wrong = workflow.replace(
        "results: junit.xml",
        "results: junit.xml\n          resluts: x",
    );
    assert_ne!(wrong, workflow);
    let repo = lay_out(&wrong);
    let out = run(&tool, &["-no-color"], repo.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("resluts"));
}

/// Every YAML file in the repository that declares `AWSTemplateFormatVersion`, also ones added
/// later (build output and virtualenvs left out).
fn cloudformation_templates(root: &Path) -> Vec<PathBuf> {
    let skip = ["target", ".venv", ".git", "node_modules", "fuzz/target"];
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if path.is_dir() {
                if !skip.contains(&rel.as_str()) {
                    stack.push(path);
                }
            } else if rel.ends_with(".yaml") || rel.ends_with(".yml") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                if text.contains("AWSTemplateFormatVersion") {
                    found.push(path);
                }
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_cloudformation_template_passes_cfn_lint() {
    let templates = cloudformation_templates(&common::repo());
    assert!(
        templates.contains(&example("lambda/template.yaml")),
        "{templates:?}"
    );
    let Some(tool) = common::venv_tool("cfn-lint") else {
        return;
    };
    let names: Vec<String> = templates
        .iter()
        .map(|t| t.to_string_lossy().into_owned())
        .collect();
    let args: Vec<&str> = names.iter().map(String::as_str).collect();
    let out = run(&tool, &args, &common::repo());
    assert!(out.status.success(), "cfn-lint found problems in {names:?}");
    // And it can fail: a resource of a type that does not exist.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  B:\n    Type: AWS::S3::Buckett\n",
    )
    .unwrap();
    let out = run(&tool, &[bad.to_str().unwrap()], dir.path());
    assert!(!out.status.success());
    assert_eq!(cloudformation_templates(dir.path()), [bad]);
}
