.PHONY: run test setup lint images

run: ## Start the local safe zone with demo data (installs what it needs)
	scripts/setup.sh
	.venv/bin/safezone local up

test: ## Run the test suite (installs what it needs)
	scripts/test.sh

setup:
	scripts/setup.sh

lint:
	.venv/bin/ruff check .

images: ## Build the container images locally with buildah, no registry (root; see images/README.md)
	scripts/images.sh
