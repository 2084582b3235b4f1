#!/usr/bin/env bash
# Keycloak for the login tests (tests/keycloak.py): the server distribution from Maven
# Central, verified against a pinned SHA-256, cached and unpacked under .cache/keycloak.
# It needs Java 21+; the tests find one through SAFEZONE_KEYCLOAK_JAVA_HOME, JAVA_HOME or
# /usr/lib/jvm. Safe to re-run (does nothing once unpacked).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="26.5.6"
SHA256="fa3dd5df90b9ac006712c2f0991be4e8a6cb30ac538e0439ce2f45fc40f4c692"
URL="https://repo1.maven.org/maven2/org/keycloak/keycloak-quarkus-dist/$VERSION/keycloak-quarkus-dist-$VERSION.tar.gz"
DIR=".cache/keycloak"
ARCHIVE="$DIR/keycloak-$VERSION.tar.gz"

say() { printf '[keycloak] %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

if [ -x "$DIR/keycloak-$VERSION/bin/kc.sh" ]; then
  exit 0
fi
mkdir -p "$DIR"
if [ ! -f "$ARCHIVE" ] || ! echo "$SHA256  $ARCHIVE" | sha256sum -c --status; then
  command -v curl >/dev/null || die "curl is required to download Keycloak"
  say "downloading Keycloak $VERSION (164 MB, once)"
  curl -fsSL --retry 3 -o "$ARCHIVE.part" "$URL"
  echo "$SHA256  $ARCHIVE.part" | sha256sum -c --status \
    || { rm -f "$ARCHIVE.part"; die "Keycloak archive does not match its pinned SHA-256"; }
  mv "$ARCHIVE.part" "$ARCHIVE"
fi
rm -rf "$DIR/keycloak-$VERSION.part"
mkdir -p "$DIR/keycloak-$VERSION.part"
tar -xzf "$ARCHIVE" -C "$DIR/keycloak-$VERSION.part" --strip-components=1
mv "$DIR/keycloak-$VERSION.part" "$DIR/keycloak-$VERSION"
say "unpacked into $DIR/keycloak-$VERSION"
