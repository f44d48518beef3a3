# Bulkhead's image for users with a registry: `docker build -t REGISTRY/bulkhead:TAG .`
# (or `podman build`), then `bulkhead install --image REGISTRY/bulkhead@sha256:…`.
# Without network access to base images, build the same image from this
# host's files instead: scripts/build-image.sh (umoci, FROM scratch).

# The console: Node.js 20, exactly the packages package-lock.json pins.
FROM docker.io/library/node:20-bookworm AS console
WORKDIR /src/ui
COPY ui/package.json ui/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY ui/ ./
RUN npm run build

# The binary: the eBPF programs need clang 19 and the kernel/libbpf headers.
FROM docker.io/library/rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang-19 llvm-19 libbpf-dev linux-libc-dev protobuf-compiler pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p bulkhead

# The runtime: glibc, libgcc and CA certificates, nothing else (no shell).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/bulkhead /usr/local/bin/bulkhead
COPY --from=console /src/ui/dist /usr/share/bulkhead/console
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/bulkhead"]
