# syntax=docker/dockerfile:1
# One small static image with both binaries, vigil-evaluator and
# vigil-exporter, in /usr/local/bin. Build from the repository root:
#   docker build --build-arg VIGIL_GIT_COMMIT="$(git rev-parse --short HEAD)" -t vigil:0.1.0 .
# Run: docker run --rm vigil:0.1.0 vigil-evaluator --version
# deploy/kubernetes/ uses it (pinned by tag) for every container.

# Build: statically linked against musl. TLS is rustls with bundled root
# certificates and SQLite is compiled in (sqlx), so nothing is needed at run
# time but the binaries.
FROM rust:1.95-alpine3.22 AS build
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
# Without .git in the build context the commit comes from this argument
# (common/build.rs reads VIGIL_GIT_COMMIT).
ARG VIGIL_GIT_COMMIT=unknown
ENV VIGIL_GIT_COMMIT=${VIGIL_GIT_COMMIT} \
    CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_STRIP=symbols
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p vigil-evaluator -p vigil-exporter -F vigil-exporter/cli \
    && mkdir -p /out \
    && cp target/release/vigil-evaluator target/release/vigil-exporter /out/

# Run: distroless static (no shell, no package manager), as the unprivileged
# user 65532 the Kubernetes manifests expect.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/vigil-evaluator /out/vigil-exporter /usr/local/bin/
# The working directory is the user's home, writable: a config mounted there
# keeps the default `sqlite://vigil.db` (next to the config file) writable in
# `docker run`; Kubernetes mounts a volume at
# /var/lib/vigil instead (the root filesystem is read-only there).
WORKDIR /home/nonroot
USER 65532:65532
EXPOSE 9310 9320
# No entrypoint: name the binary, e.g. `docker run IMAGE vigil-exporter --listen 0.0.0.0:9310`.
CMD ["vigil-evaluator", "--help"]
