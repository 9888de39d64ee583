"""The `web` blueprint."""
