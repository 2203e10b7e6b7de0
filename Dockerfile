# failover-dns: a controller and authoritative DNS server in one binary.
#
#   docker build -t failover-dns:0.1.0 .      (or: podman build)
#
# Build stage: the official Rust image, the same `cargo build --release --locked` as
# everywhere else (the lock file decides every dependency version).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
 && install -D -m 0755 target/release/failover-dns /out/failover-dns

# Runtime: Debian slim (the binary links glibc and libgcc only; TLS is rustls, nothing else is
# needed at run time), as an unprivileged numeric user so that Kubernetes can verify
# runAsNonRoot. It listens on unprivileged ports: DNS 5353, admin 8080.
FROM debian:bookworm-slim
COPY --from=build /out/failover-dns /usr/local/bin/failover-dns
USER 65532:65532
EXPOSE 5353/udp 5353/tcp 8080/tcp
ENTRYPOINT ["failover-dns"]
# Zones and the rest from FAILOVER_DNS_* variables (FAILOVER_DNS_ZONES=...) or more flags.
CMD ["serve", "--dns-addr", "0.0.0.0:5353", "--admin-addr", "0.0.0.0:8080"]
