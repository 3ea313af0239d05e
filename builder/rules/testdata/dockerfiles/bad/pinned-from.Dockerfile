# want: pinned-from
FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS TARGETARCH
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH CGO_ENABLED=0 go build -o /out/bitvaultd ./cmd/bitvaultd

FROM gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab AS bitvaultd
COPY --from=build /out/bitvaultd /usr/local/bin/bitvaultd
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/bitvaultd"]
