"""The `web` blueprint: the shared parts in ``pages``, the login steps in ``login``,
the account in ``routes``, the admin pages in ``admin``
and ``admin_clients``, what a failure shows in ``errors``.

The modules are imported here for their routes and handlers: importing the package
registers every page on ``bp``.
"""

from . import admin, admin_clients, errors, login, routes
from .pages import bp

__all__ = ["admin", "admin_clients", "bp", "errors", "login", "routes"]
