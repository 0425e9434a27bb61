# syntax=docker/dockerfile:1
# imangor as a container image: built with the project's Rust (1.95) from the locked dependencies,
# run as a numeric non-root user on a distroless base (glibc and CA certificates, no shell, no
# package manager). Build:  docker build -t imangor:0.1.0 .
# On Kubernetes: deploy/k8s (docs/operations.md).

ARG RUST_VERSION=1.95

# ---- build -------------------------------------------------------------------------------------
# Debian 13 (trixie), the same glibc as the runtime image below.
FROM rust:${RUST_VERSION}-trixie AS builder
WORKDIR /src
# .dockerignore lets in only what the build needs: the manifest, the lock file, src/,
# migrations/ (embedded), assets/ (the common-password list, embedded) and console/ (the
# security console's page, script and style sheet, embedded).
COPY . .
# The cache mounts keep the crate registry and target/ between builds; the binary is copied out of
# the cached target/ in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin imangor \
 && install -D -m 0755 target/release/imangor /out/usr/local/bin/imangor \
 && install -d -m 0700 /out/var/lib/imangor

# ---- run ---------------------------------------------------------------------------------------
# Pin by digest in your registry mirror (gcr.io/distroless/cc-debian13:nonroot@sha256:...).
FROM gcr.io/distroless/cc-debian13:nonroot
LABEL org.opencontainers.image.title="imangor" \
      org.opencontainers.image.description="An API server built to a security guide" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/usr/local/bin/imangor /usr/local/bin/imangor
# The data dir for a single container on SQLite (mount a volume here to keep it). On Kubernetes the
# root file system is read-only and production keeps nothing here (deploy/k8s sets the data dir
# to the pod's /tmp).
COPY --from=builder --chown=65532:65532 /out/var/lib/imangor /var/lib/imangor
WORKDIR /var/lib/imangor
# A container is reached from outside it: listen on every address of its network namespace.
ENV IMANGOR_LISTEN=0.0.0.0:8000 \
    IMANGOR_METRICS_LISTEN=0.0.0.0:9100 \
    IMANGOR_DATA_DIR=/var/lib/imangor/data
# API, then Prometheus metrics (keep the second off the public network).
EXPOSE 8000 9100
# Numeric, so that Kubernetes' runAsNonRoot can check it (distroless' `nonroot`).
USER 65532:65532
# No HEALTHCHECK: there is no shell or curl in the image; orchestrators probe GET /healthz
# (alive) and GET /readyz (database reachable) on port 8000.
ENTRYPOINT ["/usr/local/bin/imangor"]
CMD ["serve"]
