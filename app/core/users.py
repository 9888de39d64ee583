"""Creating and finding users."""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, bindparam, exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models import Passkey, TotpCredential, User
from .dml import rowcount
from .errors import CoreError
from .passwords import (
    burn_verification,
    hash_password,
    needs_rehash,
    password_problems,
    verify_password,
)

__all__ = [
    "Checked",
    "change_password",
    "check_credentials",
    "UserError",
    "UsernameTaken",
    "WeakPassword",
    "create_user",
    "generate_password",
    "normalize_username",
    "page_users",
    "replace_temporary_password",
    "set_temporary_password",
]

USERNAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._@-]{1,63}")
ROLE_PATTERN = re.compile(r"[a-z][a-z0-9_:-]{0,31}")


class UserError(CoreError, ValueError):
    """A user cannot be created as asked; the message says why."""

    code = "invalid_user"
    field: str | None = "username"


class UsernameTaken(UserError):
    code = "username_taken"


class WeakPassword(UserError):
    code = "weak_password"
    field: str | None = "password"


def normalize_username(username: str) -> str:
    """Trimmed, and ASCII letters lower-cased; nothing else is folded.

    Usernames are ASCII (USERNAME_PATTERN), and this one normalisation applies at
    creation, registration and login. Unicode case mapping is left out on purpose:
    ``"\u212a".lower()`` is ``"k"`` (KELVIN SIGN), which would make a second spelling
    of an existing account; such a name stays as it is and the pattern refuses it.
    A legacy token's username is not normalised at all (``app.security.legacy``).
    """
    name = username.strip()
    return name.lower() if name.isascii() else name


def create_user(
    session: Session, username: str, password: str, roles: Iterable[str], now: datetime,
    *, temporary: bool = False,
) -> User:
    """Create a user, committing; the unique constraint settles a race on the name.

    ``temporary``: the password is one an admin chose, to be replaced at the first login.
    """
    name = normalize_username(username)
    if not USERNAME_PATTERN.fullmatch(name):
        raise UserError("username must be 2-64 characters: letters, digits, . _ @ -")
    role_list = sorted(set(roles))
    bad_roles = [r for r in role_list if not ROLE_PATTERN.fullmatch(r)]
    if bad_roles:
        raise UserError(f"invalid role name: {bad_roles[0]}")
    user = User(
        username=name,
        password_hash=_strong_hash(password, name),
        roles=role_list,
        disabled=False,
        created_at=now,
        password_changed_at=now,
        must_change_password=temporary,
    )
    session.add(user)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise UsernameTaken(f"username {name!r} is taken") from None
    return user


@dataclass(frozen=True)
class Checked:
    """A user whose password was right, and whether the login needs a second step."""

    user: User
    mfa_enabled: bool  # a confirmed TOTP credential (SPEC §7) or a passkey (issue 22)


@functools.cache
def _login_lookup() -> Select[User, bool]:
    """The user by name and their MFA state: one query where a login made two, built
    once because building the ORM expression per login cost about as much as running it."""
    # A confirmed TOTP credential or a passkey (issue 22): either makes the login two-step.
    mfa_enabled = or_(TotpCredential.confirmed_at.is_not(None),
                      exists().where(Passkey.user_id == User.id)).label("mfa_enabled")
    return (select(User, mfa_enabled)
            .outerjoin(TotpCredential, TotpCredential.user_id == User.id)
            .where(User.username == bindparam("username")))


def check_credentials(session: Session, username: str, password: str) -> Checked | None:
    """The user (and their MFA state) if ``password`` is right and the account
    enabled, else None.

    An unknown username runs the same argon2 work as a wrong password, and a
    disabled account is checked only after the hash, so timing tells nothing.
    A hash made with older parameters is replaced on success (SPEC §5).
    """
    found = session.execute(_login_lookup(),
                            {"username": normalize_username(username)}).first()
    if found is None:
        burn_verification(password)
        return None
    user, mfa_enabled = found
    if not verify_password(user.password_hash, password) or user.disabled:
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        session.commit()
    return Checked(user, mfa_enabled)


def _strong_hash(password: str, username: str) -> str:
    """The password's hash, or WeakPassword naming what the strength rules refuse."""
    problems = password_problems(password, username)
    if problems:
        raise WeakPassword("password " + "; ".join(problems))
    return hash_password(password)


def _set_password(session: Session, user: User, password: str, now: datetime, *,
                  temporary: bool) -> None:
    user.password_hash = _strong_hash(password, user.username)
    user.password_changed_at = now
    user.must_change_password = temporary
    session.commit()


def change_password(session: Session, user: User, new_password: str, now: datetime) -> None:
    """Set a new password (strength-checked); the caller ends the other sessions."""
    _set_password(session, user, new_password, now, temporary=False)


def generate_password() -> str:
    """A random password that passes the strength rules (96 bits, 16 characters)."""
    while True:
        candidate = secrets.token_urlsafe(12)
        if not password_problems(candidate):
            return candidate


def set_temporary_password(session: Session, user: User, password: str, now: datetime) -> None:
    """Give ``user`` a password an admin knows; the next login must replace it first."""
    _set_password(session, user, password, now, temporary=True)


def replace_temporary_password(session: Session, user: User, new_password: str,
                               now: datetime) -> bool:
    """Set the user's own password in place of a temporary one; False when the password
    is no longer temporary (another request replaced it first: one conditional UPDATE
    settles the race, so a password change token opens at most one session)."""
    password_hash = _strong_hash(new_password, user.username)
    result = session.execute(
        update(User)
        .where(User.id == user.id, User.must_change_password.is_(True))
        .values(password_hash=password_hash, password_changed_at=now,
                must_change_password=False)
        .execution_options(synchronize_session=False))
    session.commit()
    return rowcount(result) == 1


def page_users(session: Session, *, q: str | None = None, after_id: int | None = None,
               limit: int = 50) -> list[User]:
    """Users by id, ``limit`` after ``after_id`` (keyset paging: each page costs one index
    range scan however deep it is), optionally those whose name contains ``q``."""
    stmt = select(User).order_by(User.id).limit(limit)
    if q:
        stmt = stmt.where(User.username.contains(normalize_username(q), autoescape=True))
    if after_id is not None:
        stmt = stmt.where(User.id > after_id)
    return list(session.scalars(stmt))
