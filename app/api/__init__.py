"""The `api` blueprint."""
