#!/usr/bin/env bash
# Fuzzes the JUnit parser for a bounded time with cargo-fuzz (libFuzzer), then prints how many
# inputs were executed and how many crashes were found.
#
#   scripts/fuzz.sh          # 300 seconds
#   scripts/fuzz.sh 600      # 600 seconds
#
# Needs the nightly toolchain and cargo-fuzz (`rustup toolchain install nightly`,
# `cargo install cargo-fuzz`). The target is fuzz/fuzz_targets/junit.rs. Its corpus,
# fuzz/corpus/junit/ (git-ignored), is seeded from tests/fixtures/junit/ and, when present, the
# shared real-world corpus in ../shared/corpus/junit/ (or $CTM_CORPUS). A crash is saved under
# fuzz/artifacts/junit/; replay it with `cargo +nightly fuzz run junit FILE`, then add it as a
# fixture under tests/fixtures/junit/ with a fix and a regression test. Inputs are cut at 16 KiB
# (larger seeds are fuzzed by their start) to keep executions fast. One job, niced: the machine
# may be shared.
#
# Built without AddressSanitizer (`-s none`), with debug assertions (cargo-fuzz's default
# profile: release, debug assertions and overflow checks on). ASan made every execution about 7x
# slower here (replaying the same corpus: ~700 inputs/s with it, ~5,000 without) and finds
# nothing the target can have: the parser is safe Rust but for one `from_utf8_unchecked`, whose
# promise (ASCII) a debug assertion checks, and its dependencies are Rust too. Set
# CTM_FUZZ_SANITIZER=address to build with ASan anyway. Exit status: 0 when no crash was found, 1 when one was, 2 on a setup
# problem.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_TO_RUN=${1:-300}
case $SECONDS_TO_RUN in
  '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] (a whole number, default 300)" >&2; exit 2 ;;
esac
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: needs cargo-fuzz on the nightly toolchain: rustup toolchain install nightly && cargo install cargo-fuzz" >&2
  exit 2
fi

CORPUS=fuzz/corpus/junit
ARTIFACTS=fuzz/artifacts/junit
mkdir -p "$CORPUS" "$ARTIFACTS"
# Seeds, named by content so files of the same name in different folders do not collide.
seed() {
  local f
  while IFS= read -r -d '' f; do
    cp "$f" "$CORPUS/seed-$(sha1sum "$f" | cut -c1-16)"
  done < <(find "$1" -type f \( -name '*.xml' -o -name '*.junit-xml' -o -name '*.trx' \) -print0)
}
seed tests/fixtures/junit
SHARED=${CTM_CORPUS:-../shared/corpus/junit}
if [ -d "$SHARED" ]; then
  seed "$SHARED"
else
  echo "fuzz.sh: $SHARED not found; seeding from tests/fixtures/junit only" >&2
fi
echo "fuzz.sh: corpus $CORPUS: $(find "$CORPUS" -type f | wc -l) inputs; fuzzing for ${SECONDS_TO_RUN} s" >&2

before=$(find "$ARTIFACTS" -type f | wc -l)
LOG=$(mktemp "${TMPDIR:-/tmp}/fuzz-junit.XXXXXX.log")
set +e
nice cargo +nightly fuzz run --fuzz-dir fuzz -s "${CTM_FUZZ_SANITIZER:-none}" junit "$CORPUS" -- \
  -max_total_time="$SECONDS_TO_RUN" -max_len=16384 -timeout=10 \
  -dict=fuzz/junit.dict -print_final_stats=1 2>&1 | tee "$LOG" | grep -E --line-buffered 'pulse|DONE|INITED|ERROR|panicked|crash-|Test unit written' >&2
rc=${PIPESTATUS[0]}
set -e
after=$(find "$ARTIFACTS" -type f | wc -l)
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOG" | tail -1)
echo "executions: ${execs:-unknown}"
echo "crashes: $((after - before)) new in $ARTIFACTS (libFuzzer exit $rc; log $LOG)"
if [ "$after" -gt "$before" ]; then
  find "$ARTIFACTS" -type f -newer "$LOG" -print
  exit 1
fi
[ "$rc" = 0 ] || exit 1
