# syntax=docker/dockerfile:1
# Triton Inference Server for BlobNet: the official NVIDIA image, release 24.10 = Triton 2.51, the
# same server version as the local one in the nvidia-pytriton==0.7.0 wheel (docs/serving.md).
#
#   docker build -f docker/triton.Dockerfile -t blobzero/triton:0.1.0 .                   (GPU, default)
#   docker build -f docker/triton.Dockerfile --target cpu -t blobzero/triton:0.1.0-cpu .  (no GPU)
#
# Targets (the last stage is the default):
#   gpu  production flavour: the native onnxruntime backend on the GPU, nothing added.
#   cpu  adds the python-based backend blobnet_ort (services/blobnet_ort/model.py) and its packages,
#        for the local flavour (`triton.flavour = "local"`: KIND_CPU instances). Used by
#        docker-compose.cpu.yml and the k8s cpu-dev overlay on machines without a GPU.
# The trainer writes blobnet/config.pbtxt for the flavour in use; clients cannot tell them apart.

FROM nvcr.io/nvidia/tritonserver:24.10-py3 AS base
ENV HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    BLOBZERO__STORAGE__MODEL_REPOSITORY=/var/lib/blobzero/models/repository
RUN groupadd --gid 10001 blobzero \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin blobzero \
 && mkdir -p /var/lib/blobzero/models \
 && chown -R 10001:10001 /var/lib/blobzero
COPY --chmod=0755 docker/triton-entrypoint.sh /usr/local/bin/blobzero-triton
# HTTP (health, KServe v2), gRPC (clients), metrics (Prometheus)
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=6 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/models/blobnet/ready', timeout=4)"]
ENTRYPOINT ["/usr/local/bin/blobzero-triton"]

FROM base AS cpu
COPY docker/triton-cpu-requirements.txt /tmp/triton-cpu-requirements.txt
RUN pip install --no-cache-dir --requirement /tmp/triton-cpu-requirements.txt \
 && rm /tmp/triton-cpu-requirements.txt
# A python-based backend: backends/<name>/model.py, run by the image's python backend stub.
COPY services/blobnet_ort/model.py /opt/tritonserver/backends/blobnet_ort/model.py
USER 10001:10001
CMD ["--allow-gpu-metrics=false"]

FROM base AS gpu
USER 10001:10001
CMD ["--allow-gpu-metrics=true"]
