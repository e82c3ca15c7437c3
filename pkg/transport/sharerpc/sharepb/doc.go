// Package sharepb holds the protobuf messages and gRPC stubs of the share
// service (keyshare.share.v1), generated from share.proto by
// scripts/generate.sh (make generate). Do not edit the .pb.go files; edit
// share.proto and regenerate. Daemons use package sharerpc, not this one.
package sharepb
