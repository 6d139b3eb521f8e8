# syntax=docker/dockerfile:1
# BlobZero self-play client; also runs `blobzero arena` (the k8s arena CronJob uses this image)
# the strength tracker `blobzero strength --watch` (compose and k8s `strength`) and the agent
# service `blobzero agent` (compose and k8s `agent`).
#
#   docker build -f docker/selfplay.Dockerfile -t blobzero/selfplay:0.1.0 .     (from the repo root)
#
# Stage `build` compiles the Cython game core and generates the protobuf modules exactly like
# `make build` (setup.py build_ext --inplace, then an editable install), into /opt/venv and /app.
# Stage `runtime` is a slim Python with only those two directories: no compiler, no sources
# beyond the Python modules, non-root user 10001. Dependency versions come from requirements.txt,
# the project's single lock, used as a pip constraints file.

FROM python:3.11.7-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY requirements.txt ./
# Runtime packages of the client (numpy, gRPC client, metrics, ONNX Runtime for arena players
# given as .onnx files, boto3 for s3:// storage) and the build tools (Cython, grpcio-tools). Every version is pinned by
# requirements.txt; setuptools/wheel are not in it, so they are pinned here.
RUN python -m venv /opt/venv \
 && pip install setuptools==84.2.1 wheel==0.48.0 \
 && pip install --constraint requirements.txt \
      numpy "tritonclient[grpc]" grpcio grpcio-health-checking grpcio-reflection protobuf \
      prometheus_client onnxruntime tqdm boto3 Cython grpcio-tools
COPY pyproject.toml setup.py README.md ./
COPY proto/ proto/
COPY blobcore/ blobcore/
COPY blobzero/ blobzero/
COPY plumbing/ plumbing/
COPY services/ services/
COPY selfplay_client/ selfplay_client/
COPY trainer/ trainer/
COPY config/ config/
COPY model_repository/ model_repository/
COPY docker/healthcheck.py docker/healthcheck.py
# Editable install: like `make build`, the code stays in /app, where config/ and
# model_repository/ are found relative to the sources.
RUN python setup.py build_ext --inplace -j 2 \
 && pip install --no-deps --no-build-isolation -e . \
 && rm -rf build blobcore/*.c \
 && pip uninstall --yes Cython grpcio-tools \
 && python -m compileall -q /app

FROM python:3.11.7-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    BLOBZERO_CONFIG=/etc/blobzero/blobzero.toml \
    BLOBZERO__METRICS__HOST=0.0.0.0
RUN groupadd --gid 10001 blobzero \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin blobzero \
 && mkdir -p /etc/blobzero /var/lib/blobzero/games /var/lib/blobzero/models \
      /var/lib/blobzero/checkpoints /var/lib/blobzero/strength \
 && chown -R 10001:10001 /var/lib/blobzero
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
# Default configuration; docker-compose.yml and k8s mount config/blobzero.toml over it.
COPY config/blobzero.toml /etc/blobzero/blobzero.toml
WORKDIR /app
USER 10001:10001
# metrics.selfplay_port; metrics.strength_port when it runs `blobzero strength --watch`;
# agent.grpc_port, agent.http_port and metrics.agent_port when it runs `blobzero agent`
EXPOSE 9100 9102 50051 8080 9103
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "/app/docker/healthcheck.py", "http://127.0.0.1:9100/metrics"]
ENTRYPOINT ["blobzero"]
CMD ["selfplay", "--config", "/etc/blobzero/blobzero.toml"]
