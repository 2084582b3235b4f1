"""One Safezone user name for each identity-provider name: stable, safe, never shared.

The name becomes a JupyterHub user, a sandbox Unix user (``sz-…``), a Kubernetes label
value and part of MinIO object prefixes, so it must be a lowercase DNS-label-like string
(``naming.USER_NAME``, at most 63 characters, ending in a letter or digit).

- A name that is already safe is kept as it is (``alice`` stays ``alice``).
- Any other name is rewritten readably and gets ``--`` and a hash of the *original* name
  (``alice@uni.ac.kr`` -> ``alice-uni.ac.kr--<10 base32 characters>``).

A kept name never contains ``--`` and a rewritten one always does, so the two kinds never
meet; two rewritten names meet only if 50 bits of SHA-256 collide.
"""

from __future__ import annotations

import base64
import hashlib
import re
import unicodedata

MAX_LENGTH = 63
HASH_CHARS = 10  # base32: 50 bits
SEPARATOR = "--"
SAFE = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?$")
_UNSAFE_CHARS = re.compile(r"[^a-z0-9._-]+")
_DASHES = re.compile(r"-{2,}")
_EDGES = re.compile(r"^[^a-z0-9]+|[^a-z0-9]+$")


def is_kept(name: str) -> bool:
    """True when the IdP name is used unchanged."""
    return bool(SAFE.match(name)) and SEPARATOR not in name


def _digest(name: str) -> str:
    raw = hashlib.sha256(name.encode("utf-8", "surrogatepass")).digest()
    return base64.b32encode(raw).decode("ascii")[:HASH_CHARS].lower()


def safezone_name(idp_name: str) -> str:
    """The Safezone user name of an IdP user name (see the module's rules)."""
    if not isinstance(idp_name, str) or not idp_name:
        raise ValueError("empty identity-provider user name")
    if is_kept(idp_name):
        return idp_name
    readable = unicodedata.normalize("NFKC", idp_name).lower()
    readable = _DASHES.sub("-", _UNSAFE_CHARS.sub("-", readable))
    room = MAX_LENGTH - len(SEPARATOR) - HASH_CHARS
    readable = _EDGES.sub("", _EDGES.sub("", readable)[:room]) or "user"
    return f"{readable}{SEPARATOR}{_digest(idp_name)}"
