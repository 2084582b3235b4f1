"""De-identification (비식별·가명처리): recipes, the streaming pipeline, attestations."""
