"""Routes of the `admin` area (routes arrive with their issues)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")
