# kommons-tools: the project's static Go binaries (pg-init, wait-for-pg,
# postrender, ...) in one small distroless image, running as non-root.
# Charts reference it through values (image.registry, image.repository,
# image.tag, image.digest).
#
#   docker build -t ghcr.io/kommons/kommons-tools:$(git describe --tags) .
#
# Releases do not use this file: `make release VERSION=x.y.z DRY_RUN=1` builds
# the same image (same binaries, paths, user and labels, on a base made from
# files instead of distroless) for linux/amd64 and linux/arm64, reproducibly
# and without Docker (docs/releasing.md).

ARG GO_VERSION=1.26
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY cmd/ cmd/
COPY internal/ internal/
COPY pkg/ pkg/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH GOFLAGS=-buildvcs=false \
    go build -trimpath -ldflags "-s -w -X github.com/kommons/kommons/internal/version.Version=${VERSION}" \
      -o /out/ ./cmd/...

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="kommons-tools" \
      org.opencontainers.image.description="pg-init, wait-for-pg, s3-init, secret-init, postrender and friends for kommons" \
      org.opencontainers.image.source="https://github.com/kommons/kommons" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/wait-for-pg"]
