#!/usr/bin/env bash
# The test command: install what the tests need, then run them (extra args go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/keycloak.sh  # the login tests' identity provider (tests/keycloak.py)
if command -v go >/dev/null; then  # Kubernetes tests: the API-level tools and a real node's
  scripts/kube-tools.sh
  # the node cluster (tests/kube_node.py): Debian's containerd and runc, iptables and ipset
  # for kube-proxy and kube-router; its images are built with debootstrap and buildah
  missing=""
  for tool in containerd:containerd buildah:buildah debootstrap:debootstrap iptables:iptables \
              ipset:ipset conntrack:conntrack; do
    command -v "${tool%%:*}" >/dev/null || [ -x "/usr/sbin/${tool%%:*}" ] || missing="$missing ${tool#*:}"
  done
  if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[test] installing the node cluster's tools:$missing (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
  if [ "$(id -u)" = 0 ] && command -v buildah >/dev/null && command -v debootstrap >/dev/null; then
    scripts/images.sh
  else
    echo "[test] not root or no buildah/debootstrap: the node cluster tests will be skipped"
  fi
else
  echo "[test] go not found: Kubernetes tests will be skipped (they say how to build)"
fi
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
