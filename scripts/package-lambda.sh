#!/usr/bin/env bash
# Builds the AWS Lambda function (binary `bootstrap`, cargo feature `lambda`) with plain cargo and
# writes a zip with `bootstrap` at its root, for the provided.al2023 runtime.
#
#   scripts/package-lambda.sh                       # x86_64, release → target/lambda/x86_64/bootstrap.zip
#   scripts/package-lambda.sh --arch arm64          # Graviton (needs the target and a linker, see below)
#   scripts/package-lambda.sh --debug --out f.zip   # a debug build (tests), to a chosen path
#
# It prints the zip's path on stdout (and nothing else there); progress goes to stderr.
#
# arm64 on an x86_64 machine needs Rust's aarch64 standard library and a cross linker:
#   rustup target add aarch64-unknown-linux-gnu
#   apt-get install gcc-aarch64-linux-gnu        # Debian/Ubuntu; other systems: an aarch64-linux-gnu gcc
# (on an arm64 machine, --arch arm64 is a native build and needs neither).
#
# The binary links glibc dynamically; provided.al2023 has glibc 2.34, so the script refuses a
# binary that needs a newer glibc symbol (build on a system with glibc ≤ 2.34, or in an AL2023
# container, if that happens).
set -euo pipefail
cd "$(dirname "$0")/.."

ARCH=x86_64
PROFILE=release
OUT=
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) ARCH=${2:?--arch needs x86_64 or arm64}; shift 2 ;;
    --arch=*) ARCH=${1#--arch=}; shift ;;
    --debug) PROFILE=debug; shift ;;
    --out) OUT=${2:?--out needs a path}; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package-lambda.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done

log() { printf '[package-lambda] %s\n' "$*" >&2; }

case "$ARCH" in
  x86_64) TRIPLE=x86_64-unknown-linux-gnu; LINKER_VAR=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER; CROSS_CC=x86_64-linux-gnu-gcc ;;
  arm64|aarch64) ARCH=arm64; TRIPLE=aarch64-unknown-linux-gnu; LINKER_VAR=CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER; CROSS_CC=aarch64-linux-gnu-gcc ;;
  *) echo "package-lambda.sh: --arch must be x86_64 or arm64, not $ARCH" >&2; exit 2 ;;
esac

HOST=$(rustc -vV | sed -n 's/^host: //p')
CARGO_ARGS=(build --locked --features lambda --bin bootstrap)
[ "$PROFILE" = release ] && CARGO_ARGS+=(--release)
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN="$TARGET_DIR/$PROFILE/bootstrap"
if [ "$HOST" != "$TRIPLE" ]; then
  CARGO_ARGS+=(--target "$TRIPLE")
  BIN="$TARGET_DIR/$TRIPLE/$PROFILE/bootstrap"
  if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$TRIPLE"; then
    echo "package-lambda.sh: Rust's standard library for $TRIPLE is not installed. Install it with:" >&2
    echo "  rustup target add $TRIPLE" >&2
    exit 3
  fi
  if [ -z "${!LINKER_VAR:-}" ]; then
    if ! command -v "$CROSS_CC" >/dev/null; then
      echo "package-lambda.sh: no linker for $TRIPLE ($CROSS_CC). Install one, e.g. on Debian/Ubuntu:" >&2
      echo "  apt-get install gcc-${CROSS_CC%-gcc}" >&2
      echo "or point $LINKER_VAR at your own." >&2
      exit 3
    fi
    export "$LINKER_VAR=$CROSS_CC"
    # C dependencies (ring) are compiled with the same cross compiler.
    export "CC_${TRIPLE//-/_}=$CROSS_CC"
  fi
fi

log "cargo ${CARGO_ARGS[*]}"
cargo "${CARGO_ARGS[@]}" >&2
[ -x "$BIN" ] || { echo "package-lambda.sh: cargo finished but $BIN is missing" >&2; exit 1; }

# provided.al2023 ships glibc 2.34: refuse a binary that needs a newer symbol version.
if command -v objdump >/dev/null; then
  NEWEST=$(objdump -T "$BIN" | grep -o 'GLIBC_[0-9.]*' | sort -V | tail -1 || true)
  log "newest glibc symbol: ${NEWEST:-none}"
  case "$NEWEST" in
    GLIBC_2.3[5-9]*|GLIBC_2.[4-9]*)
      echo "package-lambda.sh: $BIN needs $NEWEST but provided.al2023 has glibc 2.34; build on an older system" >&2
      exit 1 ;;
  esac
fi

OUT=${OUT:-$TARGET_DIR/lambda/$ARCH/bootstrap.zip}
mkdir -p "$(dirname "$OUT")"
rm -f "$OUT"
# `bootstrap` at the zip's root, executable. zip if present, else Python's zipfile.
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
cp "$BIN" "$STAGE/bootstrap"
chmod 755 "$STAGE/bootstrap"
LEVEL=-9; [ "$PROFILE" = debug ] && LEVEL=-1   # a debug binary is large; tests want it fast
if command -v zip >/dev/null; then
  (cd "$STAGE" && zip -q "$LEVEL" -X bootstrap.zip bootstrap)
else
  python3 - "$STAGE" "${LEVEL#-}" <<'PY'
import os, sys, zipfile
stage = sys.argv[1]
info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
info.external_attr = (0o100755 << 16)
info.compress_type = zipfile.ZIP_DEFLATED
with open(os.path.join(stage, "bootstrap"), "rb") as f, zipfile.ZipFile(os.path.join(stage, "bootstrap.zip"), "w") as z:
    z.writestr(info, f.read(), compresslevel=int(sys.argv[2]))
PY
fi
mv "$STAGE/bootstrap.zip" "$OUT"
log "$(du -h "$OUT" | cut -f1) $OUT ($ARCH, $PROFILE)"
echo "$OUT"
