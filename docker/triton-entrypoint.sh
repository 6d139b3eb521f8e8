#!/bin/sh
# Entry point of the BlobZero Triton image: serve the shared model repository in poll mode.
#
# The trainer is the only writer of the repository and creates it on its first start; on a fresh
# volume this server may start first, so wait for the directory instead of failing (tritonserver
# exits when --model-repository does not exist). Once it exists, poll mode loads blobnet as soon as
# the trainer publishes version 1 and every later version by itself (docs/serving.md).
#
# Environment:
#   BLOBZERO__STORAGE__URL               when set (s3://bucket/prefix or a path), the repository is
#                                        <url>/model_repository, as for every BlobZero service
#   BLOBZERO__STORAGE__MODEL_REPOSITORY  else the repository path (same variable and value as the trainer's)
#   BLOBZERO_REPOSITORY_WAIT_S           give up after this many seconds (default 900)
#   TRITON_POLL_SECS                     repository rescan period (default 5)
# Extra arguments are passed to tritonserver (e.g. --allow-gpu-metrics=false, --log-verbose=1).
set -eu

if [ -n "${BLOBZERO__STORAGE__URL:-}" ]; then
  url="${BLOBZERO__STORAGE__URL#file://}"
  repo="${url%/}/model_repository"
else
  repo="${BLOBZERO__STORAGE__MODEL_REPOSITORY:-/var/lib/blobzero/models/repository}"
fi
wait_s="${BLOBZERO_REPOSITORY_WAIT_S:-900}"
poll_s="${TRITON_POLL_SECS:-5}"

# An s3:// repository (storage.url = s3://bucket/prefix; docs/deploy.md, "A cluster without a
# shared filesystem"): Triton reads the bucket itself, with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
# (and AWS_DEFAULT_REGION); a custom endpoint (AWS_ENDPOINT_URL, e.g. MinIO) goes into Triton's
# spelling s3://host:port/bucket/prefix (s3://https://host:port/... for TLS). Nothing to wait for:
# poll mode loads blobnet once the trainer has written version 1.
case "$repo" in
  s3://*)
    if [ -n "${AWS_ENDPOINT_URL:-}" ]; then
      hostport="${AWS_ENDPOINT_URL#*://}"; hostport="${hostport%%/*}"
      case "$AWS_ENDPOINT_URL" in
        https://*) case "$hostport" in *:*) ;; *) hostport="$hostport:443" ;; esac
                   repo="s3://https://$hostport/${repo#s3://}" ;;
        *)         case "$hostport" in *:*) ;; *) hostport="$hostport:80" ;; esac
                   repo="s3://$hostport/${repo#s3://}" ;;
      esac
    fi
    export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-${AWS_REGION:-us-east-1}}"
    remote=1 ;;
esac

waited=0
while [ -z "${remote:-}" ] && [ ! -d "$repo" ]; do
  if [ "$waited" -ge "$wait_s" ]; then
    echo "blobzero-triton: $repo still does not exist after ${wait_s}s; is the trainer running with the same models volume?" >&2
    exit 1
  fi
  if [ "$waited" -eq 0 ]; then
    echo "blobzero-triton: waiting for the trainer to create $repo" >&2
  fi
  sleep 2
  waited=$((waited + 2))
done

# --exit-on-error=false: a model that fails to load (e.g. blobnet before its first version) must
#   not stop the server; it stays not-ready (strict readiness) until the model loads.
# --disable-auto-complete-config: our config.pbtxt is complete; never let Triton guess.
exec tritonserver \
  --model-repository="$repo" \
  --model-control-mode=poll \
  --repository-poll-secs="$poll_s" \
  --disable-auto-complete-config \
  --strict-readiness=true \
  --exit-on-error=false \
  --http-port=8000 --grpc-port=8001 --metrics-port=8002 \
  "$@"
