# GWM Avatars: `make run` sets up and serves; `make test` sets up and runs every check.
# Both share one setup (scripts/setup.sh): it installs only what the venv lacks, so
# either one after the other starts in seconds.
VENV ?= .venv
CONFIG ?= default

# Container images (deploy/build.sh: Docker when an engine answers, else buildah), e.g.
#   make image-test IMAGE_ARGS="--debian-base --ca-file $$PIP_CERT --wheels DIR"
IMAGE_ARGS ?=

.PHONY: setup run test smoke lint bench clean image image-test image-clean

setup:
	@VENV=$(VENV) bash scripts/setup.sh

run: setup
	$(VENV)/bin/avatar serve --config $(CONFIG)

smoke: setup
	$(VENV)/bin/avatar smoke --config $(CONFIG)

test:
	@VENV=$(VENV) GWM_COQUI=1 bash scripts/setup.sh
	@VENV=$(VENV) bash scripts/test.sh

lint: setup
	$(VENV)/bin/ruff check models avatar streaming gwm_avatars tests benchmarks scripts integrations && $(VENV)/bin/mypy

bench: setup
	$(VENV)/bin/python benchmarks/engines.py

image:
	bash deploy/build.sh $(IMAGE_ARGS)

# Builds, then runs the image for real: smoke, render, serve (deploy/image_check.sh).
image-test: image
	bash deploy/image_check.sh

# buildah's vfs storage holds a full copy of every layer: drop the built images.
image-clean:
	-buildah --storage-driver $${BUILDAH_STORAGE_DRIVER:-vfs} rm --all
	-buildah --storage-driver $${BUILDAH_STORAGE_DRIVER:-vfs} rmi --all --force

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
