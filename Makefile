.PHONY: run test setup lint images fuzz

run: ## Start the local safe zone with demo data (installs what it needs)
	scripts/setup.sh
	.venv/bin/safezone local up

test: ## Run the test suite (installs what it needs)
	scripts/test.sh

setup:
	scripts/setup.sh

lint:
	.venv/bin/ruff check .

fuzz: ## Fuzz the control-plane API with schemathesis as every identity, long run (EXAMPLES=100)
	scripts/setup.sh
	.venv/bin/python -m benchmarks.fuzz_api --examples $(or $(EXAMPLES),100)

images: ## Build the container images locally with buildah, no registry (root; see images/README.md)
	scripts/images.sh
