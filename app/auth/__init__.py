"""The `auth` blueprint."""
