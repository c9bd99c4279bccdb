# syntax=docker/dockerfile:1
# The simple-device-plugin image: a static binary on distroless/static.
#   docker build -t simple-device-plugin:dev .
# Without Docker, `make image` builds the same image (the binary on an empty
# base with /etc/passwd and /etc/group) as a docker-archive tarball.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X simple-device-plugin/cli.version=${VERSION} -X simple-device-plugin/cli.commit=${REVISION}" \
      -o /out/simple-device-plugin .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/simple-device-plugin /usr/local/bin/simple-device-plugin
# Non-root by default. The DaemonSet runs it as uid 0 (and nothing more: no
# capabilities) because the kubelet's device-plugin directory is root-only;
# see deploy/daemonset.yaml.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/simple-device-plugin"]
