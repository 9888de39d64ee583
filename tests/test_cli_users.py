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


def test_lifecycle_commands(app, runner) -> None:  # type: ignore[no-untyped-def]
    """list, set-password, reset-mfa, disable/enable, set-roles: audited without an actor."""
    from app.models import AuditEvent

    assert runner.invoke(args=["users", "create", "ann", "--temporary", "--password-stdin"],
                         input=GOOD + "\n").exit_code == 0
    assert _user(app, "ann").must_change_password is True
    listing = runner.invoke(args=["users", "list", "--search", "AN"])
    assert "ann" in listing.output and "password change due" in listing.output
    generated = runner.invoke(args=["users", "set-password", "ann", "--generate"])
    assert generated.exit_code == 0, generated.output
    password = generated.output.split("temporary password: ")[1].split()[0]
    assert verify_password(_user(app, "ann").password_hash, password)
    weak = runner.invoke(args=["users", "set-password", "ann", "--password-stdin"],
                         input="short\n")
    assert weak.exit_code != 0 and "password" in weak.output
    assert runner.invoke(args=["users", "reset-mfa", "ann"]).output.strip() == \
        "MFA reset for ann (it was not on)"
    assert runner.invoke(args=["users", "disable", "ann"]).exit_code == 0
    assert _user(app, "ann").disabled is True
    assert runner.invoke(args=["users", "enable", "ann"]).exit_code == 0
    roles = runner.invoke(args=["users", "set-roles", "ann", "--role", "b", "--role", "a"])
    assert roles.output.strip() == "ann: a, b"
    assert runner.invoke(args=["users", "set-roles", "ann", "--role", "Bad!"]).exit_code != 0
    assert runner.invoke(args=["users", "reset-mfa", "nobody"]).exit_code != 0
    with app.app_context():
        rows = db.session.scalars(select(AuditEvent).where(
            AuditEvent.event.in_(["USER_PASSWORD_SET", "USER_MFA_RESET", "USER_UPDATED"]))).all()
    assert len(rows) == 6 and all(r.actor_id is None for r in rows)
    assert all(password not in str(r.details) for r in rows)
