"""The `mfa` blueprint."""
