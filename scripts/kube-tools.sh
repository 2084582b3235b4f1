#!/usr/bin/env bash
# Build the pinned Kubernetes test tools into .cache/kube/bin with Go, from the
# Go module proxy only (no release downloads). Safe to re-run: a tool whose
# binary exists and whose stamp file .cache/kube/<tool>.pin matches is skipped.
#
#   scripts/kube-tools.sh            # all tools
#   scripts/kube-tools.sh etcd kwok  # only these
#
# Tools: etcd, kube-apiserver, netpolicy (np-guard netpol-analyzer) and kube-node
# (kubelet, kube-controller-manager, kube-scheduler, kube-proxy in one multi-call
# binary), built from small wrapper modules under tools/kube/ (see
# tools/kube/README.md); kwok, helm, coredns, kube-router and the CNI plugins (into
# .cache/kube/cni/bin), built with `go install <pkg>@<pin>`.
# Builds run one after another; the first kube-apiserver build takes the longest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pins. ETCD_PIN, K8S_PIN and NETPOL_PIN must match the go.mod of the wrapper
# modules tools/kube/{etcd,kube-apiserver,netpolicy}; the script checks that.
K8S_PIN="v1.34.12"      # k8s.io/kubernetes; staging modules replaced by v0.34.12
ETCD_PIN="v3.6.16"      # go.etcd.io/etcd/server/v3 (Kubernetes 1.34 uses etcd 3.6)
KWOK_PIN="v0.8.0"       # sigs.k8s.io/kwok
HELM_PIN="v3.22.0"      # helm.sh/helm/v3
NETPOL_PIN="v1.4.2"     # github.com/np-guard/netpol-analyzer
CNI_PIN="v1.9.0"        # github.com/containernetworking/plugins: bridge, host-local, loopback, portmap
COREDNS_PIN="v1.14.7"   # github.com/coredns/coredns: cluster DNS of the node cluster
# kube-router's NetworkPolicy controller enforces the policies (iptables + ipset). The Go
# module proxy serves only v2.1.0, which has reported security flaws: acceptable for a test
# enforcer on a throw-away node, never for production (docs/kubernetes.md).
KUBE_ROUTER_PIN="v2.1.0"  # github.com/cloudnativelabs/kube-router/v2
K8S_COMMIT="26c89157669bdc7e3657302bc1abde758507095b"  # tag v1.34.12, for --version only

ALL_TOOLS=(etcd kube-apiserver kwok helm netpolicy kube-node cni coredns kube-router)
KUBE_DIR=".cache/kube"
BIN="$KUBE_DIR/bin"

say() { printf '[kube-tools] %s\n' "$*"; }
die() { printf 'kube-tools: error: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "go not found on PATH: install Go 1.26+ (these tools are built from source)"
gover=$(go env GOVERSION 2>/dev/null) || die "'go env GOVERSION' failed"
case "$gover" in
  go1.2[6-9]*|go1.[3-9][0-9]*) ;;
  *) die "Go 1.26+ is required (found ${gover:-unknown}): etcd $ETCD_PIN, kwok $KWOK_PIN and helm $HELM_PIN need it" ;;
esac

tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=("${ALL_TOOLS[@]}")
for t in "${tools[@]}"; do
  case " ${ALL_TOOLS[*]} " in *" $t "*) ;; *) die "unknown tool '$t' (known: ${ALL_TOOLS[*]})" ;; esac
done

mkdir -p "$BIN"
export GOFLAGS="-buildvcs=false"   # the wrapper modules live inside this git repo
export CGO_ENABLED=0               # static binaries, as upstream releases are

# The stamp of a wrapper-module tool also covers its go.mod, go.sum, main.go and
# extra link flags, so editing the wrapper triggers a rebuild.
wrapper_stamp() {  # <pin> <dir> <ldflags>
  printf '%s %s\n' "$1" "$({ cat "$2/go.mod" "$2/go.sum" "$2/main.go"; printf '%s' "$3"; } | sha256sum | cut -c1-16)"
}

up_to_date() {  # <tool> <stamp>
  [ -x "$BIN/$1" ] && [ "$(cat "$KUBE_DIR/$1.pin" 2>/dev/null)" = "$2" ]
}

check_wrapper_pin() {  # <dir> <module> <pin>
  local got
  got=$(awk -v m="$2" '$1 == "require" { $1 = ""; $0 = $0 } $1 == m && $2 ~ /^v/ { print $2; exit }' "$1/go.mod")
  [ "$got" = "$3" ] || die "$1/go.mod requires $2 ${got:-(none)}, but the script pins $3: keep them in step"
}

# build_wrapper <tool> <pin> <module> [ldflags]: go build ./tools/kube/<tool>
build_wrapper() {
  local tool=$1 pin=$2 module=$3 ldflags=${4:-} dir="tools/kube/$1" stamp start
  [ -f "$dir/go.mod" ] || die "$dir/go.mod is missing"
  check_wrapper_pin "$dir" "$module" "$pin"
  stamp=$(wrapper_stamp "$pin" "$dir" "$ldflags")
  if up_to_date "$tool" "$stamp"; then
    say "$tool $pin: up to date ($BIN/$tool)"
    return
  fi
  say "$tool $pin: building from $dir (go build; first time: several minutes)"
  start=$SECONDS
  rm -f "$KUBE_DIR/$tool.pin"
  go -C "$dir" build -trimpath -ldflags "-s -w $ldflags" -o "$PWD/$BIN/$tool.tmp" . \
    || die "$tool $pin: go build failed (see the output above)"
  mv -f "$BIN/$tool.tmp" "$BIN/$tool"
  echo "$stamp" > "$KUBE_DIR/$tool.pin"
  say "$tool $pin: built in $((SECONDS - start))s ($(du -h "$BIN/$tool" | cut -f1))"
}

# install_tool <tool> <pin> <package> [ldflags]: go install <package>@<pin>
install_tool() {
  local tool=$1 pin=$2 pkg=$3 ldflags=${4:-} stamp start
  stamp=$pin
  [ -z "$ldflags" ] || stamp="$pin $(printf '%s' "$ldflags" | sha256sum | cut -c1-16)"
  if up_to_date "$tool" "$stamp"; then
    say "$tool $pin: up to date ($BIN/$tool)"
    return
  fi
  say "$tool $pin: go install $pkg@$pin"
  start=$SECONDS
  rm -f "$KUBE_DIR/$tool.pin"
  GOBIN="$PWD/$BIN" go install -trimpath -ldflags "-s -w $ldflags" "$pkg@$pin" \
    || die "$tool $pin: go install failed (see the output above)"
  [ -x "$BIN/$tool" ] || die "$tool $pin: go install produced no $BIN/$tool"
  echo "$stamp" > "$KUBE_DIR/$tool.pin"
  say "$tool $pin: built in $((SECONDS - start))s ($(du -h "$BIN/$tool" | cut -f1))"
}

# install_cni: the CNI plugins the node cluster's containerd calls, into .cache/kube/cni/bin.
install_cni() {
  local dir="$KUBE_DIR/cni/bin" start p
  if [ "$(cat "$KUBE_DIR/cni.pin" 2>/dev/null)" = "$CNI_PIN" ] && [ -x "$dir/bridge" ]; then
    say "cni plugins $CNI_PIN: up to date ($dir)"
    return
  fi
  say "cni plugins $CNI_PIN: go install bridge host-local loopback portmap"
  start=$SECONDS
  rm -f "$KUBE_DIR/cni.pin"
  mkdir -p "$dir"
  for p in main/bridge ipam/host-local main/loopback meta/portmap; do
    GOBIN="$PWD/$dir" go install -trimpath -ldflags "-s -w" \
      "github.com/containernetworking/plugins/plugins/$p@$CNI_PIN" \
      || die "cni plugin $p $CNI_PIN: go install failed (see the output above)"
  done
  echo "$CNI_PIN" > "$KUBE_DIR/cni.pin"
  say "cni plugins $CNI_PIN: built in $((SECONDS - start))s ($(du -sh "$dir" | cut -f1))"
}

# link_components <binary> <name>...: symlinks named after each component of a
# multi-call binary (it dispatches on the name it was called by).
link_components() {
  local binary=$1 name; shift
  for name in "$@"; do ln -sfn "$binary" "$BIN/$name"; done
}

# module_dir <module@version>: its directory in the module cache (downloads it).
module_dir() {
  go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}

# kwok runs no Stage unless given some; write upstream's default ones (what
# kwokctl uses: node-initialize, node heartbeat with lease, pod ready/complete/
# delete) from the kwok module at KWOK_PIN into .cache/kube/kwok-stages.yaml,
# for `kwok --config .cache/kube/kwok-stages.yaml`.
write_kwok_stages() {
  local out="$KUBE_DIR/kwok-stages.yaml" header dir f
  header="# kwok default stages from sigs.k8s.io/kwok@$KWOK_PIN (generated by scripts/kube-tools.sh)"
  if [ "$(head -n1 "$out" 2>/dev/null)" = "$header" ]; then
    say "kwok stages $KWOK_PIN: up to date ($out)"
    return
  fi
  dir=$(module_dir "sigs.k8s.io/kwok@$KWOK_PIN")
  [ -n "$dir" ] && [ -d "$dir/kustomize/stage" ] || die "kwok stages: sigs.k8s.io/kwok@$KWOK_PIN not found in the module cache"
  {
    echo "$header"
    for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
             pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
      [ -f "$dir/kustomize/stage/$f" ] || die "kwok stages: $f missing from sigs.k8s.io/kwok@$KWOK_PIN"
      echo "---"
      cat "$dir/kustomize/stage/$f"
    done
  } > "$out.tmp"
  mv -f "$out.tmp" "$out"
  say "kwok stages $KWOK_PIN: wrote $out"
}

k8s_version_ldflags() {
  local minor=${K8S_PIN#v1.}; minor=${minor%%.*}
  local f="" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    f+=" -X $p.gitVersion=$K8S_PIN -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    f+=" -X $p.gitCommit=$K8S_COMMIT -X $p.gitTreeState=clean"
  done
  printf '%s' "$f"
}

# What helm's own Makefile stamps in: its version, and the Kubernetes version
# that `helm template`/`helm lint` assume by default (client-go v0.N -> 1.N);
# without these, helm reports "v3.22" and assumes Kubernetes 1.20.
helm_ldflags() {
  local dir k8s minor
  dir=$(module_dir "helm.sh/helm/v3@$HELM_PIN")
  [ -n "$dir" ] && [ -f "$dir/go.mod" ] || die "helm $HELM_PIN: module not found in the module cache"
  k8s=$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$dir/go.mod")
  minor=${k8s#v0.}; minor=${minor%%.*}
  [[ "$minor" =~ ^[0-9]+$ ]] || die "helm $HELM_PIN: cannot read its k8s.io/client-go version"
  printf ' -X helm.sh/helm/v3/internal/version.version=%s' "$HELM_PIN"
  printf ' -X helm.sh/helm/v3/internal/version.gitTreeState=clean'
  printf ' -X helm.sh/helm/v3/pkg/%s.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/%s.k8sVersionMinor=%s' \
    chartutil chartutil "$minor" lint/rules lint/rules "$minor"
}

for t in "${tools[@]}"; do
  case "$t" in
    etcd)           build_wrapper etcd "$ETCD_PIN" go.etcd.io/etcd/server/v3 ;;
    kube-apiserver) build_wrapper kube-apiserver "$K8S_PIN" k8s.io/kubernetes "$(k8s_version_ldflags)" ;;
    kwok)           install_tool kwok "$KWOK_PIN" sigs.k8s.io/kwok/cmd/kwok
                    write_kwok_stages ;;
    helm)           install_tool helm "$HELM_PIN" helm.sh/helm/v3/cmd/helm "$(helm_ldflags)" ;;
    netpolicy)      build_wrapper netpolicy "$NETPOL_PIN" github.com/np-guard/netpol-analyzer ;;
    kube-node)      build_wrapper kube-node "$K8S_PIN" k8s.io/kubernetes "$(k8s_version_ldflags)"
                    link_components kube-node kubelet kube-controller-manager kube-scheduler kube-proxy ;;
    cni)            install_cni ;;
    coredns)        install_tool coredns "$COREDNS_PIN" github.com/coredns/coredns ;;
    kube-router)    install_tool kube-router "$KUBE_ROUTER_PIN" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router ;;
  esac
done
say "ready: $BIN (${SECONDS}s in all)"
