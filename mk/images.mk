# Images in your registry (issue 19): one variable builds, tags and pushes every image and points
# the manifests at them. Included by the top-level Makefile.
#
#   make images REGISTRY=registry.example.com/you [BLOBZERO_TAG=0.1.0] [PUSH=0]
#
# Builds blobzero/{triton (gpu and -cpu), selfplay, trainer (CUDA and -cpu)} as
# $(REGISTRY)/blobzero/<name>:$(BLOBZERO_TAG)[-cpu], pushes them (PUSH=0: build only), then rewrites the
# overlays' `images:` (k8s/set_images.py). Compose reads the same variable:
# `REGISTRY=registry.example.com/you docker compose build && docker compose push`.

BLOBZERO_TAG ?= 0.1.0
PUSH ?= 1
DOCKER ?= docker
IMAGE = $(REGISTRY)/blobzero

.PHONY: images

images: $(STAMP)
	@test -n "$(REGISTRY)" || { echo "usage: make images REGISTRY=registry.example.com/you [BLOBZERO_TAG=$(BLOBZERO_TAG)] [PUSH=0]" >&2; exit 2; }
	$(DOCKER) build -f docker/triton.Dockerfile --target gpu -t $(IMAGE)/triton:$(BLOBZERO_TAG) .
	$(DOCKER) build -f docker/triton.Dockerfile --target cpu -t $(IMAGE)/triton:$(BLOBZERO_TAG)-cpu .
	$(DOCKER) build -f docker/selfplay.Dockerfile -t $(IMAGE)/selfplay:$(BLOBZERO_TAG) .
	$(DOCKER) build -f docker/trainer.Dockerfile -t $(IMAGE)/trainer:$(BLOBZERO_TAG) .
	$(DOCKER) build -f docker/trainer.Dockerfile --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t $(IMAGE)/trainer:$(BLOBZERO_TAG)-cpu .
	@if [ "$(PUSH)" = 1 ]; then \
	  for image in triton:$(BLOBZERO_TAG) triton:$(BLOBZERO_TAG)-cpu selfplay:$(BLOBZERO_TAG) trainer:$(BLOBZERO_TAG) trainer:$(BLOBZERO_TAG)-cpu; do \
	    echo "$(DOCKER) push $(IMAGE)/$$image"; $(DOCKER) push $(IMAGE)/$$image || exit 1; \
	  done; \
	fi
	$(PY) k8s/set_images.py $(REGISTRY) $(BLOBZERO_TAG)
