"""The files Tessera keeps in its instance folder, readable by its own user only.

The embedded default keeps its SQLite database (password hashes, TOTP secrets
sealed by the key file beside it, audit rows with addresses) and the generated
key-encryption key in ``instance/`` (SPEC §2, §4). The folder is 0700 and every
file 0600 (issue 16 item 7):

- the database file is created here, empty and 0600, before SQLite opens it:
  SQLite gives the WAL, SHM and journal files it makes later the database
  file's own mode, whatever the umask (its unix VFS copies the mode);
- the key file is created 0600 by whoever wins the race to create it;
- at every start, an install made before this rule is tightened: group and
  other bits are taken off the folder and those files (an owner's bits are
  never added).
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import stat
from pathlib import Path

__all__ = ["DATABASE_FILE", "KEK_FILE", "embedded_database", "instance_kek", "private_folder"]

log = logging.getLogger(__name__)

KEK_FILE = "key-encryption-key"
DATABASE_FILE = "tessera.db"
# What SQLite adds beside a database file, named after it.
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def _tighten(path: Path) -> None:
    """Take the group and other bits off ``path`` if it exists."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            path.chmod(mode & 0o700)
    except FileNotFoundError:
        pass  # a companion SQLite has not made, or has removed
    except PermissionError:  # another user's file: say so rather than fail to start
        log.warning("%s is readable by others and not ours to change", path)


def _create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def private_folder(instance: Path) -> Path:
    """The instance folder, made 0700 if missing and tightened if not."""
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tighten(instance)
    return instance


def embedded_database(instance: Path) -> Path:
    """The embedded default's SQLite file: created 0600, its companions tightened."""
    path = private_folder(instance) / DATABASE_FILE
    _create_private(path)  # an empty file is an empty SQLite database
    for candidate in (path, *(path.with_name(path.name + s) for s in _SQLITE_COMPANIONS)):
        _tighten(candidate)
    return path


def instance_kek(instance: Path) -> bytes:
    """Read, or create once with mode 0600, the embedded default's key-encryption key.

    Raises ValueError when the file does not hold a base64url 32-byte key.
    """
    path = private_folder(instance) / KEK_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _tighten(path)
    else:  # we won the race to create it: write a fresh key
        with os.fdopen(fd, "w") as handle:
            handle.write(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    text = path.read_text().strip()
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ValueError(f"{path}: not a base64url 32-byte key-encryption key")
    return key
