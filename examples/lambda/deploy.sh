#!/usr/bin/env bash
# Packages the Lambda function, uploads the zip, and creates or updates the CloudFormation stack
# of examples/lambda/template.yaml (the results bucket with its notification, the queues, the
# function, its role and log group). Prints the stack's outputs as KEY=VALUE lines on stdout.
#
#   examples/lambda/deploy.sh STACK_NAME RESULTS_BUCKET [Key=Value ...]
#
#   examples/lambda/deploy.sh ci-metrics my-ci-results
#   examples/lambda/deploy.sh ci-metrics my-ci-results SettleSeconds=600 Sink=cloudwatch Branches=master,release
#
# AthenaResultsBucket=BUCKET also deploys examples/athena/template.yaml as stack STACK_NAME-history:
# the Glue database and tables over the history tables, an Athena workgroup writing its results
# to BUCKET (which must exist), and a reader policy (docs/history.md); AthenaDatabase=NAME and
# ProjectionStart=YYYY-MM-DD set its database name and first projected date.
#
# Key=Value pairs override the template's parameters (see its Parameters section); Architecture=arm64
# also builds for arm64. CodeBucket= names the bucket for the zip; by default it is
# STACK_NAME-code-ACCOUNT, created if missing. The stack creates RESULTS_BUCKET; with
# CreateBucket=false (a bucket that exists) the queue is added to the bucket's notifications instead.
#
# Only the standard AWS variables are read (AWS_REGION, AWS_PROFILE, credentials,
# AWS_ENDPOINT_URL...), so with AWS_ENDPOINT_URL pointing at ministack it deploys there unchanged.
# CTM_LAMBDA_ZIP=path skips packaging and uploads that zip instead (scripts/package-lambda.sh
# makes one); AWS=path picks the aws CLI.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
AWS=${AWS:-aws}

if [ $# -lt 2 ]; then
  sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
STACK=$1 RESULTS_BUCKET=$2
shift 2
log() { printf '[deploy] %s\n' "$*" >&2; }

ARCH=x86_64 CODE_BUCKET= CREATE_BUCKET=true PREFIX=
ATHENA_RESULTS= ATHENA_DB=ci_test_metrics PROJECTION_START=2024-01-01
OVERRIDES=()
for kv in "$@"; do
  case "$kv" in
    *=*) ;;
    *) echo "deploy.sh: $kv is not Key=Value" >&2; exit 2 ;;
  esac
  case "$kv" in
    Architecture=*) ARCH=${kv#*=} ;;
    CreateBucket=*) CREATE_BUCKET=${kv#*=} ;;
    Prefix=*) PREFIX=${kv#*=} ;;
    CodeBucket=*) CODE_BUCKET=${kv#*=}; continue ;;
    AthenaResultsBucket=*) ATHENA_RESULTS=${kv#*=}; continue ;;
    AthenaDatabase=*) ATHENA_DB=${kv#*=}; continue ;;
    ProjectionStart=*) PROJECTION_START=${kv#*=}; continue ;;
    ResultsBucket=*|CodeKey=*) echo "deploy.sh: $kv is set by deploy.sh itself" >&2; exit 2 ;;
  esac
  OVERRIDES+=("$kv")
done

# 1. The zip.
if [ -n "${CTM_LAMBDA_ZIP:-}" ]; then
  ZIP=$CTM_LAMBDA_ZIP
  [ -f "$ZIP" ] || { echo "deploy.sh: CTM_LAMBDA_ZIP=$ZIP does not exist" >&2; exit 2; }
else
  ZIP=$("$ROOT/scripts/package-lambda.sh" --arch "$ARCH")
fi
SHA=$(sha256sum "$ZIP" | cut -c1-16)

# 2. The code bucket (the key carries the zip's hash, so a new build updates the function).
ACCOUNT=$("$AWS" sts get-caller-identity --query Account --output text)
REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-$("$AWS" configure get region || true)}}
REGION=${REGION:-us-east-1}
CODE_BUCKET=${CODE_BUCKET:-$(printf '%s-code-%s' "$STACK" "$ACCOUNT" | tr 'A-Z_' 'a-z-' | cut -c1-63)}
if ! "$AWS" s3api head-bucket --bucket "$CODE_BUCKET" >/dev/null 2>&1; then
  log "creating code bucket $CODE_BUCKET"
  if [ "$REGION" = us-east-1 ]; then
    "$AWS" s3api create-bucket --bucket "$CODE_BUCKET" >/dev/null
  else
    "$AWS" s3api create-bucket --bucket "$CODE_BUCKET" \
      --create-bucket-configuration "LocationConstraint=$REGION" >/dev/null
  fi
fi
CODE_KEY="ci-test-metrics/bootstrap-$SHA.zip"
log "uploading $ZIP to s3://$CODE_BUCKET/$CODE_KEY"
"$AWS" s3api put-object --bucket "$CODE_BUCKET" --key "$CODE_KEY" --body "$ZIP" >/dev/null

# 3. The stack.
log "deploying stack $STACK"
"$AWS" cloudformation deploy \
  --stack-name "$STACK" \
  --template-file "$HERE/template.yaml" \
  --capabilities CAPABILITY_IAM \
  --no-fail-on-empty-changeset \
  --parameter-overrides "ResultsBucket=$RESULTS_BUCKET" "CodeBucket=$CODE_BUCKET" "CodeKey=$CODE_KEY" \
  ${OVERRIDES[@]+"${OVERRIDES[@]}"} >&2

OUTPUTS=$("$AWS" cloudformation describe-stacks --stack-name "$STACK" \
  --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text | tr '\t' '=')

# 4. A bucket the stack does not own gets the queue added to its notification configuration,
#    keeping its other notifications (ours is replaced by Id, so a redeploy does not add twice).
if [ "$CREATE_BUCKET" = false ]; then
  QUEUE_ARN=$(printf '%s\n' "$OUTPUTS" | sed -n 's/^QueueArn=//p')
  CURRENT=$("$AWS" s3api get-bucket-notification-configuration --bucket "$RESULTS_BUCKET" --output json)
  MERGED=$(printf '%s' "$CURRENT" | python3 -c '
import json, sys
arn, prefix = sys.argv[1], sys.argv[2]
text = sys.stdin.read().strip()
conf = json.loads(text) if text else {}
conf.pop("ResponseMetadata", None)
rules = [{"Name": "suffix", "Value": "context.json"}] + ([{"Name": "prefix", "Value": prefix}] if prefix else [])
queues = [q for q in conf.get("QueueConfigurations", []) if q.get("Id") != "ci-test-metrics"]
queues.append({"Id": "ci-test-metrics", "QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
               "Filter": {"Key": {"FilterRules": rules}}})
conf["QueueConfigurations"] = queues
print(json.dumps(conf))
' "$QUEUE_ARN" "$PREFIX")
  log "adding the queue to s3://$RESULTS_BUCKET's notification configuration"
  "$AWS" s3api put-bucket-notification-configuration --bucket "$RESULTS_BUCKET" \
    --notification-configuration "$MERGED" >&2
fi

# 5. The history tables for Athena, on request.
if [ -n "$ATHENA_RESULTS" ]; then
  log "deploying stack $STACK-history (Glue tables, Athena workgroup, reader policy)"
  "$AWS" cloudformation deploy \
    --stack-name "$STACK-history" \
    --template-file "$ROOT/examples/athena/template.yaml" \
    --capabilities CAPABILITY_IAM \
    --no-fail-on-empty-changeset \
    --parameter-overrides "ResultsBucket=$RESULTS_BUCKET" "Prefix=$PREFIX" \
      "QueryResultsBucket=$ATHENA_RESULTS" "DatabaseName=$ATHENA_DB" "ProjectionStart=$PROJECTION_START" >&2
  OUTPUTS=$(printf '%s\n' "$OUTPUTS"; "$AWS" cloudformation describe-stacks --stack-name "$STACK-history" \
    --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text | tr '\t' '=')
fi

# 6. The outputs.
printf '%s\n' "$OUTPUTS"
