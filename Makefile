# GWM Avatars: `make run` sets up and serves; `make test` sets up and runs every check.
# Both share one setup (scripts/setup.sh): it installs only what the venv lacks, so
# either one after the other starts in seconds.
VENV ?= .venv
CONFIG ?= default

.PHONY: setup run test smoke lint bench clean

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
	$(VENV)/bin/ruff check models avatar streaming tests benchmarks scripts && $(VENV)/bin/mypy

bench: setup
	$(VENV)/bin/python benchmarks/engines.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
