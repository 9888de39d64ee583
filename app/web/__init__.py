"""The `web` blueprint: the shared parts in ``pages``, the pages in ``routes`` and ``admin``.

Both page modules are imported here for their routes: importing the package
registers every page on ``bp``.
"""

from . import admin, routes
from .pages import bp

__all__ = ["admin", "bp", "routes"]
