#!/usr/bin/env bash
# Builds (or reuses) promtool, which checks and unit-tests the alerting
# rules in configs/prometheus, and prints its path on stdout. Progress goes
# to stderr. Like e2e/tools/vault/build.sh: built from the Go module proxy
# with this tools module, cached outside the clone, keyed by version.
#
# Order of preference:
#   1. $KEYSHARE_PROMTOOL_BIN, if set and executable;
#   2. the cached build at $KEYSHARE_CACHE/promtool-$VERSION/promtool;
#   3. a fresh build (a few minutes cold on 2 cores).
# A promtool on PATH is not used: its version would decide what the rule
# tests accept.
set -euo pipefail
VERSION=v0.316.0 # github.com/prometheus/prometheus (Prometheus 3.x), as in go.mod
here=$(cd "$(dirname "$0")" && pwd)
cache=${KEYSHARE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/keyshare}
out="$cache/promtool-$VERSION/promtool"

log() { printf 'promtool-build: %s\n' "$*" >&2; }

if [ -n "${KEYSHARE_PROMTOOL_BIN:-}" ] && [ -x "$KEYSHARE_PROMTOOL_BIN" ]; then
  echo "$KEYSHARE_PROMTOOL_BIN"; exit 0
fi
grep -Eq "github.com/prometheus/prometheus $VERSION( |$)" "$here/go.mod" || {
  log "VERSION=$VERSION here differs from tools/promtool/go.mod: change both"; exit 1; }
if [ -x "$out" ] && "$out" --version >/dev/null 2>&1; then
  echo "$out"; exit 0
fi

mkdir -p "$(dirname "$out")"
# One build at a time, even when several test processes ask at once.
exec 9>"$cache/promtool-$VERSION.lock"
flock 9
if [ -x "$out" ] && "$out" --version >/dev/null 2>&1; then
  echo "$out"; exit 0
fi

log "building promtool $VERSION from the Go module proxy into $out"
cd "$here"
start=$(date +%s)
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
GOFLAGS=-mod=mod go build -trimpath -ldflags='-s -w' -o "$tmp" github.com/prometheus/prometheus/cmd/promtool >&2
mv -f "$tmp" "$out"
log "built $("$out" --version 2>&1 | head -1) in $(( $(date +%s) - start )) s"
echo "$out"
