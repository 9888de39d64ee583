"""The `wellknown` blueprint."""
