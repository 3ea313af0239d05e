# bitvaultd and bitvault-worker from one Dockerfile: build with --target.
# The toolchain runs natively on the build platform and cross-compiles.
FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
# Dependencies first: this layer only changes with go.mod/go.sum.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -ldflags="-s -w -buildid=" -o /out/ ./cmd/bitvaultd ./cmd/bitvault-worker

FROM gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab AS bitvault-worker
COPY --from=build /out/bitvault-worker /usr/local/bin/bitvault-worker
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/bitvault-worker"]

FROM gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab AS bitvaultd
COPY --from=build /out/bitvaultd /usr/local/bin/bitvaultd
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/bitvaultd"]
