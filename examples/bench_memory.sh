#!/usr/bin/env bash
# Memory benchmark: peak RSS of one `aggregate` process reading BUILDS builds of one SIZE_MB result
# file each, CONCURRENCY at a time, from a local directory and (under scripts/test.sh --run) from
# SeaweedFS. Bodies stream into the parser, so the peak follows the concurrency, not the file size.
#
#   examples/bench_memory.sh [BUILDS [SIZE_MB [S3_SIZE_MB]]]          # default 8 200 100
#   scripts/test.sh --run examples/bench_memory.sh 8 200 100
#
# The files are mostly <system-out> (as large real result files are): 2,000 cases a file. The S3
# run uses smaller files because the test SeaweedFS holds 2 GB. Uses target/debug/ci-test-metrics
# unless BIN is set (e.g. BIN=target/release/ci-test-metrics).
set -euo pipefail
cd "$(dirname "$0")/.."
export AWS_EC2_METADATA_DISABLED=true
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-ctm-admin} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-ctm-admin-secret}
export AWS_REGION=${AWS_REGION:-us-east-1}
BUILDS=${1:-8} SIZE_MB=${2:-200} S3_SIZE_MB=${3:-100}
BIN=${BIN:-target/debug/ci-test-metrics}
[ -x "$BIN" ] || cargo build --bin ci-test-metrics
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ctm-bench-memory.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

gen() { # dir size_mb: BUILDS builds of one result file, streamed to disk
  python3 - "$1" "$2" "$BUILDS" <<'PY'
import datetime, json, os, sys
root, size_mb, builds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cases = 2000
out_bytes = size_mb * 1024 * 1024 // cases
line = ("x" * 99 + "\n")
now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
for b in range(1, builds + 1):
    d = os.path.join(root, "bench/memory", "master", str(b))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "big.xml"), "w") as f:
        f.write('<testsuite name="big">\n')
        for t in range(cases):
            f.write(f'<testcase classname="c" name="t{t}" time="0.{t % 1000:03d}"><system-out>')
            f.write(line * (out_bytes // 100))
            f.write('</system-out></testcase>\n')
        f.write('</testsuite>\n')
    ctx = {"schema_version": 1, "job": "bench/memory", "branch": "master", "build": b,
           "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
    with open(os.path.join(d, "context.json"), "w") as f:
        json.dump(ctx, f)
PY
}

peak() { # label args...: runs aggregate under /usr/bin/time, prints its peak RSS
  local label=$1; shift
  /usr/bin/time -f "%M %e" -o "$WORK/time" "$BIN" aggregate --settle 0 --concurrency "$BUILDS" \
    --format json "$@" >"$WORK/out.json" 2>"$WORK/err.log"
  read -r kb secs <"$WORK/time"
  local builds tests
  builds=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["builds"]))' "$WORK/out.json")
  tests=$(python3 -c 'import json,sys; print(sum(b["tests"] for b in json.load(open(sys.argv[1]))["builds"]))' "$WORK/out.json")
  printf '%-16s %6s builds %8s tests  peak RSS %5d MB  %6.1f s\n' "$label" "$builds" "$tests" $((kb / 1024)) "$secs"
}

gen "$WORK/local" "$SIZE_MB"
sync
echo "$BUILDS builds × 1 result file of ${SIZE_MB} MB, $BUILDS at a time ($BIN):"
peak "local directory" --store "$WORK/local" --sink "emf:$WORK/local.emf"

if [ -n "${CTM_TEST_S3_ENDPOINT:-}" ]; then
  rm -rf "$WORK/local"
  gen "$WORK/s3" "$S3_SIZE_MB"
  BUCKET=ctm-bench-memory-$$
  AWS=${CTM_TEST_AWS_CLI:-aws}
  "$AWS" --endpoint-url "$CTM_TEST_S3_ENDPOINT" s3api create-bucket --bucket "$BUCKET" >/dev/null
  "$AWS" --endpoint-url "$CTM_TEST_S3_ENDPOINT" s3 cp --quiet --recursive "$WORK/s3" "s3://$BUCKET/"
  rm -rf "$WORK/s3"
  echo "$BUILDS builds × 1 result file of ${S3_SIZE_MB} MB from SeaweedFS:"
  AWS_ENDPOINT_URL_S3=$CTM_TEST_S3_ENDPOINT peak "SeaweedFS" --store "s3://$BUCKET" --sink "emf:$WORK/s3.emf"
else
  echo "SeaweedFS: skipped (run under scripts/test.sh --run to include it)"
fi
