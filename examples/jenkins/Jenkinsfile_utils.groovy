// Jenkinsfile_utils.groovy: collect unit-test results in every build, every job, every branch.
//
// Load it from a Jenkinsfile with `utils = load('ci/Jenkinsfile_utils.groovy')` and call
//   utils.collect_test_results_unix('nosetests_unittest.xml', 'nosetests_python3_cpu_unittest.xml')
//   utils.collect_test_results_windows('nosetests_unittest.xml', 'nosetests_windows_cpu_unittest.xml')
// at the end of each test stage (in a `post { always { ... } }` block so failed runs count too).
//
// Each call
//   1. copies the result file to a distinct name (parallel stages cannot tell their STAGE_NAME
//      apart, so every stage picks its own name),
//   2. archives it as a build artifact, as before,
//   3. runs `ci-test-metrics upload`, which PUTs the file to
//      s3://$MXNET_CI_UNITTEST_ARTIFACT_BUCKET/{job}/{branch}/{build}/{new_file_name}
//      and then writes context.json (commit, author, branches, PR, node, and a manifest with the
//      file's size, SHA-256 and test count). Everything it needs comes from the build's variables
//      (JOB_NAME, BRANCH_NAME, BUILD_NUMBER, GIT_COMMIT, CHANGE_*, NODE_NAME).
//
// The agents need only s3:PutObject on arn:aws:s3:::BUCKET/* (examples/iam/uploader-policy.json,
// attached to jenkins_slave_role). --soft-fail means a metrics problem never fails a build: the
// tool prints a warning and exits 0. Nothing is uploaded when the global property
// MXNET_CI_UNITTEST_ARTIFACT_BUCKET is not set (forks, local Jenkins).
//
// The binary: put `ci-test-metrics` (`ci-test-metrics.exe` on Windows) on the agents' PATH, or set
// CI_TEST_METRICS_BIN to its full path (a global property or an `environment { }` entry).

// The uploader's command name on this agent.
def ci_test_metrics_bin(windows) {
    if (env.CI_TEST_METRICS_BIN) {
        return env.CI_TEST_METRICS_BIN
    }
    return windows ? 'ci-test-metrics.exe' : 'ci-test-metrics'
}

def collect_test_results_unix(original_file_name, new_file_name) {
    if (fileExists(original_file_name)) {
        sh "cp '${original_file_name}' '${new_file_name}'"
        archiveArtifacts artifacts: new_file_name
        if (env.MXNET_CI_UNITTEST_ARTIFACT_BUCKET) {
            // The file name is passed as a pattern; names with * ? [ ] would need escaping.
            sh "'${ci_test_metrics_bin(false)}' upload --soft-fail '${new_file_name}'"
        }
    }
}

def collect_test_results_windows(original_file_name, new_file_name) {
    if (fileExists(original_file_name)) {
        // `copy` wants backslashes; /Y overwrites a copy left by an earlier run of the stage.
        def from = original_file_name.replace('/', '\\')
        def to = new_file_name.replace('/', '\\')
        bat "copy /Y \"${from}\" \"${to}\""
        archiveArtifacts artifacts: new_file_name
        if (env.MXNET_CI_UNITTEST_ARTIFACT_BUCKET) {
            bat "\"${ci_test_metrics_bin(true)}\" upload --soft-fail \"${new_file_name}\""
        }
    }
}

// One build usually has several parallel stages, each calling a helper above. Every call writes
// context.json again, listing the files of that call; the last call's context.json stays. The
// aggregator finds every file of the build by its key, so nothing is lost, but context.json then
// appears after the first stage, not the last. When a single, complete manifest matters, stash each
// stage's results instead and upload them once, after all stages:
//
//   stage('Unit tests') { parallel(... each stage: utils.stash_test_results('nosetests_x.xml', 'nosetests_cpu.xml') ...) }
//   post { always { utils.upload_stashed_test_results(['nosetests_cpu.xml', 'nosetests_gpu.xml']) } }

def stash_test_results(original_file_name, new_file_name) {
    if (fileExists(original_file_name)) {
        sh "cp '${original_file_name}' '${new_file_name}'"
        archiveArtifacts artifacts: new_file_name
        stash name: "ci-test-metrics-${new_file_name}", includes: new_file_name
    }
}

// Runs on an agent with the given label (one that has the binary); missing stashes are skipped.
def upload_stashed_test_results(new_file_names, agent_label = 'linux') {
    if (!env.MXNET_CI_UNITTEST_ARTIFACT_BUCKET) {
        return
    }
    node(agent_label) {
        dir('ci-test-metrics-results') {
            deleteDir()
            for (name in new_file_names) {
                try {
                    unstash "ci-test-metrics-${name}"
                } catch (Exception e) {
                    echo "no results stashed as ${name}: ${e}"
                }
            }
            sh "'${ci_test_metrics_bin(false)}' upload --soft-fail --allow-empty '*'"
        }
    }
}

return this
