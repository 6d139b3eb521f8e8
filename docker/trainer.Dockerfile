# syntax=docker/dockerfile:1
# BlobZero trainer: PyTorch with CUDA, the only writer of the model repository.
#
#   docker build -f docker/trainer.Dockerfile -t blobzero/trainer:0.1.0 .      (from the repo root)
#   docker build -f docker/trainer.Dockerfile --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu \
#                -t blobzero/trainer:0.1.0-cpu .                               (CPU-only torch, ~1 GB smaller)
#
# torch==2.13.0 from the default index is the CUDA build (its nvidia-* runtime wheels come with
# it at the versions torch pins, so the base image needs no CUDA toolkit: the host's driver is
# enough, passed in by the NVIDIA container runtime). With TORCH_INDEX_URL, torch alone comes from
# that index (2.13.0+cpu satisfies ==2.13.0) and its dependencies from the default one. Everything
# else is pinned by requirements.txt.
# Stages as in docker/selfplay.Dockerfile: `build` compiles, `runtime` is slim and non-root.

FROM python:3.11.7-bookworm AS build
ARG TORCH_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY requirements.txt ./
RUN python -m venv /opt/venv \
 && pip install setuptools==84.2.1 wheel==0.48.0 \
 && if [ -n "$TORCH_INDEX_URL" ]; then \
      pip install --no-deps --constraint requirements.txt --index-url "$TORCH_INDEX_URL" torch; \
    fi \
 && pip install --constraint requirements.txt torch \
 && pip install --constraint requirements.txt \
      numpy onnx onnxruntime "tritonclient[grpc]" grpcio protobuf prometheus_client tqdm boto3 \
      Cython grpcio-tools
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
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    BLOBZERO_CONFIG=/etc/blobzero/blobzero.toml \
    BLOBZERO__METRICS__HOST=0.0.0.0
RUN groupadd --gid 10001 blobzero \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin blobzero \
 && mkdir -p /etc/blobzero /var/lib/blobzero/games /var/lib/blobzero/models /var/lib/blobzero/checkpoints \
 && chown -R 10001:10001 /var/lib/blobzero
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
COPY config/blobzero.toml /etc/blobzero/blobzero.toml
WORKDIR /app
USER 10001:10001
# metrics.trainer_port
EXPOSE 9101
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "/app/docker/healthcheck.py", "http://127.0.0.1:9101/metrics"]
ENTRYPOINT ["blobzero"]
CMD ["train", "--config", "/etc/blobzero/blobzero.toml"]
