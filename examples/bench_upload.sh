#!/usr/bin/env bash
# Upload speed: `ci-test-metrics upload` vs `aws s3 cp` (PyPI awscli) for the same 10 result files
# of 1 MB each, against the local SeaweedFS, side by side in one run. Both use the write-only
# uploader identity (PutObject only), like a Jenkins agent.
#
#   scripts/test.sh --run examples/bench_upload.sh [BINARY] [ROUNDS]
#
# BINARY defaults to target/release/ci-test-metrics if built, else target/debug/ci-test-metrics.
# Each round times, in turn: ci-test-metrics (10 files + context.json, one process),
# `aws s3 cp --recursive` (10 files, one process), and 10 separate `aws s3 cp` calls (what a
# per-file Jenkins step does). The medians and the ratios are printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CTM_TEST_S3_ENDPOINT:?start the servers first: scripts/test.sh --run $0}"
: "${CTM_TEST_AWS_CLI:?start the servers first: scripts/test.sh --run $0}"
BIN=${1:-}
if [ -z "$BIN" ]; then
  BIN=target/release/ci-test-metrics
  [ -x "$BIN" ] || BIN=target/debug/ci-test-metrics
fi
ROUNDS=${2:-5}
AWS=$CTM_TEST_AWS_CLI

# Network hygiene: loopback only, no instance-metadata probe, static test credentials.
export AWS_EC2_METADATA_DISABLED=true AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL=$CTM_TEST_S3_ENDPOINT
unset AWS_PROFILE AWS_SESSION_TOKEN
admin() { AWS_ACCESS_KEY_ID=ctm-admin AWS_SECRET_ACCESS_KEY=ctm-admin-secret "$@"; }
uploader() {
  AWS_ACCESS_KEY_ID=${CTM_TEST_UPLOADER_KEY:-ctm-uploader} \
  AWS_SECRET_ACCESS_KEY=${CTM_TEST_UPLOADER_SECRET:-ctm-uploader-secret} "$@"
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ctm-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
BUCKET=ctm-bench-$$-$(date +%s)
admin "$AWS" s3api create-bucket --bucket "$BUCKET" >/dev/null

# 10 JUnit files of 1 MiB each.
mkdir -p "$WORK/results"
python3 - "$WORK/results" <<'PY'
import sys, os
out = sys.argv[1]
for f in range(10):
    path = os.path.join(out, f"nosetests_{f:02d}.xml")
    with open(path, "w") as fh:
        fh.write('<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="bench">\n')
        i = 0
        while fh.tell() < 1024 * 1024 - 200:
            fh.write(f'  <testcase classname="tests.python.unittest.test_module_{f}" '
                     f'name="test_case_{i:06d}" time="{(i % 97) / 10:.3f}"/>\n')
            i += 1
        fh.write("</testsuite>\n")
PY
ls -l "$WORK/results" | tail -n +2 | awk '{s+=$5} END {printf "files: %d, %d bytes\n", NR, s}'

now() { python3 -c 'import time; print(time.monotonic())'; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
: >"$WORK/ctm" ; : >"$WORK/cp" ; : >"$WORK/cp10"
for round in $(seq 1 "$ROUNDS"); do
  t0=$(now)
  uploader "$BIN" -q upload --store "s3://$BUCKET" --job bench/unix-cpu --branch master \
    --build "$round" -C "$WORK/results" 'nosetests_*.xml' >/dev/null
  t1=$(now)
  uploader "$AWS" s3 cp --quiet --recursive "$WORK/results" "s3://$BUCKET/awscli/$round/"
  t2=$(now)
  for f in "$WORK"/results/*.xml; do
    uploader "$AWS" s3 cp --quiet "$f" "s3://$BUCKET/awscli10/$round/$(basename "$f")"
  done
  t3=$(now)
  python3 -c "print($t1-$t0)" >>"$WORK/ctm"
  python3 -c "print($t2-$t1)" >>"$WORK/cp"
  python3 -c "print($t3-$t2)" >>"$WORK/cp10"
  printf 'round %d: ci-test-metrics %.3fs  aws s3 cp --recursive %.3fs  10 x aws s3 cp %.3fs\n' \
    "$round" "$(tail -1 "$WORK/ctm")" "$(tail -1 "$WORK/cp")" "$(tail -1 "$WORK/cp10")"
done

# Check what landed (admin identity; the uploader cannot list).
n=$(admin "$AWS" s3 ls --recursive "s3://$BUCKET/bench/" | wc -l)
[ "$n" -eq $((ROUNDS * 11)) ] || { echo "expected $((ROUNDS * 11)) objects, found $n" >&2; exit 1; }

ctm=$(median <"$WORK/ctm"); cp=$(median <"$WORK/cp"); cp10=$(median <"$WORK/cp10")
echo "binary: $BIN"
printf 'median of %d rounds, 10 x 1 MiB to SeaweedFS at %s:\n' "$ROUNDS" "$CTM_TEST_S3_ENDPOINT"
printf '  ci-test-metrics upload      %.3fs\n' "$ctm"
printf '  aws s3 cp --recursive       %.3fs  (ci-test-metrics is %.1fx faster)\n' "$cp" "$(python3 -c "print($cp/$ctm)")"
printf '  10 x aws s3 cp              %.3fs  (ci-test-metrics is %.1fx faster)\n' "$cp10" "$(python3 -c "print($cp10/$ctm)")"
