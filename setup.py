"""Packaging: the source in ``app/`` and ``migrations/`` installs as the package ``tessera``.

Everything else (metadata, dependencies, package data, the ``tessera`` command)
is declared in pyproject.toml. Only the package list needs code: setuptools'
declarative ``packages.find`` cannot rename, and a hand-written list would miss
the next subpackage someone adds under ``app/``.
"""

from setuptools import find_namespace_packages, setup

# The checkout keeps the project's layout (app/ and migrations/ at the top); installed,
# they are tessera/ and tessera/migrations/, so that nothing claims the name `app`.
SOURCES = {"tessera": "app", "tessera.migrations": "migrations"}

setup(
    package_dir=SOURCES,
    # Namespace discovery: data directories (templates/, static/, versions/) count as
    # packages too, which is how setuptools wants the files in them declared.
    packages=[
        f"{package}.{name}" if name else package
        for package, source in SOURCES.items()
        for name in ["", *find_namespace_packages(source, exclude=["*__pycache__*"])]
    ],
)
