"""Kubernetes mode: project namespaces and their policies."""
