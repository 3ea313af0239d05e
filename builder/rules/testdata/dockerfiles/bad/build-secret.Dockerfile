FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d AS build
WORKDIR /src
# A token for private modules, passed as a build arg: it lands in the provenance.
# want: build-secret
ARG GITHUB_TOKEN
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS TARGETARCH
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH CGO_ENABLED=0 go build -o /out/bitvaultd ./cmd/bitvaultd

FROM gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab AS bitvaultd
COPY --from=build /out/bitvaultd /usr/local/bin/bitvaultd
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/bitvaultd"]
