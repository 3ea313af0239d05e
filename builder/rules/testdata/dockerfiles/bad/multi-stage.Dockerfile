# The binary is built outside BuildKit and copied from the context.
# want: multi-stage
FROM gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab AS bitvaultd
COPY dist/bitvaultd /usr/local/bin/bitvaultd
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/bitvaultd"]
