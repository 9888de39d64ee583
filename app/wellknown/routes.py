"""Routes of the `wellknown` area (routes arrive with their issues)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("wellknown", __name__, url_prefix="/.well-known")
