"""The models and the Alembic migrations agree (SQLite, and PostgreSQL when provided)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.extensions import db


def test_models_match_migrations(app) -> None:  # type: ignore[no-untyped-def]
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_one_active_key_is_a_database_constraint(app) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    import pytest
    from sqlalchemy.exc import IntegrityError

    from app.models import SigningKey

    now = datetime.now(UTC)
    with app.app_context():
        for kid in ("a", "b"):
            db.session.add(SigningKey(kid=kid, alg="ES256", state="active", public_jwk="{}",
                                      private_key_encrypted=b"x", created_at=now))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()
