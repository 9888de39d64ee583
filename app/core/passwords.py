"""Password hashing (argon2id, OWASP parameters) and strength rules (SPEC §5)."""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "HASHER",
    "hash_password",
    "needs_rehash",
    "password_problems",
    "verify_password",
    "burn_verification",
]

# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.ID)

# A hash of a random password, verified against when the user does not exist, so
# that an unknown username costs the same work as a wrong password.
_DUMMY_HASH = HASHER.hash("tessera-unknown-user-placeholder")

MIN_LENGTH = 12
MAX_LENGTH = 256
_COMMON = frozenset(
    {
        "password1234",
        "passwordpassword",
        "123456789012",
        "qwertyuiopas",
        "letmeinletmein",
        "administrator",
        "changemechangeme",
    }
)


def hash_password(password: str) -> str:
    """Hash ``password`` with the current argon2id parameters."""
    return HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash``; never raises for a mismatch."""
    try:
        return HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def burn_verification(password: str) -> None:
    """Do the work of a failed verification (unknown user), and nothing else."""
    verify_password(_DUMMY_HASH, password)


def needs_rehash(stored_hash: str) -> bool:
    """Whether ``stored_hash`` was made with other parameters than today's."""
    try:
        return HASHER.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


def password_problems(password: str, username: str = "") -> list[str]:
    """Reasons ``password`` is too weak; empty when it is acceptable."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        problems.append(f"must be at most {MAX_LENGTH} characters")
    if len(set(password)) < 5:
        problems.append("must use more than a few distinct characters")
    if password.lower() in _COMMON or (username and username.lower() in password.lower()):
        problems.append("is too easy to guess")
    return problems
