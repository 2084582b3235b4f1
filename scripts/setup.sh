#!/usr/bin/env bash
# Install what the local zone and the tests need: a Python venv, configurable-http-proxy
# (npm) and a pinned MinIO server built from the Go module proxy. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

MINIO_MODULE="github.com/minio/minio"
MINIO_PIN="v0.0.0-20260212201848-7aac2a2c5b7c"   # master of 2026-02-12
CACHE=".cache"
mkdir -p "$CACHE/bin"

say() { printf '[setup] %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

command -v python3 >/dev/null || die "python3 (3.11+) is required"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python 3.11+ is required"

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
stamp="$CACHE/pip.stamp"
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing Python packages into .venv"
  .venv/bin/pip install -q --upgrade pip
  # constraints.txt pins the versions CI last passed with (regenerate: pip freeze)
  .venv/bin/pip install -q -c constraints.txt -e '.[test]'
  echo "$want" > "$stamp"
fi

if [ ! -x node_modules/.bin/configurable-http-proxy ]; then
  command -v npm >/dev/null || die "npm (Node.js 20+) is required for configurable-http-proxy"
  say "installing configurable-http-proxy (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

if [ -n "${SAFEZONE_MINIO_BIN:-}" ]; then
  [ -x "$SAFEZONE_MINIO_BIN" ] || die "SAFEZONE_MINIO_BIN=$SAFEZONE_MINIO_BIN is not an executable"
elif [ ! -x "$CACHE/bin/minio" ] || [ "$(cat "$CACHE/minio.pin" 2>/dev/null)" != "$MINIO_PIN" ]; then
  command -v go >/dev/null || die "go not found: install Go 1.24+ to build MinIO, or set SAFEZONE_MINIO_BIN to a minio server binary"
  say "building MinIO $MINIO_PIN with go install (first time: a few minutes)"
  GOBIN="$PWD/$CACHE/bin" GOFLAGS=-buildvcs=false go install "$MINIO_MODULE@$MINIO_PIN"
  echo "$MINIO_PIN" > "$CACHE/minio.pin"
fi
# the notebook sandbox of the local zone: runc (namespaces, cgroups), nftables, iproute2
missing=""
for tool in runc:runc nft:nftables ip:iproute2 useradd:passwd; do
  command -v "${tool%%:*}" >/dev/null || [ -x "/usr/sbin/${tool%%:*}" ] || missing="$missing ${tool#*:}"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing the sandbox's tools:$missing (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    say "missing for the notebook sandbox:$missing (sudo apt-get install$missing); the zone will refuse to start without them"
  fi
fi
if [ ! -x /usr/bin/chromium ]; then  # page tests drive Debian's Chromium via Playwright
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian's chromium (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
  else
    say "chromium not installed: browser tests will be skipped (sudo apt-get install chromium)"
  fi
fi
say "ready"
