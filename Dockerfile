# Container images of the KMS plugin and the unsealer: a static binary on
# distroless/static, non-root, no shell, no package manager.
#
#   docker build --target kmsplugin -t keyshare/kmsplugin:$(git describe --tags --always) \
#     --build-arg VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse HEAD) .
#   docker build --target unsealer  -t keyshare/unsealer:...  (same build args) .
#
# The holder has no image on purpose: it belongs on its own host, with its
# seal key as a systemd credential (install it from its .deb).
# packaging/docker_test.go runs the build line below and checks that its
# binaries are static and that the final stages stay shell-less and non-root.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/keyshare/keyshare/internal/version.Version=${VERSION} -X github.com/keyshare/keyshare/internal/version.Commit=${COMMIT}" -o /out/ ./cmd/kmsplugin ./cmd/unsealer

# The apiserver reaches the plugin on a unix socket in a volume shared with
# it (configs/k8s/kmsplugin-pod.yaml); the config and the token file are
# mounted read-only under /etc/keyshare.
FROM gcr.io/distroless/static-debian12:nonroot AS kmsplugin
COPY --from=build /out/kmsplugin /usr/local/bin/kmsplugin
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/kmsplugin"]
CMD ["serve", "--config", "/etc/keyshare/kmsplugin.yaml"]

# The coordinator: config and certificates mounted read-only under
# /etc/keyshare; it keeps no state.
FROM gcr.io/distroless/static-debian12:nonroot AS unsealer
COPY --from=build /out/unsealer /usr/local/bin/unsealer
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/unsealer"]
CMD ["run", "--config", "/etc/keyshare/unsealer.yaml"]
