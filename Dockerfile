# syntax=docker/dockerfile:1
# The vestibule server in a small image: built in a Rust image, run from distroless (no shell, no package
# manager) as a non-root user, on a read-only root file system. Build:
#   docker build --build-arg VESTIBULE_COMMIT="$(git rev-parse --short=12 HEAD)" -t vestibule .
# Run (configuration and the SQLite database in volumes; see README "Container and systemd"):
#   docker run --read-only -p 8443:8443 -v ./vestibule.toml:/etc/vestibule/vestibule.toml:ro \
#     -v vestibule-data:/var/lib/vestibule vestibule

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# The commit for `vestibule --version` (the build context has no .git).
ARG VESTIBULE_COMMIT=unknown
ENV VESTIBULE_COMMIT=${VESTIBULE_COMMIT}
COPY . .
RUN cargo build --release --locked -p vestibule-server \
    && install -D -m 0755 target/release/vestibule /out/vestibule \
    && install -d -m 0750 /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
# Pages, styles and mail templates are compiled into the binary: nothing else to copy.
COPY --from=build /out/vestibule /usr/local/bin/vestibule
# The only writable place the server needs: the SQLite file (and the development outbox, when no SMTP is set).
COPY --from=build --chown=65532:65532 /out/data /var/lib/vestibule
WORKDIR /var/lib/vestibule
# distroless's "nonroot" user, by number so any runtime resolves it without a passwd file.
USER 65532:65532
EXPOSE 8443
VOLUME ["/var/lib/vestibule"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/vestibule", "healthcheck", "--config", "/etc/vestibule/vestibule.toml"]
ENTRYPOINT ["/usr/local/bin/vestibule"]
CMD ["serve", "--config", "/etc/vestibule/vestibule.toml"]
