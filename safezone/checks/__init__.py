"""Automated disclosure checks of export requests; rules and thresholds in policies/disclosure/."""
