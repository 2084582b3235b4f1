#!/usr/bin/env bash
# The test command: install what the tests need, then run them (extra args go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if command -v go >/dev/null; then  # Kubernetes tests: etcd, kube-apiserver, kwok, helm
  scripts/kube-tools.sh
else
  echo "[test] go not found: Kubernetes tests will be skipped (they say how to build)"
fi
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
