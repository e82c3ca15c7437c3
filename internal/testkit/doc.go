// Package testkit holds nothing itself: its sub-packages are the test
// support shared by unit and e2e tests, kept apart so that no production
// package imports them by accident.
//
//	vaultfake      an in-process fake Vault (seal, init, rekey, transit)
//	vaultcontract  the assertions run against both the fake and the real Vault
//	devpki         throwaway CAs and SPIFFE leaf certificates
//	fakenode       a fake Vault on TLS and a client pinned to its CA
//	rig            holders and a coordinator wired in one process
//	proctest       child processes: free ports, log attributes
//	metrictest     Prometheus series read in tests
package testkit
