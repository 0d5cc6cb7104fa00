// Jenkinsfile_utils_s3Upload.groovy: the same two helpers as Jenkinsfile_utils.groovy, for teams
// that cannot install the ci-test-metrics binary on their agents. It uses only:
//   - the Pipeline: AWS Steps plugin (pipeline-aws): s3Upload, with the agent's IAM role;
//   - the Pipeline Utility Steps plugin: sha256, findFiles;
//   - core steps: writeFile, archiveArtifacts.
// The agents still need only s3:PutObject on arn:aws:s3:::BUCKET/* (do not pass `acl:` to
// s3Upload: that would need s3:PutObjectAcl).
//
// It writes the same layout as `ci-test-metrics upload`:
//   {job}/{branch}/{build}/{new_file_name}, then {job}/{branch}/{build}/context.json, last.
// Differences: the manifest cannot hold a test count or a parse error (both are null; the
// aggregator parses the files anyway), and names are not checked beyond what Jenkins allows.
// In a sandboxed pipeline, approve the signatures Jenkins asks for on first run
// (java.time.Instant.now, groovy.json.JsonOutput.toJson).

// Jenkins' branch-api NameEncoder: the encoded branch name used in keys (feature/foo -> feature%2Ffoo).
@NonCPS
def encode_branch(String raw) {
    if (raw == '') { return '%00' }
    if (raw == '.') { return '%2E' }
    if (raw == '..') { return '%2E.' }
    def out = new StringBuilder()
    for (c in raw.toCharArray()) {
        switch (c) {
            case '#': out.append('%23'); break
            case '%': out.append('%25'); break
            case '/': out.append('%2F'); break
            case '?': out.append('%3F'); break
            case '[': out.append('%5B'); break
            case '\\': out.append('%5C'); break
            case ']': out.append('%5D'); break
            default: out.append(c)
        }
    }
    return out.toString()
}

// The job: JOB_NAME without its last segment, which in a multibranch job is the branch.
def job_name() {
    def cut = env.JOB_NAME.lastIndexOf('/')
    return cut > 0 ? env.JOB_NAME.substring(0, cut) : env.JOB_NAME
}

// Uploads one result file, then context.json. Never fails the build.
def upload_test_result(file_name) {
    def bucket = env.MXNET_CI_UNITTEST_ARTIFACT_BUCKET
    if (!bucket) {
        return
    }
    if (!env.BRANCH_NAME) {
        echo 'warning: BRANCH_NAME is not set (not a multibranch job); unit-test results are not uploaded'
        return
    }
    def prefix = "${job_name()}/${encode_branch(env.BRANCH_NAME)}/${env.BUILD_NUMBER}/"
    try {
        s3Upload(bucket: bucket, path: prefix + file_name, file: file_name)
        def context = [
            schema_version: 1,
            job           : job_name(),
            branch        : env.BRANCH_NAME,
            build         : env.BUILD_NUMBER as long,
            build_url     : env.BUILD_URL,
            commit        : env.GIT_COMMIT,
            user          : env.CHANGE_AUTHOR,
            source_branch : env.CHANGE_BRANCH ?: env.BRANCH_NAME,
            target_branch : env.CHANGE_TARGET,
            pr            : (env.CHANGE_ID ==~ /\d+/) ? (env.CHANGE_ID as long) : null,
            timestamp     : java.time.Instant.now().toString(),
            node          : env.NODE_NAME,
            files         : [[
                name  : file_name,
                bytes : findFiles(glob: file_name)[0].length,
                sha256: sha256(file: file_name),
                tests : null,
                error : null,
            ]],
        ]
        writeFile file: 'context.json', text: groovy.json.JsonOutput.toJson(context)
        s3Upload(bucket: bucket, path: prefix + 'context.json', file: 'context.json')
    } catch (Exception e) {
        echo "warning: unit-test result upload failed, the build goes on: ${e}"
    }
}

def collect_test_results_unix(original_file_name, new_file_name) {
    if (fileExists(original_file_name)) {
        sh "cp '${original_file_name}' '${new_file_name}'"
        archiveArtifacts artifacts: new_file_name
        upload_test_result(new_file_name)
    }
}

def collect_test_results_windows(original_file_name, new_file_name) {
    if (fileExists(original_file_name)) {
        bat "copy /Y \"${original_file_name.replace('/', '\\')}\" \"${new_file_name.replace('/', '\\')}\""
        archiveArtifacts artifacts: new_file_name
        upload_test_result(new_file_name)
    }
}

return this
