// Package kmsplugin is the wiring of the Kubernetes KMS v2 plugin
// (cmd/kmsplugin): the unix socket served to kube-apiserver, the Status
// cache refreshed by real transit round trips, and the Vault token file
// that is re-read, renewed and replaced without a restart. The Vault
// transit client itself lives in internal/transit.
package kmsplugin
