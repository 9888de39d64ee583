"""The base of the core's errors: a machine ``code`` and, for bad input, the ``field``.

Flask-free: a core module raises these; ``app.errors`` maps each code to an
HTTP answer in one table (``CORE_ERRORS``), so no view or flow translates
them. The tree (each class lives beside the code that raises it)::

    CoreError                       core_error
    ├── users.UserError             invalid_user           field: username
    │   ├── users.UsernameTaken     username_taken         field: username
    │   └── users.WeakPassword      weak_password          field: password
    ├── mfa.MfaError                mfa_error
    │   ├── mfa.InvalidCode         invalid_code
    │   ├── mfa.MfaAlreadyEnabled   mfa_already_enabled
    │   ├── mfa.MfaNotEnabled       mfa_not_enabled
    │   └── mfa.NoPendingEnrollment no_pending_enrollment
    ├── clients.ClientError         invalid_client         field: name or scopes
    │   └── clients.UnknownClient   unknown_client
    ├── keys.KeyError_              key_refused
    │   ├── keys.RotationRefused    rotation_refused
    │   └── keys.UnknownKey         unknown_key
    ├── crypto.SealError            seal_failed
    └── passkeys.PasskeyError       passkey_error
        ├── passkeys.PasskeyRejected passkey_rejected      ``reason``: which check
        └── passkeys.NoPasskeys     no_passkeys

The errors that were ``ValueError`` stay ``ValueError`` too (the CLI catches them
as such). The message is for operators and, for a field error, for the caller.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["CoreError"]


class CoreError(Exception):
    """A core rule refused the operation; ``code`` names which, ``field`` the bad input."""

    code: ClassVar[str] = "core_error"
    field: str | None = None

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message)
        if field is not None:
            self.field = field

    @property
    def message(self) -> str:
        """The text the error was raised with."""
        return str(self)
