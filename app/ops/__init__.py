"""The `ops` blueprint: liveness, readiness (and later metrics)."""
