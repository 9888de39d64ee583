"""Flask-free services: they take their dependencies and ``now`` as arguments."""
