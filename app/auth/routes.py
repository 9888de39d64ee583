"""Routes of the `auth` area (routes arrive with their issues)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("auth", __name__, url_prefix="/auth")
