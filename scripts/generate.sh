#!/usr/bin/env bash
# Regenerate the committed protobuf and gRPC code (make generate).
#
# protoc comes from Debian (protobuf-compiler, 3.21.12 on bookworm) and is
# installed if missing. The Go plugins are pinned below and installed with
# `go install` into a private folder, so the output is the same on every
# machine and running this twice changes nothing.
set -euo pipefail

PROTOC_GEN_GO_VERSION=v1.36.12       # google.golang.org/protobuf, same as go.mod
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2    # google.golang.org/grpc/cmd/protoc-gen-go-grpc
PROTOC_WANT="libprotoc 3.21.12"

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tools="$root/bin/tools"
mkdir -p "$tools"

if ! command -v protoc >/dev/null 2>&1; then
	echo "generate: installing protoc (protobuf-compiler)" >&2
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq protobuf-compiler >/dev/null
fi
if [ "$(protoc --version)" != "$PROTOC_WANT" ]; then
	echo "generate: warning: $(protoc --version) found, the committed code was made with $PROTOC_WANT" >&2
fi

install_plugin() { # name module-path version
	local bin="$tools/$1" stamp="$tools/$1.version"
	if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$3" ]; then return; fi
	echo "generate: installing $2@$3" >&2
	GOBIN="$tools" go install "$2@$3"
	echo "$3" >"$stamp"
}
install_plugin protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
install_plugin protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"

# Paths are given relative to the repository root, so the generated headers
# do not depend on where the clone lives.
for proto in pkg/transport/sharerpc/sharepb/share.proto; do
	PATH="$tools:$PATH" protoc \
		--proto_path=. \
		--go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative \
		"$proto"
	echo "generate: $proto" >&2
done
