#!/usr/bin/env bash
# Builds (or reuses) the kube-apiserver, etcd and etcdctl binaries the e2e
# suite runs the KMS plugin under, and prints them on stdout, one
# NAME=path line each, ready for `env $(e2e/tools/kube/build.sh) go test ...`:
#
#   KEYSHARE_KUBE_APISERVER_BIN=.../kube-v1.34.4/kube-apiserver
#   KEYSHARE_ETCD_BIN=.../etcd-v3.6.4/etcd
#   KEYSHARE_ETCDCTL_BIN=.../etcd-v3.6.4/etcdctl
#
# Progress goes to stderr. For each binary, in order of preference:
#   1. the variable above, if set and executable;
#   2. the cached build under $KEYSHARE_CACHE, keyed by version, if it
#      reports that version;
#   3. a fresh build from the Go module proxy with this tools module (see
#      README.md for the cold and warm times on a 2-core machine).
set -euo pipefail
KUBE_VERSION=1.34.4
ETCD_VERSION=3.6.4
here=$(cd "$(dirname "$0")" && pwd)
cache=${KEYSHARE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/keyshare}
apiserver="$cache/kube-v$KUBE_VERSION/kube-apiserver"
etcd="$cache/etcd-v$ETCD_VERSION/etcd"
etcdctl="$cache/etcd-v$ETCD_VERSION/etcdctl"

log() { printf 'kube-build: %s\n' "$*" >&2; }
# shellcheck source=e2e/tools/lib.sh
. "$here/../lib.sh"

# Each check runs the binary and looks for its exact version.
ok_apiserver() { [ -x "$1" ] && "$1" --version 2>/dev/null | grep -qx "Kubernetes v$KUBE_VERSION"; }
ok_etcd() { [ -x "$1" ] && "$1" --version 2>/dev/null | grep -qx "etcd Version: $ETCD_VERSION"; }
ok_etcdctl() { [ -x "$1" ] && "$1" version 2>/dev/null | grep -qx "etcdctl version: $ETCD_VERSION"; }

if [ -n "${KEYSHARE_KUBE_APISERVER_BIN:-}" ] && [ -x "$KEYSHARE_KUBE_APISERVER_BIN" ]; then apiserver=$KEYSHARE_KUBE_APISERVER_BIN; fi
if [ -n "${KEYSHARE_ETCD_BIN:-}" ] && [ -x "$KEYSHARE_ETCD_BIN" ]; then etcd=$KEYSHARE_ETCD_BIN; fi
if [ -n "${KEYSHARE_ETCDCTL_BIN:-}" ] && [ -x "$KEYSHARE_ETCDCTL_BIN" ]; then etcdctl=$KEYSHARE_ETCDCTL_BIN; fi

print() {
  printf 'KEYSHARE_KUBE_APISERVER_BIN=%s\n' "$apiserver"
  printf 'KEYSHARE_ETCD_BIN=%s\n' "$etcd"
  printf 'KEYSHARE_ETCDCTL_BIN=%s\n' "$etcdctl"
}
all_ok() {
  { [ -n "${KEYSHARE_KUBE_APISERVER_BIN:-}" ] || ok_apiserver "$apiserver"; } &&
  { [ -n "${KEYSHARE_ETCD_BIN:-}" ] || ok_etcd "$etcd"; } &&
  { [ -n "${KEYSHARE_ETCDCTL_BIN:-}" ] || ok_etcdctl "$etcdctl"; }
}
if all_ok; then print; exit 0; fi

mkdir -p "$cache" "$(dirname "$apiserver")" "$(dirname "$etcd")"
# One build at a time, even when several test processes ask at once.
build_lock "$cache/kube-v$KUBE_VERSION-etcd-v$ETCD_VERSION.lock"
if all_ok; then print; exit 0; fi

cd "$here"
start=$(date +%s)
progress_ticker
tidy_go_sum

# build NAME PACKAGE OUT [LDFLAGS...]: go build into a temporary file next to
# OUT, then rename, so a killed build never leaves a half-written binary.
build() {
  local name=$1 pkg=$2 out=$3 ldflags=$4 t0 tmp
  t0=$(date +%s)
  tmp="$out.tmp.$$"
  GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w $ldflags" -o "$tmp" "$pkg" >&2
  mv -f "$tmp" "$out"
  log "built $name in $(( $(date +%s) - t0 )) s"
}

if [ -z "${KEYSHARE_KUBE_APISERVER_BIN:-}" ] && ! ok_apiserver "$apiserver"; then
  log "building kube-apiserver v$KUBE_VERSION from the Go module proxy into $apiserver"
  log "this takes several minutes on a cold machine (README.md has the figures)"
  # Built from a module, the apiserver would report v0.0.0-master; stamp the
  # version clients see in /version.
  v=k8s.io/component-base/version
  build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$apiserver" \
    "-X $v.gitVersion=v$KUBE_VERSION -X $v.gitMajor=${KUBE_VERSION%%.*} -X $v.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2) -X $v.gitTreeState=clean"
  ok_apiserver "$apiserver" || { log "$apiserver does not report Kubernetes v$KUBE_VERSION"; exit 1; }
fi
if [ -z "${KEYSHARE_ETCD_BIN:-}" ] && ! ok_etcd "$etcd"; then
  log "building etcd v$ETCD_VERSION into $etcd"
  build etcd go.etcd.io/etcd/server/v3 "$etcd" ""
  ok_etcd "$etcd" || { log "$etcd does not report etcd $ETCD_VERSION"; exit 1; }
fi
if [ -z "${KEYSHARE_ETCDCTL_BIN:-}" ] && ! ok_etcdctl "$etcdctl"; then
  log "building etcdctl v$ETCD_VERSION into $etcdctl"
  build etcdctl go.etcd.io/etcd/etcdctl/v3 "$etcdctl" ""
  ok_etcdctl "$etcdctl" || { log "$etcdctl does not report etcdctl $ETCD_VERSION"; exit 1; }
fi
log "done in $(( $(date +%s) - start )) s"
print
