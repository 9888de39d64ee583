"""`flask users create` and `flask users create-admin` (SPEC §2)."""

from __future__ import annotations

from sqlalchemy import select

from app.core.passwords import verify_password
from app.extensions import db
from app.models import User

GOOD = "correct horse battery staple"


def _user(app, name: str) -> User | None:  # type: ignore[no-untyped-def]
    with app.app_context():
        return db.session.scalars(select(User).where(User.username == name)).first()


def test_create_admin_from_stdin(app, runner) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(args=["users", "create-admin", "--username", "Root", "--password-stdin"],
                           input=GOOD + "\n")
    assert result.exit_code == 0, result.output
    user = _user(app, "root")
    assert user is not None and user.roles == ["admin"]
    assert user.password_hash.startswith("$argon2id$")
    assert verify_password(user.password_hash, GOOD)
    assert GOOD not in result.output


def test_create_admin_prompts(app, runner) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(args=["users", "create-admin"], input=f"boss\n{GOOD}\n{GOOD}\n")
    assert result.exit_code == 0, result.output
    assert _user(app, "boss") is not None


def test_create_with_roles(app, runner) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(args=["users", "create", "ann", "--role", "editor", "--role", "viewer",
                                 "--password-stdin"], input=GOOD + "\n")
    assert result.exit_code == 0, result.output
    assert _user(app, "ann").roles == ["editor", "viewer"]


def test_weak_password_is_refused(app, runner) -> None:  # type: ignore[no-untyped-def]
    for weak in ("short", "aaaaaaaaaaaaaaaa", "password1234", "bob-the-builder-bob"):
        result = runner.invoke(args=["users", "create-admin", "--username", "bob",
                                     "--password-stdin"], input=weak + "\n")
        assert result.exit_code != 0
        assert "password" in result.output
    assert _user(app, "bob") is None


def test_duplicate_username_is_refused(app, runner) -> None:  # type: ignore[no-untyped-def]
    args = ["users", "create", "dup", "--password-stdin"]
    assert runner.invoke(args=args, input=GOOD + "\n").exit_code == 0
    again = runner.invoke(args=["users", "create", "DUP", "--password-stdin"], input=GOOD + "\n")
    assert again.exit_code != 0
    assert "taken" in again.output
