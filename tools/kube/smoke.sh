#!/usr/bin/env bash
# Start a throw-away control plane on 127.0.0.1 from the binaries that
# scripts/kube-tools.sh built (etcd, kube-apiserver, kwok), run
# tools/kube/smoke.py against it, and stop everything again.
#
#   tools/kube/smoke.sh            # run the checks, then tear down
#   KEEP=1 tools/kube/smoke.sh     # leave it running; prints the kubeconfig and pids
#
# The command lines below are the ones documented in tools/kube/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN="$ROOT/.cache/kube/bin"
STAGES="$ROOT/.cache/kube/kwok-stages.yaml"
PY="$ROOT/.venv/bin/python"

say() { printf '[kube-smoke] %s\n' "$*"; }
die() { printf 'kube-smoke: error: %s\n' "$*" >&2; exit 1; }

for b in etcd kube-apiserver kwok; do
  [ -x "$BIN/$b" ] || die "$BIN/$b missing: run scripts/kube-tools.sh first"
done
[ -f "$STAGES" ] || die "$STAGES missing: run scripts/kube-tools.sh kwok first"
[ -x "$PY" ] || die ".venv missing: run scripts/setup.sh first"
command -v openssl >/dev/null || die "openssl not found"

D=$(mktemp -d /tmp/kube-smoke.XXXXXX)
PIDS=()
cleanup() {
  local rc=$?
  if [ "${KEEP:-0}" = 1 ] && [ $rc -eq 0 ]; then
    say "left running (pids ${PIDS[*]}); KUBECONFIG=$D/kubeconfig; stop with: kill ${PIDS[*]}"
    return
  fi
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill "${PIDS[i]}" 2>/dev/null || true
    wait "${PIDS[i]}" 2>/dev/null || true
  done
  if [ $rc -ne 0 ]; then
    for f in etcd kube-apiserver kwok; do
      [ -f "$D/$f.log" ] && { echo "--- last lines of $f.log"; tail -n 15 "$D/$f.log"; }
    done
    say "FAILED (logs kept in $D)"
  else
    rm -rf "$D"
  fi
}
trap cleanup EXIT

# Four free loopback ports: etcd client, etcd peer, apiserver, kwok server.
read -r ETCD_PORT PEER_PORT API_PORT KWOK_PORT < <("$PY" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)

wait_ok() {  # <what> <timeout s> <command...>
  local what=$1 timeout=$2 start=$SECONDS
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS - start < timeout)) || die "$what not ready within ${timeout}s"
    sleep 0.2
  done
  say "$what ready after $((SECONDS - start))s"
}

# --- credentials: service-account signing key, admin + unbound static tokens.
openssl genrsa -out "$D/sa.key" 2048 2>/dev/null
openssl rsa -in "$D/sa.key" -pubout -out "$D/sa.pub" 2>/dev/null
ADMIN_TOKEN=$(openssl rand -hex 24)
NOBODY_TOKEN=$(openssl rand -hex 24)
printf '%s,admin,admin,system:masters\n%s,nobody,nobody\n' "$ADMIN_TOKEN" "$NOBODY_TOKEN" > "$D/tokens.csv"
chmod 600 "$D/sa.key" "$D/tokens.csv"

# --- etcd (plain HTTP on loopback only).
"$BIN/etcd" \
  --name smoke \
  --data-dir "$D/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT" \
  --initial-cluster "smoke=http://127.0.0.1:$PEER_PORT" \
  --log-level warn \
  > "$D/etcd.log" 2>&1 &
PIDS+=($!)
wait_ok etcd 30 curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

# --- kube-apiserver (HTTPS on 127.0.0.1 with a self-signed cert made in --cert-dir).
"$BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 \
  --advertise-address 127.0.0.1 \
  --secure-port "$API_PORT" \
  --cert-dir "$D/certs" \
  --token-auth-file "$D/tokens.csv" \
  --authorization-mode RBAC \
  --enable-admission-plugins NamespaceLifecycle,ServiceAccount,PodSecurity \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$D/sa.pub" \
  --service-account-signing-key-file "$D/sa.key" \
  --service-cluster-ip-range 10.96.0.0/16 \
  --allow-privileged=true \
  --endpoint-reconciler-type none \
  --profiling=false \
  > "$D/kube-apiserver.log" 2>&1 &
PIDS+=($!)
wait_ok kube-apiserver 120 curl -fsS --cacert "$D/certs/apiserver.crt" "https://127.0.0.1:$API_PORT/readyz"

cat > "$D/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: smoke
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $D/certs/apiserver.crt
users:
- name: admin
  user:
    token: $ADMIN_TOKEN
contexts:
- name: smoke
  context: {cluster: smoke, user: admin}
current-context: smoke
EOF
chmod 600 "$D/kubeconfig"

# --- kwok: manages only nodes annotated kwok.x-k8s.io/node=fake, with the
# default stages written by scripts/kube-tools.sh.
"$BIN/kwok" \
  --kubeconfig "$D/kubeconfig" \
  --config "$STAGES" \
  --manage-all-nodes=false \
  --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
  --cidr 10.0.0.1/24 \
  --node-ip 10.0.0.1 \
  --node-lease-duration-seconds 40 \
  --server-address "127.0.0.1:$KWOK_PORT" \
  > "$D/kwok.log" 2>&1 &
PIDS+=($!)
wait_ok kwok 30 curl -fsS "http://127.0.0.1:$KWOK_PORT/healthz"

"$PY" tools/kube/smoke.py "$D/kubeconfig" "$NOBODY_TOKEN"
