FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS TARGETARCH
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH CGO_ENABLED=0 go build -o /out/bitvaultd ./cmd/bitvaultd

# A slim Debian still has a shell and apt.
# want: final-base
FROM debian:bookworm-slim@sha256:0000000000000000000000000000000000000000000000000000000000000000 AS bitvaultd
COPY --from=build /out/bitvaultd /usr/local/bin/bitvaultd
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/bitvaultd"]
