#!/usr/bin/env bash
# Build the pinned Kubernetes test tools into .cache/kube/bin with Go, from the
# Go module proxy only (no release downloads). Safe to re-run: a tool whose
# binary exists and whose stamp file .cache/kube/<tool>.pin matches is skipped.
#
#   scripts/kube-tools.sh            # all tools
#   scripts/kube-tools.sh etcd kwok  # only these
#
# Tools: etcd, kube-apiserver (wrapper modules under tools/kube/, see
# tools/kube/README.md), kwok, helm, netpolicy (np-guard netpol-analyzer).
# Builds run one after another; the first kube-apiserver build takes the longest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pins. ETCD_PIN and K8S_PIN must match tools/kube/{etcd,kube-apiserver}/go.mod.
K8S_PIN="v1.34.12"      # k8s.io/kubernetes; staging modules replaced by v0.34.12
ETCD_PIN="v3.6.16"      # go.etcd.io/etcd/server/v3 (Kubernetes 1.34 uses etcd 3.6)
KWOK_PIN="v0.8.0"       # sigs.k8s.io/kwok
HELM_PIN="v3.22.0"      # helm.sh/helm/v3
NETPOL_PIN="v1.4.2"     # github.com/np-guard/netpol-analyzer
K8S_COMMIT="26c89157669bdc7e3657302bc1abde758507095b"  # tag v1.34.12, for --version only

ALL_TOOLS=(etcd kube-apiserver kwok helm netpolicy)
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

# The stamp of a wrapper-module tool also covers its go.mod, go.sum and main.go,
# so editing the wrapper triggers a rebuild.
wrapper_stamp() {  # <pin> <dir>
  printf '%s %s\n' "$1" "$(cat "$2/go.mod" "$2/go.sum" "$2/main.go" | sha256sum | cut -c1-16)"
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
  stamp=$(wrapper_stamp "$pin" "$dir")
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

# install_tool <tool> <pin> <package>: go install <package>@<pin>
install_tool() {
  local tool=$1 pin=$2 pkg=$3 start
  if up_to_date "$tool" "$pin"; then
    say "$tool $pin: up to date ($BIN/$tool)"
    return
  fi
  say "$tool $pin: go install $pkg@$pin"
  start=$SECONDS
  rm -f "$KUBE_DIR/$tool.pin"
  GOBIN="$PWD/$BIN" go install -trimpath -ldflags "-s -w" "$pkg@$pin" \
    || die "$tool $pin: go install failed (see the output above)"
  [ -x "$BIN/$tool" ] || die "$tool $pin: go install produced no $BIN/$tool"
  echo "$pin" > "$KUBE_DIR/$tool.pin"
  say "$tool $pin: built in $((SECONDS - start))s ($(du -h "$BIN/$tool" | cut -f1))"
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

for t in "${tools[@]}"; do
  case "$t" in
    etcd)           build_wrapper etcd "$ETCD_PIN" go.etcd.io/etcd/server/v3 ;;
    kube-apiserver) build_wrapper kube-apiserver "$K8S_PIN" k8s.io/kubernetes "$(k8s_version_ldflags)" ;;
    kwok)           install_tool kwok "$KWOK_PIN" sigs.k8s.io/kwok/cmd/kwok ;;
    helm)           install_tool helm "$HELM_PIN" helm.sh/helm/v3/cmd/helm ;;
    netpolicy)      install_tool netpolicy "$NETPOL_PIN" github.com/np-guard/netpol-analyzer/cmd/netpolicy ;;
  esac
done
say "ready: $BIN"
