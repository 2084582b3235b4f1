"""Export requests: freeze, check, review, release (the egress reviewer)."""
