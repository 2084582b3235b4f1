"""Validation of the names that become buckets, prefixes, namespaces and identities."""

from __future__ import annotations

import re

from .errors import InvalidInput

# DNS-1123 label, kept short so "sz-<project>" still fits a Kubernetes namespace (63).
PROJECT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
# S3 bucket rules (3-63, lowercase, digits, hyphens; no dots: they break virtual hosts).
BUCKET_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$")
PREFIX = re.compile(r"^(?:[A-Za-z0-9_.=-]+/)*$")
USER_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62})$")


def check_project_name(name: str) -> str:
    """A project name is a DNS label of 2-40 characters starting with a letter."""
    if not isinstance(name, str) or not PROJECT_NAME.match(name) or "--" in name:
        raise InvalidInput(
            f"invalid project name {name!r}: use 2-40 lowercase letters, digits and single "
            "hyphens, starting with a letter (프로젝트 이름 형식 오류)"
        )
    return name


def check_bucket_name(name: str, *, what: str = "dataset") -> str:
    """Dataset names double as bucket names, so they follow the S3 bucket rules."""
    if not isinstance(name, str) or not BUCKET_NAME.match(name) or "--" in name:
        raise InvalidInput(
            f"invalid {what} name {name!r}: use 3-63 lowercase letters, digits and single "
            "hyphens (버킷 이름 형식 오류)"
        )
    return name


def check_prefix(prefix: str) -> str:
    """An object prefix: empty, or path segments each ending in '/', no '..'."""
    if not isinstance(prefix, str) or len(prefix) > 200 or not PREFIX.match(prefix):
        raise InvalidInput(f"invalid prefix {prefix!r}: use segments like 'a/b/' (no '..')")
    if any(part in {".", ".."} for part in prefix.split("/")):
        raise InvalidInput(f"invalid prefix {prefix!r}: '.' and '..' are not allowed")
    return prefix


def check_object_key(key: str) -> str:
    """A key the zone puts into an identity policy: no policy wildcards or variables."""
    if not isinstance(key, str) or not key or any(c in key for c in "*?$\\\0"):
        raise InvalidInput(f"key {key!r} is empty or holds * ? $ \\")
    return key


def check_user_name(name: str) -> str:
    """JupyterHub user names that Safezone accepts (they appear in object prefixes)."""
    if not isinstance(name, str) or not USER_NAME.match(name):
        raise InvalidInput(f"invalid user name {name!r}")
    return name
