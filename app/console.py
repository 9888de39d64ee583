"""The ``tessera`` command: Flask's CLI with this package's app, no ``FLASK_APP`` needed.

``tessera db upgrade``, ``tessera users create-admin``, ``tessera keys rotate
--if-due`` are the ``flask`` commands of SPEC §2 with the app already chosen,
so they work from any directory once the package is installed. Settings come
from the environment, as for the server (``TESSERA_*``, ``DATABASE_URL``,
``REDIS_URL``).
"""

from __future__ import annotations

from flask.cli import FlaskGroup

from . import create_app

__all__ = ["cli", "main"]

# No .env loading: the settings a command uses are those of the server it administers
# (systemd's EnvironmentFile), not a file that happens to sit in the working directory.
cli = FlaskGroup(
    name="tessera",
    create_app=create_app,
    load_dotenv=False,
    help="Administer Tessera: database migrations, users, keys, revocations, clients.",
)


def main() -> None:
    """Entry point of the ``tessera`` console script."""
    cli.main(prog_name="tessera")
