#!/usr/bin/env bash
# Builds (or reuses) the Vault server binary the e2e suite runs against, and
# prints its path on stdout. Progress goes to stderr.
#
# Order of preference:
#   1. $KEYSHARE_VAULT_BIN, if set and executable;
#   2. a `vault` on PATH whose version matches;
#   3. the cached build at $KEYSHARE_CACHE/vault-$VERSION/vault;
#   4. a fresh build from the Go module proxy (about 11 minutes cold).
set -euo pipefail
VERSION=1.21.0
here=$(cd "$(dirname "$0")" && pwd)
cache=${KEYSHARE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/keyshare}
out="$cache/vault-$VERSION/vault"

log() { printf 'vault-build: %s\n' "$*" >&2; }
# shellcheck source=e2e/tools/lib.sh
. "$here/../lib.sh"

if [ -n "${KEYSHARE_VAULT_BIN:-}" ] && [ -x "$KEYSHARE_VAULT_BIN" ]; then
  echo "$KEYSHARE_VAULT_BIN"; exit 0
fi
if onpath=$(command -v vault 2>/dev/null) && "$onpath" version 2>/dev/null | grep -q "Vault v$VERSION "; then
  echo "$onpath"; exit 0
fi
if [ -x "$out" ] && "$out" version 2>/dev/null | grep -q "Vault v$VERSION"; then
  echo "$out"; exit 0
fi

mkdir -p "$(dirname "$out")"
# One build at a time, even when several test processes ask at once.
build_lock "$cache/vault-$VERSION.lock"
if [ -x "$out" ] && "$out" version 2>/dev/null | grep -q "Vault v$VERSION"; then
  echo "$out"; exit 0
fi

log "building Vault v$VERSION from the Go module proxy into $out"
log "this takes about 11 minutes on a cold machine, about 30 s with a warm Go build cache"
cd "$here"
start=$(date +%s)
progress_ticker
tidy_go_sum
tmp="$out.tmp.$$"
GOFLAGS=-mod=mod go build -trimpath -ldflags='-s -w' -o "$tmp" github.com/hashicorp/vault >&2
mv -f "$tmp" "$out"
log "built $("$out" version) in $(( $(date +%s) - start )) s"
echo "$out"
