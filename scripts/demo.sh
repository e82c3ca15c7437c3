#!/usr/bin/env bash
# The local demo (`make demo`): a 3-node Vault cluster, 3 holders and a
# coordinator on loopback. It builds the Vault server once (cached in
# ~/.cache/keyshare; minutes the first time), builds holder, unsealer and
# the demo, and runs the demo until Ctrl-C.
#
#   make demo                      run until Ctrl-C
#   make demo DEMO_ARGS=--once     run the show once and exit
#   make demo DEMO_ARGS=--keep     keep the demo folder (configs, logs) on exit
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null 2>&1; then
  echo "demo: Go is not installed (or not on PATH); install Go $(sed -n 's/^go //p' go.mod) or newer: https://go.dev/dl/" >&2
  exit 1
fi

echo "==> Vault v1.21.0 server (built from the Go module proxy once, then cached)"
vault=$(e2e/tools/vault/build.sh)
echo "    $vault"

bin=${BIN:-bin}
echo "==> Building holder, unsealer and the demo into $bin/"
mkdir -p "$bin"
go build -o "$bin/" ./cmd/holder ./cmd/unsealer ./e2e/demo

# shellcheck disable=SC2086 # DEMO_ARGS is a list of flags
exec "$bin/demo" -vault "$vault" -bin "$bin" ${DEMO_ARGS:-}
