"""The `admin` blueprint."""
