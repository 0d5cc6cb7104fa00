// Jenkinsfile_pr_gate.groovy: the pull-request gate, a stage that runs on PR builds after the
// test stages have uploaded their results.
//
// It compares this PR's latest builds (1–3 are usual) with the target branch's recent builds,
// test by test, and writes a Markdown comment (`pr-timing.md`): which tests the PR makes slower,
// by how much, with p-values and effect sizes. With --fail-on-regression the tool exits 5 when
// any test is slower beyond the thresholds (--min-shift 0.2 = 20% and --min-seconds 0.05 s, at a
// Benjamini–Hochberg false discovery rate of --fdr 0.05 over all tests); this stage turns that
// into an UNSTABLE build rather than a failure, and any other non-zero code into a warning, so a
// metrics problem never blocks a merge. With --fail-on-new-failure it exits 6 when a test fails
// that never failed on the target branch's last 100 builds (tests flaky there are listed as
// "known flaky" and never count); this stage makes that UNSTABLE too (5 wins when both hold).
//
// Everything comes from the PR build's variables: --pr-gate reads BRANCH_NAME (PR-123),
// CHANGE_TARGET (master) and JOB_NAME (the job, without the PR leaf). The build just uploaded
// has no summary yet (the aggregator runs on a schedule); analyze reads its raw results.
//
// Reading needs s3:GetObject and s3:ListBucket on the bucket, which the uploading agents do not
// have: run the stage with a read-only role (e.g. the AWS Steps plugin's withAWS(role: ...)).
//
// Use it in a declarative Jenkinsfile:
//
//   stage('Test timing') {
//     when { changeRequest() }
//     steps { script { utils = load('ci/Jenkinsfile_pr_gate.groovy'); utils.pr_timing_gate() } }
//   }

def pr_timing_gate(role = 'ci-test-metrics-reader') {
    if (!env.CHANGE_ID || !env.MXNET_CI_UNITTEST_ARTIFACT_BUCKET) {
        echo 'Test timing gate: not a pull request, or no bucket configured; skipped.'
        return
    }
    def bin = env.CI_TEST_METRICS_BIN ?: 'ci-test-metrics'
    def code = 0
    withAWS(role: role) {
        code = sh(
            script: "'${bin}' analyze --pr-gate --format md --out pr-timing.md --fail-on-regression --fail-on-new-failure",
            returnStatus: true
        )
    }
    if (fileExists('pr-timing.md')) {
        archiveArtifacts artifacts: 'pr-timing.md'
        // With the GitHub Branch Source plugin, post (or update) the comment on the PR:
        if (env.CHANGE_URL?.contains('github')) {
            pullRequest.comment(readFile('pr-timing.md'))
        }
    }
    if (code == 5) {
        unstable('The PR makes some tests slower: see pr-timing.md')
    } else if (code == 6) {
        unstable('A test fails that never failed on the target branch: see pr-timing.md')
    } else if (code != 0) {
        echo "Test timing gate could not run (exit ${code}); not blocking the build."
    }
}

return this
