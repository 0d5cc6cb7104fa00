#!/usr/bin/env bash
# A plain cron entry for a host with the aggregator's role (examples/iam/aggregator-policy.json):
#   */15 * * * * /opt/ci-test-metrics/cron.sh >> /var/log/ci-test-metrics.log 2>&1
# flock keeps one run at a time: two concurrent runs could both publish the same new build.
set -euo pipefail
exec flock -n /tmp/ci-test-metrics.lock \
  ci-test-metrics aggregate --store "s3://${MXNET_CI_UNITTEST_ARTIFACT_BUCKET:?set the bucket}" --sink cloudwatch --since 14d
