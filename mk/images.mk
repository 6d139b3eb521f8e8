# Images in your registry (issues 19, 28): one variable builds, tags and pushes every image and
# points a deployment at them without touching a tracked file. Included by the top-level Makefile.
#
#   make images REGISTRY=registry.example.com/you [BLOBZERO_TAG=0.1.0] [PUSH=0] [OVERLAY=objectstore]
#               [PULL_SECRET=regcred] [COMPONENTS="agent-public agent-ingress"]
#
# Builds blobzero/{triton (gpu and -cpu), selfplay, trainer (CUDA and -cpu)} as
# $(REGISTRY)/blobzero/<name>:$(BLOBZERO_TAG)[-cpu], pushes them (PUSH=0: build only), then writes
# the untracked overlay k8s/deploy (k8s/set_images.py): k8s/overlays/$(OVERLAY) with every image
# pinned by the digest the registry returned (by tag with PUSH=0) and, with PULL_SECRET, the
# imagePullSecrets of a private registry, with COMPONENTS the named k8s/components. Apply it with `kubectl apply -k k8s/deploy`.
# Compose reads the same variable: `REGISTRY=registry.example.com/you docker compose pull`.

BLOBZERO_TAG ?= 0.1.0
PUSH ?= 1
OVERLAY ?= objectstore
PULL_SECRET ?=
COMPONENTS ?=
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
	@set -e; digests=""; \
	if [ "$(PUSH)" = 1 ]; then \
	  for name in triton selfplay trainer; do \
	    ref=$$($(DOCKER) inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' $(IMAGE)/$$name:$(BLOBZERO_TAG) | grep -m1 "^$(IMAGE)/$$name@"); \
	    digests="$$digests --digest $$name=$${ref#*@}"; \
	  done; \
	fi; \
	$(PY) k8s/set_images.py $(REGISTRY) $(BLOBZERO_TAG) --overlay $(OVERLAY) $(if $(PULL_SECRET),--pull-secret $(PULL_SECRET)) $(foreach c,$(COMPONENTS),--component $(c)) $$digests
