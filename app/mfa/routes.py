"""Routes of the `mfa` area (routes arrive with their issues)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("mfa", __name__, url_prefix="/mfa")
