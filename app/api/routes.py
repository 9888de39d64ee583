"""Routes of the `api` area (routes arrive with their issues)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api")
