# The services behind the demo gateway, built from this workspace: the echo upstream, the test
# OAuth server and the test rate-limit service, all in the one `demo` binary of tests/ (`demo serve
# <echo|oauth|ratelimit>`). envoy/docker-compose.yaml builds it with the repository as context.

FROM rust:1.95.0-slim-bookworm AS build
# The image's toolchain, not rust-toolchain.toml's extra wasm targets: this builds for the host.
ENV RUSTUP_TOOLCHAIN=1.95.0
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p e2e --bin demo

FROM debian:bookworm-slim
COPY --from=build /src/target/release/demo /usr/local/bin/demo
# Any unprivileged user: the services bind ports above 1024 and write nothing.
USER 65532:65532
ENTRYPOINT ["demo"]
