#!/usr/bin/env bash
# Regenerates plugin/pb/*.pb.go from plugin/pb/signer.proto with pinned
# generator versions. The generated files are committed, so building and
# CI never need protoc; run this only after editing the .proto.
#
# Needs protoc (Debian: apt install protobuf-compiler; checked with 3.21.12).
# The Go generators are installed into a temporary GOBIN at pinned versions
# whose output the runtimes in go.mod accept: protoc-gen-go v1.36.6 (go.mod
# has google.golang.org/protobuf v1.36.12), and
# protoc-gen-go-grpc 1.3.0, whose output works with every google.golang.org/grpc
# from v1.61 on (go.mod has v1.85).
set -euo pipefail
cd "$(dirname "$0")/.."

PROTOC_GEN_GO_VERSION=v1.36.6
PROTOC_GEN_GO_GRPC_VERSION=v1.3.0

command -v protoc >/dev/null || { echo "gen-proto: protoc not found; install it (Debian: apt install protobuf-compiler)" >&2; exit 1; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
GOBIN=$bin go install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOC_GEN_GO_VERSION}"
GOBIN=$bin go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@${PROTOC_GEN_GO_GRPC_VERSION}"

PATH=$bin:$PATH protoc \
	--proto_path=plugin/pb \
	--go_out=plugin/pb --go_opt=paths=source_relative \
	--go-grpc_out=plugin/pb --go-grpc_opt=paths=source_relative \
	plugin/pb/signer.proto
gofmt -l plugin/pb
echo "gen-proto: regenerated plugin/pb (protoc $(protoc --version | cut -d' ' -f2), protoc-gen-go ${PROTOC_GEN_GO_VERSION}, protoc-gen-go-grpc ${PROTOC_GEN_GO_GRPC_VERSION})"
