# syntax=docker/dockerfile:1
# The simple-device-plugin image: a static binary on distroless/static.
#   docker build -t simple-device-plugin:dev .
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg REVISION=$(git rev-parse HEAD) -t REGISTRY/simple-device-plugin:TAG --push .
# Without Docker, `make image` builds the same image (the binary on an empty
# base with /etc/passwd and /etc/group) for both platforms as an OCI image
# layout, and this machine's as a docker-archive tarball.

# The build stage runs on the build machine's platform and cross-compiles
# (the binary is pure Go): no emulation of the target platform.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS TARGETARCH
ARG VERSION=dev
ARG REVISION=unknown
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
      go build -trimpath -ldflags "-s -w -X simple-device-plugin/cli.version=${VERSION} -X simple-device-plugin/cli.commit=${REVISION}" \
      -o /out/simple-device-plugin .

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
# The repository the image is built from: --build-arg SOURCE=URL.
ARG SOURCE=unknown
LABEL org.opencontainers.image.title=simple-device-plugin \
      org.opencontainers.image.version=${VERSION} \
      org.opencontainers.image.revision=${REVISION} \
      org.opencontainers.image.source=${SOURCE}
COPY --from=build /out/simple-device-plugin /usr/local/bin/simple-device-plugin
# Non-root by default. The DaemonSet runs it as uid 0 (and nothing more: no
# capabilities) because the kubelet's device-plugin directory is root-only;
# see deploy/daemonset.yaml.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/simple-device-plugin"]
