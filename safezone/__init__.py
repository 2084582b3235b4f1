"""Safezone: a cloud safe zone (안심구역) for analysing de-identified data."""

__version__ = "0.1.0"
