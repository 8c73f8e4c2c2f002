# Build the server and the console, then a slim runtime image. The dependencies are
# compiled in a layer of their own (cargo-chef), which only a change of Cargo.toml
# or Cargo.lock rebuilds: editing the sources recompiles Tasklens alone.
FROM rust:1.95-bookworm AS chef
RUN cargo install cargo-chef --locked --version ^0.1
WORKDIR /src

FROM chef AS plan
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev && rm -rf /var/lib/apt/lists/*
COPY --from=plan /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN rustup target add wasm32-unknown-unknown \
 && PROFILE=release web-ui/build.sh \
 && cargo build --release --locked -p tasklens

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/tasklens --create-home tasklens
COPY --from=build /src/target/release/tasklens /usr/local/bin/tasklens
COPY --from=build /src/web-ui/dist /usr/share/tasklens/ui
USER tasklens
WORKDIR /var/lib/tasklens
ENV TASKLENS_BIND=0.0.0.0:8080 TASKLENS_UI_DIR=/usr/share/tasklens/ui
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=6s --start-period=20s --retries=3 \
  CMD ["tasklens", "healthcheck", "--server", "http://127.0.0.1:8080"]
CMD ["tasklens", "serve"]
