"""The `admin` blueprint: users, sessions and the audit log in ``routes``, signing keys
and the migration in ``keys``, service clients in ``clients``.

The route modules are imported here for their routes: importing the package
registers every admin route on ``bp``.
"""

from . import clients, keys, routes
from .routes import bp

__all__ = ["bp", "clients", "keys", "routes"]
