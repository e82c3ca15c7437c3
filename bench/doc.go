// Package bench measures what keyshare costs to run: a holder's memory and
// CPU at idle in a three-holder gossip cluster (real holder processes), the
// coordinator's while it watches 3 and 100 Vault nodes (fake Vaults), and
// the latency percentiles of share releases and of whole unseals over
// mutual TLS.
//
// The measurements are tests behind the "costs" build tag, so that the
// unit suite never runs them:
//
//	go test -tags costs -count=1 -v -timeout 15m ./bench/
//
// KEYSHARE_COSTS_WINDOW sets the idle sampling window (default 30s). The
// figures are printed as a table at the end and recorded in BENCHMARKS.md.
package bench
