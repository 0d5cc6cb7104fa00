#!/usr/bin/env bash
# History benchmark (issue 17's setup): one job, BUILDS master builds of TESTS tests each, written
# as raw JUnit XML by the synthetic history generator, aggregated into the history tables, then
# `analyze --last N` for several N. Prints wall time and peak RSS (/usr/bin/time) of each command.
# With BASE_BIN=path/to/an/older/ci-test-metrics, runs the same commands with that binary on its
# own copy of the store, interleaved, for a baseline measured in the same run.
#
#   examples/bench_history.sh [BUILDS [TESTS]]             # default 600 5000
#   BASE_BIN=/tmp/old/ci-test-metrics examples/bench_history.sh
#
# Uses target/release/ci-test-metrics and the gen_history example (built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
export AWS_EC2_METADATA_DISABLED=true AWS_ACCESS_KEY_ID=ctm-test AWS_SECRET_ACCESS_KEY=ctm-test AWS_REGION=us-east-1
BUILDS=${1:-600} TESTS=${2:-5000}
BIN=${BIN:-target/release/ci-test-metrics}
GEN=target/release/examples/gen_history
[ -x "$BIN" ] && [ -x "$GEN" ] || cargo build --release --bin ci-test-metrics --example gen_history
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ctm-bench-history.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

"$GEN" --out "$WORK/raw" --jobs 1 --builds "$BUILDS" --tests "$TESTS" --raw-every 1 >/dev/null
echo "store: $(du -sh "$WORK/raw" | cut -f1) of raw XML, $BUILDS builds x $TESTS tests"
cp -r "$WORK/raw" "$WORK/new"
[ -n "${BASE_BIN:-}" ] && cp -r "$WORK/raw" "$WORK/base"

# name bin store args...: prints "name  wall s  peak RSS MB"
measure() {
  local name=$1 bin=$2 store=$3; shift 3
  /usr/bin/time -f '%e %M' -o "$WORK/time" "$bin" "$@" --store "$store" >/dev/null 2>"$WORK/stderr" \
    || { echo "$name failed:"; tail -5 "$WORK/stderr"; exit 1; }
  read -r wall kb <"$WORK/time"
  printf '%-34s %8.2f s %8.1f MB\n' "$name" "$wall" "$(echo "$kb / 1024" | bc -l)"
}

echo
printf '%-34s %10s %11s\n' command wall "peak RSS"
measure "aggregate (new)" "$BIN" "$WORK/new" aggregate --sink "emf:$WORK/new.emf" --settle 0
[ -n "${BASE_BIN:-}" ] && measure "aggregate (base)" "$BASE_BIN" "$WORK/base" aggregate --sink "emf:$WORK/base.emf" --settle 0
for n in 75 150 300 "$BUILDS"; do
  measure "analyze --last $n (new)" "$BIN" "$WORK/new" analyze --last "$n" --format json
  [ -n "${BASE_BIN:-}" ] && measure "analyze --last $n (base)" "$BASE_BIN" "$WORK/base" analyze --last "$n" --format json
done
echo
echo "tables: $(du -sh "$WORK/new/_ci-test-metrics/tables" | cut -f1) in $(find "$WORK/new/_ci-test-metrics/tables" -name '*.parquet' | wc -l) parts"
if [ -n "${BASE_BIN:-}" ]; then
  echo "summaries (base): $(du -sh "$WORK/base/_ci-test-metrics/summaries" | cut -f1)"
  # Same report, but for floating-point noise in the old JSON round trip.
  "$BIN" analyze --store "$WORK/new" --format json | grep -v generated_at >"$WORK/new.json"
  "$BASE_BIN" analyze --store "$WORK/base" --format json | grep -v generated_at >"$WORK/base.json"
  if cmp -s "$WORK/new.json" "$WORK/base.json"; then echo "reports: identical"; else
    echo "reports differ in $(diff "$WORK/new.json" "$WORK/base.json" | grep -c '^<') line(s)"; fi
fi
