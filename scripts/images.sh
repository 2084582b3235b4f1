#!/usr/bin/env bash
# Build Safezone's container images locally with buildah, with no registry. Each image is
# written as an OCI archive .cache/images/<name>.tar and listed in .cache/images/images.txt
# as "<name> <full ref> <tar path>", for `ctr -n k8s.io images import <tar>` (the archive
# names the full ref). Safe to re-run: an image whose stamp .cache/images/<name>.stamp
# matches its inputs, and which is still in buildah's storage with its archive, is skipped.
#
#   scripts/images.sh                # everything
#   scripts/images.sh hub proxy      # only these (and the base/wheelhouse they need)
#
# What it builds (see images/README.md):
#   base       localhost/safezone/base:bookworm: debootstrap --variant=minbase from the
#              machine's Debian mirror, with python3 + python3-venv (not exported)
#   wheels     .cache/images/wheels: the images' third-party wheels, for pip --no-index
#   hub, control-plane, notebook
#              images/Dockerfile on that base, pip offline from the wheelhouse; tagged
#              localhost/safezone/<name>:<hash of the inputs> and :dev
#   pause      registry.k8s.io/pause:<upstream TAG>: upstream pause.c, gcc -static
#   coredns    localhost/safezone/coredns:<pin>: .cache/kube/bin/coredns (kube-tools.sh)
#   minio      localhost/safezone/minio:<pin>: .cache/bin/minio (scripts/setup.sh)
#   proxy      localhost/safezone/proxy:<version>: node + configurable-http-proxy (npm ci)
#
# Needs root (debootstrap; buildah's chroot isolation), buildah, debootstrap, gcc with the
# static glibc (libc6-dev), and the inputs above. Builds run one after another.
# SAFEZONE_BUILDAH_DRIVER=overlay|vfs forces buildah's storage driver (default: overlay if
# it works here, else vfs; the choice is kept in .cache/images/storage-driver).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=".cache/images"
LOGS="$OUT/logs"
PREFIX="localhost/safezone"
SUITE="bookworm"
BASE_REF="$PREFIX/base:$SUITE"
# python3-venv: the images' venv (ensurepip); libstdc++6: node, pyarrow; ca-certificates:
# TLS to the Kubernetes API and OIDC issuers
BASE_PACKAGES="python3,python3-venv,libstdc++6,ca-certificates"
ALL=(base wheels hub control-plane notebook pause coredns minio proxy)
# order of images.txt; base is exported too: the node cluster's own test pods run on it
EXPORTED=(pause coredns base minio proxy hub control-plane notebook)

say() { printf '[images] %s\n' "$*"; }
die() { printf 'images: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: debootstrap and buildah's chroot isolation need it"
for c in buildah debootstrap gcc sha256sum tar; do
  command -v "$c" >/dev/null 2>&1 || die "$c not found (Debian: apt-get install buildah debootstrap gcc libc6-dev)"
done
[ -x .venv/bin/pip ] || die ".venv/bin/pip not found: run scripts/setup.sh first"

# pins, read from the scripts that build the binaries (one place each)
pin_of() {  # <file> <VAR>
  sed -n "s/^$2=\"\([^\"]*\)\".*/\1/p" "$1" | awk 'NR == 1'
}
K8S_PIN=$(pin_of scripts/kube-tools.sh K8S_PIN)
COREDNS_PIN=$(pin_of scripts/kube-tools.sh COREDNS_PIN)
MINIO_PIN=$(pin_of scripts/setup.sh MINIO_PIN)
[[ -n $K8S_PIN && -n $COREDNS_PIN ]] || die "cannot read K8S_PIN/COREDNS_PIN from scripts/kube-tools.sh"
[ -n "$MINIO_PIN" ] || die "cannot read MINIO_PIN from scripts/setup.sh"

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=("${ALL[@]}")
for t in "${wanted[@]}"; do
  case " ${ALL[*]} " in *" $t "*) ;; *) die "unknown image '$t' (known: ${ALL[*]})" ;; esac
done
# what the chosen images need
want_base=0 want_wheels=0
for t in "${wanted[@]}"; do
  case "$t" in
    base|minio|proxy) want_base=1 ;;
    wheels) want_wheels=1 ;;
    hub|control-plane|notebook) want_base=1; want_wheels=1 ;;
  esac
done

mkdir -p "$OUT" "$LOGS" "$OUT/build"
export BUILDAH_ISOLATION=chroot

# -- buildah storage -------------------------------------------------------------------
# overlay first; vfs (a full copy per layer: slower and several times the disk) only if an
# overlay mount fails. On this machine's kernel overlay works (native overlay diff on ext4),
# so overlay is what gets used here.
overlay_works() {
  local c img probe="$PREFIX/overlay-probe:latest" m ok=1
  c=$(buildah --storage-driver overlay from scratch 2>/dev/null) || return 1
  buildah --storage-driver overlay copy "$c" "$0" /probe >/dev/null 2>&1 \
    && buildah --storage-driver overlay commit -q --rm "$c" "$probe" >/dev/null 2>&1 || ok=0
  [ $ok = 1 ] || { buildah --storage-driver overlay rm "$c" >/dev/null 2>&1 || true; return 1; }
  img=$(buildah --storage-driver overlay from --pull=never "$probe" 2>/dev/null) || ok=0
  if [ $ok = 1 ]; then
    m=$(buildah --storage-driver overlay mount "$img" 2>/dev/null) && [ -f "$m/probe" ] || ok=0
    buildah --storage-driver overlay rm "$img" >/dev/null 2>&1 || true
  fi
  buildah --storage-driver overlay rmi "$probe" >/dev/null 2>&1 || true
  [ $ok = 1 ]
}
DRIVER=${SAFEZONE_BUILDAH_DRIVER:-$(cat "$OUT/storage-driver" 2>/dev/null || true)}
if [ -z "$DRIVER" ]; then
  if overlay_works; then DRIVER=overlay; else DRIVER=vfs; say "overlay storage does not work here: using vfs"; fi
  echo "$DRIVER" > "$OUT/storage-driver"
fi
case "$DRIVER" in overlay|vfs) ;; *) die "SAFEZONE_BUILDAH_DRIVER must be overlay or vfs, not '$DRIVER'" ;; esac
B() { buildah --storage-driver "$DRIVER" "$@"; }

# -- helpers ---------------------------------------------------------------------------
hash16() { sha256sum | cut -c1-16; }
image_id() { B images --noheading --no-trunc --format '{{.ID}}' "$1" 2>/dev/null | awk 'NR == 1'; }
stamp_of() { cut -d' ' -f1 "$OUT/$1.stamp" 2>/dev/null || true; }

# fresh <name> <stamp> <ref>: stamp matches, image still in storage, archive present
fresh() {
  [ "$(stamp_of "$1")" = "$2" ] && [ -n "$(image_id "$3")" ] \
    && [ -s "$OUT/$1.tar" ]
}

declare -A STATUS=() TIME=() REF=()
started=0
begin() { started=$SECONDS; rm -f "$OUT/$1.stamp"; }
done_image() {  # <name> <stamp> <ref>
  echo "$2 $3" > "$OUT/$1.stamp"
  STATUS[$1]=built TIME[$1]=$((SECONDS - started)) REF[$1]=$3
  say "$1: built in ${TIME[$1]}s${4:+ ($4)} ($3, $(image_size "$3"))"
}
up_to_date() {  # <name> <ref>
  STATUS[$1]="up to date" TIME[$1]=0 REF[$1]=$2
  say "$1: up to date ($2)"
}
image_size() { B images --noheading --format '{{.Size}}' "$1" 2>/dev/null | awk 'NR == 1'; }  # awk reads all: no SIGPIPE under pipefail

# logged <log> <what> cmd...: run quietly into a log file; on failure show its end and die
logged() {
  local log="$LOGS/$1" what=$2; shift 2
  if ! "$@" >"$log" 2>&1; then
    tail -n 25 "$log" >&2
    die "$what failed (full log: $log)"
  fi
}

# stamped_log <log> cmd...: like logged, each output line prefixed with the time (step timings)
stamped_log() {
  local log="$LOGS/$1" line; shift
  if ! "$@" 2>&1 | while IFS= read -r line; do printf '%(%H:%M:%S)T %s\n' -1 "$line"; done >"$log"; then
    tail -n 25 "$log" >&2
    return 1
  fi
}

# check <ref> <what> cmd...: run cmd as uid 1000 (or the image's user) in a throw-away container
check() {
  local ref=$1 what=$2 c log="$LOGS/check.log"; shift 2
  c=$(B from --pull=never --quiet "$ref") || die "$ref: buildah from failed"
  if ! B run "$c" -- "$@" >"$log" 2>&1; then
    tail -n 15 "$log" >&2
    B rm "$c" >/dev/null 2>&1 || true
    die "$ref: check '$what' failed (log: $log)"
  fi
  B rm "$c" >/dev/null
}

# export_image <name> <ref>: OCI archive naming the full ref, for ctr images import
export_image() {
  local tar="$OUT/$1.tar"
  rm -f "$tar.tmp"
  logged "$1.push.log" "$1: buildah push to $tar" B push "$2" "oci-archive:$tar.tmp:$2"
  mv -f "$tar.tmp" "$tar"
}

# -- base: debootstrap -----------------------------------------------------------------
debian_mirror() {
  local f m=""
  [ -z "${SAFEZONE_DEBIAN_MIRROR:-}" ] || { echo "$SAFEZONE_DEBIAN_MIRROR"; return; }
  # deb822 sources: the first stanza whose Suites has bookworm itself (not -security)
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    m=$(awk -v s="$SUITE" '
      /^[[:space:]]*$/ { if (uri != "" && ok) { print uri; exit } uri = ""; ok = 0; next }
      /^URIs:/   { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) ok = 1 }
      END { if (uri != "" && ok) print uri }' "$f" | awk 'NR == 1')
    [ -z "$m" ] || { echo "$m"; return; }
  done
  # one-line sources
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    m=$(awk -v s="$SUITE" '$1 == "deb" { u = $2; if (u ~ /^\[/) u = $3; for (i = 2; i <= NF; i++) if ($i == s) { print u; exit } }' "$f" | awk 'NR == 1')
    [ -z "$m" ] || { echo "$m"; return; }
  done
}

unmount_under() {  # debootstrap leaves proc/sys mounted when it fails
  local d
  for d in "$1/proc" "$1/sys" "$1/dev/pts"; do
    if mountpoint -q "$d" 2>/dev/null; then umount -l "$d" || true; fi
  done
}

slim_rootfs() {  # <root>: no docs/man/locales (copyrights stay), no apt lists or caches
  local r=$1
  cat > "$r/etc/dpkg/dpkg.cfg.d/01-safezone-slim" <<'EOF'
# Safezone base image: no documentation or translations (licences stay)
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
EOF
  find "$r/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$r/usr/share/man" "$r/usr/share/info"
  find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  rm -rf "$r/var/lib/apt/lists/"* "$r/var/cache/apt/"*.bin "$r/var/cache/apt/archives/"*.deb \
         "$r/var/log/"*.log "$r/var/log/apt/"* "$r/var/cache/debconf/"*-old "$r/var/lib/dpkg/"*-old
  mkdir -p "$r/var/lib/apt/lists/partial"
  # the runtime provides these; nothing of the build machine's network stays in the image
  : > "$r/etc/resolv.conf"
  echo localhost > "$r/etc/hostname"
}

build_base() {
  local stamp mirror root="$OUT/rootfs.tmp" c m
  stamp=$({ echo "$SUITE $BASE_PACKAGES"; declare -f build_base slim_rootfs; } | hash16)
  if fresh base "$stamp" "$BASE_REF"; then up_to_date base "$BASE_REF"; return; fi
  mirror=$(debian_mirror)
  [ -n "$mirror" ] || die "no Debian mirror for $SUITE in /etc/apt/sources.list{,.d/}: set SAFEZONE_DEBIAN_MIRROR"
  say "base: debootstrap --variant=minbase $SUITE from $mirror"
  begin base
  unmount_under "$root"
  rm -rf --one-file-system "$root"
  logged debootstrap.log "debootstrap" \
    debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$root" "$mirror"
  unmount_under "$root"
  slim_rootfs "$root"
  say "base: root filesystem $(du -sh "$root" | cut -f1) after slimming ($((SECONDS - started))s so far)"
  c=$(B from scratch)
  m=$(B mount "$c")
  # /dev, /proc and /sys stay empty: the runtime mounts them
  tar -C "$root" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf - . \
    | tar -C "$m" --numeric-owner -xpf -
  B umount "$c" >/dev/null
  B config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd '["/bin/bash"]' "$c"
  B commit -q --rm "$c" "$BASE_REF" >/dev/null
  rm -rf --one-file-system "$root"
  check "$BASE_REF" "python3 -m venv" python3 -c "import venv, ensurepip, sqlite3, ssl"
  export_image base "$BASE_REF"
  done_image base "$stamp" "$BASE_REF"
}

# -- wheelhouse ------------------------------------------------------------------------
WHEELS="$OUT/wheels"
wheels_stamp() {
  { cat pyproject.toml constraints.txt images/requirements.py
    .venv/bin/python -c 'import sys, sysconfig; print(sys.version, sysconfig.get_platform())'
    declare -f build_wheels; } | hash16
}
build_wheels() {
  local stamp n
  stamp=$(wheels_stamp)
  if [ "$(stamp_of wheels)" = "$stamp" ] && [ -d "$WHEELS" ]; then
    STATUS[wheels]="up to date" TIME[wheels]=0 REF[wheels]=$WHEELS
    say "wheels: up to date ($WHEELS, $(find "$WHEELS" -name '*.whl' | wc -l) wheels)"
    return
  fi
  say "wheels: pip wheel of the images' requirements into $WHEELS"
  begin wheels
  rm -rf "$WHEELS.tmp"
  .venv/bin/python images/requirements.py pyproject.toml --build > "$OUT/requirements.txt"
  # third-party only: the Dockerfile installs the project from its sources
  logged wheels.log "pip wheel" .venv/bin/pip wheel --disable-pip-version-check \
    -w "$WHEELS.tmp" -c constraints.txt -r "$OUT/requirements.txt"
  rm -rf "$WHEELS"
  mv "$WHEELS.tmp" "$WHEELS"
  n=$(find "$WHEELS" -name '*.whl' | wc -l)
  echo "$stamp $WHEELS" > "$OUT/wheels.stamp"
  STATUS[wheels]=built TIME[wheels]=$((SECONDS - started)) REF[wheels]=$WHEELS
  say "wheels: $n wheels in ${TIME[wheels]}s ($(du -sh "$WHEELS" | cut -f1))"
}

# -- hub, control-plane, notebook: images/Dockerfile -----------------------------------
safezone_tag() {  # a hash of everything the Dockerfile reads, the base and the wheelhouse
  { find images/Dockerfile images/requirements.py images/notebook .dockerignore pyproject.toml \
      README.md constraints.txt safezone spawner policies hub_config -type f \
      ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    echo "$(image_id "$BASE_REF") $(stamp_of wheels)"
    declare -f build_safezone; } | sha256sum | cut -c1-12
}

build_safezone() {  # <target> <tag>
  local t=$1 tag=$2 ref="$PREFIX/$1:$2" old t_bud t_check t_push
  if fresh "$t" "$tag" "$ref"; then up_to_date "$t" "$ref"; return; fi
  [ -n "$(image_id "$BASE_REF")" ] || die "$t: base image $BASE_REF is missing (scripts/images.sh base)"
  [ -d "$WHEELS" ] || die "$t: wheelhouse $WHEELS is missing (scripts/images.sh wheels)"
  say "$t: buildah bud --target $t (images/Dockerfile on $BASE_REF)"
  begin "$t"
  # --layers: the shared "base" stage (the venv) is built once and reused by the other targets
  stamped_log "$t.log" \
    B bud --isolation chroot --network host --layers --force-rm --pull=never \
      -f images/Dockerfile --target "$t" \
      --build-arg BASE_IMAGE="$BASE_REF" \
      --build-arg PIP_INSTALL_OPTIONS="--no-index --find-links /wheels" \
      -v "$PWD/$WHEELS:/wheels:ro" \
      -t "$ref" -t "$PREFIX/$t:dev" . \
    || die "$t: buildah bud failed (full log: $LOGS/$t.log)"
  t_bud=$((SECONDS - started))
  [ "$(B inspect --type image --format '{{.OCIv1.Config.User}}' "$ref")" = 1000 ] \
    || die "$t: the image's user is not 1000"
  check "$ref" "import safezone" python -c "import safezone, spawner, jupyterhub, kubespawner"
  case "$t" in
    hub)           check "$ref" "jupyterhub --version" jupyterhub --version
                   check "$ref" "import oauthenticator" python -c "import oauthenticator" ;;
    control-plane) check "$ref" "import the API" python -c "import safezone.api.main, psycopg, uvicorn" ;;
    notebook)      check "$ref" "jupyterhub-singleuser --help" jupyterhub-singleuser --help
                   check "$ref" "import pandas, pyarrow, boto3" python -c "import pandas, pyarrow, boto3" ;;
  esac
  t_check=$((SECONDS - started - t_bud))
  export_image "$t" "$ref"
  t_push=$((SECONDS - started - t_bud - t_check))
  # older content tags of this image go (their layers stay while shared)
  for old in $(B images --noheading --format '{{.Name}}:{{.Tag}}' | awk -v r="$PREFIX/$t:" -v keep="$ref" \
                 'index($0, r) == 1 && $0 != keep && $0 != r "dev"'); do
    B rmi "$old" >/dev/null 2>&1 || true
  done
  done_image "$t" "$tag" "$ref" "bud ${t_bud}s, checks ${t_check}s, push ${t_push}s"
}

# -- third-party stand-ins: the same pinned binaries the one-machine zone runs ---------
build_pause() {
  local src dir tag ref cflags stamp c
  dir="$(go env GOMODCACHE 2>/dev/null)/k8s.io/kubernetes@$K8S_PIN/build/pause"
  if [ ! -f "$dir/linux/pause.c" ] && command -v go >/dev/null 2>&1; then
    go mod download "k8s.io/kubernetes@$K8S_PIN" >/dev/null 2>&1 || true
  fi
  src="$dir/linux/pause.c"
  [ -f "$src" ] || die "pause: $src not found (go mod download k8s.io/kubernetes@$K8S_PIN)"
  tag=$(sed -n 's/^TAG ?= *//p' "$dir/Makefile")
  [ -n "$tag" ] || die "pause: cannot read TAG from $dir/Makefile"
  ref="registry.k8s.io/pause:$tag"
  # upstream's CFLAGS (build/pause/Makefile); REV, its `git describe`, is the Kubernetes tag
  cflags="-Os -Wall -Werror -static -DVERSION=v$tag-$K8S_PIN"
  stamp=$({ cat "$src"; echo "$cflags"; gcc --version | awk 'NR == 1'; declare -f build_pause; } | hash16)
  if fresh pause "$stamp" "$ref"; then up_to_date pause "$ref"; return; fi
  say "pause: gcc $cflags ($src)"
  begin pause
  # shellcheck disable=SC2086  # the flags are words
  gcc $cflags -o "$OUT/build/pause" "$src" || die "pause: gcc failed"
  c=$(B from scratch)
  B copy --chmod 0755 "$c" "$OUT/build/pause" /pause >/dev/null
  B config --entrypoint '["/pause"]' --cmd '[]' --user 65535:65535 "$c"   # as upstream's Dockerfile
  B commit -q --rm "$c" "$ref" >/dev/null
  check "$ref" "/pause -v" /pause -v
  export_image pause "$ref"
  done_image pause "$stamp" "$ref"
}

build_coredns() {
  local bin=.cache/kube/bin/coredns ref="$PREFIX/coredns:$COREDNS_PIN" stamp c
  [[ -x $bin && "$(cat .cache/kube/coredns.pin 2>/dev/null)" = "$COREDNS_PIN" ]] \
    || die "coredns: $bin $COREDNS_PIN not built yet: run scripts/kube-tools.sh coredns"
  stamp=$({ sha256sum < "$bin"; declare -f build_coredns; } | hash16)
  if fresh coredns "$stamp" "$ref"; then up_to_date coredns "$ref"; return; fi
  say "coredns: from scratch + $bin"
  begin coredns
  c=$(B from scratch)
  B copy --chmod 0755 "$c" "$bin" /coredns >/dev/null
  B config --entrypoint '["/coredns"]' --cmd '[]' --user 65532:65532 --port 53/udp --port 53/tcp "$c"
  B commit -q --rm "$c" "$ref" >/dev/null
  check "$ref" "/coredns -version" /coredns -version
  export_image coredns "$ref"
  done_image coredns "$stamp" "$ref"
}

minio_tag() {  # v0.0.0-20260212201848-7aac2a2c5b7c -> 20260212-7aac2a2c5b7c; tags stay
  local p=${MINIO_PIN#v0.0.0-}
  if [ "$p" != "$MINIO_PIN" ]; then echo "${p:0:8}-${p##*-}"; else echo "$MINIO_PIN"; fi
}

build_minio() {
  local bin=.cache/bin/minio ref stamp c
  ref="$PREFIX/minio:$(minio_tag)"
  [[ -x $bin && "$(cat .cache/minio.pin 2>/dev/null)" = "$MINIO_PIN" ]] \
    || die "minio: $bin $MINIO_PIN not built yet: run scripts/setup.sh"
  stamp=$({ sha256sum < "$bin"; image_id "$BASE_REF"; declare -f build_minio; } | hash16)
  if fresh minio "$stamp" "$ref"; then up_to_date minio "$ref"; return; fi
  say "minio: $BASE_REF + $bin"
  begin minio
  c=$(B from --pull=never "$BASE_REF")
  B copy --chmod 0755 "$c" "$bin" /usr/local/bin/minio >/dev/null
  B config --user 1000:1000 --cmd '["minio"]' --port 9000/tcp "$c"
  B commit -q --rm "$c" "$ref" >/dev/null
  check "$ref" "minio --version" minio --version
  export_image minio "$ref"
  done_image minio "$stamp" "$ref"
}

build_proxy() {
  local mod=node_modules/configurable-http-proxy dest=/opt/configurable-http-proxy ver want ref stamp c
  [ -f "$mod/package.json" ] || die "proxy: $mod missing: run scripts/setup.sh (npm ci)"
  [ -x /usr/bin/node ] || die "proxy: /usr/bin/node not found"
  ver=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$mod/package.json" | awk 'NR == 1')
  want=$(sed -n 's/^ *"configurable-http-proxy": *"\([^"]*\)".*/\1/p' package.json | awk 'NR == 1')
  [ "$ver" = "$want" ] || die "proxy: node_modules has configurable-http-proxy $ver, package.json pins $want: run npm ci"
  ref="$PREFIX/proxy:$ver"
  stamp=$({ sha256sum < /usr/bin/node; cat package-lock.json
            find node_modules -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
            image_id "$BASE_REF"; declare -f build_proxy; } | hash16)
  if fresh proxy "$stamp" "$ref"; then up_to_date proxy "$ref"; return; fi
  say "proxy: $BASE_REF + node $(/usr/bin/node --version) + configurable-http-proxy $ver"
  begin proxy
  c=$(B from --pull=never "$BASE_REF")
  B copy --chmod 0755 "$c" /usr/bin/node /usr/local/bin/node >/dev/null
  B copy "$c" node_modules "$dest/node_modules" >/dev/null
  B run "$c" -- ln -s "$dest/node_modules/configurable-http-proxy/bin/configurable-http-proxy" \
    /usr/local/bin/configurable-http-proxy
  B config --user 1000:1000 --cmd '["configurable-http-proxy"]' --env NODE_ENV=production \
    --port 8000/tcp --port 8001/tcp "$c"
  B commit -q --rm "$c" "$ref" >/dev/null
  check "$ref" "configurable-http-proxy --version" configurable-http-proxy --version
  export_image proxy "$ref"
  done_image proxy "$stamp" "$ref"
}

# -- run -------------------------------------------------------------------------------
say "buildah $(buildah --version | awk '{print $3}'), storage driver $DRIVER"
[ $want_base = 0 ] || build_base
[ $want_wheels = 0 ] || build_wheels
tag=""
for t in "${wanted[@]}"; do
  case "$t" in
    hub|control-plane|notebook) [ -n "$tag" ] || tag=$(safezone_tag)
                                build_safezone "$t" "$tag" ;;
    pause)   build_pause ;;
    coredns) build_coredns ;;
    minio)   build_minio ;;
    proxy)   build_proxy ;;
  esac
done

# images.txt: every exported image whose stamp and archive are there (also from earlier runs)
{
  for t in "${EXPORTED[@]}"; do
    [[ -s $OUT/$t.tar && -f $OUT/$t.stamp ]] || continue
    printf '%s %s %s\n' "$t" "$(cut -d' ' -f2 "$OUT/$t.stamp")" "$OUT/$t.tar"
  done
} > "$OUT/images.txt.tmp"
mv -f "$OUT/images.txt.tmp" "$OUT/images.txt"

say "summary (time: this run; image size: buildah images; archive: .tar):"
printf '  %-14s %-11s %6s %10s %9s  %s\n' name status time image archive ref
for t in "${ALL[@]}"; do
  [ -n "${STATUS[$t]:-}" ] || continue
  size=-; tarsize=-
  [ "$t" = wheels ] || size=$(image_size "${REF[$t]}")
  [ ! -s "$OUT/$t.tar" ] || tarsize=$(du -h "$OUT/$t.tar" | cut -f1)
  printf '  %-14s %-11s %5ss %10s %9s  %s\n' "$t" "${STATUS[$t]}" "${TIME[$t]}" "${size:--}" "$tarsize" "${REF[$t]}"
done
built=0
for t in "${!STATUS[@]}"; do [ "${STATUS[$t]}" != built ] || built=$((built + 1)); done
say "disk: $(du -sh "$OUT" | cut -f1) in $OUT; buildah storage ($DRIVER) $(du -sh "$(B info --format '{{.store.GraphRoot}}')" 2>/dev/null | cut -f1)"
say "ready: $OUT/images.txt ($built built; ${SECONDS}s in all)"
