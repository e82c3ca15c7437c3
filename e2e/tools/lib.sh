# Shared by e2e/tools/*/build.sh, sourced after the script defines log().
# shellcheck shell=bash

# build_lock FILE holds an exclusive lock on FILE (file descriptor 9) until
# the script exits: one build at a time, even when several test processes
# ask at once.
build_lock() {
  exec 9>"$1"
  flock 9
}

# progress_ticker logs "still building" every 30 s until the script exits,
# so that a cold build of many minutes does not look hung.
progress_ticker() {
  local t0
  t0=$(date +%s)
  (
    while sleep 30; do log "still building ($(( $(date +%s) - t0 )) s so far)"; done
  ) &
  ticker=$!
  trap 'kill $ticker 2>/dev/null || true' EXIT
}

# tidy_go_sum runs in the tools module: go.sum is committed, and tidy only
# fills it in if it is missing.
tidy_go_sum() {
  if [ ! -s go.sum ]; then
    log "go.sum missing: running go mod tidy"
    GOFLAGS=-mod=mod go mod tidy >&2
  fi
}
